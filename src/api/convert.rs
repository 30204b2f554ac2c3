//! Wire ↔ domain conversion. Wire types stay at the edge: every conversion of client input is a
//! `TryFrom`/function returning INVALID_ARGUMENT naming the field, never an unwrap.

use prost_types::Timestamp;
use tonic::Status;

use super::auth::Role;
use super::pb;
use super::status::{invalid, missing};
use crate::domain::schedule::{Change, Schedule, Selection, Target};
use crate::domain::{AccountState, Profile, Status as AccountStatus};
use crate::store::{RecordedEvent, Source};

/// Microseconds since the Unix epoch from a wire timestamp (`field` names it in errors).
/// Seconds of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: protobuf's Timestamp range.
const MIN_SECONDS: i64 = -62_135_596_800;
const MAX_SECONDS: i64 = 253_402_300_799;

pub fn timestamp_to_us(ts: &Timestamp, field: &str) -> Result<i64, Status> {
    if !(0..1_000_000_000).contains(&ts.nanos) {
        return Err(invalid(field, format!("nanos {} out of range", ts.nanos)));
    }
    if !(MIN_SECONDS..=MAX_SECONDS).contains(&ts.seconds) {
        return Err(invalid(
            field,
            format!(
                "seconds {} is outside years 1 to 9999 (a Timestamp's range)",
                ts.seconds
            ),
        ));
    }
    ts.seconds
        .checked_mul(1_000_000)
        .and_then(|us| us.checked_add(i64::from(ts.nanos / 1000)))
        .ok_or_else(|| invalid(field, format!("seconds {} out of range", ts.seconds)))
}

pub fn us_to_timestamp(us: i64) -> Timestamp {
    Timestamp {
        seconds: us.div_euclid(1_000_000),
        nanos: (us.rem_euclid(1_000_000) * 1000) as i32,
    }
}

pub fn optional_as_of(ts: Option<&Timestamp>) -> Result<Option<i64>, Status> {
    ts.map(|t| timestamp_to_us(t, "as_of")).transpose()
}

impl TryFrom<Option<pb::Profile>> for Profile {
    type Error = Status;
    fn try_from(p: Option<pb::Profile>) -> Result<Profile, Status> {
        let p = p.ok_or_else(|| missing("profile"))?;
        if p.login.trim().is_empty() {
            return Err(missing("profile.login"));
        }
        Ok(Profile {
            login: p.login,
            first_name: p.first_name,
            last_name: p.last_name,
            email: p.email,
        })
    }
}

impl From<&Profile> for pb::Profile {
    fn from(p: &Profile) -> pb::Profile {
        pb::Profile {
            login: p.login.clone(),
            first_name: p.first_name.clone(),
            last_name: p.last_name.clone(),
            email: p.email.clone(),
        }
    }
}

impl From<AccountStatus> for pb::AccountStatus {
    fn from(s: AccountStatus) -> pb::AccountStatus {
        match s {
            AccountStatus::Enabled => pb::AccountStatus::Enabled,
            AccountStatus::Disabled => pb::AccountStatus::Disabled,
            AccountStatus::Deactivated => pb::AccountStatus::Deactivated,
            AccountStatus::Deleted => pb::AccountStatus::Deleted,
        }
    }
}

impl From<&AccountState> for pb::Account {
    fn from(a: &AccountState) -> pb::Account {
        pb::Account {
            id: a.id,
            domain: a.domain.to_string(),
            import_id: a.import_id.clone(),
            profile: Some((&a.profile.to_profile()).into()),
            role: a.role.to_string(),
            status: pb::AccountStatus::from(a.status()) as i32,
            enabled: a.enabled,
            active: a.active,
            deleted: a.deleted,
            last_sign_in: a.last_sign_in_us.map(us_to_timestamp),
            owns_data: a.owns_data,
            version: a.version,
        }
    }
}

/// The role of a token, from the wire enum (an i32 on the wire).
pub fn role_from_wire(role: i32) -> Result<Role, Status> {
    match pb::Role::try_from(role) {
        Ok(pb::Role::Operator) => Ok(Role::Operator),
        Ok(pb::Role::DomainAdmin) => Ok(Role::DomainAdmin),
        Ok(pb::Role::Lms) => Ok(Role::Lms),
        Ok(pb::Role::Auditor) => Ok(Role::Auditor),
        Ok(pb::Role::Unspecified) | Err(_) => Err(invalid(
            "role",
            "must be operator, domain admin, lms or auditor",
        )),
    }
}

