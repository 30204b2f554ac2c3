//! Scheduled changes (DOMAIN.md, "Changes over time"): a lock-out (disable at T1, enable again
//! at T2), a delayed start (enable at T) or a delayed deletion (a grace period). Pure: the
//! state of each schedule, which accounts it selects and holds, and what firing one phase
//! changes. The firing itself is an ordinary batch of lifecycle commands (see
//! `ledger::schedules`), so the rules of `decide` (licenses, Deleted is terminal) hold.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{AccountId, AccountState, Command, LedgerState, Status};

/// Schedules are numbered per domain from 1, in the order they are made.
pub type ScheduleId = u32;

/// Which accounts of the domain a schedule acts on, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Selection {
    /// Every account of the domain, including accounts created after the schedule was made.
    Everyone,
    /// Every account with this role, when the schedule fires.
    Role(String),
    /// These accounts (sorted, no duplicates).
    Accounts(Vec<AccountId>),
}

/// Which accounts, as asked: import ids are resolved to account numbers when the command is
/// decided, so the stored schedule carries no import id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    Everyone,
    Role(String),
    Accounts(Vec<AccountId>),
    /// Import ids of the domain; `skip_unknown` leaves out ids with no live account (an
    /// import's own start schedule, whose refused rows created nothing) instead of refusing.
    ImportIds {
        ids: Vec<String>,
        skip_unknown: bool,
    },
}

/// What happens, and when (UTC microseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// Disable at `at_us`; with `until_us`, enable again then what the lock-out disabled
    /// (and what imports wanted enabled meanwhile).
    Disable { at_us: i64, until_us: Option<i64> },
    /// Enable at `at_us` (a delayed start); until then imports cannot enable its accounts.
    Enable { at_us: i64 },
    /// Delete at `at_us` the selected accounts that are still deactivated stubs.
    Delete { at_us: i64 },
}

/// The two instants of a lock-out; every other change has only a start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Phase {
    Start,
    End,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Start => "start",
            Phase::End => "end",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScheduleStatus {
    /// Not fired yet.
    Pending,
    /// A lock-out whose start fired and whose end has not.
    Started,
    Done,
    Cancelled,
}

impl ScheduleStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ScheduleStatus::Pending => "pending",
            ScheduleStatus::Started => "started",
            ScheduleStatus::Done => "done",
            ScheduleStatus::Cancelled => "cancelled",
        }
    }
}

/// One schedule as the log made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub id: ScheduleId,
    pub selection: Selection,
    pub change: Change,
    pub reason: String,
    pub status: ScheduleStatus,
    /// Accounts to enable at the end of a lock-out (those its start disabled, plus those an
    /// import wanted enabled meanwhile), or beside the selection of a delayed start.
    pub restore: BTreeSet<AccountId>,
    /// Accounts an import wanted disabled while held: never enabled by this schedule.
    pub excluded: BTreeSet<AccountId>,
    /// Accounts changed by each phase fired so far.
    pub changed: u64,
    /// Accounts the last firing could not enable (license limit), reported, not dropped.
    pub not_enabled: Vec<AccountId>,
}

impl Schedule {
    pub fn new(id: ScheduleId, selection: Selection, change: Change, reason: String) -> Schedule {
        Schedule {
            id,
            selection,
            change,
            reason,
            status: ScheduleStatus::Pending,
            restore: BTreeSet::new(),
            excluded: BTreeSet::new(),
            changed: 0,
            not_enabled: Vec::new(),
        }
    }

    /// The next phase to fire and its instant; None once done or cancelled.
    pub fn next_due(&self) -> Option<(i64, Phase)> {
        match (self.status, self.change) {
            (ScheduleStatus::Pending, Change::Disable { at_us, .. })
            | (ScheduleStatus::Pending, Change::Enable { at_us })
            | (ScheduleStatus::Pending, Change::Delete { at_us }) => Some((at_us, Phase::Start)),
            (
                ScheduleStatus::Started,
                Change::Disable {
                    until_us: Some(until),
                    ..
                },
            ) => Some((until, Phase::End)),
            _ => None,
        }
    }

    pub fn selects(&self, acc: &AccountState) -> bool {
        match &self.selection {
            Selection::Everyone => true,
            Selection::Role(role) => acc.role == *role,
            Selection::Accounts(ids) => ids.binary_search(&acc.id).is_ok(),
        }
    }

    /// Whether this is a pending deletion that selects `acc`.
    fn pending_deletion_of(&self, acc: &AccountState) -> bool {
        self.status == ScheduleStatus::Pending
            && matches!(self.change, Change::Delete { .. })
            && self.selects(acc)
    }

    /// Whether firing `phase` (a start that enables, or a lock-out's end) would enable `acc`,
    /// licenses and other schedules aside.
    fn would_enable(&self, phase: Phase, acc: &AccountState) -> bool {
        let chosen = match phase {
            Phase::Start => self.selects(acc) || self.restore.contains(&acc.id),
            Phase::End => self.restore.contains(&acc.id),
        };
        chosen && !self.excluded.contains(&acc.id) && acc.status() == Status::Disabled
    }

