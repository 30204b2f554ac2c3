//! Why an import failed, in the administrator's terms: which file, which row, which column.
//!
//! Two levels, kept apart on purpose:
//! - [`ImportError`]: the whole job is refused and nothing is applied (a structural problem with
//!   a file, an unknown domain, the mass-change guard, the ledger being unavailable).
//! - [`RowError`]: one row is bad or was refused by the ledger; it is reported in the job's
//!   report and skipped, and the other rows go on (unless the job is strict).

use serde::Serialize;

use crate::domain::DomainError;
use crate::domain::import_job::KeptRowError;
use crate::ledger::LedgerError;

/// A whole import job refused. Every variant names the file (and row and column where there is
/// one). For the API layer: `Ledger` maps as the ledger error does; `UnknownDomain` is NOT_FOUND;
/// `MassChange` is FAILED_PRECONDITION (re-run with confirmation); `Io` is UNAVAILABLE/INTERNAL;
/// every other variant is INVALID_ARGUMENT (fix the file and re-run).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: the file is empty (no header row)")]
    Empty { file: String },
    #[error(
        "{file}, row {row}, column {column:?}: not valid UTF-8 ({detail}); save the file as UTF-8 and re-run"
    )]
    Encoding {
        file: String,
        row: u64,
        column: String,
        detail: String,
    },
    #[error("{file}: required column {column:?} is missing from the header")]
    MissingColumn { file: String, column: String },
    #[error(
        "{file}: column {column:?} appears twice in the header (row 1, columns {first} and {second})"
    )]
    DuplicateColumn {
        file: String,
        column: String,
        first: usize,
        second: usize,
    },
    #[error("{file}: {reason}")]
    Version { file: String, reason: String },
    #[error("{file}: cannot tell what kind of import this is: {reason}")]
    UnknownFile { file: String, reason: String },
    #[error("{file}, row {row}: {reason}")]
    Manifest {
        file: String,
        row: u64,
        reason: String,
    },
    #[error("{file}, row {row}: {what}; refused while reading, nothing applied")]
    Limit {
        file: String,
        row: u64,
        what: String,
    },
    #[error("{file}, near row {row}: the file is damaged ({reason}); nothing applied")]
    Damaged {
        file: String,
        row: u64,
        reason: String,
    },
    #[error("{file}: not a readable zip archive: {reason}")]
    Zip { file: String, reason: String },
    #[error("domain {domain:?} is not registered")]
    UnknownDomain { domain: String },
    #[error(
        "{file}: this full import would deactivate or delete {affected} of the {active} active imported accounts of domain {domain:?} (more than the {percent}% allowed); check the file, or confirm the mass change to apply it"
    )]
    MassChange {
        domain: String,
        file: String,
        affected: u64,
        active: u64,
        percent: u8,
    },
    #[error("{file}: {source}")]
    Ledger {
        file: String,
        #[source]
        source: LedgerError,
    },
}

/// One bad or refused row: reported, skipped, the rest go on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    pub file: String,
    /// Line of the file where the row starts (the header is line 1). 0: an account the file
    /// left out (full imports), which has no row.
    pub row: u64,
    /// The column at fault, as named in the header, when one is.
    pub column: Option<String>,
    /// The row's import id, when it could be read.
    pub import_id: Option<String>,
    pub reason: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}, row {}", self.file, self.row)?;
        if let Some(c) = &self.column {
            write!(f, ", column {c:?}")?;
        }
        if let Some(i) = &self.import_id {
            write!(f, " (import id {i:?})")?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl RowError {
    /// What the log keeps of this error (see [`KeptRowError`]).
    pub fn kept(&self) -> KeptRowError {
        KeptRowError::new(self.row, self.column.clone(), &self.reason)
    }

    /// An error read back from the log, in `file`: its values and import id were not kept.
    pub fn from_kept(file: &str, kept: &KeptRowError) -> RowError {
        RowError {
            file: file.to_string(),
            row: kept.row,
            column: kept.column.clone(),
            import_id: None,
            reason: kept.reason.clone(),
        }
    }
}

/// The column a ledger refusal is about, for the row error (in the file's own column names).
pub(crate) fn column_of(
    err: &LedgerError,
    flag_column: &str,
    names: &ColumnNames,
) -> Option<String> {
    let LedgerError::Domain(d) = err else {
        return None;
    };
    let col = match d {
        DomainError::LicenseLimitReached { .. } => flag_column,
        DomainError::LoginTaken { .. } => names.login,
        DomainError::ImportIdTaken { .. } => names.import_id,
        DomainError::Invalid { field, .. } => match *field {
            "login" => names.login,
            "first_name" => names.first_name,
            "last_name" => names.last_name,
            "email" => names.email,
            "role" => names.role,
            "import_id" => names.import_id,
            _ => return None,
        },
        _ => return None,
    };
    Some(col.to_string())
}

/// How a file format names the columns the ledger talks about.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ColumnNames {
    pub import_id: &'static str,
    pub login: &'static str,
    pub first_name: &'static str,
    pub last_name: &'static str,
    pub email: &'static str,
    pub role: &'static str,
}