impl From<&Source> for pb::EventSource {
    fn from(s: &Source) -> pb::EventSource {
        use pb::event_source::Kind;
        let kind = match s {
            Source::Manual => Kind::Manual(pb::Manual {}),
            Source::LmsReport => Kind::LmsReport(pb::LmsReport {}),
            Source::Import { job_id, file, row } => Kind::Import(pb::ImportRow {
                job_id: job_id.to_string(),
                file: file.to_string(),
                row: *row,
            }),
            Source::Revert { job_id, reverted } => Kind::Revert(pb::RevertOf {
                job_id: job_id.to_string(),
                reverted_job_id: reverted.to_string(),
            }),
            Source::Schedule { schedule, phase } => Kind::Schedule(pb::ScheduleFiring {
                schedule: *schedule,
                phase: phase.as_str().to_string(),
            }),
        };
        pb::EventSource { kind: Some(kind) }
    }
}

/// An event for the wire; `domain` is the domain of its stream when known.
pub fn event_to_wire(e: &RecordedEvent, domain: Option<String>) -> pb::LedgerEvent {
    let detail = serde_json::to_value(&e.event)
        .ok()
        .and_then(|v| match v {
            serde_json::Value::Object(mut map) => map.remove(e.event.kind()),
            other => Some(other),
        })
        .map(|v| v.to_string())
        .unwrap_or_default();
    pb::LedgerEvent {
        position: e.position,
        stream_version: e.stream_version,
        event_id: e.event_id.to_string(),
        recorded_at: Some(us_to_timestamp(e.recorded_at_us)),
        actor: e.actor.to_string(),
        source: Some((&e.source).into()),
        request_id: e.request_id.clone(),
        kind: e.event.kind().to_string(),
        domain: domain.unwrap_or_default(),
        account: e.event.account(),
        detail_json: detail,
    }
}

/// A client request id: non-empty, at most 200 characters.
/// A page size as asked: 0 means 1000, at most 10000 (a page is one message).
pub fn page_limit(limit: u32) -> Result<usize, Status> {
    match limit {
        0 => Ok(1000),
        n if n > 10_000 => Err(invalid("limit", format!("{n} is more than 10000"))),
        n => Ok(n as usize),
    }
}

pub fn request_id(id: Option<String>) -> Result<Option<String>, Status> {
    match id {
        None => Ok(None),
        Some(id) if id.is_empty() || id.len() > 200 => Err(invalid(
            "request_id",
            "must be 1 to 200 characters when given",
        )),
        Some(id) => Ok(Some(id)),
    }
}

/// Longest search or role filter a list takes: a search word is a prefix of a profile field
/// (at most 256 bytes), so a longer one finds nothing, and checking it costs every candidate.
pub const MAX_FILTER_BYTES: usize = 256;

/// An optional list filter: absent when empty, refused when longer than [`MAX_FILTER_BYTES`].
pub fn list_filter(field: &str, value: Option<String>) -> Result<Option<String>, Status> {
    match value {
        Some(v) if v.len() > MAX_FILTER_BYTES => Err(invalid(
            field,
            format!("{} bytes, more than {MAX_FILTER_BYTES}", v.len()),
        )),
        v => Ok(v.filter(|s| !s.is_empty())),
    }
}

/// A required non-blank text field.
pub fn required(field: &str, value: String) -> Result<String, Status> {
    if value.trim().is_empty() {
        Err(missing(field))
    } else {
        Ok(value)
    }
}

/// A token as the operator sees it (never its secret).
pub fn token_to_wire(t: &crate::api::auth::TokenEntry) -> pb::TokenInfo {
    pb::TokenInfo {
        id: t.id().to_string(),
        principal: t.principal.clone(),
        role: role_to_wire(t.role) as i32,
        domains: t.domains.clone(),
        created_at: t.created_at_us.map(us_to_timestamp),
        expires_at: t.expires_at_us.map(us_to_timestamp),
        last_used: t.last_used_us.map(us_to_timestamp),
    }
}

pub fn role_to_wire(role: Role) -> pb::Role {
    match role {
        Role::Operator => pb::Role::Operator,
        Role::DomainAdmin => pb::Role::DomainAdmin,
        Role::Lms => pb::Role::Lms,
        Role::Auditor => pb::Role::Auditor,
    }
}

