//! How client results look: plain tables for people, JSON for scripts.

use serde_json::{Value, json};

use super::time::format_us;
use crate::api::convert::timestamp_to_us;
use crate::api::pb;

pub fn ts(t: Option<&prost_types::Timestamp>) -> Value {
    t.and_then(|t| timestamp_to_us(t, "time").ok())
        .map_or(Value::Null, |us| Value::String(format_us(us)))
}

fn ts_text(t: Option<&prost_types::Timestamp>) -> String {
    match ts(t) {
        Value::String(s) => s,
        _ => "-".into(),
    }
}

pub fn status_text(status: i32) -> &'static str {
    match pb::AccountStatus::try_from(status) {
        Ok(pb::AccountStatus::Enabled) => "enabled",
        Ok(pb::AccountStatus::Disabled) => "disabled",
        Ok(pb::AccountStatus::Deactivated) => "deactivated",
        Ok(pb::AccountStatus::Deleted) => "deleted",
        _ => "none",
    }
}

pub fn account_json(a: &pb::Account) -> Value {
    let p = a.profile.clone().unwrap_or_default();
    json!({
        "id": a.id,
        "domain": a.domain,
        "import_id": a.import_id,
        "login": p.login,
        "first_name": p.first_name,
        "last_name": p.last_name,
        "email": p.email,
        "role": a.role,
        "status": status_text(a.status),
        "enabled": a.enabled,
        "active": a.active,
        "deleted": a.deleted,
        "last_sign_in": ts(a.last_sign_in.as_ref()),
        "owns_data": a.owns_data,
        "version": a.version,
    })
}

pub fn reply_json(r: &pb::CommandReply) -> Value {
    json!({
        "account": r.account,
        "positions": r.positions,
        "replayed": r.replayed,
        "account_version": r.account_version,
    })
}

pub fn reply_text(r: &pb::CommandReply) -> String {
    let what = if r.replayed {
        "already done (retry of the same request id); nothing new recorded".to_string()
    } else if r.positions.is_empty() {
        "nothing to change".to_string()
    } else {
        format!("recorded at log position(s) {:?}", r.positions)
    };
    match r.account {
        Some(id) => format!("account {id} (version {}): {what}", r.account_version),
        None => what,
    }
}

pub fn event_json(e: &pb::LedgerEvent) -> Value {
    let source = match e.source.as_ref().and_then(|s| s.kind.as_ref()) {
        Some(pb::event_source::Kind::Manual(_)) => json!("manual"),
        Some(pb::event_source::Kind::LmsReport(_)) => json!("lms"),
        Some(pb::event_source::Kind::Import(i)) => {
            json!({"import_job": i.job_id, "file": i.file, "row": i.row})
        }
        Some(pb::event_source::Kind::Revert(r)) => {
            json!({"revert_job": r.job_id, "reverted_job": r.reverted_job_id})
        }
        Some(pb::event_source::Kind::Schedule(s)) => {
            json!({"schedule": s.schedule, "phase": s.phase})
        }
        None => Value::Null,
    };
    json!({
        "position": e.position,
        "stream_version": e.stream_version,
        "event_id": e.event_id,
        "recorded_at": ts(e.recorded_at.as_ref()),
        "actor": e.actor,
        "source": source,
        "request_id": e.request_id,
        "kind": e.kind,
        "domain": e.domain,
        "account": e.account,
        "detail": serde_json::from_str::<Value>(&e.detail_json).unwrap_or(Value::Null),
    })
}

/// `s` safe to print on a terminal: control, bidirectional and invisible characters (stored
/// before they were refused, or in a server's message) are shown escaped, never interpreted.
/// Newlines are kept when `keep_newlines`.
pub fn printable(s: &str, keep_newlines: bool) -> String {
    s.chars()
        .map(|c| {
            if (keep_newlines && c == '\n') || !crate::domain::names::forbidden_char(c) {
                c.to_string()
            } else {
                c.escape_unicode().to_string()
            }
        })
        .collect()
}

/// Print rows as a left-aligned table with a header.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| printable(c, false)).collect())
        .collect();
    let rows = &rows[..];
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

pub fn account_rows(accounts: &[pb::Account]) -> Vec<Vec<String>> {
    accounts
        .iter()
        .map(|a| {
            let p = a.profile.clone().unwrap_or_default();
            vec![
                a.id.to_string(),
                status_text(a.status).to_string(),
                a.import_id.clone().unwrap_or_else(|| "-".into()),
                p.login,
                format!("{} {}", p.first_name, p.last_name)
                    .trim()
                    .to_string(),
                p.email,
                a.role.clone(),
            ]
        })
        .collect()
}

