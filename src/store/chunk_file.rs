//! The chunks of large commits (import jobs) kept out of sled, in one append-only file
//! (`<data dir>/CHUNKS`); sled's `log` tree holds a 29-byte pointer in each one's place.
//!
//! Why: sled rewrites a whole leaf (16 chunks, ~640 KB of an import's ~40 KB chunks) each time
//! it consolidates it, so an import's chunks were written two or three times and the dead
//! copies stayed as sled's garbage (~190 MB at 1M accounts). Here each is written once.
//!
//! Invariants:
//! - a pointer goes into sled only after its bytes are in the file, and all pointers of one
//!   commit go in one sled batch: a commit is all there or absent in sled;
//! - the group sync fdatasyncs this file before it flushes sled, so every pointer durable
//!   through the commit journal's base points at durable bytes;
//! - sled also flushes in the background, so a pointer past the journal's base may point at
//!   bytes a crash lost: the open checks those ([`discard_unsynced`]) and discards the log from
//!   the first commit with a lost chunk on. None of it was acknowledged: an acknowledgement
//!   waits for a sync that covers the file;
//! - each pointer carries its bytes' length and CRC-32: damage to the file is refused when read,
//!   naming the file and offset. The bytes a crash left after the last pointer stay unused.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::StoreError;
use super::codec::{self, u64_key};

pub const CHUNK_FILE: &str = "CHUNKS";
/// First byte of a pointer: no chunk format uses it.
const POINTER: u8 = 0xE5;
const POINTER_LEN: usize = 29;

/// Where a chunk's bytes are: a pointer, as stored in sled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pointer {
    pub offset: u64,
    pub len: u32,
    pub crc: u32,
    /// How many events the chunk holds (the log's end is found without reading the file).
    pub events: u32,
    /// The first position of the commit the chunk belongs to.
    pub commit_first: u64,
}

impl Pointer {
    pub fn encode(&self) -> [u8; POINTER_LEN] {
        let mut out = [0u8; POINTER_LEN];
        out[0] = POINTER;
        out[1..9].copy_from_slice(&self.offset.to_le_bytes());
        out[9..13].copy_from_slice(&self.len.to_le_bytes());
        out[13..17].copy_from_slice(&self.crc.to_le_bytes());
        out[17..21].copy_from_slice(&self.events.to_le_bytes());
        out[21..29].copy_from_slice(&self.commit_first.to_le_bytes());
        out
    }

    /// The pointer a value of the `log` tree holds; `None` for a chunk stored in sled.
    pub fn decode(value: &[u8]) -> Result<Option<Pointer>, StoreError> {
        if value.first() != Some(&POINTER) {
            return Ok(None);
        }
        if value.len() != POINTER_LEN {
            return Err(StoreError::Corrupt {
                at: "log chunk pointer".into(),
                reason: format!("{} bytes, not {POINTER_LEN}", value.len()),
            });
        }
        let u32_at = |i: usize| u32::from_le_bytes(value[i..i + 4].try_into().unwrap_or_default());
        let u64_at = |i: usize| u64::from_le_bytes(value[i..i + 8].try_into().unwrap_or_default());
        Ok(Some(Pointer {
            offset: u64_at(1),
            len: u32_at(9),
            crc: u32_at(13),
            events: u32_at(17),
            commit_first: u64_at(21),
        }))
    }
}

/// A chunk's bytes, as sled holds them or as read from the file (not copied again).
pub enum ChunkBytes {
    Sled(sled::IVec),
    File(Vec<u8>),
}

impl std::ops::Deref for ChunkBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            ChunkBytes::Sled(v) => v,
            ChunkBytes::File(v) => v,
        }
    }
}

/// The file, appended to under the log's append lock.
#[derive(Debug)]
pub struct ChunkFile {
    file: File,
    path: PathBuf,
    /// Where the next chunk goes.
    end: AtomicU64,
    /// Written to since its last sync (set at open: what a killed process left in the page
    /// cache is synced before the open's new journal lap counts on it).
    dirty: AtomicBool,
    /// One sync at a time: a second caller waits for the running one, and then finds the flag
    /// set again if it wrote after that one began, instead of returning before its bytes are
    /// durable.
    syncing: Mutex<()>,
}

