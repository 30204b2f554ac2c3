//! How the sled log becomes durable: the group sync (one journal record, or one flush of
//! sled, for every commit written meanwhile) and, at open, the recovery of the commit journal.

use std::fs::File;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::Ordering;

use super::{SledEventLog, StoreOptions, accept_or_refuse};
use crate::store::StoreError;
use crate::store::chunk_file::{self, ChunkFile};
use crate::store::journal::{self, Journal, Opened};

pub(super) const SYNC_FAILED: &str = "a write or sync of the log failed: appends are refused until the server restarts (its open recovers \
     every acknowledged commit)";

/// What the next group sync must make durable.
#[derive(Default)]
pub(super) struct Unsynced {
    /// Single-chunk commits, in position order: the journal record's content.
    pub(super) chunks: Vec<(u64, sled::IVec)>,
    /// The last position written.
    pub(super) through: u64,
    /// Only a flush of sled covers what was written: a commit written in parts (too large for
    /// the journal), or chunks a failed sync took and lost.
    pub(super) flush_sled: bool,
}

#[derive(Default)]
pub(super) struct SyncState {
    pub(super) synced: u64,
    pub(super) leader: bool,
}
/// The commit journal once its chunks past the log's end are back in sled and sled's file is
/// durable: it starts a new lap, empty. A damaged journal, or one that does not reach the log's
/// end, is a loss of acknowledged commands (refused unless accepted).
pub(super) fn recover_journal(
    dir: &Path,
    db: &sled::Db,
    log: &sled::Tree,
    chunk_store: &ChunkFile,
    db_file: &File,
    options: StoreOptions,
    expected: bool,
) -> Result<Journal, StoreError> {
    let path = dir.join(journal::JOURNAL_FILE);
    if expected && !path.exists() {
        accept_or_refuse(
            options,
            path.clone(),
            "the commit journal is missing: commands acknowledged since sled's last flush may \
             be missing"
                .into(),
        )?;
    }
    let (mut journal, chunks) = match Journal::open(dir)? {
        Opened::Read(journal, chunks) => (journal, chunks),
        Opened::Damaged(why) => {
            accept_or_refuse(
                options,
                path.clone(),
                format!(
                    "the commit journal is damaged ({why}): commands acknowledged since sled's \
                     last flush may be missing"
                ),
            )?;
            let kept = path.with_extension("damaged");
            std::fs::rename(&path, &kept)?;
            tracing::error!(kept = %kept.display(), "damaged commit journal set aside");
            match Journal::open(dir)? {
                Opened::Read(journal, chunks) => (journal, chunks),
                Opened::Damaged(why) => {
                    return Err(StoreError::Io(format!("commit journal: {why}")));
                }
            }
        }
    };
    chunk_file::discard_unsynced(log, chunk_store, journal.base())?;
    let db_path = dir.join("sled").join("db");
    let mut end = journal::log_end(log, &dir.join("sled"))?;
    if end < journal.base() {
        // Not a crash: sled had made these durable before the journal's lap began.
        accept_or_refuse(
            options,
            db_path.clone(),
            format!(
                "the log ends at position {end}, but it was durable through {} when the commit \
                 journal's lap began: {} events are missing",
                journal.base(),
                journal.base() - end
            ),
        )?;
    } else {
        match journal::replay(log, end, chunks)? {
            Ok(replayed) if replayed.chunks == 0 => {}
            Ok(replayed) => {
                db.flush()?;
                end = replayed.end;
                tracing::info!(
                    chunks = replayed.chunks,
                    events = replayed.events,
                    "commits since sled's last flush replayed from the commit journal"
                );
            }
            Err(what) => {
                accept_or_refuse(options, db_path, what)?;
                end = journal::log_end(log, &dir.join("sled"))?;
                db.flush()?;
            }
        }
    }
    // What a killed process left in the page cache is durable before the lap counts on it.
    chunk_store.sync()?;
    db_file.sync_data()?;
    journal.new_lap(end)?;
    Ok(journal)
}

