//! [`EventLog`] on sled. Layout (tree `log`): key = position of a chunk's first event (u64 BE),
//! value = a codec chunk of up to [`CHUNK_EVENTS`] consecutive events of one commit, or, for a
//! commit of several chunks, a pointer into the chunk file ([`super::chunk_file`]).
//!
//! Why chunks: sled's cost is per key, not per byte (see ARCHITECTURE.md), so one key per event
//! caps writes near 40k events/s; a chunk keeps a single-event read cheap (decode ≤ 256 events)
//! while a batch costs a handful of keys.
//!
//! The stream ([`StreamIndex`]), event-id and time indexes are kept in memory and saved now and
//! then as a checkpoint file ([`index_checkpoint`]); an open reads the checkpoint and indexes
//! only the log after it (decoding without decrypting). They are derived data: keeping them
//! out of sled keeps an append at one key per chunk.
//!
//! Durability: a group of single-chunk commits is synced as one record of the commit journal
//! ([`journal`]); a commit written in parts, or a full journal, by a flush of sled and an
//! fsync of its file.

use std::fs::File;
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};

use async_trait::async_trait;
use uuid::Uuid;

use super::chunk_file::{self, ChunkBytes, ChunkFile};
use super::codec::{self, u64_key};
use super::files;
use super::index_checkpoint;
use super::journal::{self, Journal};
use super::log_index::{self, LogIndex};
use super::reach::{self, Reach};
use super::sled_commit;
use super::sled_open::{PID_FILE, open_sled};
use super::vault::Vault;
use super::{Appended, EventLog, EventParts, NewEvent, RecordedEvent, StoreError};
use crate::domain::{AccountId, StreamId};

mod indexing;
mod sync;

use indexing::write_index_checkpoint;
use sync::{SYNC_FAILED, SyncState, Unsynced, recover_journal};

pub const CHUNK_EVENTS: usize = 256;
const MARKER_FILE: &str = "ACCOUNT_LEDGER_DATA";
const MARKER_TEXT: &str = "account-ledger data directory, layout 4\n";
/// Layout 3 had no chunk file: one is made on open (an older binary refuses layout 4, so it
/// never reads a log that points into one).
const MARKER_TEXT_3: &str = "account-ledger data directory, layout 3\n";
/// Layout 2 had no commit journal: one is made on open (an older binary refuses layout 3, so
/// it never opens a dir whose newest commits may be in the journal alone).
const MARKER_TEXT_2: &str = "account-ledger data directory, layout 2\n";
/// Layout 1 had no reach record and a vault without header; both are added on open.
const MARKER_TEXT_1: &str = "account-ledger data directory, layout 1\n";

/// How to open a data dir.
#[derive(Clone, Copy, Debug, Default)]
pub struct StoreOptions {
    /// Serve what is left when the data dir holds less than its reach record says (logged as
    /// an error); the record is then rewritten to what is there.
    pub accept_data_loss: bool,
}

struct Inner {
    dir: PathBuf,
    db: sled::Db,
    log: sled::Tree,
    /// The chunks of commits of several chunks, which `log` points into.
    chunks: ChunkFile,
    /// sled's main file, fsynced after each flush (sled 0.34 only sync_file_ranges it).
    db_file: File,
    vault: Arc<Vault>,
    index: RwLock<LogIndex>,
    append_lock: Mutex<()>,
    /// Chunks written to sled since the last group sync took them ([`journal`]).
    unsynced: Mutex<Unsynced>,
    /// Used by the group sync's leader (one at a time).
    journal: Mutex<Journal>,
    /// Set when a sync failed: nothing more is acknowledged until the store is reopened.
    sync_failed: AtomicBool,
    /// Group sync: how far the log is durable, and whether a sync is running.
    sync_state: Mutex<SyncState>,
    sync_done: Condvar,
    /// The durable end of the log: readers never see past it.
    durable: AtomicU64,
    /// What the reach record said at open (checked once the log is indexed).
    recorded_reach: Reach,
    options: StoreOptions,
    /// Set once the log is indexed: from then on the reach record follows the log.
    indexed: AtomicBool,
    /// (position, account) of deletions since the last index checkpoint: a checkpoint makes
    /// sure the keys of those it covers are destroyed before it is written.
    deletions: Mutex<Vec<(u64, AccountId)>>,
    /// The position the last index checkpoint ends at.
    checkpointed: AtomicU64,
}

