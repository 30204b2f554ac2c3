//! `account-ledger schedule add|list|cancel`: scheduled changes over gRPC (ScheduleService).

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::Conn;
use super::client::status_text;
use super::connect::authorized;
use super::output::{table, ts};
use super::time::{parse_duration_us, parse_instant};
use crate::api::convert::us_to_timestamp;
use crate::api::pb::{self, schedule_service_client::ScheduleServiceClient};

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Schedule a change: `--disable-at T1 --enable-at T2` is a lock-out (T2 enables again
    /// only what it disabled), `--enable-at T` alone a delayed start, `--delete-at T` deletes
    /// the selected accounts that are still deactivated stubs then. Instants are RFC 3339
    /// (2026-06-20T00:00:00Z) or Unix seconds.
    Add(AddArgs),
    /// A domain's schedules, done and cancelled ones included.
    List { domain: String },
    /// Operator: a deletion grace period for the domain (e.g. 30d; 0 turns it off): stubs an
    /// import would delete are deactivated first and deleted when it ends, unless they come
    /// back meanwhile.
    GracePeriod {
        domain: String,
        /// 30d, 12h, ... or 0.
        period: String,
    },
    /// Cancel a pending or running schedule: it fires no more (accounts keep their status).
    Cancel {
        domain: String,
        schedule: u32,
        /// Why (kept in the log).
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("who").required(true).args(["everyone", "role", "accounts", "import_ids"])))]
#[command(group(clap::ArgGroup::new("when").required(true).multiple(true).args(["disable_at", "enable_at", "delete_at"])))]
pub struct AddArgs {
    pub domain: String,
    /// Every account of the domain (also accounts created before it fires).
    #[arg(long)]
    pub everyone: bool,
    /// Every account with this role (e.g. student).
    #[arg(long)]
    pub role: Option<String>,
    /// Account numbers, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub accounts: Vec<u64>,
    /// Import ids, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub import_ids: Vec<String>,
    /// Disable the selected enabled accounts then.
    #[arg(long)]
    pub disable_at: Option<String>,
    /// Enable then: after --disable-at, what the lock-out disabled; alone, the selected
    /// disabled accounts (a delayed start).
    #[arg(long)]
    pub enable_at: Option<String>,
    /// Delete then the selected accounts that are still deactivated stubs.
    #[arg(long, conflicts_with_all = ["disable_at", "enable_at"])]
    pub delete_at: Option<String>,
    /// Why (kept in the log).
    #[arg(long)]
    pub reason: String,
}

fn instant(flag: &str, value: &str) -> Result<prost_types::Timestamp, String> {
    parse_instant(value)
        .map(us_to_timestamp)
        .map_err(|e| format!("{flag} {e}"))
}

impl AddArgs {
    fn request(&self) -> Result<pb::ScheduleChangeRequest, String> {
        use pb::schedule_selection::Kind;
        let kind = if self.everyone {
            Kind::Everyone(true)
        } else if let Some(role) = &self.role {
            Kind::Role(role.clone())
        } else if !self.accounts.is_empty() {
            Kind::Accounts(pb::AccountIds {
                ids: self.accounts.clone(),
            })
        } else {
            Kind::ImportIds(pb::ImportIds {
                ids: self.import_ids.clone(),
            })
        };
        let (action, at, until) = match (&self.disable_at, &self.enable_at, &self.delete_at) {
            (Some(off), on, None) => (
                pb::ScheduledAction::Disable,
                instant("--disable-at", off)?,
                on.as_deref()
                    .map(|on| instant("--enable-at", on))
                    .transpose()?,
            ),
            (None, Some(on), None) => (
                pb::ScheduledAction::Enable,
                instant("--enable-at", on)?,
                None,
            ),
            (None, None, Some(del)) => (
                pb::ScheduledAction::Delete,
                instant("--delete-at", del)?,
                None,
            ),
            _ => return Err("give --disable-at [--enable-at], --enable-at or --delete-at".into()),
        };
        Ok(pb::ScheduleChangeRequest {
            domain: self.domain.clone(),
            selection: Some(pb::ScheduleSelection { kind: Some(kind) }),
            action: action as i32,
            at: Some(at),
            until,
            reason: self.reason.clone(),
            request_id: None,
        })
    }
}

fn action_name(action: i32) -> &'static str {
    match pb::ScheduledAction::try_from(action) {
        Ok(pb::ScheduledAction::Disable) => "disable",
        Ok(pb::ScheduledAction::Enable) => "enable",
        Ok(pb::ScheduledAction::Delete) => "delete",
        _ => "unknown",
    }
}