impl SledEventLog {
    /// Make everything written so far durable: sled flush, then fsync of its file.
    pub fn sync_blocking(&self) -> Result<(), StoreError> {
        let synced = (|| -> Result<(), StoreError> {
            self.inner.vault.sync()?;
            self.inner.chunks.sync()?;
            self.inner.db.flush()?;
            self.inner.db_file.sync_data()?;
            Ok(())
        })();
        if let Err(e) = &synced {
            // As for the group sync: a later sync may report success for dropped pages.
            self.inner.sync_failed.store(true, Ordering::Release);
            tracing::error!("{SYNC_FAILED}: {e}");
        }
        synced
    }

    pub(super) fn unsynced(&self) -> std::sync::MutexGuard<'_, Unsynced> {
        self.inner
            .unsynced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The group sync's work: make every chunk appended so far durable, by one journal record
    /// when they fit, else by a flush of sled (and a new journal lap). Returns the position
    /// durable through. On failure what was taken is handed back as needing sled's flush.
    fn sync_appended(&self) -> Result<u64, StoreError> {
        let taken = std::mem::take(&mut *self.unsynced());
        let synced = catch_unwind(AssertUnwindSafe(|| self.write_synced(&taken)))
            .unwrap_or_else(|_| Err(StoreError::Io("the log's group sync panicked".into())));
        if let Err(e) = &synced {
            // After a failed fsync the kernel may have dropped the pages it could not write
            // and report success the next time: nothing more is acknowledged until a reopen,
            // which recovers what sled and the journal hold.
            self.inner.sync_failed.store(true, Ordering::Release);
            tracing::error!("{SYNC_FAILED}: {e}");
            let mut unsynced = self.unsynced();
            unsynced.flush_sled = true;
            unsynced.through = unsynced.through.max(taken.through);
        }
        synced
    }

    fn write_synced(&self, taken: &Unsynced) -> Result<u64, StoreError> {
        let inner = &self.inner;
        // Keys first: a record is never durable before the key that opens its profile.
        inner.vault.sync()?;
        let mut journal = inner.journal.lock().unwrap_or_else(|e| e.into_inner());
        if !taken.flush_sled && !taken.chunks.is_empty() && journal.write(&taken.chunks)? {
            return Ok(taken.through);
        }
        // Everything written to sled so far is in this flush.
        let through = self.index().last_position.max(taken.through);
        // The chunk file first: a pointer sled makes durable points at durable bytes.
        inner.chunks.sync()?;
        inner.db.flush()?;
        inner.db_file.sync_data()?;
        journal.new_lap(through)?;
        Ok(through)
    }
    /// Return once everything up to `position` is durable. One caller at a time syncs (the
    /// leader) and covers every batch written before it started; the others wait for it or
    /// become the next leader: one journal record (or one sled flush) and one sync for
    /// everything queued.
    pub(super) fn sync_through(&self, position: u64) -> Result<(), StoreError> {
        let inner = &self.inner;
        let mut state = inner.sync_state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if state.synced >= position {
                return Ok(());
            }
            if inner.sync_failed.load(Ordering::Acquire) {
                return Err(StoreError::Io(SYNC_FAILED.into()));
            }
            if state.leader {
                state = inner
                    .sync_done
                    .wait(state)
                    .unwrap_or_else(|e| e.into_inner());
                continue;
            }
            state.leader = true;
            drop(state);
            let synced = self.sync_appended();
            state = inner.sync_state.lock().unwrap_or_else(|e| e.into_inner());
            state.leader = false;
            if let Ok(target) = synced {
                state.synced = state.synced.max(target);
                inner
                    .durable
                    .store(state.synced, std::sync::atomic::Ordering::Release);
            }
            inner.sync_done.notify_all();
            synced?;
        }
    }
}
