//! The commit journal (`<data dir>/COMMITS`): how the sled backend makes a group of small
//! commits durable with one write and one sync.
//!
//! sled makes its writes durable by handing them to its own thread, which writes them and
//! `sync_file_range`s them; its file grows, so the `fdatasync` after that also commits the new
//! size to the file system's journal: two waits and two thread hops for each command. This
//! file has a fixed size and is filled with zeros when made (as PostgreSQL fills its WAL
//! segments), so the sync of a record written into it commits data alone. A group sync writes
//! every chunk appended since the last one as one record here, in place of sled's flush, and
//! sled writes the same chunks to its own file in its own time. When the journal is full, or
//! the group holds a commit written in parts (an import), the group sync flushes and fsyncs
//! sled instead, and the journal starts a new lap.
//!
//! Invariants:
//! - a record holds chunks (first position, encoded chunk) in position order, each already
//!   written to sled (in memory) before the record is written;
//! - a lap's records follow the header that names the lap, one after the other; each record
//!   carries its lap and a CRC, so a record of an older lap, a torn write or zeros end the lap;
//! - a new lap starts only after sled's file is durable through every chunk of the lap before;
//! - an open inserts the chunks past the log's end (sled recovers a prefix of its writes), makes
//!   sled durable, and starts a new lap ([`super::sled_log`]).

use std::path::Path;

use super::block_file::{BLOCK, BlockFile};
use super::{StoreError, codec};

pub const JOURNAL_FILE: &str = "COMMITS";
const MAGIC: &[u8; 8] = b"ALCOMIT1";
/// Room for about a second of 64 clients' single commands before sled must be flushed.
pub(super) const SIZE: u64 = 4 << 20;
/// The header (magic, lap, base, CRC) sits alone in the first block: rewriting it never tears
/// a record.
const HEADER: u64 = 4096;
/// Record head: payload length (u32), CRC-32 of length, lap and payload (u32), lap (u64).
const RECORD_HEAD: usize = 16;
/// Chunk head inside a payload: first position (u64), length (u32).
const CHUNK_HEAD: usize = 12;

#[derive(Debug)]
pub(super) struct Journal {
    file: BlockFile,
    /// What the block that holds `end` holds before it (a direct write rewrites whole blocks).
    tail: Vec<u8>,
    lap: u64,
    /// The position sled's file was durable through when this lap started.
    base: u64,
    /// Where the next record goes.
    end: u64,
}

/// The chunks of the current lap, in the order written.
pub(super) type Chunks = Vec<(u64, Vec<u8>)>;

/// What an open found.
#[derive(Debug)]
pub(super) enum Opened {
    /// The journal, and the chunks of its current lap.
    Read(Journal, Chunks),
    /// Its size or header is damaged: what it holds is unknown.
    Damaged(String),
}

impl Journal {
    /// Open the journal in `dir`, made (zero-filled, durably) when absent.
    pub(super) fn open(dir: &Path) -> std::io::Result<Opened> {
        let path = dir.join(JOURNAL_FILE);
        if !path.exists() {
            let mut bytes = vec![0u8; SIZE as usize];
            bytes[..HEADER_LEN].copy_from_slice(&header(0, 0));
            super::files::replace_durably(dir, JOURNAL_FILE, &bytes)?;
        }
        let file = BlockFile::open(&path)?;
        tracing::debug!(direct = file.is_direct(), "commit journal opened");
        let bytes = std::fs::read(&path)?;
        if bytes.len() as u64 != SIZE {
            return Ok(Opened::Damaged(format!(
                "{} bytes, not {SIZE}",
                bytes.len()
            )));
        }
        let Some((lap, base)) = read_header(&bytes) else {
            return Ok(Opened::Damaged("its header is damaged".into()));
        };
        let (chunks, end) = read_lap(&bytes, lap);
        Ok(Opened::Read(
            Journal {
                file,
                tail: bytes[block_start(end)..end as usize].to_vec(),
                lap,
                base,
                end,
            },
            chunks,
        ))
    }

    /// Write one record holding `chunks` and sync it. `Ok(false)` when it does not fit: the
    /// caller makes sled durable and starts a new lap instead.
    pub(super) fn write(&mut self, chunks: &[(u64, sled::IVec)]) -> std::io::Result<bool> {
        let payload_len: usize = chunks.iter().map(|(_, v)| CHUNK_HEAD + v.len()).sum();
        let Ok(len) = u32::try_from(payload_len) else {
            return Ok(false);
        };
        if self.end + (RECORD_HEAD + payload_len) as u64 > SIZE {
            return Ok(false);
        }
        let mut record = Vec::with_capacity(RECORD_HEAD + payload_len);
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(&[0; 4]);
        record.extend_from_slice(&self.lap.to_le_bytes());
        for (first, value) in chunks {
            record.extend_from_slice(&first.to_le_bytes());
            record.extend_from_slice(&(value.len() as u32).to_le_bytes());
            record.extend_from_slice(value);
        }
        let crc = record_crc(&record[..4], &record[8..]);
        record[4..8].copy_from_slice(&crc.to_le_bytes());
        self.file.write_durably(self.end, &self.tail, &record)?;
        let end = self.end + record.len() as u64;
        let last_block = block_start(end) as u64;
        if last_block > self.end {
            self.tail.clear();
        }
        let from = usize::try_from(last_block.saturating_sub(self.end)).unwrap_or(usize::MAX);
        self.tail
            .extend_from_slice(&record[from.min(record.len())..]);
        self.end = end;
        Ok(true)
    }

