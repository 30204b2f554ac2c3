//! Planning: file rows + the current state → the commands that make the ledger match the file.
//! Pure (no I/O): the caller feeds rows as they are read and holds the state only per call.
//!
//! Rules (DOMAIN.md, "How each change happens" and "Decisions"):
//! - a row whose import id is unknown (or whose account was Deleted) creates a new account;
//! - a known account gets only what differs: Reactivate (if Deactivated; the row's flag
//!   applies), Enable/Disable, UpdateProfile; an unchanged row plans nothing, so re-running a
//!   file plans zero commands;
//! - a removal (delete_users.csv, OneRoster `tobedeleted`) Deletes a stub, Deactivates others;
//! - a full import removes the import-managed, active accounts the file left out (stub: Delete;
//!   other: Deactivate); accounts created by hand, and those already Deactivated, are left alone;
//! - a duplicate import id or login within one file is a row error on the later row;
//! - a scheduled change holding an account (a running lock-out, a pending start) wins: a row
//!   that would enable it leaves it disabled and is listed as held; with a start instant
//!   (`--start-at`) new accounts are created disabled and a schedule enables them then.
//!
//! Every command on an existing account carries the account version it was planned against, so
//! a change that happens between planning and applying (a sign-in turning a stub into an account
//! with data, say) refuses the row instead of applying a stale decision; a row's second command
//! expects the version after its first, so a row is refused whole when its first command is.
//! Removals of left-out accounts are ordered before the file's rows, so licenses they free are
//! available to the rows; the rows then apply in file order.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use uuid::Uuid;

use super::error::{ColumnNames, RowError};
use super::limits::MAX_ROW_ERRORS_LISTED;
use super::rows::{RowAction, UserFields, UserRow};
use crate::domain::GuardCheck;
use crate::domain::schedule::{self, Change, ScheduleId, Target};
use crate::domain::{AccountId, AccountState, Command, LedgerState, Profile, Status};
use crate::ledger::Request;
use crate::store::Source;

/// Whether accounts left out of the file are removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Scope {
    /// users.csv, OneRoster bulk.
    Full,
    /// update_users.csv, delete_users.csv, OneRoster delta.
    Partial,
}

/// One kind of change, as counted in reports; each is exactly one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Created,
    Updated,
    Enabled,
    Disabled,
    Deactivated,
    Reactivated,
    Deleted,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Created => "created",
            ChangeKind::Updated => "updated",
            ChangeKind::Enabled => "enabled",
            ChangeKind::Disabled => "disabled",
            ChangeKind::Deactivated => "deactivated",
            ChangeKind::Reactivated => "reactivated",
            ChangeKind::Deleted => "deleted",
        }
    }
}

/// One command and the events it is expected to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub command: Command,
    pub expected_version: Option<u64>,
    pub changes: Vec<ChangeKind>,
}

/// The commands of one row (or of one left-out account: row 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedRow {
    pub row: u64,
    pub import_id: String,
    pub account: Option<AccountId>,
    pub steps: Vec<Step>,
}

/// A row once [`Plan::take_requests`] took its commands: what answering for it needs (the
/// changes each of its commands makes), not the commands, which are held once, in the
/// requests, while the job is written (a 1M-row job held both, about 200 MB more).
#[derive(Debug)]
pub struct TakenRow {
    pub row: u64,
    pub import_id: String,
    pub account: Option<AccountId>,
    /// Per command of the row, in order: what it changes.
    pub steps: Vec<Vec<ChangeKind>>,
}

/// A row whose wish was held by a scheduled change (DOMAIN.md: a lock-out wins over imports
/// until it ends): `enable` rows stay disabled and are enabled when the schedule says;
/// `!enable` rows asked for disabled, which the schedule will then not undo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub row: u64,
    pub import_id: String,
    /// Every schedule holding it (overlapping lock-outs each remember the wish).
    pub schedules: Vec<ScheduleId>,
    pub enable: bool,
}