    /// Whether this schedule holds `acc` disabled now (imports and other schedules' ends
    /// leave it so).
    pub fn holds(&self, acc: &AccountState) -> bool {
        self.is_holding() && (self.selects(acc) || self.restore.contains(&acc.id))
    }

    /// Whether imports are held from enabling accounts this schedule selects right now: a
    /// lock-out between its start and its end, or a delayed start before it fires.
    pub fn is_holding(&self) -> bool {
        matches!(
            (self.status, self.change),
            (
                ScheduleStatus::Started,
                Change::Disable {
                    until_us: Some(_),
                    ..
                }
            ) | (ScheduleStatus::Pending, Change::Enable { .. })
        )
    }

    /// Whether a new account with `role` would be selected (Everyone or its role).
    fn selects_new(&self, role: &str) -> bool {
        match &self.selection {
            Selection::Everyone => true,
            Selection::Role(r) => r == role,
            Selection::Accounts(_) => false,
        }
    }

    /// Apply a firing of `phase` that changed `changed` accounts.
    pub fn fired(&mut self, phase: Phase, changed: &[AccountId], not_enabled: &[AccountId]) {
        self.changed += changed.len() as u64;
        self.not_enabled = not_enabled.to_vec();
        self.status = match (phase, self.change) {
            (
                Phase::Start,
                Change::Disable {
                    until_us: Some(_), ..
                },
            ) => {
                self.restore.extend(changed.iter().copied());
                ScheduleStatus::Started
            }
            _ => ScheduleStatus::Done,
        };
    }

    /// An import held while this schedule holds: `enable` wanted enabled, `keep` disabled.
    pub fn held(&mut self, enable: &[AccountId], keep_disabled: &[AccountId]) {
        for a in enable {
            self.excluded.remove(a);
            self.restore.insert(*a);
        }
        for a in keep_disabled {
            self.restore.remove(a);
            self.excluded.insert(*a);
        }
    }
}

/// A pending deletion of `acc` (it is deleted then if still a deactivated stub).
pub fn deleting(state: &LedgerState, acc: &AccountState) -> Option<ScheduleId> {
    let d = state.domains.get(acc.domain.as_str())?;
    d.schedules
        .values()
        .find(|s| s.pending_deletion_of(acc))
        .map(|s| s.id)
}

/// Whether a pending deletion made after schedule `id` selects `acc`: the latest deletion of
/// an account says when it is deleted. A stub left out, back, then left out again gets a
/// whole grace period from the second time, never the rest of the first (the later schedule
/// cancelled, the first applies again); a stub still out when a file runs again keeps its
/// first schedule (the import makes no new one for it, see `import::plan`), so re-running a
/// file never postpones a deletion.
fn deleted_later(d: &super::DomainState, id: ScheduleId, acc: &AccountState) -> bool {
    d.schedules
        .range((std::ops::Bound::Excluded(id), std::ops::Bound::Unbounded))
        .any(|(_, s)| s.pending_deletion_of(acc))
}

/// Every schedule holding an existing account from being enabled by an import (none, one, or
/// several overlapping). An import's wish is remembered by each, so whichever ends last
/// decides, as none of them enables what another still holds.
pub fn holding(state: &LedgerState, acc: &AccountState) -> Vec<ScheduleId> {
    let Some(d) = state.domains.get(acc.domain.as_str()) else {
        return Vec::new();
    };
    d.schedules
        .values()
        .filter(|s| s.holds(acc))
        .map(|s| s.id)
        .collect()
}

/// Whether a schedule other than `id` holds `acc` disabled now.
fn held_elsewhere(d: &super::DomainState, id: ScheduleId, acc: &AccountState) -> bool {
    d.schedules.values().any(|s| s.id != id && s.holds(acc))
}

