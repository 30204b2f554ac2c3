//! What can go wrong below the rules: disk, format, concurrency.

use std::path::PathBuf;

/// Sent between servers (a forwarded command's failure) as well as shown.
#[derive(Debug, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum StoreError {
    /// The data directory cannot be used (damaged, foreign, locked). Fatal at start-up.
    #[error("cannot open data dir {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    /// The data dir holds less than it is known to have held (a truncated log, a missing or
    /// short key vault, a live account without its key). Fatal at start-up unless the operator
    /// accepts the loss.
    #[error(
        "data loss in {path}: {what}. Restore the data dir from a backup (README: \"Backup and \
         restore\"), or start with --accept-data-loss to serve what is left"
    )]
    DataLoss { path: PathBuf, what: String },
    /// A stored record was written by a newer or unknown format.
    #[error("record at {at} has unknown format version {version}")]
    UnknownVersion { at: String, version: u8 },
    /// A stored record cannot be decoded.
    #[error("record at {at} is corrupt: {reason}")]
    Corrupt { at: String, reason: String },
    /// UNAVAILABLE: another server took over the domain (its lease) before this append
    /// committed; nothing was written. Retried by the ledger on the new owner.
    #[error("another server took over domain {domain:?} before this change was written; retry")]
    LeaseLost { domain: String },
    /// INTERNAL / UNAVAILABLE: the disk failed.
    #[error("storage I/O failed: {0}")]
    Io(String),
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Io(e.to_string())
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError::Io(e.to_string())
    }
}
