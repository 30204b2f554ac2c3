//! Why a command was refused, in the user's terms. Each variant says which gRPC code it becomes
//! (the mapping itself lives in `api::status`).

use super::AccountId;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
        status: &'static str,
        action: &'static str,
    },
    /// INVALID_ARGUMENT: the field is named.
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}
