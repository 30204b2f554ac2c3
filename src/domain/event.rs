//! Facts, in the past tense. Once appended they never change.

use serde::{Deserialize, Serialize};

use super::{AccountId, Profile};

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
        domain: String,
        import_id: Option<String>,
        profile: Profile,
        role: String,
        enabled: bool,
    },
    ProfileUpdated {
        account: AccountId,
        profile: Profile,
        role: String,
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
            | Event::MassChangeGuardChanged { domain, .. } => StreamId::Domain(domain.clone()),
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
        }
    }
}