impl ChunkFile {
    /// Open (or create, owner-only) the file in `dir`.
    pub fn open(dir: &Path) -> std::io::Result<ChunkFile> {
        let path = dir.join(CHUNK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(super::files::FILE_MODE)
            .open(&path)?;
        let end = file.metadata()?.len();
        if end == 0 {
            // A new file: its name is durable before any pointer into it.
            File::open(dir)?.sync_all()?;
        }
        Ok(ChunkFile {
            file,
            path,
            end: AtomicU64::new(end),
            dirty: AtomicBool::new(true),
            syncing: Mutex::new(()),
        })
    }

    /// Write one chunk at the end (not synced) and return its pointer.
    pub fn append(
        &self,
        bytes: &[u8],
        events: usize,
        commit_first: u64,
    ) -> Result<Pointer, StoreError> {
        let len = u32::try_from(bytes.len())
            .map_err(|_| StoreError::Io(format!("a log chunk of {} bytes", bytes.len())))?;
        let offset = self.end.fetch_add(u64::from(len), Ordering::AcqRel);
        self.file.write_all_at(bytes, offset)?;
        // After the write: a sync that cleared the flag before it still leaves it set.
        self.dirty.store(true, Ordering::Release);
        Ok(Pointer {
            offset,
            len,
            crc: crc32fast::hash(bytes),
            events: events as u32,
            commit_first,
        })
    }

    /// The file's length (garbage a crash left after the last chunk included).
    pub fn len_on_disk(&self) -> std::io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// Make every chunk written so far durable.
    pub fn sync(&self) -> std::io::Result<()> {
        let _one = self.syncing.lock().unwrap_or_else(|e| e.into_inner());
        if self.dirty.swap(false, Ordering::AcqRel)
            && let Err(e) = self.file.sync_data()
        {
            self.dirty.store(true, Ordering::Release);
            return Err(e);
        }
        Ok(())
    }

    /// The chunk `pointer` points at, checked against its length and CRC.
    pub fn read(&self, pointer: &Pointer) -> Result<Vec<u8>, StoreError> {
        let mut bytes = vec![0u8; pointer.len as usize];
        let damaged = |reason: String| StoreError::Corrupt {
            at: format!("{} at offset {}", self.path.display(), pointer.offset),
            reason,
        };
        match self.file.read_exact_at(&mut bytes, pointer.offset) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(damaged(format!(
                    "a log chunk of {} bytes is cut short by the file's end",
                    pointer.len
                )));
            }
            Err(e) => return Err(e.into()),
        }
        if crc32fast::hash(&bytes) != pointer.crc {
            return Err(damaged(format!(
                "a log chunk of {} bytes does not match its CRC",
                pointer.len
            )));
        }
        Ok(bytes)
    }

    /// A value of the `log` tree as chunk bytes: read from the file when it is a pointer.
    pub fn resolve(&self, value: sled::IVec) -> Result<ChunkBytes, StoreError> {
        match Pointer::decode(&value)? {
            Some(p) => Ok(ChunkBytes::File(self.read(&p)?)),
            None => Ok(ChunkBytes::Sled(value)),
        }
    }
}

/// How many events a value of the `log` tree holds, without reading the file for a pointer.
pub fn event_count(first: u64, value: &[u8]) -> Result<u64, StoreError> {
    match Pointer::decode(value)? {
        Some(p) => Ok(u64::from(p.events)),
        None => Ok(codec::decode_chunk(first, value, None)?.len() as u64),
    }
}