/// The whole plan of one file.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub domain: String,
    pub file: String,
    /// Left-out removals first, then the file's rows in file order.
    pub rows: Vec<PlannedRow>,
    /// Valid rows that need no change.
    pub unchanged: u64,
    /// Rows that could not be planned (bad values, duplicates), in file order: the first
    /// [`MAX_ROW_ERRORS_LISTED`] of them; the rest are only counted in `row_errors_omitted`.
    pub row_errors: Vec<RowError>,
    pub row_errors_omitted: u64,
    /// Rows read (good and bad).
    pub rows_read: u64,
    pub guard: GuardCheck,
    /// Rows held by a scheduled change, in file order.
    pub held: Vec<Held>,
    /// With a start instant: import ids of the accounts created disabled, to be enabled then.
    pub starting: Vec<String>,
    pub start_at: Option<i64>,
    /// With a deletion grace period: import ids of the stubs deactivated instead of deleted,
    /// and when they are deleted unless they come back.
    pub grace_deletions: Vec<String>,
    pub delete_at: Option<i64>,
}

impl Plan {
    /// Record a bad row: listed while under the cap, counted beyond it (a file of millions of
    /// bad rows must not become a report of millions of errors held in memory).
    pub fn push_row_error(&mut self, e: RowError) {
        if self.row_errors.len() < MAX_ROW_ERRORS_LISTED {
            self.row_errors.push(e);
        } else {
            self.row_errors_omitted += 1;
        }
    }

    /// Bad rows, listed or not.
    pub fn failed_rows(&self) -> u64 {
        self.row_errors.len() as u64 + self.row_errors_omitted
    }

    /// The ledger requests, in order, each tagged with the job, file and row, and the rows
    /// they came from as [`TakenRow`]s (row, import id, change kinds: what the report needs).
    /// The commands are moved, not copied, and the plan's rows are left empty.
    ///
    /// After the rows' requests come the job's own (see [`Plan::job_commands`]).
    pub fn take_requests(&mut self, actor: &str, job_id: Uuid) -> (Vec<Request>, Vec<TakenRow>) {
        // One actor and one file name shared by every request and event of the job.
        let actor: std::sync::Arc<str> = actor.into();
        let file: std::sync::Arc<str> = self.file.as_str().into();
        let request = |command, row, expected_version| Request {
            command,
            actor: actor.clone(),
            source: Source::Import {
                job_id,
                file: file.clone(),
                row,
            },
            request_id: None,
            expected_version,
        };
        let job_commands = self.job_commands();
        let rows = std::mem::take(&mut self.rows);
        let steps: usize = rows.iter().map(|r| r.steps.len()).sum();
        let mut requests: Vec<Request> = Vec::with_capacity(steps + job_commands.len());
        let mut taken = Vec::with_capacity(rows.len());
        for r in rows {
            let mut changes = Vec::with_capacity(r.steps.len());
            for s in r.steps {
                requests.push(request(s.command, r.row, s.expected_version));
                changes.push(s.changes);
            }
            taken.push(TakenRow {
                row: r.row,
                import_id: r.import_id,
                account: r.account,
                steps: changes,
            });
        }
        requests.extend(
            job_commands
                .into_iter()
                .map(|command| request(command, 0, None)),
        );
        (requests, taken)
    }

    /// Commands of the job itself, decided after its rows: what each holding schedule must
    /// remember, and the schedule that starts the accounts created disabled.
    pub fn job_commands(&self) -> Vec<Command> {
        let mut by_schedule: BTreeMap<ScheduleId, (Vec<String>, Vec<String>)> = BTreeMap::new();
        for h in &self.held {
            for schedule in &h.schedules {
                let lists = by_schedule.entry(*schedule).or_default();
                if h.enable {
                    lists.0.push(h.import_id.clone());
                } else {
                    lists.1.push(h.import_id.clone());
                }
            }
        }
        let mut commands: Vec<Command> = by_schedule
            .into_iter()
            .map(|(schedule, (enable, keep_disabled))| Command::HoldImport {
                domain: self.domain.clone(),
                schedule,
                enable,
                keep_disabled,
            })
            .collect();
        if let (Some(at_us), false) = (self.delete_at, self.grace_deletions.is_empty()) {
            commands.push(Command::ScheduleChange {
                domain: self.domain.clone(),
                target: Target::ImportIds {
                    ids: self.grace_deletions.clone(),
                    skip_unknown: true,
                },
                change: Change::Delete { at_us },
                reason: format!("end of the deletion grace period of {}", self.file),
            });
        }
        if let (Some(at_us), false) = (self.start_at, self.starting.is_empty()) {
            commands.push(Command::ScheduleChange {
                domain: self.domain.clone(),
                target: Target::ImportIds {
                    ids: self.starting.clone(),
                    skip_unknown: true,
                },
                change: Change::Enable { at_us },
                reason: format!("start of the accounts created by {}", self.file),
            });
        }
        commands
    }

