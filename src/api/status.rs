//! The one place that maps ledger, domain and store errors to gRPC status codes.
//!
//! User mistakes never become INTERNAL: invalid input is INVALID_ARGUMENT (the message names the
//! field), unknown things NOT_FOUND, rule refusals FAILED_PRECONDITION (the message names the
//! limit and count), concurrency ABORTED, duplicates ALREADY_EXISTS. Only the disk failing is
//! INTERNAL/UNAVAILABLE.

use tonic::Status;

use crate::domain::DomainError;
use crate::import::ImportError;
use crate::ledger::LedgerError;
use crate::store::StoreError;

pub fn from_domain(e: &DomainError) -> Status {
    let msg = e.to_string();
    match e {
        DomainError::UnknownDomain { .. }
        | DomainError::UnknownAccount { .. }
        | DomainError::UnknownSchedule { .. } => Status::not_found(msg),
        DomainError::DomainExists { .. }
        | DomainError::ImportIdTaken { .. }
        | DomainError::LoginTaken { .. } => Status::already_exists(msg),
        DomainError::AccountDeleted { .. }
        | DomainError::LicenseLimitReached { .. }
        | DomainError::LimitBelowUsage { .. }
        | DomainError::ScheduleNotOpen { .. } => Status::failed_precondition(msg),
        DomainError::Invalid { .. } => Status::invalid_argument(msg),
        DomainError::FiringOutdated { .. } => Status::aborted(msg),
    }
}

pub fn from_store(e: &StoreError) -> Status {
    let msg = e.to_string();
    match e {
        StoreError::Open { .. } | StoreError::Io(_) | StoreError::LeaseLost { .. } => {
            Status::unavailable(msg)
        }
        StoreError::UnknownVersion { .. }
        | StoreError::Corrupt { .. }
        | StoreError::DataLoss { .. } => Status::internal(msg),
    }
}

pub fn from_ledger(e: &LedgerError) -> Status {
    match e {
        LedgerError::Domain(d) => from_domain(d),
        LedgerError::Store(s) => from_store(s),
        LedgerError::VersionMismatch { .. } => Status::aborted(e.to_string()),
        LedgerError::Closed | LedgerError::OwnerUnreachable { .. } => {
            Status::unavailable(e.to_string())
        }
        LedgerError::MassRevert { .. } => Status::failed_precondition(e.to_string()),
        LedgerError::WriterStopped { .. } => Status::internal(e.to_string()),
    }
}

/// A refused import job. The file's problems are INVALID_ARGUMENT (the message names file, row
/// and column); an unknown domain NOT_FOUND; the mass-change guard FAILED_PRECONDITION (the
/// message says how many accounts); the ledger's own refusals as [`from_ledger`] (prefixed with
/// the file); the disk or the import task failing UNAVAILABLE.
pub fn from_import(e: &ImportError) -> Status {
    let msg = e.to_string();
    match e {
        ImportError::UnknownDomain { .. } => Status::not_found(msg),
        ImportError::MassChange { .. } => Status::failed_precondition(msg),
        ImportError::Ledger { source, .. } => {
            let s = from_ledger(source);
            Status::new(s.code(), msg)
        }
        ImportError::Io { source, .. } => match source.kind() {
            // Content the upload (or an archive's manifest) should have had.
            std::io::ErrorKind::NotFound
            | std::io::ErrorKind::InvalidData
            | std::io::ErrorKind::InvalidInput
            | std::io::ErrorKind::UnexpectedEof => Status::invalid_argument(msg),
            _ => Status::unavailable(msg),
        },
        ImportError::Empty { .. }
        | ImportError::Encoding { .. }
        | ImportError::MissingColumn { .. }
        | ImportError::DuplicateColumn { .. }
        | ImportError::Version { .. }
        | ImportError::UnknownFile { .. }
        | ImportError::Manifest { .. }
        | ImportError::Limit { .. }
        | ImportError::Damaged { .. }
        | ImportError::Zip { .. } => Status::invalid_argument(msg),
    }
}

impl From<ImportError> for Status {
    fn from(e: ImportError) -> Status {
        from_import(&e)
    }
}

impl From<LedgerError> for Status {
    fn from(e: LedgerError) -> Status {
        from_ledger(&e)
    }
}

/// INVALID_ARGUMENT naming the field.
pub fn invalid(field: &str, reason: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("invalid {field}: {reason}"))
}

/// INVALID_ARGUMENT for a required field left out.
pub fn missing(field: &str) -> Status {
    Status::invalid_argument(format!("invalid {field}: required"))
}

/// FAILED_PRECONDITION: a request id answered by the first command that used it, which was
/// not this kind of command (its answer cannot be this reply).
pub fn request_id_used_elsewhere(what: &str) -> Status {
    Status::failed_precondition(format!(
        "invalid request_id: already used by a command that {what}; use a new request id"
    ))
}

pub fn unauthenticated(reason: impl std::fmt::Display) -> Status {
    Status::unauthenticated(reason.to_string())
}

pub fn permission_denied(reason: impl std::fmt::Display) -> Status {
    Status::permission_denied(reason.to_string())
}

pub fn account_not_found(what: impl std::fmt::Display) -> Status {
    Status::not_found(format!("account {what} does not exist"))
}

pub fn domain_not_found(domain: &str) -> Status {
    from_domain(&DomainError::UnknownDomain {
        domain: domain.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn user_mistakes_are_never_internal() {
        let cases = [
            (
                DomainError::LicenseLimitReached {
                    domain: "d".into(),
                    limit: 2,
                    used: 2,
                },
                Code::FailedPrecondition,
            ),
            (
                DomainError::AccountDeleted { account: 1 },
                Code::FailedPrecondition,
            ),
            (DomainError::UnknownAccount { account: 1 }, Code::NotFound),
            (
                DomainError::DomainExists { domain: "d".into() },
                Code::AlreadyExists,
            ),
            (
                DomainError::Invalid {
                    field: "email",
                    reason: "x".into(),
                },
                Code::InvalidArgument,
            ),
        ];
        for (e, code) in cases {
            assert_eq!(from_domain(&e).code(), code, "{e}");
        }
        let s = from_domain(&DomainError::LicenseLimitReached {
            domain: "d".into(),
            limit: 2,
            used: 2,
        });
        assert!(s.message().contains("2 of 2"), "{}", s.message());
    }

    #[test]
    fn import_refusals_map_to_their_codes() {
        let guard = from_import(&ImportError::MassChange {
            domain: "d".into(),
            file: "users.csv".into(),
            affected: 3,
            active: 5,
            percent: 10,
        });
        assert_eq!(guard.code(), Code::FailedPrecondition);
        assert!(
            guard.message().contains("3 of the 5"),
            "{}",
            guard.message()
        );
        let col = from_import(&ImportError::MissingColumn {
            file: "users.csv".into(),
            column: "login".into(),
        });
        assert_eq!(col.code(), Code::InvalidArgument);
        assert!(col.message().contains("users.csv") && col.message().contains("login"));
        let dom = from_import(&ImportError::UnknownDomain { domain: "x".into() });
        assert_eq!(dom.code(), Code::NotFound);
        let disk = from_import(&ImportError::Io {
            file: "users.csv".into(),
            source: std::io::Error::other("disk gone"),
        });
        assert_eq!(disk.code(), Code::Unavailable);
    }
}
