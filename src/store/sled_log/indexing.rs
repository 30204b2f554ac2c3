//! How the sled log's in-memory indexes are built at open (from their checkpoint, then the
//! log after it) and saved as a checkpoint while it runs.

use std::sync::atomic::Ordering;

use super::{Inner, SledEventLog, accept_or_refuse, spawn_reach_writer};
use crate::domain::AccountId;
use crate::store::codec::{self, u64_key};
use crate::store::log_index::LogIndex;
use crate::store::{StoreError, index_checkpoint, reach};

/// Save the log index as a checkpoint ([`index_checkpoint`]) when it grew since the last one.
/// Copied under the index's read lock and encoded outside it; written once `durable_through`
/// made the log durable through its end (under steady writes the index is nearly always ahead of the last sync),
/// after the keys of the deletions it covers are destroyed (so an open after it needs to
/// finish no deletion before its end). Returns whether it wrote one.
pub(super) fn write_index_checkpoint(
    inner: &Inner,
    durable_through: &dyn Fn(u64) -> Result<(), StoreError>,
) -> Result<bool, StoreError> {
    let started = std::time::Instant::now();
    // Copied under the read lock (mostly flat tables: a memcpy) and encoded outside it:
    // appends wait for the index's write lock meanwhile, and encoding a 1M-event index under
    // it stalled every domain's appends for 35-310 ms.
    let copy = {
        let index = inner.index.read().unwrap_or_else(|e| e.into_inner());
        if index.last_position <= inner.checkpointed.load(Ordering::Acquire) {
            return Ok(false);
        }
        index.clone()
    };
    let locked = started.elapsed();
    let end = copy.last_position;
    let bytes = index_checkpoint::encode(&copy)?;
    drop(copy);
    durable_through(end)?;
    let covered: Vec<AccountId> = inner
        .deletions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(p, _)| *p <= end)
        .map(|(_, a)| *a)
        .collect();
    inner.vault.destroy(&covered)?;
    index_checkpoint::write(&inner.dir, &bytes)?;
    inner.checkpointed.store(end, Ordering::Release);
    tracing::info!(
        through = end,
        bytes = bytes.len(),
        "log index checkpoint written in {:.2?} (copied under the index's read lock in {locked:.2?})",
        started.elapsed()
    );
    inner
        .deletions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(p, _)| *p > end);
    // The copy and its encoding (about 130 MB at 1M events) were freed on this thread, which
    // then sleeps: hand them back now, or they stay resident until its next checkpoint.
    drop(bytes);
    crate::memory::release_freed();
    Ok(true)
}

impl SledEventLog {
    /// Index the log: from its checkpoint when one matches this log, else from the start.
    /// Finish key destruction that a crash may have interrupted: an account whose deletion is
    /// in the log must have no key (a checkpoint is written only after the keys of the
    /// deletions it covers are destroyed, so only the log after it is looked at).
    pub(super) fn rebuild_index(&self) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let mut index = self.saved_index().unwrap_or_default();
        let from = index.last_position;
        self.inner.checkpointed.store(from, Ordering::Release);
        // The chunk holding the checkpoint's last event, then everything after it.
        let start = match from {
            0 => 0,
            p => self.chunk_at_or_before(p)?.map_or(0, |(first, _)| first),
        };
        let mut scanned = 0u64;
        let mut deleted = Vec::new();
        for item in self.inner.log.range(u64_key(start)..) {
            let (k, v) = item?;
            let first = codec::read_u64(&k).ok_or_else(|| StoreError::Corrupt {
                at: "log key".into(),
                reason: format!("{} bytes", k.len()),
            })?;
            // Positions are gap-free: a chunk keyed past the log's end is damage (and indexing
            // it would size the index by its key).
            if first > index.last_position + 1 {
                return Err(StoreError::Corrupt {
                    at: format!(
                        "{} (tree log, chunk at position {first})",
                        self.inner.dir.join("sled").display()
                    ),
                    reason: format!(
                        "the log ends at position {}: a gap in the log",
                        index.last_position
                    ),
                });
            }
            let v = self.inner.chunks.resolve(v)?;
            for e in codec::decode_chunk(first, &v, None)? {
                if e.position <= from {
                    continue;
                }
                deleted.extend(e.event.deleted_account());
                index.add(&e);
                scanned += 1;
            }
        }
        self.inner.vault.destroy(&deleted)?;
        tracing::info!(
            checkpoint = from,
            scanned,
            "log indexed in {:.2?} (from its checkpoint, then the events after it)",
            started.elapsed()
        );
        let last = index.last_position;
        let recorded = self.inner.recorded_reach.log_position;
        if last < recorded {
            accept_or_refuse(
                self.inner.options,
                self.inner.dir.join("sled").join("db"),
                format!(
                    "the log ends at position {last}, but the reach record ({}) says positions \
                     up to {recorded} were durable: {} events are missing",
                    reach::path(&self.inner.dir).display(),
                    recorded - last
                ),
            )?;
        }
        *self.inner.index.write().unwrap_or_else(|e| e.into_inner()) = index;
        self.inner
            .sync_state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .synced = last;
        self.inner.durable.store(last, Ordering::Release);
        // From now on the record follows the log (an accepted loss is recorded as such).
        self.write_reach()?;
        self.inner.indexed.store(true, Ordering::Release);
        spawn_reach_writer(&self.inner);
        Ok(())
    }

    /// The saved index when it matches this log: the log holds the event it ends with. A
    /// checkpoint that cannot be used is logged, and the log is indexed from the start.
    fn saved_index(&self) -> Option<LogIndex> {
        let dir = &self.inner.dir;
        let path = dir.join(index_checkpoint::INDEX_FILE);
        let index = match index_checkpoint::read(dir) {
            Ok(Some(index)) => index,
            Ok(None) => return None,
            Err(why) => {
                tracing::warn!(path = %path.display(), "log index checkpoint not used ({why}): indexing the whole log");
                return None;
            }
        };
        let end = index.last_position;
        let holds_end = match self.chunk_at_or_before(end) {
            Ok(Some((first, v))) => codec::decode_chunk(first, &v, None).is_ok_and(|events| {
                events
                    .iter()
                    .any(|e| e.position == end && e.event_id == index.last_event_id)
            }),
            _ => false,
        };
        if !holds_end {
            tracing::warn!(path = %path.display(), "log index checkpoint ends at position {end}, which this log does not hold as saved: indexing the whole log");
            return None;
        }
        Some(index)
    }
}