    pub fn command_count(&self) -> usize {
        self.rows.iter().map(|r| r.steps.len()).sum()
    }
}

/// Builds a [`Plan`] from rows fed one at a time.
pub struct Planner {
    domain: String,
    scope: Scope,
    file: String,
    names: ColumnNames,
    /// Import id → row where first seen (good or bad rows: a listed account is never removed).
    seen_ids: HashMap<String, u64>,
    /// Lowercased login → row where first seen.
    seen_logins: HashMap<String, u64>,
    plan: Plan,
    removals_in_file: u64,
    now_us: i64,
}

impl Planner {
    /// The domain this plan is for.
    pub(crate) fn domain(&self) -> &str {
        &self.domain
    }

    /// The time the plan is made: the start of a deletion grace period.
    pub(crate) fn now(mut self, now_us: i64) -> Planner {
        self.now_us = now_us;
        self
    }

    /// Create new accounts disabled and enable them at `at_us` (`import --start-at`).
    pub(crate) fn start_at(mut self, at_us: Option<i64>) -> Planner {
        self.plan.start_at = at_us;
        self
    }

    pub(crate) fn new(domain: &str, scope: Scope, file: &str, names: ColumnNames) -> Planner {
        Planner {
            domain: domain.to_string(),
            scope,
            file: file.to_string(),
            names,
            seen_ids: HashMap::new(),
            seen_logins: HashMap::new(),
            plan: Plan {
                domain: domain.to_string(),
                file: file.to_string(),
                ..Plan::default()
            },
            removals_in_file: 0,
            now_us: 0,
        }
    }

    fn error(&mut self, row: &UserRow, column: &str, reason: String) {
        self.plan.push_row_error(RowError {
            file: self.file.clone(),
            row: row.row,
            column: Some(column.to_string()),
            import_id: Some(row.import_id.clone()),
            reason,
        });
    }