pub const ACCOUNT_HEADER: [&str; 7] = [
    "ID",
    "STATUS",
    "IMPORT_ID",
    "LOGIN",
    "NAME",
    "EMAIL",
    "ROLE",
];

pub fn print_account(a: &pb::Account) {
    if a.deleted {
        // A tombstone: say so plainly instead of blank fields.
        println!("{:<13} {}", "id", a.id);
        println!("{:<13} {}", "domain", printable(&a.domain, false));
        println!(
            "{:<13} deleted; personal data erased (login, name and email are gone for good)",
            "status"
        );
        println!(
            "{:<13} {}",
            "last sign-in",
            ts_text(a.last_sign_in.as_ref())
        );
        println!("{:<13} {}", "version", a.version);
        println!("(`account history {}` shows when and by whom)", a.id);
        return;
    }
    let p = a.profile.clone().unwrap_or_default();
    let rows = [
        ("id", a.id.to_string()),
        ("domain", a.domain.clone()),
        ("status", status_text(a.status).to_string()),
        (
            "import id",
            a.import_id.clone().unwrap_or_else(|| "-".into()),
        ),
        ("login", p.login),
        (
            "name",
            format!("{} {}", p.first_name, p.last_name)
                .trim()
                .to_string(),
        ),
        ("email", p.email),
        ("role", a.role.clone()),
        ("last sign-in", ts_text(a.last_sign_in.as_ref())),
        ("owns data", a.owns_data.to_string()),
        ("version", a.version.to_string()),
    ];
    for (k, v) in rows {
        println!("{k:<13} {}", printable(&v, false));
    }
}

pub fn event_rows(events: &[pb::LedgerEvent]) -> Vec<Vec<String>> {
    events
        .iter()
        .map(|e| {
            let source = match e.source.as_ref().and_then(|s| s.kind.as_ref()) {
                Some(pb::event_source::Kind::Manual(_)) => "manual".to_string(),
                Some(pb::event_source::Kind::LmsReport(_)) => "lms".to_string(),
                Some(pb::event_source::Kind::Import(i)) => {
                    format!("import {} {}:{}", i.job_id, i.file, i.row)
                }
                Some(pb::event_source::Kind::Revert(r)) => {
                    format!("revert {} of job {}", r.job_id, r.reverted_job_id)
                }
                Some(pb::event_source::Kind::Schedule(s)) => {
                    format!("schedule {} {}", s.schedule, s.phase)
                }
                None => "-".into(),
            };
            vec![
                e.position.to_string(),
                ts_text(e.recorded_at.as_ref()),
                e.actor.clone(),
                source,
                e.kind.clone(),
                e.account.map_or_else(|| "-".into(), |a| a.to_string()),
                e.domain.clone(),
            ]
        })
        .collect()
}

pub const EVENT_HEADER: [&str; 7] = [
    "POS",
    "RECORDED_AT",
    "ACTOR",
    "SOURCE",
    "EVENT",
    "ACCOUNT",
    "DOMAIN",
];

fn role_text(role: i32) -> &'static str {
    match pb::Role::try_from(role) {
        Ok(pb::Role::Operator) => "operator",
        Ok(pb::Role::DomainAdmin) => "domain-admin",
        Ok(pb::Role::Lms) => "lms",
        Ok(pb::Role::Auditor) => "auditor",
        _ => "-",
    }
}

pub fn token_json(t: &pb::TokenInfo) -> Value {
    json!({
        "id": t.id,
        "principal": t.principal,
        "role": role_text(t.role),
        "domains": t.domains,
        "created_at": ts(t.created_at.as_ref()),
        "expires_at": ts(t.expires_at.as_ref()),
        "last_used": ts(t.last_used.as_ref()),
    })
}

pub const TOKEN_HEADER: [&str; 7] = [
    "ID",
    "PRINCIPAL",
    "ROLE",
    "DOMAINS",
    "CREATED",
    "EXPIRES",
    "LAST_USED",
];

pub fn token_rows(tokens: &[pb::TokenInfo]) -> Vec<Vec<String>> {
    tokens
        .iter()
        .map(|t| {
            vec![
                t.id.clone(),
                t.principal.clone(),
                role_text(t.role).to_string(),
                if t.domains.is_empty() {
                    "-".into()
                } else {
                    t.domains.join(",")
                },
                ts_text(t.created_at.as_ref()),
                ts_text(t.expires_at.as_ref()),
                ts_text(t.last_used.as_ref()),
            ]
        })
        .collect()
}