    /// Start a new lap, once sled's file is durable through `base` and through every chunk
    /// written to the journal so far.
    pub(super) fn new_lap(&mut self, base: u64) -> std::io::Result<()> {
        let lap = self.lap + 1;
        self.file.write_durably(0, &[], &header(lap, base))?;
        self.lap = lap;
        self.base = base;
        self.end = HEADER;
        self.tail.clear();
        Ok(())
    }

    /// The position sled's file was durable through when this lap started: a log that ends
    /// before it lost what sled had made durable (damage, not a crash), and the journal does
    /// not cover that.
    pub(super) fn base(&self) -> u64 {
        self.base
    }
}

/// What [`replay`] did.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Replayed {
    pub chunks: usize,
    pub events: u64,
    /// The log's end after it.
    pub end: u64,
}

/// The position of the log's last event (0 when empty).
pub(super) fn log_end(log: &sled::Tree, sled_dir: &Path) -> Result<u64, StoreError> {
    let Some((key, value)) = log.last()? else {
        return Ok(0);
    };
    let first = chunk_key(&key)?;
    let end = chunk_end(first, &value)?;
    // Checked before the journal is replayed or reset: a stray chunk keyed far past the log
    // (damage) would otherwise pass for its end, and the journal's commits short of it would
    // be dropped as already in sled.
    let before_end = match log.range(..key).next_back() {
        Some(item) => {
            let (key, value) = item?;
            chunk_end(chunk_key(&key)?, &value)?
        }
        None => 0,
    };
    if first != before_end + 1 {
        return Err(StoreError::Corrupt {
            at: format!(
                "{} (tree log, chunk at position {first})",
                sled_dir.display()
            ),
            reason: format!("the chunk before it ends at position {before_end}: a gap in the log"),
        });
    }
    Ok(end)
}

fn chunk_key(key: &[u8]) -> Result<u64, StoreError> {
    codec::read_u64(key).ok_or_else(|| StoreError::Corrupt {
        at: "log key".into(),
        reason: format!("{} bytes", key.len()),
    })
}

/// The position of a chunk's last event.
fn chunk_end(first: u64, value: &[u8]) -> Result<u64, StoreError> {
    let events = super::chunk_file::event_count(first, value)?;
    Ok((first + events).saturating_sub(1))
}

/// Insert into `log` the chunks past its end `end`, in order. A chunk that would leave a gap
/// after the log's end means sled lost more than the journal holds: `Err(what)`, and the
/// chunks from there on are not inserted.
pub(super) fn replay(
    log: &sled::Tree,
    mut end: u64,
    chunks: Chunks,
) -> Result<Result<Replayed, String>, StoreError> {
    let (mut inserted, mut events) = (0, 0);
    for (first, value) in chunks {
        if first <= end {
            continue;
        }
        if first != end + 1 {
            return Ok(Err(format!(
                "the log ends at position {end}, and the commit journal goes on at {first}: \
                 positions {} to {} are in neither",
                end + 1,
                first - 1
            )));
        }
        let count = codec::decode_chunk(first, &value, None)?.len() as u64;
        log.insert(codec::u64_key(first), value)?;
        end = first + count.max(1) - 1;
        inserted += 1;
        events += count;
    }
    Ok(Ok(Replayed {
        chunks: inserted,
        events,
        end,
    }))
}

const HEADER_LEN: usize = 28;

/// Where the block that holds byte `at` starts.
fn block_start(at: u64) -> usize {
    at as usize / BLOCK * BLOCK
}

/// CRC-32 of a record's length bytes, then its lap and payload.
fn record_crc(len: &[u8], lap_and_payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(len);
    h.update(lap_and_payload);
    h.finalize()
}

