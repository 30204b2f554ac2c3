//! Writing one commit's chunks to sled, all or nothing after a crash. Up to
//! [`CHUNKS_PER_WRITE`] chunks go in one sled batch (atomic on its own). A larger commit (an
//! import job) is written a batch at a time, so the encoded job is never held whole (at 1M
//! events a single batch held 196 MB beside sled's copy of it).
//!
//! Invariants:
//! - A commit written in parts is bracketed by the torn-commit marker (tree `torn`, its first
//!   position), set before its first part and removed after its last.
//! - sled recovers a prefix of its operations, so after a crash the marker is there exactly
//!   when some of the commit may be missing; the open then discards the commit
//!   ([`discard_torn`]) before the log is read.
//! - An append is acknowledged only after the marker's removal is synced, so what is discarded
//!   was never acknowledged.

use super::codec::{self, u64_key};
use super::sled_log::CHUNK_EVENTS;
use super::{RecordParts, StoreError};

/// Chunks written in one sled batch (16k events, a few MB).
const CHUNKS_PER_WRITE: usize = 64;
/// Key of the torn-commit marker: the first position of a commit being written in parts.
const TORN_COMMIT: &[u8] = b"commit";

/// Write the chunks of one commit (`records` with their sealed profiles, one per record) to
/// the `log` tree; in parts behind the marker in `torn` when it is larger than one batch.
/// Chunks are cut from each part of `records` in turn (a chunk never spans two parts).
pub(super) fn write_chunks(
    log: &sled::Tree,
    torn: &sled::Tree,
    records: &mut RecordParts,
    mut sealed: Vec<Option<Vec<u8>>>,
) -> Result<(), StoreError> {
    let Some(first) = records.first().map(|r| r.position) else {
        return Ok(());
    };
    let chunk_count: usize = records
        .parts()
        .map(|part| part.len().div_ceil(CHUNK_EVENTS))
        .sum();
    let in_parts = chunk_count > CHUNKS_PER_WRITE;
    if in_parts {
        torn.insert(TORN_COMMIT, &u64_key(first))?;
    }
    let mut batch = sled::Batch::default();
    let (mut chunks, mut done, mut unwritten) = (0, 0, 0);
    for part in records.parts_mut() {
        for chunk in part.chunks_mut(CHUNK_EVENTS) {
            let end = done + chunk.len();
            batch.insert(
                &u64_key(chunk[0].position),
                codec::encode_chunk_sealed(chunk, &sealed[done..end])?,
            );
            done = end;
            chunks += 1;
            if chunks % CHUNKS_PER_WRITE == 0 {
                write_batch(
                    log,
                    std::mem::take(&mut batch),
                    &mut sealed[unwritten..done],
                )?;
                unwritten = done;
            }
        }
    }
    if unwritten < done {
        write_batch(log, batch, &mut sealed[unwritten..done])?;
    }
    drop(sealed);
    if in_parts {
        torn.remove(TORN_COMMIT)?;
    }
    Ok(())
}

/// Apply one batch of chunks. Their sealed profiles are in the chunks now, so they are freed
/// first (not held through sled's write).
fn write_batch(
    log: &sled::Tree,
    batch: sled::Batch,
    sealed: &mut [Option<Vec<u8>>],
) -> Result<(), StoreError> {
    sealed.iter_mut().for_each(|s| *s = None);
    log.apply_batch(batch)?;
    Ok(())
}

/// A commit written in parts that a crash cut short (its marker is still set): its chunks are
/// removed before the log is read, so an import is all or nothing. Removal goes before the
/// marker: a crash here leaves the marker, and the next open finishes the job.
pub(super) fn discard_torn(db: &sled::Db, log: &sled::Tree, torn: &sled::Tree) -> sled::Result<()> {
    let Some(first) = torn.get(TORN_COMMIT)?.and_then(|v| codec::read_u64(&v)) else {
        return Ok(());
    };
    let mut batch = sled::Batch::default();
    let mut chunks = 0u64;
    for key in log.range(u64_key(first)..).keys() {
        batch.remove(key?);
        chunks += 1;
    }
    log.apply_batch(batch)?;
    torn.remove(TORN_COMMIT)?;
    db.flush()?;
    tracing::warn!(
        first_position = first,
        chunks,
        "discarded a commit that a crash cut short (never acknowledged)"
    );
    Ok(())
}