/// At open, before the log is read: the pointers past `base` (the position sled was durable
/// through when the commit journal's lap began) whose bytes a crash lost mean their commit's
/// sync never finished. The log is cut from that commit's first position: nothing from there
/// on was acknowledged. Returns how many chunks were removed.
pub fn discard_unsynced(
    log: &sled::Tree,
    file: &ChunkFile,
    base: u64,
) -> Result<usize, StoreError> {
    let mut cut = None;
    for item in log.range(u64_key(base.saturating_add(1))..) {
        let (_, value) = item?;
        if let Some(p) = Pointer::decode(&value)?
            && file.read(&p).is_err()
        {
            cut = Some(p.commit_first);
            break;
        }
    }
    let Some(from) = cut else {
        return Ok(0);
    };
    let mut batch = sled::Batch::default();
    let mut removed = 0;
    for key in log.range(u64_key(from)..).keys() {
        batch.remove(key?);
        removed += 1;
    }
    log.apply_batch(batch)?;
    log.flush()?;
    tracing::warn!(
        first_position = from,
        chunks = removed,
        path = %file.path.display(),
        "discarded a commit whose chunks a crash cut short (never acknowledged)"
    );
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pointer_reads_back_and_damage_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = ChunkFile::open(dir.path()).unwrap();
        let a = file.append(b"first chunk", 3, 1).unwrap();
        let b = file.append(b"second", 2, 1).unwrap();
        assert_eq!(b.offset, 11);
        assert_eq!(Pointer::decode(&b.encode()).unwrap(), Some(b));
        assert_eq!(file.read(&a).unwrap(), b"first chunk");
        assert_eq!(
            &*file.resolve(a.encode().to_vec().into()).unwrap(),
            &b"first chunk"[..]
        );
        assert_eq!(event_count(1, &b.encode()).unwrap(), 2);
        file.file.write_all_at(b"X", 12).unwrap();
        let e = file.read(&b).unwrap_err().to_string();
        assert!(e.contains(CHUNK_FILE) && e.contains("CRC"), "{e}");
        file.file.set_len(14).unwrap();
        let e = file.read(&b).unwrap_err().to_string();
        assert!(e.contains("cut short"), "{e}");
        assert!(Pointer::decode(&[POINTER, 1, 2]).is_err());
    }

    #[test]
    fn a_commit_whose_bytes_were_lost_is_cut_from_its_first_position() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().temporary(true).open().unwrap();
        let log = db.open_tree("log").unwrap();
        let file = ChunkFile::open(dir.path()).unwrap();
        // Commit 1: positions 1-2 (synced before base 2); commit 2: 3-6 in two chunks, the
        // second lost; then an inline chunk at 7.
        let p1 = file.append(b"c1", 2, 1).unwrap();
        let p2 = file.append(b"c2a", 2, 3).unwrap();
        let mut p3 = file.append(b"c2b", 2, 3).unwrap();
        p3.crc ^= 1;
        for (k, p) in [(1u64, p1), (3, p2), (5, p3)] {
            log.insert(u64_key(k), &p.encode()[..]).unwrap();
        }
        log.insert(u64_key(7), &b"inline"[..]).unwrap();
        assert_eq!(discard_unsynced(&log, &file, 2).unwrap(), 3);
        let keys: Vec<_> = log
            .iter()
            .keys()
            .map(|k| codec::read_u64(&k.unwrap()))
            .collect();
        assert_eq!(keys, vec![Some(1)]);
        // Nothing past the base is lost: nothing is cut.
        assert_eq!(discard_unsynced(&log, &file, 0).unwrap(), 0);
    }

    /// As after a power loss: the journal's base is before an import whose last chunk never
    /// reached the disk. The open cuts the import and keeps what was before it.
    #[tokio::test]
    async fn an_open_cuts_an_import_whose_chunks_a_crash_lost_and_keeps_the_log_before_it() {
        use crate::store::EventLog;
        use crate::store::codec::tests::created;
        let dir = tempfile::tempdir().unwrap();
        let opened = super::super::sled_log::open_store(dir.path()).unwrap();
        for a in 1..=10 {
            opened.log.append(vec![created(a)]).await.unwrap();
        }
        let import: Vec<_> = (11..=610).map(created).collect();
        opened.log.append(import).await.unwrap();
        drop(opened);
        // Back to before the import: the lap began at 10, the reach record says 10, and the
        // file lost its last bytes.
        let super::super::journal::Opened::Read(mut journal, _) =
            super::super::journal::Journal::open(dir.path()).unwrap()
        else {
            panic!("journal damaged");
        };
        journal.new_lap(10).unwrap();
        drop(journal);
        let reach = super::super::reach::read(dir.path()).unwrap().unwrap();
        super::super::reach::write(
            dir.path(),
            super::super::reach::Reach {
                log_position: 10,
                ..reach
            },
        )
        .unwrap();
        let path = dir.path().join(CHUNK_FILE);
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 10)
            .unwrap();
        let reopened = super::super::sled_log::open_store(dir.path()).unwrap();
        let events = reopened
            .log
            .read_range(1, u64::MAX, usize::MAX)
            .await
            .unwrap();
        assert_eq!(
            events.len(),
            10,
            "the import is gone, the commands before it stay"
        );
        // The next append takes the cut positions again.
        let next = reopened.log.append(vec![created(700)]).await.unwrap();
        assert_eq!(next.positions, vec![11]);
    }
}