/// A ListAccounts cursor on the wire: the last account of the page, readable but to be passed
/// back unchanged.
pub fn page_token(after: crate::domain::AccountId) -> String {
    format!("after:{after}")
}

/// The account a page token says to start after (0 for an empty token: the first page).
pub fn page_token_after(token: &str) -> Result<crate::domain::AccountId, Status> {
    if token.is_empty() {
        return Ok(0);
    }
    token
        .strip_prefix("after:")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            invalid(
                "page_token",
                format!(
                    "{:?} is not a token this server gave out: pass next_page_token back unchanged",
                    token
                ),
            )
        })
}

/// A schedule's selection as asked on the wire.
pub fn schedule_target(s: Option<pb::ScheduleSelection>) -> Result<Target, Status> {
    use pb::schedule_selection::Kind;
    match s.and_then(|s| s.kind) {
        Some(Kind::Everyone(true)) => Ok(Target::Everyone),
        Some(Kind::Everyone(false)) => Err(invalid(
            "selection.everyone",
            "must be true when given; pick a role or accounts instead",
        )),
        Some(Kind::Role(role)) => Ok(Target::Role(required("selection.role", role)?)),
        Some(Kind::Accounts(a)) => Ok(Target::Accounts(a.ids)),
        Some(Kind::ImportIds(i)) => Ok(Target::ImportIds {
            ids: i.ids,
            skip_unknown: false,
        }),
        None => Err(missing("selection")),
    }
}

/// What and when, from the wire's action and instants.
pub fn schedule_change(
    action: i32,
    at: Option<Timestamp>,
    until: Option<Timestamp>,
) -> Result<Change, Status> {
    let at_us = timestamp_to_us(&at.ok_or_else(|| missing("at"))?, "at")?;
    let until_us = until.map(|t| timestamp_to_us(&t, "until")).transpose()?;
    let change = match pb::ScheduledAction::try_from(action) {
        Ok(pb::ScheduledAction::Disable) => Change::Disable { at_us, until_us },
        Ok(pb::ScheduledAction::Enable) => Change::Enable { at_us },
        Ok(pb::ScheduledAction::Delete) => Change::Delete { at_us },
        Ok(pb::ScheduledAction::Unspecified) | Err(_) => {
            return Err(invalid("action", "must be disable, enable or delete"));
        }
    };
    if until_us.is_some() && !matches!(change, Change::Disable { .. }) {
        return Err(invalid("until", "only a disable (a lock-out) has an end"));
    }
    Ok(change)
}

pub fn schedule_to_wire(domain: &str, s: &Schedule, position: u64) -> pb::ScheduledChange {
    use pb::schedule_selection::Kind;
    let (action, at, until) = match s.change {
        Change::Disable { at_us, until_us } => (pb::ScheduledAction::Disable, at_us, until_us),
        Change::Enable { at_us } => (pb::ScheduledAction::Enable, at_us, None),
        Change::Delete { at_us } => (pb::ScheduledAction::Delete, at_us, None),
    };
    let kind = match &s.selection {
        Selection::Everyone => Kind::Everyone(true),
        Selection::Role(r) => Kind::Role(r.clone()),
        Selection::Accounts(ids) => Kind::Accounts(pb::AccountIds { ids: ids.clone() }),
    };
    pb::ScheduledChange {
        domain: domain.to_string(),
        schedule: s.id,
        action: action as i32,
        at: Some(us_to_timestamp(at)),
        until: until.map(us_to_timestamp),
        reason: s.reason.clone(),
        status: s.status.as_str().to_string(),
        selection: Some(pb::ScheduleSelection { kind: Some(kind) }),
        changed: s.changed,
        not_enabled: s.not_enabled.clone(),
        held: s.restore.len() as u64,
        position,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_and_bad_ones_name_the_field() {
        for us in [0, 1, 1_700_000_000_123_456, -5] {
            assert_eq!(timestamp_to_us(&us_to_timestamp(us), "as_of").unwrap(), us);
        }
        let bad = Timestamp {
            seconds: 1,
            nanos: -1,
        };
        let e = timestamp_to_us(&bad, "as_of").unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("as_of"));
        let huge = Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        };
        assert!(timestamp_to_us(&huge, "as_of").is_err());
    }
}
