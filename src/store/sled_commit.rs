//! Writing one commit of several chunks (an import job): the chunks to the chunk file
//! ([`super::chunk_file`]), one at a time as they are encoded (the encoded job is never held
//! whole: at 1M events it is ~150 MB), then their pointers to sled in one batch, so the commit
//! is all or nothing in sled after a crash.
//!
//! Earlier builds wrote such a commit's chunks into sled in parts bracketed by a torn-commit
//! marker (tree `torn`); an open still discards a commit such a build left half written
//! ([`discard_torn`]).

use super::chunk_file::ChunkFile;
use super::codec::{self, u64_key};
use super::{RecordParts, StoreError};

/// Events a chunk in the file holds, fewer than a chunk in sled ([`super::sled_log::CHUNK_EVENTS`]):
/// a point read (an account's history, a fold as of an instant) reads and checks one chunk
/// whole: `bench`'s account status as of T took 35 µs at 256 events a chunk, 19 µs at 128 and
/// at 64 (12-13 µs from sled's cache before the file); 128 keeps fewer keys and headers.
const FILE_CHUNK_EVENTS: usize = 128;

/// Key of the torn-commit marker: the first position of a commit being written in parts.
const TORN_COMMIT: &[u8] = b"commit";

/// Write the chunks of one commit (`records` with their sealed profiles, one per record): each
/// to `file`, then all their pointers to the `log` tree in one batch. Chunks are cut from each
/// part of `records` in turn (a chunk never spans two parts).
pub(super) fn write_chunks(
    log: &sled::Tree,
    file: &ChunkFile,
    records: &mut RecordParts,
    mut sealed: Vec<Option<Vec<u8>>>,
) -> Result<(), StoreError> {
    let Some(first) = records.first().map(|r| r.position) else {
        return Ok(());
    };
    let mut batch = sled::Batch::default();
    let mut done = 0;
    for part in records.parts_mut() {
        for chunk in part.chunks_mut(FILE_CHUNK_EVENTS) {
            let end = done + chunk.len();
            let bytes = codec::encode_chunk_sealed(chunk, &sealed[done..end])?;
            // Their bytes are in the chunk now: freed before the next is encoded.
            sealed[done..end].iter_mut().for_each(|s| *s = None);
            let pointer = file.append(&bytes, chunk.len(), first)?;
            batch.insert(&u64_key(chunk[0].position), &pointer.encode()[..]);
            done = end;
        }
    }
    drop(sealed);
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