    /// Plan one row (or record a bad one) against the current state.
    pub fn add(&mut self, state: &LedgerState, row: Result<UserRow, RowError>) {
        self.plan.rows_read += 1;
        let row = match row {
            Ok(r) => r,
            Err(e) => {
                if let Some(iid) = &e.import_id {
                    self.seen_ids.entry(iid.clone()).or_insert(e.row);
                }
                self.plan.push_row_error(e);
                return;
            }
        };
        if let Some(first) = self.seen_ids.get(&row.import_id) {
            let reason = format!(
                "duplicate import id {:?}: already on row {first} of this file",
                row.import_id
            );
            let col = self.names.import_id;
            self.error(&row, col, reason);
            return;
        }
        self.seen_ids.insert(row.import_id.clone(), row.row);
        if let RowAction::Upsert(UserFields {
            login: Some(login), ..
        }) = &row.action
        {
            let key = login.to_lowercase();
            if let Some(first) = self.seen_logins.get(&key) {
                let reason =
                    format!("duplicate login {login:?}: already on row {first} of this file");
                let col = self.names.login;
                self.error(&row, col, reason);
                return;
            }
            self.seen_logins.insert(key, row.row);
        }
        let existing = state.account_by_import_id(&self.domain, &row.import_id);
        let mut held = None;
        let planned = match &row.action {
            RowAction::Upsert(fields) => match existing {
                None => match create(&self.domain, &row, fields) {
                    Ok(mut step) => {
                        self.hold_new(state, &mut step, &row, &mut held);
                        vec![step]
                    }
                    Err(reason) => {
                        let col = self.names.login;
                        self.error(&row, col, reason);
                        return;
                    }
                },
                Some(acc) => {
                    let holds = schedule::holding(state, acc);
                    let mut fields = fields.clone();
                    // A blank cell keeps the flag: a deactivated account that was enabled
                    // would come back enabled, so it is held as a "1" is.
                    let wants_enabled = fields.enabled.unwrap_or(acc.enabled);
                    if !holds.is_empty() {
                        if wants_enabled && acc.status() != Status::Enabled {
                            // Held: the account stays (or comes back) disabled for now.
                            fields.enabled = Some(false);
                            held = Some((holds, true));
                        } else if fields.enabled == Some(false) {
                            held = Some((holds, false));
                        }
                    }
                    update(acc, &fields)
                }
            },
            RowAction::Remove => match existing {
                None => vec![],
                Some(acc) => self.remove(state, acc).into_iter().collect(),
            },
        };
        if let Some((schedules, enable)) = held {
            self.plan.held.push(Held {
                row: row.row,
                import_id: row.import_id.clone(),
                schedules,
                enable,
            });
        }
        if planned.is_empty() {
            self.plan.unchanged += 1;
            return;
        }
        if row.action == RowAction::Remove {
            self.removals_in_file += 1;
        }
        self.plan.rows.push(PlannedRow {
            row: row.row,
            import_id: row.import_id,
            account: existing.map(|a| a.id),
            steps: planned,
        });
    }

    /// A new account that would be created enabled: created disabled instead while a schedule
    /// holds its role, or when the job starts its accounts later.
    fn hold_new(
        &mut self,
        state: &LedgerState,
        step: &mut Step,
        row: &UserRow,
        held: &mut Option<(Vec<ScheduleId>, bool)>,
    ) {
        let Command::CreateAccount { enabled, role, .. } = &mut step.command else {
            return;
        };
        if !*enabled {
            return;
        }
        let holds = schedule::holding_new(state, &self.domain, role);
        if !holds.is_empty() {
            *enabled = false;
            *held = Some((holds, true));
        } else if self.plan.start_at.is_some() {
            *enabled = false;
            self.plan.starting.push(row.import_id.clone());
        }
    }

    /// Delete a stub, Deactivate an active account with data; nothing for a Deactivated one.
    /// With the domain's deletion grace period, a stub is deactivated now and its deletion
    /// scheduled for the end of the period.
    fn remove(&mut self, state: &LedgerState, acc: &AccountState) -> Option<Step> {
        let grace = state
            .domains
            .get(&self.domain)
            .map_or(0, |d| d.deletion_grace_us);
        if grace > 0 && acc.is_stub() {
            if !acc.active && schedule::deleting(state, acc).is_some() {
                // Still out since an earlier file: its deletion stays when it was.
                return None;
            }
            self.plan.delete_at = Some(self.now_us.saturating_add(grace));
            if let Some(iid) = &acc.import_id {
                self.plan.grace_deletions.push(iid.clone());
            }
            return acc.active.then(|| Step {
                command: Command::Deactivate { account: acc.id },
                expected_version: Some(acc.version),
                changes: vec![ChangeKind::Deactivated],
            });
        }
        remove(acc)
    }