/// The sled-backed log. Cheap to clone.
#[derive(Clone)]
pub struct SledEventLog {
    inner: Arc<Inner>,
}

/// Everything opened from one data directory.
pub struct OpenedStore {
    pub log: SledEventLog,
    pub views: super::sled_views::SledViews,
    pub vault: Arc<Vault>,
}

pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Open (or create) a data directory and index its log, ready to use. A foreign or damaged
/// directory is an error naming the path, never a panic: sled 0.34 can panic on a corrupt file
/// after an abrupt stop (sled #1533), so opening runs under `catch_unwind`.
pub fn open_store(dir: &Path) -> Result<OpenedStore, StoreError> {
    let opened = open_store_unindexed(dir)?;
    opened.log.index_log()?;
    Ok(opened)
}

/// [`open_store`] without indexing the log: call [`SledEventLog::index_log`] before using the log.
/// Start-up indexes the log while it loads the views (the two read disjoint trees).
pub fn open_store_unindexed(dir: &Path) -> Result<OpenedStore, StoreError> {
    open_store_with(dir, StoreOptions::default())
}

/// [`open_store_unindexed`] with options.
pub fn open_store_with(dir: &Path, options: StoreOptions) -> Result<OpenedStore, StoreError> {
    let open_err = |reason: String| StoreError::Open {
        path: dir.to_path_buf(),
        reason,
    };
    files::create_private_dir(dir).map_err(|e| open_err(e.to_string()))?;
    let marker = dir.join(MARKER_FILE);
    let mut created = false;
    let layout = match std::fs::read_to_string(&marker) {
        Ok(text) if text == MARKER_TEXT => 4,
        Ok(text) if text == MARKER_TEXT_3 => 3,
        Ok(text) if text == MARKER_TEXT_2 => 2,
        Ok(text) if text == MARKER_TEXT_1 => 1,
        Ok(_) => {
            return Err(open_err(format!(
                "{} has unknown content",
                marker.display()
            )));
        }
        Err(_) => {
            let non_empty = std::fs::read_dir(dir)
                .map_err(|e| open_err(e.to_string()))?
                .next()
                .is_some();
            if non_empty {
                return Err(open_err(
                    "not an account-ledger data directory (no marker file); refusing to write into it"
                        .into(),
                ));
            }
            reach::write(dir, Reach::default()).map_err(|e| open_err(e.to_string()))?;
            let mut f = files::create_private(&marker).map_err(|e| open_err(e.to_string()))?;
            f.write_all(MARKER_TEXT.as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(|e| open_err(e.to_string()))?;
            created = true;
            4
        }
    };
    let layout_1 = layout == 1;
    let recorded = match reach::read(dir)? {
        Some(r) => r,
        // Layout 1 kept no record: there is nothing to compare with once.
        None if layout_1 => Reach::default(),
        None => {
            let what = "the reach record is missing, so a truncated log could not be told \
                        from a complete one"
                .to_string();
            accept_or_refuse(options, reach::path(dir), what)?;
            Reach::default()
        }
    };
    let sled_dir = dir.join("sled");
    let db = open_sled(&sled_dir).map_err(open_err)?;
    // Who holds the lock now, for the next process that finds it locked.
    let _ = std::fs::write(dir.join(PID_FILE), format!("{}\n", std::process::id()));
    let log = db.open_tree("log").map_err(|e| open_err(e.to_string()))?;
    let torn = db.open_tree("torn").map_err(|e| open_err(e.to_string()))?;
    sled_commit::discard_torn(&db, &log, &torn).map_err(|e| open_err(e.to_string()))?;
    // Every open of layout 4 makes the file: gone, it was removed, and the imports in it with it.
    let chunk_path = dir.join(chunk_file::CHUNK_FILE);
    if layout == 4 && !created && !chunk_path.exists() {
        let what = "the chunk file is missing: the log's large commits (import jobs) are in it"
            .to_string();
        accept_or_refuse(options, chunk_path, what)?;
    }
    let chunks = ChunkFile::open(dir).map_err(|e| open_err(e.to_string()))?;
    let db_file = File::open(sled_dir.join("db")).map_err(|e| open_err(e.to_string()))?;
    let journal = recover_journal(
        dir,
        &db,
        &log,
        &chunks,
        &db_file,
        options,
        layout >= 3 && !created,
    )
    .map_err(|e| match e {
        StoreError::DataLoss { .. } => e,
        e => open_err(e.to_string()),
    })?;
    let vault_path = dir.join("keys.vault");
    let vault = match Vault::open(&vault_path, recorded.vault_len) {
        Err(StoreError::DataLoss { path, what }) if options.accept_data_loss => {
            accept_or_refuse(options, path, what)?;
            if vault_path.exists() {
                // A damaged header or slot: keep the file for forensics, start a new one.
                let kept = vault_path.with_extension("damaged");
                std::fs::rename(&vault_path, &kept)?;
                tracing::error!(kept = %kept.display(), "damaged key vault set aside");
            }
            Vault::open(&vault_path, 0)?
        }
        other => other?,
    };
    let vault = Arc::new(vault);
    // After sled created its files (with the process umask): narrow them. Wider modes on a
    // data dir that existed before are worth a warning; on a new one they are sled's defaults.
    let repaired = files::narrow_tree(dir).map_err(|e| open_err(e.to_string()))?;
    if !created {
        for p in repaired {
            tracing::warn!(path = %p.display(), "was readable by other users; narrowed to owner-only");
        }
    }
    if layout < 4 {
        std::fs::write(&marker, MARKER_TEXT).map_err(|e| open_err(e.to_string()))?;
    }
    let inner = Arc::new(Inner {
        dir: dir.to_path_buf(),
        db: db.clone(),
        log,
        chunks,
        db_file,
        vault: vault.clone(),
        index: RwLock::new(LogIndex::default()),
        append_lock: Mutex::new(()),
        unsynced: Mutex::new(Unsynced::default()),
        journal: Mutex::new(journal),
        sync_failed: AtomicBool::new(false),
        sync_state: Mutex::new(SyncState::default()),
        sync_done: Condvar::new(),
        durable: AtomicU64::new(0),
        recorded_reach: recorded,
        options,
        indexed: AtomicBool::new(false),
        deletions: Mutex::new(Vec::new()),
        checkpointed: AtomicU64::new(0),
    });
    let log = SledEventLog { inner };
    let views = super::sled_views::SledViews::open(&db, vault.clone())
        .map_err(|e| open_err(e.to_string()))?;
    Ok(OpenedStore { log, views, vault })
}

/// A loss the operator accepted is logged as such; otherwise it is the refusal.
pub fn accept_or_refuse(
    options: StoreOptions,
    path: PathBuf,
    what: String,
) -> Result<(), StoreError> {
    if options.accept_data_loss {
        tracing::error!(path = %path.display(), "DATA LOSS accepted (--accept-data-loss): {what}");
        Ok(())
    } else {
        Err(StoreError::DataLoss { path, what })
    }
}

/// What is durable now: the log's durable end, then the vault's synced length (keys are
/// synced before the records that need them, so this order never over-claims).
fn current_reach(inner: &Inner) -> Reach {
    let log_position = inner.durable.load(Ordering::Acquire);
    Reach {
        log_position,
        vault_len: inner.vault.synced_len(),
    }
}

/// Rewrite the reach record once a second while it changes, and the log index checkpoint
/// every [`index_checkpoint::every`] events, until the store is dropped.
fn spawn_reach_writer(inner: &Arc<Inner>) {
    let weak = Arc::downgrade(inner);
    let mut written = current_reach(inner);
    let every = index_checkpoint::every();
    let spawned = std::thread::Builder::new()
        .name("reach-record".into())
        .spawn(move || {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                let now = current_reach(&inner);
                if now != written {
                    match reach::write(&inner.dir, now) {
                        Ok(()) => written = now,
                        Err(e) => tracing::error!("writing the reach record failed: {e}"),
                    }
                }
                let since = now.log_position
                    - inner
                        .checkpointed
                        .load(Ordering::Acquire)
                        .min(now.log_position);
                if since < every {
                    continue;
                }
                let log = SledEventLog {
                    inner: inner.clone(),
                };
                if let Err(e) = write_index_checkpoint(&inner, &|end| log.sync_through(end)) {
                    tracing::error!("writing the log index checkpoint failed: {e}");
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the reach-record writer: {e}");
    }
}

impl Drop for Inner {
    /// A clean close records the final reach (the writer thread may be a second behind). Only
    /// a store whose log was indexed knows its durable end.
    fn drop(&mut self) {
        // Flush while every handle is alive: sled's own flush in the trees' drop (make_stable)
        // once waited forever with its IO threads idle (seen 1 in 6 test runs, sled 0.34).
        // The chunk file before sled: a pointer sled makes durable points at durable bytes.
        let flushed = self
            .chunks
            .sync()
            .map_err(sled::Error::from)
            .and_then(|()| self.db.flush());
        // After a failed sync a later one may report success for pages the kernel dropped:
        // claim nothing and keep the journal for the next open.
        if self.indexed.load(Ordering::Acquire) && !self.sync_failed.load(Ordering::Acquire) {
            // Every append is done: after this sync the whole log is durable.
            if flushed.is_ok() && self.db_file.sync_data().is_ok() {
                let end = self
                    .index
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .last_position;
                self.durable.fetch_max(end, Ordering::AcqRel);
                // sled holds it all: an open after a clean close has nothing to replay, and a
                // log found shorter than this is damage.
                let mut journal = self.journal.lock().unwrap_or_else(|e| e.into_inner());
                if let Err(e) = journal.new_lap(end) {
                    tracing::warn!("the commit journal's lap was not closed: {e}");
                }
            }
            let _ = reach::write(&self.dir, current_reach(self));
            let synced = |end: u64| {
                if self.durable.load(Ordering::Acquire) >= end {
                    Ok(())
                } else {
                    Err(StoreError::Io("the log's last sync at close failed".into()))
                }
            };
            if let Err(e) = write_index_checkpoint(self, &synced) {
                tracing::warn!("the log index checkpoint was not written at close: {e}");
            }
        }
    }
}

impl SledEventLog {
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Build the in-memory indexes (from their checkpoint, then the log after it); an error
    /// names the data dir.
    pub fn index_log(&self) -> Result<(), StoreError> {
        self.rebuild_index().map_err(|e| match e {
            StoreError::DataLoss { .. } => e,
            e => StoreError::Open {
                path: self.inner.dir.clone(),
                reason: format!("reading the log: {e}"),
            },
        })
    }

    fn write_reach(&self) -> Result<(), StoreError> {
        reach::write(&self.inner.dir, current_reach(&self.inner)).map_err(|e| StoreError::Open {
            path: reach::path(&self.inner.dir),
            reason: format!("cannot write the reach record: {e}"),
        })
    }

    /// The durable part of an index entry (positions ascending): an append in flight is not
    /// shown to readers before its sync.
    fn durable_only(&self, positions: Option<&Vec<u64>>) -> Vec<u64> {
        log_index::durable_only(positions, self.inner.durable.load(Ordering::Acquire))
    }

    fn index(&self) -> std::sync::RwLockReadGuard<'_, LogIndex> {
        self.inner.index.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Append one batch. Sealing and key creation happen before the append lock; under it
    /// only positions are assigned and the chunks written to sled (in memory). Then a group
    /// sync makes the batch durable, shared with every appender that wrote meanwhile.
    fn append_blocking(&self, events: EventParts) -> Result<Appended, StoreError> {
        if self.inner.sync_failed.load(Ordering::Acquire) {
            return Err(StoreError::Io(SYNC_FAILED.into()));
        }
        let vault = &self.inner.vault;
        let sealed_all = codec::prepare_batch(events.events(), vault)?.sealed;
        let (positions, records) = {
            let _writer = self
                .inner
                .append_lock
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let (positions, mut records, sealed) = {
                let index = self.index();
                let stamp = now_us().max(index.last_stamp);
                index.assign(events, sealed_all, stamp)
            };
            if records.is_empty() {
                return Ok(Appended {
                    positions,
                    recorded: records,
                });
            }
            let last = records.last().map_or(0, |r| r.position);
            if records.len() <= CHUNK_EVENTS && records.part_count() == 1 {
                // One chunk: a plain insert is atomic on its own, and skips the batch
                // manifest sled writes (and syncs) before a batch: one write per command.
                // The group sync writes it to the journal.
                let first = records[0].position;
                let chunk = records.parts_mut().next().unwrap_or_default();
                let value = sled::IVec::from(codec::encode_chunk_sealed(chunk, &sealed)?);
                self.inner.log.insert(u64_key(first), value.clone())?;
                let mut unsynced = self.unsynced();
                unsynced.chunks.push((first, value));
                unsynced.through = last;
            } else {
                // A failed write of the log's files: nothing more is acknowledged until a
                // restart recovers (as after a failed sync).
                if let Err(e) = sled_commit::write_chunks(
                    &self.inner.log,
                    &self.inner.chunks,
                    &mut records,
                    sealed,
                ) {
                    self.inner.sync_failed.store(true, Ordering::Release);
                    return Err(e);
                }
                let mut unsynced = self.unsynced();
                unsynced.flush_sled = true;
                unsynced.through = last;
            }
            let mut index = self.inner.index.write().unwrap_or_else(|e| e.into_inner());
            for r in &records {
                index.add(r);
            }
            // Under the index lock: a checkpoint that covers these positions sees them.
            let deleted = records
                .iter()
                .filter_map(|r| r.event.deleted_account().map(|a| (r.position, a)));
            self.inner
                .deletions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(deleted);
            drop(index);
            (positions, records)
        };
        let last = records.last().map_or(0, |r| r.position);
        self.sync_through(last)?;
        // The deletion is durable: now destroy the key for real.
        codec::destroy_deleted_keys(records.iter(), vault)?;
        Ok(Appended {
            positions,
            recorded: records,
        })
    }

    fn chunk_at_or_before(&self, position: u64) -> Result<Option<(u64, ChunkBytes)>, StoreError> {
        match self.inner.log.range(..=u64_key(position)).next_back() {
            Some(item) => {
                let (k, v) = item?;
                match codec::read_u64(&k) {
                    Some(p) => Ok(Some((p, self.inner.chunks.resolve(v)?))),
                    None => Ok(None),
                }
            }
            None => Ok(None),
        }
    }

    fn read_range_blocking(
        &self,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let from = from.max(1);
        let mut out = Vec::new();
        if from > to || limit == 0 {
            return Ok(out);
        }
        let start = match self.chunk_at_or_before(from)? {
            Some((p, _)) => p,
            None => from,
        };
        for item in self.inner.log.range(u64_key(start)..) {
            let (k, v) = item?;
            let first = codec::read_u64(&k).unwrap_or(u64::MAX);
            if first > to {
                break;
            }
            let v = self.inner.chunks.resolve(v)?;
            for e in codec::decode_chunk(first, &v, Some(&self.inner.vault))? {
                if e.position >= from && e.position <= to {
                    out.push(e);
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Read events at the given positions, in the order given (missing ones skipped). One
    /// chunk read per ascending run of positions inside it, and only the asked-for events
    /// decoded: callers that sort their positions read each chunk once.
    pub fn read_positions_blocking(
        &self,
        positions: &[u64],
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut out = Vec::with_capacity(positions.len());
        // One chunk read for each run of ascending positions inside it, and only the events
        // asked for decoded and opened (a chunk of format 2 decodes no others).
        let mut i = 0;
        while i < positions.len() {
            let Some((first, bytes)) = self.chunk_at_or_before(positions[i])? else {
                i += 1;
                continue;
            };
            // Chunks hold at most CHUNK_EVENTS: a run stops there (a position past the
            // chunk's real end is looked up again below, so this bound is only for speed).
            let run = 1 + positions[i..]
                .windows(2)
                .take_while(|w| w[1] >= w[0] && w[1] - first < CHUNK_EVENTS as u64)
                .count();
            let offsets: Vec<usize> = positions[i..i + run]
                .iter()
                .map(|p| usize::try_from(p - first).unwrap_or(usize::MAX))
                .collect();
            let (records, len) = codec::decode_chunk_sealed_at(first, &bytes, &offsets)?;
            out.extend(records.into_iter().map(|r| r.open(&self.inner.vault)));
            // Positions past this chunk's end are looked up again (in the next chunk); one
            // not in the chunk that holds the positions before it is skipped.
            i += offsets.iter().take_while(|o| **o < len).count().max(1);
        }
        Ok(out)
    }
}

#[async_trait]
impl EventLog for SledEventLog {
    async fn append(&self, events: Vec<NewEvent>) -> Result<Appended, StoreError> {
        self.append_parts(events.into(), None).await
    }

    /// One store writes a sled directory (it is locked): no lease, the fence is ignored.
    async fn append_parts(
        &self,
        events: EventParts,
        _fence: Option<&super::pg_cluster::Fence>,
    ) -> Result<Appended, StoreError> {
        // On this thread: a hand-off to a blocking thread and back cost two wake-ups (tens of
        // µs each with idle cores) on every single command. The worker's other tasks move to
        // another thread meanwhile.
        if tokio::runtime::Handle::current().runtime_flavor()
            == tokio::runtime::RuntimeFlavor::MultiThread
        {
            return tokio::task::block_in_place(|| {
                catch_unwind(AssertUnwindSafe(|| self.append_blocking(events)))
                    .unwrap_or_else(|_| Err(StoreError::Io("append task panicked".into())))
            });
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.append_blocking(events))
            .await
            .map_err(|e| StoreError::Io(format!("append task failed: {e}")))?
    }

    async fn read_range(
        &self,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.read_range_blocking(from, to, limit))
            .await
            .map_err(|e| StoreError::Io(format!("read task failed: {e}")))?
    }

    async fn read_positions(&self, positions: &[u64]) -> Result<Vec<RecordedEvent>, StoreError> {
        // Small reads (one account's stream) are cheaper inline than on a blocking thread.
        if positions.len() <= 64 {
            return self.read_positions_blocking(positions);
        }
        let this = self.clone();
        let positions = positions.to_vec();
        tokio::task::spawn_blocking(move || this.read_positions_blocking(&positions))
            .await
            .map_err(|e| StoreError::Io(format!("read task failed: {e}")))?
    }

    fn stream_positions(&self, stream: &StreamId) -> Vec<u64> {
        let durable = self.inner.durable.load(Ordering::Acquire);
        self.index().streams.positions(stream, durable)
    }

    fn stream_version(&self, stream: &StreamId) -> u64 {
        self.index().streams.version(stream)
    }

    fn accounts_changed_after(&self, accounts: &[AccountId], position: u64) -> Vec<AccountId> {
        log_index::accounts_changed_after(&self.inner.index, accounts, position)
    }

    fn position_at(&self, at_us: i64) -> u64 {
        self.index().position_at(at_us)
    }

    fn request_positions(&self, request_id: &str) -> Vec<u64> {
        self.durable_only(self.index().requests.get(request_id))
    }

    fn job_positions(&self, job_id: &Uuid) -> Vec<u64> {
        log_index::Runs::durable_only(
            self.index().jobs.get(job_id),
            self.inner.durable.load(Ordering::Acquire),
        )
    }

    async fn sync(&self) -> Result<(), StoreError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.sync_blocking())
            .await
            .map_err(|e| StoreError::Io(format!("sync task failed: {e}")))?
    }

    fn event_position(&self, id: &Uuid) -> Option<u64> {
        self.index().event_ids.get(id)
    }

    fn last_position(&self) -> u64 {
        self.inner.durable.load(Ordering::Acquire)
    }

    /// sled's files (log and views, garbage included), the key vault and the log index
    /// checkpoint (derived, but on the disk all the same).
    fn size_on_disk(&self) -> Result<u64, StoreError> {
        let checkpoint = match std::fs::metadata(self.inner.dir.join(index_checkpoint::INDEX_FILE))
        {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(StoreError::Io(format!("log index checkpoint: {e}"))),
        };
        Ok(self.inner.db.size_on_disk()?
            + self.inner.chunks.len_on_disk()?
            + self.inner.vault.len_on_disk()
            + checkpoint
            + journal::SIZE)
    }
}
