//! What the ledger answers when a command is not applied: each variant's doc names its gRPC
//! code (mapped once, in [`crate::api::status`]).

use crate::domain::{DomainError, StreamId};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum LedgerError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// ABORTED: the stream (an account or a domain) moved on; re-read and retry.
    #[error("{stream} is at version {actual}, expected {expected}")]
    VersionMismatch {
        stream: StreamId,
        expected: u64,
        actual: u64,
    },
    /// UNAVAILABLE: the server deciding the domain did not answer (it may have stopped: its
    /// domains move to another server when its lease runs out).
    #[error("the server deciding domain {domain:?} ({address}) did not answer: {reason}; retry")]
    OwnerUnreachable {
        domain: String,
        address: String,
        reason: String,
    },
    /// UNAVAILABLE: the ledger is shutting down.
    #[error("the ledger is shutting down")]
    Closed,
    /// INTERNAL: the domain's writer stopped on a bug (a panic). Its commands are refused,
    /// and health says NOT_SERVING, until the server is restarted: the open rebuilds the
    /// domain from the log, so nothing acknowledged is lost. A command in flight when it
    /// stopped may or may not have been appended: retry it with its request id after the
    /// restart.
    #[error(
        "domain {domain:?}'s writer stopped on an internal error (the server's log says which); its commands are refused until the server is restarted (nothing acknowledged is lost; retry with the same request id after the restart)"
    )]
    WriterStopped {
        domain: String,
        /// The panic's message: logged, not sent to clients (it may hold data).
        reason: String,
    },
    /// FAILED_PRECONDITION: a revert would deactivate or delete more than the domain's
    /// mass-change share; run it again confirmed.
    #[error(
        "reverting job {job} would deactivate or delete {affected} of the {active} active imported accounts of domain {domain:?} (more than the {percent}% allowed); check the dry run, or confirm the mass change to revert"
    )]
    MassRevert {
        job: uuid::Uuid,
        domain: String,
        affected: u64,
        active: u64,
        percent: u8,
    },
}
