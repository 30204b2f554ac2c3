//! Facts, in the past tense. Once appended they never change.

use serde::{Deserialize, Serialize};

use super::schedule::{Change, Phase, ScheduleId, Selection};
use super::{AccountId, PackedProfile, SharedName};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    DomainRegistered {
        domain: String,
        license_limit: u32,
    },
    LicenseLimitChanged {
        domain: String,
        license_limit: u32,
    },
    MassChangeGuardChanged {
        domain: String,
        percent: u8,
    },
    AccountCreated {
        account: AccountId,
        domain: SharedName,
        import_id: Option<String>,
        /// Packed (one allocation), and shared with the account's row once applied.
        profile: PackedProfile,
        role: SharedName,
        enabled: bool,
    },
    ProfileUpdated {
        account: AccountId,
        profile: PackedProfile,
        role: SharedName,
    },
    AccountDisabled {
        account: AccountId,
    },
    AccountEnabled {
        account: AccountId,
    },
    AccountDeactivated {
        account: AccountId,
    },
    AccountReactivated {
        account: AccountId,
    },
    AccountDeleted {
        account: AccountId,
    },
    SignInRecorded {
        account: AccountId,
        at_us: i64,
    },
    DataOwnershipRecorded {
        account: AccountId,
    },
    /// A change scheduled for later (its import ids already resolved to accounts).
    ChangeScheduled {
        domain: String,
        schedule: ScheduleId,
        selection: Selection,
        change: Change,
        reason: String,
    },
    ScheduleCancelled {
        domain: String,
        schedule: ScheduleId,
        reason: String,
    },
    /// One phase of a schedule fired; written in the same batch as the lifecycle events it
    /// caused (their source names the schedule), so it fires exactly once.
    ScheduleFired {
        domain: String,
        schedule: ScheduleId,
        phase: Phase,
        changed: Vec<AccountId>,
        /// Accounts it could not enable: the domain was at its license limit.
        not_enabled: Vec<AccountId>,
    },
    /// An import ran while `schedule` held these accounts: `enable` stay disabled until the
    /// schedule enables them; `keep_disabled` will not be enabled by it.
    ImportHeld {
        domain: String,
        schedule: ScheduleId,
        enable: Vec<AccountId>,
        keep_disabled: Vec<AccountId>,
    },
    DeletionGraceChanged {
        domain: String,
        grace_us: i64,
    },
    /// An import job of the domain finished (its summary; see [`super::import_job`]).
    ImportJobRecorded {
        domain: String,
        job: Box<super::import_job::ImportJobSummary>,
    },
    /// The row errors of that job, as the log keeps them (no values, no import ids). Changes
    /// no state: read back from the domain's stream when asked for.
    ImportRowErrorsRecorded {
        domain: String,
        job: uuid::Uuid,
        errors: Vec<super::import_job::KeptRowError>,
    },
}

/// Each domain and each account is its own stream, with its own version counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum StreamId {
    Domain(String),
    Account(AccountId),
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamId::Domain(d) => write!(f, "domain {d}"),
            StreamId::Account(a) => write!(f, "account {a}"),
        }
    }
}

impl Event {
    pub fn stream(&self) -> StreamId {
        match self {
            Event::DomainRegistered { domain, .. }
            | Event::LicenseLimitChanged { domain, .. }
            | Event::MassChangeGuardChanged { domain, .. }
            | Event::ChangeScheduled { domain, .. }
            | Event::ScheduleCancelled { domain, .. }
            | Event::ScheduleFired { domain, .. }
            | Event::ImportHeld { domain, .. }
            | Event::DeletionGraceChanged { domain, .. }
            | Event::ImportJobRecorded { domain, .. }
            | Event::ImportRowErrorsRecorded { domain, .. } => StreamId::Domain(domain.clone()),
            Event::AccountCreated { account, .. }
            | Event::ProfileUpdated { account, .. }
            | Event::AccountDisabled { account }
            | Event::AccountEnabled { account }
            | Event::AccountDeactivated { account }
            | Event::AccountReactivated { account }
            | Event::AccountDeleted { account }
            | Event::SignInRecorded { account, .. }
            | Event::DataOwnershipRecorded { account } => StreamId::Account(*account),
        }
    }

    pub fn account(&self) -> Option<AccountId> {
        match self.stream() {
            StreamId::Account(a) => Some(a),
            StreamId::Domain(_) => None,
        }
    }

    /// The account this event creates (it needs a key), if it is a creation.
    pub fn created_account(&self) -> Option<AccountId> {
        match self {
            Event::AccountCreated { account, .. } => Some(*account),
            _ => None,
        }
    }

    /// The account this event deletes (its key is to be destroyed), if it is a deletion.
    pub fn deleted_account(&self) -> Option<AccountId> {
        match self {
            Event::AccountDeleted { account } => Some(*account),
            _ => None,
        }
    }

    /// A short name for audit listings and the API.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::DomainRegistered { .. } => "DomainRegistered",
            Event::LicenseLimitChanged { .. } => "LicenseLimitChanged",
            Event::MassChangeGuardChanged { .. } => "MassChangeGuardChanged",
            Event::AccountCreated { .. } => "AccountCreated",
            Event::ProfileUpdated { .. } => "ProfileUpdated",
            Event::AccountDisabled { .. } => "AccountDisabled",
            Event::AccountEnabled { .. } => "AccountEnabled",
            Event::AccountDeactivated { .. } => "AccountDeactivated",
            Event::AccountReactivated { .. } => "AccountReactivated",
            Event::AccountDeleted { .. } => "AccountDeleted",
            Event::SignInRecorded { .. } => "SignInRecorded",
            Event::DataOwnershipRecorded { .. } => "DataOwnershipRecorded",
            Event::ChangeScheduled { .. } => "ChangeScheduled",
            Event::ScheduleCancelled { .. } => "ScheduleCancelled",
            Event::ScheduleFired { .. } => "ScheduleFired",
            Event::ImportHeld { .. } => "ImportHeld",
            Event::DeletionGraceChanged { .. } => "DeletionGraceChanged",
            Event::ImportJobRecorded { .. } => "ImportJobRecorded",
            Event::ImportRowErrorsRecorded { .. } => "ImportRowErrorsRecorded",
        }
    }
}
