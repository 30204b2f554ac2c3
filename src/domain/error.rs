//! Why a command was refused, in the user's terms. Each variant says which gRPC code it becomes
//! (the mapping itself lives in `api::status`).

use serde::{Deserialize, Deserializer, Serialize};

use super::AccountId;

/// A name the rules use (a field, a status word). An alias, so that serde's derive does not
/// take the `&'static str` for a string borrowed from the input.
pub type Name = &'static str;

/// Sent between servers (a forwarded command's refusal) as well as shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum DomainError {
    /// NOT_FOUND.
    #[error("domain {domain:?} is not registered")]
    UnknownDomain { domain: String },
    /// ALREADY_EXISTS.
    #[error("domain {domain:?} is already registered")]
    DomainExists { domain: String },
    /// NOT_FOUND.
    #[error("account {account} does not exist")]
    UnknownAccount { account: AccountId },
    /// FAILED_PRECONDITION: Deleted is terminal.
    #[error("account {account} is deleted; a deleted account cannot be changed")]
    AccountDeleted { account: AccountId },
    /// FAILED_PRECONDITION: free a license (disable or deactivate someone) or raise the limit.
    #[error(
        "domain {domain:?} is at its license limit: {used} of {limit} licenses in use, enabling one more would exceed it"
    )]
    LicenseLimitReached {
        domain: String,
        limit: u32,
        used: u32,
    },
    /// FAILED_PRECONDITION: disable accounts first.
    #[error(
        "domain {domain:?} has {used} licenses in use; the limit cannot go below that (asked {limit})"
    )]
    LimitBelowUsage {
        domain: String,
        limit: u32,
        used: u32,
    },
    /// ALREADY_EXISTS.
    #[error("domain {domain:?} already has an account with import id {import_id:?}")]
    ImportIdTaken { domain: String, import_id: String },
    /// ALREADY_EXISTS.
    #[error("domain {domain:?} already has an account with login {login:?}")]
    LoginTaken { domain: String, login: String },
    /// NOT_FOUND.
    #[error("domain {domain:?} has no schedule {schedule}")]
    UnknownSchedule { domain: String, schedule: u32 },
    /// FAILED_PRECONDITION: a done or cancelled schedule (or a phase that already fired).
    #[error("schedule {schedule} of domain {domain:?} is {status}: it cannot be {action} now")]
    ScheduleNotOpen {
        domain: String,
        schedule: u32,
        #[serde(deserialize_with = "interned")]
        status: Name,
        #[serde(deserialize_with = "interned")]
        action: Name,
    },
    /// INVALID_ARGUMENT: the field is named.
    #[error("invalid {field}: {reason}")]
    Invalid {
        #[serde(deserialize_with = "interned")]
        field: Name,
        reason: String,
    },
    // Last, so that the other variants keep their numbers on the wire between servers.
    /// ABORTED: a firing planned on a state that has changed since (an account or another
    /// schedule); the firer plans it again.
    #[error(
        "schedule {schedule} of domain {domain:?}: the domain changed since this firing was \
         planned"
    )]
    FiringOutdated { domain: String, schedule: u32 },
}

/// A name received from a peer server as the `&'static str` the rules use (field names, status
/// words): each distinct name is kept once, and a peer cannot make more than a few hundred.
fn interned<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    use std::collections::BTreeSet;
    use std::sync::Mutex;
    static NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let name = String::deserialize(d)?;
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(known) = names.get(name.as_str()) {
        return Ok(known);
    }
    if names.len() >= 512 {
        return Err(serde::de::Error::custom("too many distinct field names"));
    }
    let leaked: &'static str = Box::leak(name.into_boxed_str());
    names.insert(leaked);
    Ok(leaked)
}