    /// Close the plan: for a full import, remove what the file left out, and fill in the guard.
    pub fn finish(mut self, state: &LedgerState) -> Plan {
        let mut active_imported = 0;
        let mut left_out = Vec::new();
        let ids = state.domain_accounts.get(&self.domain);
        for acc in ids
            .into_iter()
            .flatten()
            .filter_map(|id| state.account(*id))
        {
            let Some(iid) = &acc.import_id else { continue };
            if acc.deleted || !acc.active {
                continue;
            }
            active_imported += 1;
            if self.scope == Scope::Full
                && !self.seen_ids.contains_key(iid)
                && let Some(step) = self.remove(state, acc)
            {
                left_out.push(PlannedRow {
                    row: 0,
                    import_id: iid.clone(),
                    account: Some(acc.id),
                    steps: vec![step],
                });
            }
        }
        let percent = state
            .domains
            .get(&self.domain)
            .map_or(crate::domain::DEFAULT_MASS_CHANGE_PERCENT, |d| {
                d.mass_change_percent
            });
        let removals = match self.scope {
            Scope::Full => left_out.len() as u64 + self.removals_in_file,
            Scope::Partial => 0,
        };
        self.plan.guard = GuardCheck {
            active_imported,
            removals,
            percent,
        };
        left_out.append(&mut self.plan.rows);
        self.plan.rows = left_out;
        self.plan
    }
}

fn create(domain: &str, row: &UserRow, f: &UserFields) -> Result<Step, String> {
    let Some(login) = &f.login else {
        return Err("a login is needed to create a new account".into());
    };
    Ok(Step {
        command: Command::CreateAccount {
            domain: domain.to_string(),
            account: 0,
            import_id: Some(row.import_id.clone()),
            profile: Profile {
                login: login.clone(),
                first_name: f.first_name.clone().unwrap_or_default(),
                last_name: f.last_name.clone().unwrap_or_default(),
                email: f.email.clone().unwrap_or_default(),
            },
            role: f.role.clone().unwrap_or_else(|| DEFAULT_ROLE.to_string()),
            enabled: f.enabled.unwrap_or(true),
        },
        expected_version: None,
        changes: vec![ChangeKind::Created],
    })
}

/// Role of a new account whose row gives none.
pub const DEFAULT_ROLE: &str = "student";

fn update(acc: &AccountState, f: &UserFields) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut version = acc.version;
    let want = f.enabled.unwrap_or(acc.enabled);
    let flag_change = (want != acc.enabled).then_some(if want {
        ChangeKind::Enabled
    } else {
        ChangeKind::Disabled
    });
    if !acc.active {
        let mut changes = vec![ChangeKind::Reactivated];
        changes.extend(flag_change);
        steps.push(Step {
            command: Command::Reactivate {
                account: acc.id,
                enabled: want,
            },
            expected_version: Some(version),
            changes,
        });
    } else if let Some(kind) = flag_change {
        steps.push(Step {
            command: if want {
                Command::Enable { account: acc.id }
            } else {
                Command::Disable { account: acc.id }
            },
            expected_version: Some(version),
            changes: vec![kind],
        });
    }
    version += steps.iter().map(|s| s.changes.len() as u64).sum::<u64>();
    let differs = |v: &Option<String>, old: &str| v.as_deref().is_some_and(|v| v != old);
    let p = &acc.profile;
    let changed = differs(&f.login, p.login())
        || differs(&f.first_name, p.first_name())
        || differs(&f.last_name, p.last_name())
        || differs(&f.email, p.email())
        || differs(&f.role, &acc.role);
    if changed {
        let pick = |v: &Option<String>, old: &str| v.clone().unwrap_or_else(|| old.to_string());
        let profile = Profile {
            login: pick(&f.login, p.login()),
            first_name: pick(&f.first_name, p.first_name()),
            last_name: pick(&f.last_name, p.last_name()),
            email: pick(&f.email, p.email()),
        };
        let role = pick(&f.role, &acc.role);
        steps.push(Step {
            command: Command::UpdateProfile {
                account: acc.id,
                profile,
                role,
            },
            expected_version: Some(version),
            changes: vec![ChangeKind::Updated],
        });
    }
    steps
}

/// Delete a stub, Deactivate an active account with data; nothing for a Deactivated one.
fn remove(acc: &AccountState) -> Option<Step> {
    let (command, kind) = if acc.is_stub() {
        (Command::Delete { account: acc.id }, ChangeKind::Deleted)
    } else if acc.active {
        (
            Command::Deactivate { account: acc.id },
            ChangeKind::Deactivated,
        )
    } else {
        return None;
    };
    Some(Step {
        command,
        expected_version: Some(acc.version),
        changes: vec![kind],
    })
}
