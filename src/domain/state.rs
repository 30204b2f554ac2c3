//! The state that rules are decided against, and `evolve`, the fold of events into it.
//! The same fold serves as the live read model (projections) and as replay: one definition of
//! what an event means.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use imbl::{OrdMap, Vector};

use serde::{Deserialize, Serialize};

use super::schedule::{Schedule, ScheduleId, ScheduleStatus};
use super::{AccountId, DEFAULT_MASS_CHANGE_PERCENT, Event, KeyIndex, PackedProfile, SharedName};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Status {
    Enabled,
    Disabled,
    Deactivated,
    Deleted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Enabled => "enabled",
            Status::Disabled => "disabled",
            Status::Deactivated => "deactivated",
            Status::Deleted => "deleted",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainState {
    pub name: String,
    pub license_limit: u32,
    /// Accounts that are Enabled and active right now.
    pub licenses_used: u32,
    pub mass_change_percent: u8,
    /// Scheduled changes by number, done and cancelled ones included (they are history).
    pub schedules: BTreeMap<ScheduleId, Schedule>,
    /// How long stubs an import would delete stay deactivated first (0: deleted at once).
    pub deletion_grace_us: i64,
    /// The domain's finished import jobs, oldest first.
    pub import_jobs: super::import_job::ImportJobs,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountState {
    pub id: AccountId,
    /// Shared with every row of the domain (see [`SharedName`]).
    pub domain: SharedName,
    pub import_id: Option<String>,
    /// Shared, so copying a row (copy-on-write of the state) copies no personal data.
    pub profile: PackedProfile,
    pub role: SharedName,
    pub enabled: bool,
    pub active: bool,
    pub deleted: bool,
    pub last_sign_in_us: Option<i64>,
    pub owns_data: bool,
    /// Number of events in this account's stream.
    pub version: u64,
}

impl AccountState {
    /// Displayed status, by precedence Deleted > Deactivated > Disabled > Enabled.
    pub fn status(&self) -> Status {
        if self.deleted {
            Status::Deleted
        } else if !self.active {
            Status::Deactivated
        } else if !self.enabled {
            Status::Disabled
        } else {
            Status::Enabled
        }
    }

    pub fn takes_license(&self) -> bool {
        self.status() == Status::Enabled
    }

    /// Never signed into and owns no data: the vendor's "user without data".
    pub fn is_stub(&self) -> bool {
        self.last_sign_in_us.is_none() && !self.owns_data
    }

    /// The row an `AccountCreated` event makes (None for any other event).
    pub fn created(event: &Event) -> Option<AccountState> {
        let Event::AccountCreated {
            account,
            domain,
            import_id,
            profile,
            role,
            enabled,
        } = event
        else {
            return None;
        };
        Some(AccountState {
            id: *account,
            domain: domain.clone(),
            import_id: import_id.clone(),
            profile: profile.clone(),
            role: role.clone(),
            enabled: *enabled,
            active: true,
            deleted: false,
            last_sign_in_us: None,
            owns_data: false,
            version: 1,
        })
    }

    /// Apply a later event of this account's stream to its row. Returns the profile the event
    /// replaced (a profile update) or erased (a deletion), for the caller's indexes.
    pub fn apply(&mut self, event: &Event) -> Option<PackedProfile> {
        self.version = self.version.saturating_add(1);
        match event {
            Event::ProfileUpdated { profile, role, .. } => {
                self.role = role.clone();
                return Some(std::mem::replace(&mut self.profile, profile.clone()));
            }
            Event::AccountDisabled { .. } => self.enabled = false,
            Event::AccountEnabled { .. } => self.enabled = true,
            Event::AccountDeactivated { .. } => self.active = false,
            Event::AccountReactivated { .. } => self.active = true,
            Event::SignInRecorded { at_us, .. } => self.last_sign_in_us = Some(*at_us),
            Event::DataOwnershipRecorded { .. } => self.owns_data = true,
            Event::AccountDeleted { .. } => {
                self.deleted = true;
                // The default is the erased profile.
                return Some(std::mem::take(&mut self.profile));
            }
            _ => {}
        }
        None
    }
}

/// Everything the rules need, for every domain. Deleted accounts stay (as tombstones with an
/// erased profile) so that commands on them fail as "deleted", not "unknown".
///
/// The large maps are persistent (copy-on-write) maps: a clone is O(1) and shares every row
/// with the original, so a partition's writer decides on its own copy and then publishes it as
/// the read model without a second copy of a district in memory or a second fold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerState {
    pub domains: BTreeMap<String, DomainState>,
    /// Rows behind `Arc`: copying a map node on write shares the rows; only the row written
    /// is copied (`Arc::make_mut`).
    pub accounts: OrdMap<AccountId, Arc<AccountState>>,
    /// (domain, import id) of live (not deleted) accounts.
    pub by_import_id: KeyIndex,
    /// (domain, lowercased login) of live accounts: the sign-in index.
    pub by_login: KeyIndex,
    /// Live and deleted accounts of each domain, in creation order (point-in-time lists).
    pub domain_accounts: HashMap<String, Vector<AccountId>>,
    pub next_account_id: AccountId,
}

/// How logins compare: trimmed, lowercase.
pub(crate) fn login_key(login: &str) -> String {
    login.trim().to_lowercase()
}

impl LedgerState {
    pub fn account(&self, id: AccountId) -> Option<&AccountState> {
        self.accounts.get(&id).map(|a| &**a)
    }

    /// Every account of `domain` (deleted ones included), in the domain's order.
    pub fn accounts_of<'a>(&'a self, domain: &str) -> impl Iterator<Item = &'a AccountState> {
        self.domain_accounts
            .get(domain)
            .into_iter()
            .flatten()
            .filter_map(|a| self.account(*a))
    }

    /// The live account of `domain` with this import id.
    pub fn account_by_import_id(&self, domain: &str, import_id: &str) -> Option<&AccountState> {
        self.by_import_id
            .candidates(domain, import_id)
            .filter_map(|id| self.account(id))
            .find(|a| !a.deleted && a.domain == domain && a.import_id.as_deref() == Some(import_id))
    }

    /// The live account of `domain` with this login (compared trimmed, case-insensitively).
    pub fn account_by_login(&self, domain: &str, login: &str) -> Option<&AccountState> {
        let key = login_key(login);
        self.by_login
            .candidates(domain, &key)
            .filter_map(|id| self.account(id))
            .find(|a| {
                !a.deleted
                    && !a.profile.is_erased()
                    && a.domain == domain
                    && login_key(a.profile.login()) == key
            })
    }

    fn schedule_mut(&mut self, domain: &str, id: ScheduleId) -> Option<&mut Schedule> {
        self.domains.get_mut(domain)?.schedules.get_mut(&id)
    }

    /// Apply one fact. Total: an event that does not fit the state (which `decide` never
    /// produces) is ignored rather than panicking, so replay of any log terminates.
    pub fn evolve(&mut self, event: &Event) {
        match event {
            Event::DomainRegistered {
                domain,
                license_limit,
            } => {
                self.domains.insert(
                    domain.clone(),
                    DomainState {
                        name: domain.clone(),
                        license_limit: *license_limit,
                        licenses_used: 0,
                        mass_change_percent: DEFAULT_MASS_CHANGE_PERCENT,
                        schedules: BTreeMap::new(),
                        deletion_grace_us: 0,
                        import_jobs: Default::default(),
                    },
                );
            }
            Event::LicenseLimitChanged {
                domain,
                license_limit,
            } => {
                if let Some(d) = self.domains.get_mut(domain) {
                    d.license_limit = *license_limit;
                }
            }
            Event::MassChangeGuardChanged { domain, percent } => {
                if let Some(d) = self.domains.get_mut(domain) {
                    d.mass_change_percent = *percent;
                }
            }
            Event::DeletionGraceChanged { domain, grace_us } => {
                if let Some(d) = self.domains.get_mut(domain) {
                    d.deletion_grace_us = *grace_us;
                }
            }
            Event::ImportRowErrorsRecorded { .. } => {}
            Event::ImportJobRecorded { domain, job } => {
                if let Some(d) = self.domains.get_mut(domain) {
                    std::sync::Arc::make_mut(&mut d.import_jobs)
                        .push(std::sync::Arc::new((**job).clone()));
                }
            }
            Event::ChangeScheduled {
                domain,
                schedule,
                selection,
                change,
                reason,
            } => {
                if let Some(d) = self.domains.get_mut(domain) {
                    d.schedules.insert(
                        *schedule,
                        Schedule::new(*schedule, selection.clone(), *change, reason.clone()),
                    );
                }
            }
            Event::ScheduleCancelled {
                domain, schedule, ..
            } => {
                if let Some(s) = self.schedule_mut(domain, *schedule) {
                    s.status = ScheduleStatus::Cancelled;
                }
            }
            Event::ScheduleFired {
                domain,
                schedule,
                phase,
                changed,
                not_enabled,
            } => {
                super::schedule::hand_over_held(self, domain, *schedule, *phase, changed);
                if let Some(s) = self.schedule_mut(domain, *schedule) {
                    s.fired(*phase, changed, not_enabled);
                }
            }
            Event::ImportHeld {
                domain,
                schedule,
                enable,
                keep_disabled,
            } => {
                if let Some(s) = self.schedule_mut(domain, *schedule) {
                    s.held(enable, keep_disabled);
                }
            }
            Event::AccountCreated {
                account,
                domain,
                import_id,
                profile,
                ..
            } => {
                let Some(state) = AccountState::created(event) else {
                    return;
                };
                if let Some(iid) = import_id {
                    self.by_import_id.insert(domain, iid, *account);
                }
                if !profile.is_erased() {
                    self.by_login
                        .insert(domain, &login_key(profile.login()), *account);
                }
                match self.domain_accounts.get_mut(domain.as_str()) {
                    Some(ids) => ids.push_back(*account),
                    None => {
                        self.domain_accounts
                            .insert(domain.to_string(), Vector::unit(*account));
                    }
                }
                self.next_account_id = self.next_account_id.max(account.saturating_add(1));
                self.accounts.insert(*account, Arc::new(state));
                self.recount_after(None, *account);
            }
            other => {
                let Some(id) = other.account() else { return };
                let Some(acc) = self.accounts.get_mut(&id) else {
                    return;
                };
                let acc = Arc::make_mut(acc);
                let before = acc.takes_license();
                if let Some(old) = acc.apply(other) {
                    let domain = acc.domain.clone();
                    self.by_login.remove(&domain, &login_key(old.login()), id);
                    match other {
                        Event::ProfileUpdated { profile, .. } if !profile.is_erased() => {
                            self.by_login
                                .insert(&domain, &login_key(profile.login()), id);
                        }
                        Event::AccountDeleted { .. } => {
                            if let Some(iid) = &acc.import_id {
                                self.by_import_id.remove(&domain, iid, id);
                            }
                        }
                        _ => {}
                    }
                }
                self.recount_after(Some(before), id);
            }
        }
    }

    /// Keep the domain's license count in step with one account's change.
    fn recount_after(&mut self, before: Option<bool>, id: AccountId) {
        let Some(acc) = self.accounts.get(&id) else {
            return;
        };
        let after = acc.takes_license();
        let before = before.unwrap_or(false);
        if before == after {
            return;
        }
        if let Some(d) = self.domains.get_mut(acc.domain.as_str()) {
            if after {
                d.licenses_used += 1;
            } else {
                d.licenses_used = d.licenses_used.saturating_sub(1);
            }
        }
    }
}

