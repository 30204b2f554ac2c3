//! What a caller asks for. A command may be refused; it is not a fact yet.

use serde::{Deserialize, Serialize};

use super::schedule::{Change, Phase, ScheduleId, Target};
use super::{AccountId, StreamId};

/// The personal data of an account: encrypted with the account's own key wherever it is stored.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Profile {
    pub login: String,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
}

impl Profile {
    /// The profile of an account whose key was destroyed (read back after deletion).
    pub fn erased() -> Self {
        Profile::default()
    }

    pub fn is_erased(&self) -> bool {
        self.login.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    RegisterDomain {
        domain: String,
        license_limit: u32,
    },
    SetLicenseLimit {
        domain: String,
        license_limit: u32,
    },
    /// Share of active imported accounts a full import may remove without confirmation.
    SetMassChangeGuard {
        domain: String,
        percent: u8,
    },
    /// `account` is the next free number, assigned by the ledger before deciding.
    CreateAccount {
        domain: String,
        account: AccountId,
        import_id: Option<String>,
        profile: Profile,
        role: String,
        enabled: bool,
    },
    UpdateProfile {
        account: AccountId,
        profile: Profile,
        role: String,
    },
    Disable {
        account: AccountId,
    },
    /// By hand, Enable also reactivates a deactivated account (DOMAIN.md, "reactivate by hand").
    Enable {
        account: AccountId,
    },
    Deactivate {
        account: AccountId,
    },
    /// Import path: restore `active`; the `enabled` flag becomes what the row says.
    Reactivate {
        account: AccountId,
        enabled: bool,
    },
    Delete {
        account: AccountId,
    },
    RecordSignIn {
        account: AccountId,
        at_us: i64,
    },
    RecordDataOwned {
        account: AccountId,
    },
    /// Schedule a change of some of the domain's accounts for later.
    ScheduleChange {
        domain: String,
        target: Target,
        change: Change,
        reason: String,
    },
    CancelSchedule {
        domain: String,
        schedule: ScheduleId,
        reason: String,
    },
    /// Record that a phase fired (refused if it already did). Sent by the ledger's firer with
    /// the lifecycle commands of [`crate::domain::schedule::Firing`], as one atomic batch.
    FireSchedule {
        domain: String,
        schedule: ScheduleId,
        phase: Phase,
        changed: Vec<AccountId>,
        not_enabled: Vec<AccountId>,
    },
    /// Opt in to a deletion grace period (0 turns it off: stubs are deleted at once).
    SetDeletionGrace {
        domain: String,
        grace_us: i64,
    },
    /// Record a finished import job's summary, and its row errors if any, on its domain's
    /// stream (once per job id).
    RecordImportJob {
        domain: String,
        job: Box<super::import_job::ImportJobSummary>,
        row_errors: Vec<super::import_job::KeptRowError>,
    },
    /// Sent by an import held by `schedule`: import ids it wanted enabled / disabled.
    HoldImport {
        domain: String,
        schedule: ScheduleId,
        enable: Vec<String>,
        keep_disabled: Vec<String>,
    },
}

impl Command {
    /// The command's name (metrics, logs).
    pub fn kind(&self) -> &'static str {
        match self {
            Command::RegisterDomain { .. } => "RegisterDomain",
            Command::SetLicenseLimit { .. } => "SetLicenseLimit",
            Command::SetMassChangeGuard { .. } => "SetMassChangeGuard",
            Command::CreateAccount { .. } => "CreateAccount",
            Command::UpdateProfile { .. } => "UpdateProfile",
            Command::Disable { .. } => "Disable",
            Command::Enable { .. } => "Enable",
            Command::Deactivate { .. } => "Deactivate",
            Command::Reactivate { .. } => "Reactivate",
            Command::Delete { .. } => "Delete",
            Command::RecordSignIn { .. } => "RecordSignIn",
            Command::RecordDataOwned { .. } => "RecordDataOwned",
            Command::ScheduleChange { .. } => "ScheduleChange",
            Command::CancelSchedule { .. } => "CancelSchedule",
            Command::FireSchedule { .. } => "FireSchedule",
            Command::SetDeletionGrace { .. } => "SetDeletionGrace",
            Command::RecordImportJob { .. } => "RecordImportJob",
            Command::HoldImport { .. } => "HoldImport",
        }
    }

    /// The stream the command's events go to (for optimistic concurrency).
    pub fn stream(&self) -> StreamId {
        match self {
            Command::RegisterDomain { domain, .. }
            | Command::SetLicenseLimit { domain, .. }
            | Command::SetMassChangeGuard { domain, .. }
            | Command::ScheduleChange { domain, .. }
            | Command::CancelSchedule { domain, .. }
            | Command::FireSchedule { domain, .. }
            | Command::HoldImport { domain, .. }
            | Command::RecordImportJob { domain, .. }
            | Command::SetDeletionGrace { domain, .. } => StreamId::Domain(domain.clone()),
            Command::CreateAccount { account, .. } => StreamId::Account(*account),
            other => StreamId::Account(other.target_account().unwrap_or_default()),
        }
    }

    /// The account a command acts on, if it acts on an existing one.
    pub fn target_account(&self) -> Option<AccountId> {
        match self {
            Command::UpdateProfile { account, .. }
            | Command::Disable { account }
            | Command::Enable { account }
            | Command::Deactivate { account }
            | Command::Reactivate { account, .. }
            | Command::Delete { account }
            | Command::RecordSignIn { account, .. }
            | Command::RecordDataOwned { account } => Some(*account),
            _ => None,
        }
    }
}
