//! The reach record: how far the log and the key vault are known to reach, kept in a small file
//! beside the store it describes (`<data dir>/ledger/REACH`), so that a truncated, emptied or
//! replaced store is a refusal at start-up instead of a ledger that quietly lost its past.
//!
//! It is written at most once a second, only after the log's own sync (it never claims more
//! than is durable), by replacing the file atomically (write, fsync, rename, fsync the dir):
//! a crash leaves the old record or the new one, both true. Its cost is one fsync a second,
//! not one per command.

use std::path::{Path, PathBuf};

use super::StoreError;

pub const REACH_FILE: &str = "REACH";
const MAGIC: &[u8; 8] = b"ALREACH1";
const LEN: usize = 8 + 8 + 8 + 4;

/// What a data dir is known to hold: the log's durable end and the vault's synced length.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reach {
    pub log_position: u64,
    pub vault_len: u64,
}

pub fn path(dir: &Path) -> PathBuf {
    dir.join(REACH_FILE)
}

/// The recorded reach; `None` when there is no record yet.
pub fn read(dir: &Path) -> Result<Option<Reach>, StoreError> {
    let p = path(dir);
    let bytes = match std::fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(StoreError::Open {
                path: p,
                reason: e.to_string(),
            });
        }
    };
    let damaged = |why: &str| StoreError::Open {
        path: p.clone(),
        reason: format!("the reach record is damaged ({why}); restore the data dir from a backup"),
    };
    if bytes.len() != LEN || &bytes[..8] != MAGIC {
        return Err(damaged("unknown format"));
    }
    let crc = u32::from_le_bytes(bytes[24..28].try_into().expect("4 bytes"));
    if crc32fast::hash(&bytes[..24]) != crc {
        return Err(damaged("checksum mismatch"));
    }
    Ok(Some(Reach {
        log_position: u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")),
        vault_len: u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes")),
    }))
}

/// Replace the record atomically and durably.
pub fn write(dir: &Path, reach: Reach) -> std::io::Result<()> {
    let mut bytes = Vec::with_capacity(LEN);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&reach.log_position.to_le_bytes());
    bytes.extend_from_slice(&reach.vault_len.to_le_bytes());
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    super::files::replace_durably(dir, REACH_FILE, &bytes)
}