fn selection_text(s: Option<&pb::ScheduleSelection>) -> String {
    use pb::schedule_selection::Kind;
    match s.and_then(|s| s.kind.as_ref()) {
        Some(Kind::Everyone(_)) => "everyone".into(),
        Some(Kind::Role(r)) => format!("role {r}"),
        Some(Kind::Accounts(a)) => format!("{} accounts", a.ids.len()),
        Some(Kind::ImportIds(i)) => format!("{} import ids", i.ids.len()),
        None => "-".into(),
    }
}

fn schedule_json(s: &pb::ScheduledChange) -> Value {
    json!({
        "domain": s.domain,
        "schedule": s.schedule,
        "action": action_name(s.action),
        "at": ts(s.at.as_ref()),
        "until": ts(s.until.as_ref()),
        "selection": selection_text(s.selection.as_ref()),
        "reason": s.reason,
        "status": s.status,
        "changed": s.changed,
        "not_enabled": s.not_enabled,
        "held": s.held,
    })
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        _ => "-".into(),
    }
}

fn print(schedules: &[pb::ScheduledChange]) {
    let rows: Vec<Vec<String>> = schedules
        .iter()
        .map(|s| {
            vec![
                s.schedule.to_string(),
                action_name(s.action).into(),
                text(&ts(s.at.as_ref())),
                text(&ts(s.until.as_ref())),
                selection_text(s.selection.as_ref()),
                s.status.clone(),
                s.changed.to_string(),
                s.not_enabled.len().to_string(),
                s.reason.clone(),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "ACTION",
            "AT",
            "UNTIL",
            "WHO",
            "STATUS",
            "CHANGED",
            "NOT ENABLED",
            "REASON",
        ],
        &rows,
    );
}

/// `account-ledger schedule ...`.
pub async fn run(conn: Conn, command: ScheduleCommand) -> Result<(), String> {
    let channel = super::connect::channel(&conn).await?;
    let auth = super::connect::bearer(&conn)?;
    let mut client = ScheduleServiceClient::new(channel);
    let mut listed = false;
    let shown = match command {
        ScheduleCommand::Add(args) => {
            let msg = args.request()?;
            vec![
                client
                    .schedule_change(authorized(&auth, msg))
                    .await
                    .map_err(status_text)?
                    .into_inner(),
            ]
        }
        ScheduleCommand::Cancel {
            domain,
            schedule,
            reason,
        } => vec![
            client
                .cancel_schedule(authorized(
                    &auth,
                    pb::CancelScheduleRequest {
                        domain,
                        schedule,
                        reason,
                    },
                ))
                .await
                .map_err(status_text)?
                .into_inner(),
        ],
        ScheduleCommand::List { domain } => {
            listed = true;
            let listing = client
                .list_schedules(authorized(&auth, pb::ListSchedulesRequest { domain }))
                .await
                .map_err(status_text)?
                .into_inner();
            if !conn.json && listing.deletion_grace_seconds > 0 {
                println!(
                    "deletion grace period: {} s",
                    listing.deletion_grace_seconds
                );
            }
            listing.schedules
        }
        ScheduleCommand::GracePeriod { domain, period } => {
            let grace_us = match period.trim() {
                "0" => 0,
                p => parse_duration_us(p)?,
            };
            let listing = client
                .set_deletion_grace(authorized(
                    &auth,
                    pb::SetDeletionGraceRequest {
                        domain: domain.clone(),
                        grace_seconds: (grace_us / 1_000_000) as u64,
                    },
                ))
                .await
                .map_err(status_text)?
                .into_inner();
            if conn.json {
                println!(
                    "{}",
                    json!({"domain": domain, "deletion_grace_seconds": listing.deletion_grace_seconds})
                );
            } else {
                println!(
                    "domain {domain}: deletion grace period {} s",
                    listing.deletion_grace_seconds
                );
            }
            return Ok(());
        }
    };
    if conn.json && listed {
        // A list: one JSON array, `[]` when there is none.
        let all: Vec<serde_json::Value> = shown.iter().map(schedule_json).collect();
        println!("{}", serde_json::Value::Array(all));
    } else if conn.json {
        // `add` and `cancel`: the schedule itself.
        for s in &shown {
            println!("{}", schedule_json(s));
        }
    } else {
        print(&shown);
    }
    Ok(())
}