fn header(lap: u64, base: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..16].copy_from_slice(&lap.to_le_bytes());
    h[16..24].copy_from_slice(&base.to_le_bytes());
    let crc = crc32fast::hash(&h[..24]);
    h[24..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// (lap, base) of an intact header.
fn read_header(bytes: &[u8]) -> Option<(u64, u64)> {
    let h = bytes.get(..HEADER_LEN)?;
    if &h[..8] != MAGIC || crc32fast::hash(&h[..24]).to_le_bytes() != h[24..] {
        return None;
    }
    let lap = u64::from_le_bytes(h[8..16].try_into().ok()?);
    let base = u64::from_le_bytes(h[16..24].try_into().ok()?);
    Some((lap, base))
}

/// The chunks of lap `lap`'s records and where the lap ends: at the first record that is not
/// whole and of this lap (zeros, an older lap's record, or a write a crash cut short).
fn read_lap(bytes: &[u8], lap: u64) -> (Chunks, u64) {
    let mut chunks = Vec::new();
    let mut at = HEADER as usize;
    while let Some(head) = bytes.get(at..at + RECORD_HEAD) {
        let len = u32::from_le_bytes(head[..4].try_into().unwrap_or_default()) as usize;
        let crc = u32::from_le_bytes(head[4..8].try_into().unwrap_or_default());
        let record_lap = u64::from_le_bytes(head[8..16].try_into().unwrap_or_default());
        let Some(body) = bytes.get(at + 8..at + RECORD_HEAD + len) else {
            break;
        };
        if len == 0 || record_lap != lap || record_crc(&head[..4], body) != crc {
            break;
        }
        let Some(record) = read_chunks(&body[8..]) else {
            break;
        };
        chunks.extend(record);
        at += RECORD_HEAD + len;
    }
    (chunks, at as u64)
}

fn read_chunks(mut payload: &[u8]) -> Option<Chunks> {
    let mut out = Vec::new();
    while !payload.is_empty() {
        let first = u64::from_le_bytes(payload.get(..8)?.try_into().ok()?);
        let len = u32::from_le_bytes(payload.get(8..12)?.try_into().ok()?) as usize;
        out.push((first, payload.get(CHUNK_HEAD..CHUNK_HEAD + len)?.to_vec()));
        payload = &payload[CHUNK_HEAD + len..];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use super::*;

    fn chunks(list: &[(u64, &[u8])]) -> Vec<(u64, sled::IVec)> {
        list.iter()
            .map(|(k, v)| (*k, sled::IVec::from(*v)))
            .collect()
    }

    fn open(dir: &Path) -> (Journal, Chunks) {
        match Journal::open(dir).unwrap() {
            Opened::Read(j, c) => (j, c),
            Opened::Damaged(why) => panic!("damaged: {why}"),
        }
    }

    #[test]
    fn records_of_the_current_lap_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, none) = open(dir.path());
        assert!(none.is_empty());
        assert!(j.write(&chunks(&[(1, b"one"), (2, b"two")])).unwrap());
        assert!(j.write(&chunks(&[(3, b"three")])).unwrap());
        drop(j);
        let (_, read) = open(dir.path());
        assert_eq!(
            read,
            vec![
                (1, b"one".to_vec()),
                (2, b"two".to_vec()),
                (3, b"three".to_vec())
            ]
        );
    }

    #[test]
    fn records_across_blocks_and_reopens_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut written = Vec::new();
        let mut position = 0;
        // Records of varied sizes cross block boundaries; each reopen continues in the block
        // the last one ended in.
        for round in 0..3 {
            let (mut j, read) = open(dir.path());
            assert_eq!(read, written, "round {round}");
            for i in 0..150usize {
                position += 1;
                let value = vec![(i % 251) as u8; 1 + (i * 37) % 700];
                assert!(j.write(&chunks(&[(position, &value)])).unwrap());
                written.push((position, value));
            }
        }
        let (_, read) = open(dir.path());
        assert_eq!(read, written);
    }

    /// A new lap hides the records of the one before, although their bytes are still there.
    #[test]
    fn a_new_lap_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = open(dir.path());
        assert!(j.write(&chunks(&[(1, b"old lap, longer record")])).unwrap());
        j.new_lap(1).unwrap();
        assert!(j.write(&chunks(&[(2, b"new")])).unwrap());
        drop(j);
        let (_, read) = open(dir.path());
        assert_eq!(read, vec![(2, b"new".to_vec())]);
    }

    /// A record a crash cut short (or damaged) ends the lap: what precedes it is read.
    #[test]
    fn a_torn_record_ends_the_lap() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = open(dir.path());
        assert!(j.write(&chunks(&[(1, b"kept")])).unwrap());
        let torn_at = j.end;
        assert!(j.write(&chunks(&[(2, b"torn")])).unwrap());
        drop(j);
        let path = dir.path().join(JOURNAL_FILE);
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(b"X", torn_at + RECORD_HEAD as u64 + 14)
            .unwrap();
        let (_, read) = open(dir.path());
        assert_eq!(read, vec![(1, b"kept".to_vec())]);
    }

    #[test]
    fn a_full_journal_says_so_and_a_damaged_header_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = open(dir.path());
        let big = vec![7u8; (SIZE / 3) as usize];
        assert!(j.write(&[(1, big.clone().into())]).unwrap());
        assert!(j.write(&[(2, big.clone().into())]).unwrap());
        assert!(!j.write(&[(3, big.into())]).unwrap(), "no room left");
        drop(j);
        let path = dir.path().join(JOURNAL_FILE);
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(b"?", 9).unwrap();
        assert!(matches!(
            Journal::open(dir.path()).unwrap(),
            Opened::Damaged(_)
        ));
    }
}
