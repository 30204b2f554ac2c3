//! The log: an append-only sequence of events behind the [`EventLog`] trait, with sled as the
//! embedded implementation. Only `sled_log.rs` and `sled_views.rs` know sled; only `codec.rs`
//! knows how bytes look.
//!
//! Invariants kept here:
//! - positions start at 1 and are gap-free and monotonic;
//! - `recorded_at` never goes backwards (the stamp is `max(now, previous)`), so "as of T" is
//!   "as of the last position stamped at or before T";
//! - an event id is stored at most once; appending it again returns the original position;
//! - an append returns only after the batch is durable, all of it or none of it: fsynced in
//!   sled's file or, for a group of small commits, in the commit journal that an open replays
//!   into sled (`journal.rs`).

mod block_file;
mod chunk_file;
mod chunk_shared;
mod chunk_table;
pub mod codec;
mod error;
mod event_ids;
pub mod files;
pub mod index_checkpoint;
mod journal;
mod log_index;
mod number_blob;
mod parallel;
pub mod pg_cluster;
mod pg_conn;
pub mod pg_log;
pub mod reach;
mod record;
mod sled_commit;
pub mod sled_log;
mod sled_open;
pub mod sled_views;
mod stream_index;
pub mod vault;

pub use error::StoreError;
pub use record::{EventParts, NewEvent, RecordParts, RecordedEvent, Source};
pub use sled_log::{
    OpenedStore, SledEventLog, StoreOptions, now_us, open_store, open_store_unindexed,
    open_store_with,
};

use async_trait::async_trait;
use uuid::Uuid;

use crate::domain::{AccountId, AccountState, DomainState, StreamId};

/// The narrow interface the ledger needs from a log store. Keep storage-engine types out of it:
/// a PostgreSQL-protocol implementation is meant to sit beside the sled one.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Append a batch atomically. Events whose id is already stored are skipped and answered
    /// with their original position. Returns, after the batch is durable, one position per
    /// input event and the events newly recorded. Appends may run concurrently (one per
    /// partition writer); each gets a contiguous range of positions, and concurrent appends
    /// share one flush + fsync. Expected stream versions are checked by the stream's owner
    /// (its partition writer), not here.
    async fn append(&self, events: Vec<NewEvent>) -> Result<Appended, StoreError>;

    /// [`EventLog::append`], refused ([`StoreError::LeaseLost`]) unless the fence's lease is
    /// still held when the batch commits. A store only one server writes (sled, which locks its
    /// directory) has no leases and ignores the fence.
    async fn append_fenced(
        &self,
        events: Vec<NewEvent>,
        _fence: Option<&pg_cluster::Fence>,
    ) -> Result<Appended, StoreError> {
        self.append(events).await
    }

    /// [`EventLog::append_fenced`] of a batch handed over in parts (see [`EventParts`]); a
    /// store may free each part once it is recorded.
    async fn append_parts(
        &self,
        events: EventParts,
        fence: Option<&pg_cluster::Fence>,
    ) -> Result<Appended, StoreError> {
        self.append_fenced(events.into_events().collect(), fence)
            .await
    }

    /// Learn of events other servers appended; returns the new end. A store only this
    /// process writes has nothing to learn.
    async fn refresh(&self) -> Result<u64, StoreError> {
        Ok(self.last_position())
    }

    /// Wait until some server may have appended (at most `at_most`): a store others write
    /// wakes the caller when they commit.
    async fn appended_elsewhere(&self, at_most: std::time::Duration) {
        tokio::time::sleep(at_most).await;
    }

    /// Events with positions in `from..=to` (at most `limit`), in order.
    async fn read_range(
        &self,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The events at the given positions (pass them ascending: the answer is then in that
    /// order, each stored chunk read once), positions that hold no event skipped.
    async fn read_positions(&self, positions: &[u64]) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Positions of one stream's events, oldest first.
    fn stream_positions(&self, stream: &StreamId) -> Vec<u64>;

    /// Number of events in a stream (its version).
    fn stream_version(&self, stream: &StreamId) -> u64;

    /// Those of `accounts` with an event after `position`, in the order given: one lookup of
    /// each stream's newest position, no walk (lists as of an instant).
    fn accounts_changed_after(&self, accounts: &[AccountId], position: u64) -> Vec<AccountId>;

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

    /// The newest durable position (0 for an empty log): readers never see past it.
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
    pub recorded: RecordParts,
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

/// One partition's (domain's) rows changed since its last save, with the position its views
/// are complete through.
#[derive(Debug, Default)]
pub struct ViewBatch {
    pub domain: String,
    /// Every event of this domain at or before this position is reflected.
    pub checkpoint: u64,
    /// Whole buckets: (bucket number, every account of this domain in it), shared with the
    /// read model (a save after a 1M-row import once deep-copied every row).
    pub account_buckets: Vec<(u64, Vec<std::sync::Arc<AccountState>>)>,
    pub domain_row: Option<DomainState>,
}

/// One domain's persisted projections as loaded at start-up.
#[derive(Debug)]
pub struct PartitionSnapshot {
    pub domain: DomainState,
    pub checkpoint: u64,
    pub accounts: Vec<std::sync::Arc<AccountState>>,
}

/// The persisted projections as loaded at start-up.
#[derive(Debug, Default)]
pub struct ViewSnapshot {
    /// Every domain registered at or before this position has a saved partition: catch-up
    /// starts after it (each partition skipping what its own checkpoint covers).
    pub checkpoint: u64,
    pub partitions: Vec<PartitionSnapshot>,
}

/// Where projections persist their rows and checkpoint. Rows are saved periodically, not per
/// commit (the checkpoint says how far they are). Writes become durable with the next
/// [`EventLog::sync`] or append; a crash leaves them behind the log, never ahead, and start-up
/// catches up from the checkpoint.
pub trait ViewStore: Send + Sync {
    fn load(&self) -> Result<ViewSnapshot, StoreError>;
    /// One atomic write: the partitions' rows and checkpoints, and the global floor
    /// ([`ViewSnapshot::checkpoint`]) when given.
    fn save(&self, batches: &[ViewBatch], floor: Option<u64>) -> Result<(), StoreError>;
    /// Points of the license series, written with each commit so "as of" answers are current;
    /// rewriting a point is harmless (same key, same value).
    fn save_license_points(&self, points: &[LicensePoint]) -> Result<(), StoreError>;
    fn clear(&self) -> Result<(), StoreError>;
    /// The domain's usage as of `position` (the last point at or before it).
    fn license_at(&self, domain: &str, position: u64) -> Result<Option<LicensePoint>, StoreError>;
}
