//! The log index checkpoint: the sled backend's in-memory [`LogIndex`] saved in a file beside
//! the store (`<data dir>/LOG_INDEX`), so that an open reads only the log after it instead of
//! scanning the whole log (about 1.5 s per 1M events).
//!
//! It is derived data, like the views: a missing, damaged or foreign checkpoint is logged and
//! the log is scanned in full; nothing is refused for it. It names the event it ends with, so
//! a checkpoint the log does not reach (a loss, a restored backup) is never taken for this
//! log's. Written (atomically, durably) by a background thread every
//! [`DEFAULT_EVERY`] events and at a clean close, only after the log is durable through its
//! end and every key deleted by then is destroyed: a crash after it has nothing before its end
//! left to finish.

use std::path::Path;

use super::StoreError;
use super::codec;
use super::log_index::LogIndex;

pub const INDEX_FILE: &str = "LOG_INDEX";
/// 2: event ids as one byte string in position order; commit times and previous positions
/// as byte strings of steps. 3: event ids as runs. 4: each job's positions as runs too. (An older checkpoint is
/// not read: the open scans the log once and the next checkpoint is of this format.)
const MAGIC: &[u8; 8] = b"ALINDEX4";
/// Events between two checkpoints of a running server: at most this much log is read after a
/// crash (about 0.4 s), and a checkpoint (tens of MB at 1M events) is not rewritten often.
pub const DEFAULT_EVERY: u64 = 250_000;
/// Overrides [`DEFAULT_EVERY`] (tests make checkpoints often).
pub const EVERY_ENV: &str = "ACCOUNT_LEDGER_INDEX_CHECKPOINT_EVERY";

/// Events between checkpoints: [`EVERY_ENV`] when set to a positive number, else the default.
pub fn every() -> u64 {
    std::env::var(EVERY_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(DEFAULT_EVERY)
}

/// The checkpoint's bytes: magic, the encoded index, a CRC-32 of what precedes it.
pub(crate) fn encode(index: &LogIndex) -> Result<Vec<u8>, StoreError> {
    let body = codec::encode_log_index(index)?;
    let mut bytes = Vec::with_capacity(MAGIC.len() + body.len() + 4);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&body);
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    Ok(bytes)
}

pub fn write(dir: &Path, bytes: &[u8]) -> std::io::Result<()> {
    super::files::replace_durably(dir, INDEX_FILE, bytes)
}

/// The saved index; `Ok(None)` when there is none. An error says why it cannot be used.
pub(crate) fn read(dir: &Path) -> Result<Option<LogIndex>, String> {
    let bytes = match std::fs::read(dir.join(INDEX_FILE)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    if bytes.len() < MAGIC.len() + 4 || &bytes[..MAGIC.len()] != MAGIC {
        return Err("unknown format".into());
    }
    let (content, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(content).to_le_bytes() != crc {
        return Err("checksum mismatch".into());
    }
    let index = codec::decode_log_index(&content[MAGIC.len()..]).map_err(|e| e.to_string())?;
    index.check()?;
    Ok(Some(index))
}
