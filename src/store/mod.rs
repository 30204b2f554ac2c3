//! The log: an append-only sequence of events behind the [`EventLog`] trait, with sled as the
//! embedded implementation. Only `sled_log.rs` and `sled_views.rs` know sled; only `codec.rs`
//! knows how bytes look.
//!
//! Invariants kept here:
//! - positions start at 1 and are gap-free and monotonic;
//! - `recorded_at` never goes backwards (the stamp is `max(now, previous)`), so "as of T" is
//!   "as of the last position stamped at or before T";
//! - an event id is stored at most once; appending it again returns the original position;
//! - an append returns only after the batch is flushed and fsynced, all of it or none of it.

pub mod codec;
mod error;
mod record;
pub mod sled_log;
pub mod sled_views;
pub mod vault;

pub use error::StoreError;
pub use record::{NewEvent, RecordedEvent, Source};
pub use sled_log::{OpenedStore, SledEventLog, now_us, open_store};

use async_trait::async_trait;
use uuid::Uuid;

use crate::domain::{AccountState, DomainState, StreamId};

/// The narrow interface the ledger needs from a log store. Keep storage-engine types out of it:
/// a PostgreSQL-protocol implementation is meant to sit beside the sled one.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Append a batch atomically. `expected` lists, for streams the caller cares about, how many
    /// events the stream must hold before the batch; a mismatch is [`StoreError::Conflict`] and
    /// nothing is written. Events whose id is already stored are skipped and answered with their
    /// original position. Returns, after the batch is durable, one position per input event
    /// and the events newly recorded.
    async fn append(
        &self,
        events: Vec<NewEvent>,
        expected: Vec<(StreamId, u64)>,
    ) -> Result<Appended, StoreError>;

    /// Events with positions in `from..=to` (at most `limit`), in order.
    async fn read_range(
        &self,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The events at the given positions (ascending), decoding each stored chunk once.
    async fn read_positions(&self, positions: &[u64]) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Positions of one stream's events, oldest first.
    fn stream_positions(&self, stream: &StreamId) -> Vec<u64>;

    /// Number of events in a stream (its version).
    fn stream_version(&self, stream: &StreamId) -> u64;

    /// The last position recorded at or before `at_us` (0 when none).
    fn position_at(&self, at_us: i64) -> u64;

    /// Positions of the events caused by one client request id (idempotent retries).
    fn request_positions(&self, request_id: &str) -> Vec<u64>;

    /// Positions of the events of one import job (audit).
    fn job_positions(&self, job_id: &Uuid) -> Vec<u64>;

    /// Make writes done outside `append` (projection saves) durable.
    async fn sync(&self) -> Result<(), StoreError>;

    /// The position of a stored event id, if stored.
    fn event_position(&self, id: &Uuid) -> Option<u64>;

    /// The newest position (0 for an empty log).
    fn last_position(&self) -> u64;

    /// Bytes used on disk by the store.
    fn size_on_disk(&self) -> Result<u64, StoreError>;
}

/// What an append did.
#[derive(Debug, Default)]
pub struct Appended {
    /// One per input event: where it is (new or already stored).
    pub positions: Vec<u64>,
    /// The events this append wrote, in order (duplicates left out).
    pub recorded: Vec<RecordedEvent>,
}

/// Domain usage after some position: one point of a domain's license series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicensePoint {
    pub domain: String,
    pub position: u64,
    pub used: u32,
    pub limit: u32,
}

/// Accounts are persisted in buckets of this many consecutive account numbers: one sled key
/// per bucket, since sled's cost is per key.
pub const ACCOUNT_BUCKET: u64 = 128;

/// Rows changed since the last save, with the checkpoint they bring the views to.
#[derive(Debug, Default)]
pub struct ViewBatch {
    pub checkpoint: u64,
    /// Whole buckets: (bucket number, every account in it).
    pub account_buckets: Vec<(u64, Vec<AccountState>)>,
    pub domains: Vec<DomainState>,
}

/// The persisted projections as loaded at start-up.
#[derive(Debug, Default)]
pub struct ViewSnapshot {
    pub checkpoint: u64,
    pub accounts: Vec<AccountState>,
    pub domains: Vec<DomainState>,
}

/// Where projections persist their rows and checkpoint. Rows are saved periodically, not per
/// commit (the checkpoint says how far they are). Writes become durable with the next
/// [`EventLog::sync`] or append; a crash leaves them behind the log, never ahead, and start-up
/// catches up from the checkpoint.
pub trait ViewStore: Send + Sync {
    fn load(&self) -> Result<ViewSnapshot, StoreError>;
    /// One atomic write: the rows and their checkpoint.
    fn save(&self, batch: &ViewBatch) -> Result<(), StoreError>;
    /// Points of the license series, written with each commit so "as of" answers are current;
    /// rewriting a point is harmless (same key, same value).
    fn save_license_points(&self, points: &[LicensePoint]) -> Result<(), StoreError>;
    fn clear(&self) -> Result<(), StoreError>;
    /// The domain's usage as of `position` (the last point at or before it).
    fn license_at(&self, domain: &str, position: u64) -> Result<Option<LicensePoint>, StoreError>;
}