impl LedgerState {
    /// Merge another domain's state into this one (the domains are disjoint).
    pub fn merge(&mut self, other: LedgerState) {
        self.domains.extend(other.domains);
        self.accounts.extend(other.accounts);
        self.by_import_id.extend(other.by_import_id);
        self.by_login.extend(other.by_login);
        self.domain_accounts.extend(other.domain_accounts);
        self.next_account_id = self.next_account_id.max(other.next_account_id);
    }

    /// Put back account rows loaded from persisted views (sorted by account number) into a
    /// state that has no accounts yet, with their indexes: every map built from sorted entries
    /// instead of one insert per row, the three maps on three threads (start-up waits for them).
    pub fn load_rows(&mut self, rows: &[Arc<AccountState>]) {
        debug_assert!(self.accounts.is_empty());
        debug_assert!(rows.windows(2).all(|w| w[0].id <= w[1].id));
        let live = || rows.iter().filter(|a| !a.deleted);
        let import_ids = || {
            KeyIndex::from_entries(
                live()
                    .filter_map(|a| {
                        let iid = a.import_id.as_ref()?;
                        Some(KeyIndex::entry(&a.domain, iid, a.id))
                    })
                    .collect(),
            )
        };
        let logins = || {
            KeyIndex::from_entries(
                live()
                    .filter(|a| !a.profile.is_erased())
                    .map(|a| KeyIndex::entry(&a.domain, &login_key(a.profile.login()), a.id))
                    .collect(),
            )
        };
        let accounts = || -> OrdMap<AccountId, Arc<AccountState>> {
            rows.iter().map(|a| (a.id, a.clone())).collect()
        };
        // A small domain's maps take less than starting threads would.
        let (by_import_id, by_login, accounts) = if rows.len() < 4096 {
            (import_ids(), logins(), accounts())
        } else {
            let (by_import_id, (by_login, accounts)) =
                crate::threads::join(import_ids, || crate::threads::join(logins, accounts));
            (by_import_id, by_login, accounts)
        };
        for acc in rows {
            match self.domain_accounts.get_mut(acc.domain.as_str()) {
                Some(ids) => ids.push_back(acc.id),
                None => {
                    self.domain_accounts
                        .insert(acc.domain.to_string(), Vector::unit(acc.id));
                }
            }
        }
        self.by_import_id = by_import_id;
        self.by_login = by_login;
        if let Some(last) = rows.last() {
            self.next_account_id = self.next_account_id.max(last.id.saturating_add(1));
        }
        self.accounts = accounts;
    }
}