/// When `phase` of schedule `id` fires and enables (a delayed start, a lock-out's end), the
/// accounts it would have enabled but another schedule still holds (its plan left them
/// disabled, see [`plan_firing`]) become that schedule's to enable. Called by evolve on the
/// firing's marker, before its own events; `decide` accepts the marker only when the state
/// plans exactly that firing, so this sees the state the firing was planned on. `changed`
/// (what the firing enables) is left alone whatever it finds.
pub fn hand_over_held(
    state: &mut LedgerState,
    domain: &str,
    id: ScheduleId,
    phase: Phase,
    changed: &[AccountId],
) {
    let Some(d) = state.domains.get(domain) else {
        return;
    };
    let Some(fired) = d.schedules.get(&id) else {
        return;
    };
    if !matches!(
        (phase, fired.change),
        (Phase::Start, Change::Enable { .. }) | (Phase::End, Change::Disable { .. })
    ) {
        return;
    }
    let mut moves: Vec<(ScheduleId, AccountId)> = Vec::new();
    let mut enabled_by_firing: Option<std::collections::HashSet<AccountId>> = None;
    let accounts = state.accounts_of(domain);
    for acc in accounts.filter(|a| fired.would_enable(phase, a) && held_elsewhere(d, id, a)) {
        let enabled = enabled_by_firing.get_or_insert_with(|| changed.iter().copied().collect());
        if enabled.contains(&acc.id) {
            continue;
        }
        for other in d.schedules.values() {
            if other.id != id && other.holds(acc) && !other.excluded.contains(&acc.id) {
                moves.push((other.id, acc.id));
            }
        }
    }
    if moves.is_empty() {
        return;
    }
    let Some(d) = state.domains.get_mut(domain) else {
        return;
    };
    for (other, a) in moves {
        if let Some(s) = d.schedules.get_mut(&other) {
            s.restore.insert(a);
        }
    }
}

/// The schedule holding a new account of `role` from being created enabled by an import.
pub fn holding_new(state: &LedgerState, domain: &str, role: &str) -> Vec<ScheduleId> {
    let Some(d) = state.domains.get(domain) else {
        return Vec::new();
    };
    d.schedules
        .values()
        .filter(|s| s.is_holding() && s.selects_new(role))
        .map(|s| s.id)
        .collect()
}

/// What firing one phase of one schedule does: the commands (all on existing accounts, in
/// account order) and the accounts that cannot be enabled for lack of licenses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firing {
    pub domain: String,
    pub schedule: ScheduleId,
    pub phase: Phase,
    pub commands: Vec<Command>,
    pub changed: Vec<AccountId>,
    pub not_enabled: Vec<AccountId>,
}

impl Firing {
    /// The marker command that records this firing (and refuses a second one).
    pub fn marker(&self) -> Command {
        Command::FireSchedule {
            domain: self.domain.clone(),
            schedule: self.schedule,
            phase: self.phase,
            changed: self.changed.clone(),
            not_enabled: self.not_enabled.clone(),
        }
    }
}

/// Phases of `domain` due at `now_us`, earliest first.
pub fn due(state: &LedgerState, domain: &str, now_us: i64) -> Vec<(i64, ScheduleId, Phase)> {
    let Some(d) = state.domains.get(domain) else {
        return Vec::new();
    };
    let mut due: Vec<_> = d
        .schedules
        .values()
        .filter_map(|s| s.next_due().map(|(at, phase)| (at, s.id, phase)))
        .filter(|(at, ..)| *at <= now_us)
        .collect();
    due.sort_unstable();
    due
}

/// The earliest instant any schedule of `domain` is due.
pub fn next_instant(state: &LedgerState, domain: &str) -> Option<i64> {
    let d = state.domains.get(domain)?;
    d.schedules
        .values()
        .filter_map(|s| s.next_due().map(|(at, _)| at))
        .min()
}

/// Plan the firing of `phase` of schedule `id` against the current state.
pub fn plan_firing(
    state: &LedgerState,
    domain: &str,
    id: ScheduleId,
    phase: Phase,
) -> Option<Firing> {
    let d = state.domains.get(domain)?;
    let s = d.schedules.get(&id)?;
    let accounts = state.accounts_of(domain);
    let mut commands = Vec::new();
    let mut changed = Vec::new();
    let mut not_enabled = Vec::new();
    match (phase, s.change) {
        (Phase::Start, Change::Disable { .. }) => {
            for acc in accounts.filter(|a| s.selects(a) && a.status() == Status::Enabled) {
                commands.push(Command::Disable { account: acc.id });
                changed.push(acc.id);
            }
        }
        (Phase::Start, Change::Delete { .. }) => {
            for acc in accounts.filter(|a| {
                s.selects(a)
                    && !deleted_later(d, id, a)
                    && a.status() == Status::Deactivated
                    && a.is_stub()
            }) {
                commands.push(Command::Delete { account: acc.id });
                changed.push(acc.id);
            }
        }
        (Phase::Start, Change::Enable { .. }) | (Phase::End, Change::Disable { .. }) => {
            // An overlapping schedule still holding it enables it when it ends (it is
            // handed over, see `hand_over_held`).
            let wanted = |a: &AccountState| s.would_enable(phase, a) && !held_elsewhere(d, id, a);
            let mut free = d.license_limit.saturating_sub(d.licenses_used);
            for acc in accounts.filter(|a| wanted(a)) {
                if free == 0 {
                    not_enabled.push(acc.id);
                    continue;
                }
                free -= 1;
                commands.push(Command::Enable { account: acc.id });
                changed.push(acc.id);
            }
        }
        (Phase::End, _) => return None,
    }
    Some(Firing {
        domain: domain.to_string(),
        schedule: id,
        phase,
        commands,
        changed,
        not_enabled,
    })
}
