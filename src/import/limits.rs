//! Limits enforced while an import is read, so that memory stays bounded whatever a client
//! sends (one huge field, a zip bomb, millions of bad rows). Each is checked as bytes arrive,
//! never after a whole row or file is in memory. The README lists them ("Import limits").

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes of one CSV record, all fields together (a row of a users.csv is about 100 bytes).
pub const MAX_ROW_BYTES: u64 = 64 * 1024;
/// Rows of one file (the largest school districts have about a million accounts).
pub const MAX_ROWS: u64 = 2_000_000;
/// Bytes of one file after decompression.
pub const MAX_FILE_BYTES: u64 = 1 << 30;
/// Entries of a OneRoster zip (a full OneRoster set has about a dozen files).
pub const MAX_ZIP_ENTRIES: usize = 64;
/// Decompressed bytes per compressed byte of a zip entry, checked once an entry has given
/// [`RATIO_GRACE_BYTES`] (a users.csv deflates about 4-8x; bombs reach 1000x).
pub const MAX_COMPRESSION_RATIO: u64 = 100;
pub const RATIO_GRACE_BYTES: u64 = 1 << 20;
/// Row errors a report lists in full; the rest are counted (`failed`) and summed up in a warning.
pub const MAX_ROW_ERRORS_LISTED: usize = 10_000;
/// Bytes of an uploaded file's name (recorded on every event the job writes; a file system's
/// own limit is 255).
pub const MAX_FILE_NAME_BYTES: usize = 255;
/// Characters of a value quoted back in an error message.
pub const QUOTE_CHARS: usize = 40;

/// `value` quoted for a message: at most [`QUOTE_CHARS`] characters, control characters
/// escaped, and how much was left out.
pub fn quote(value: &str) -> String {
    let mut chars = value.chars();
    let head: String = chars.by_ref().take(QUOTE_CHARS).collect();
    let rest = chars.count();
    let escaped: String = head.escape_debug().collect();
    if rest == 0 {
        format!("\"{escaped}\"")
    } else {
        format!("\"{escaped}\"… ({rest} more characters)")
    }
}

/// Why reading stopped: carried inside an `io::Error` through the csv and zip readers.
#[derive(Debug)]
pub struct LimitExceeded(pub String);

impl std::fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LimitExceeded {}

/// The limit an `io::Error` carries, if it is one of ours.
pub fn limit_of(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(l) = err.downcast_ref::<LimitExceeded>() {
            return Some(l.0.clone());
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(l) = inner.downcast_ref::<LimitExceeded>()
        {
            return Some(l.0.clone());
        }
        cur = err.source();
    }
    None
}

fn exceeded(what: String) -> std::io::Error {
    std::io::Error::other(LimitExceeded(what))
}

/// A reader that refuses a file longer than [`MAX_FILE_BYTES`] and a record longer than
/// [`MAX_ROW_BYTES`]: the table resets [`RowBudget`] after each record, so bytes read since
/// then are one record (plus at most the csv reader's buffer of read-ahead).
pub struct Guarded<R> {
    inner: R,
    total: u64,
    since_record: Arc<AtomicU64>,
}

/// The handle a table uses to mark record boundaries.
#[derive(Clone)]
pub struct RowBudget(Arc<AtomicU64>);

impl RowBudget {
    pub fn reset(&self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

impl<R: Read> Guarded<R> {
    pub fn new(inner: R) -> (Guarded<R>, RowBudget) {
        let since = Arc::new(AtomicU64::new(0));
        (
            Guarded {
                inner,
                total: 0,
                since_record: since.clone(),
            },
            RowBudget(since),
        )
    }
}

/// A zip entry's reader with the compression-ratio check (the row and file limits apply when
/// its table wraps it in [`Guarded`]).
pub struct RatioGuard<R> {
    inner: R,
    compressed: u64,
    read: u64,
}

impl<R: Read> RatioGuard<R> {
    pub fn new(inner: R, compressed: u64) -> RatioGuard<R> {
        RatioGuard {
            inner,
            compressed: compressed.max(1),
            read: 0,
        }
    }
}

impl<R: Read> Read for RatioGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf).map_err(|e| {
            // A corrupt deflate stream or checksum is the file's fault, not the disk's.
            std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
        })?;
        self.read += n as u64;
        if self.read > RATIO_GRACE_BYTES && self.read / self.compressed > MAX_COMPRESSION_RATIO {
            return Err(exceeded(format!(
                "the entry decompresses to more than {MAX_COMPRESSION_RATIO} times its \
                 compressed size of {} bytes (limit max_compression_ratio): refused as a \
                 possible zip bomb",
                self.compressed
            )));
        }
        Ok(n)
    }
}

impl<R: Read> Read for Guarded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.total += n as u64;
        if self.total > MAX_FILE_BYTES {
            return Err(exceeded(format!(
                "the file is longer than {MAX_FILE_BYTES} bytes (limit max_file_bytes)"
            )));
        }
        let since = self.since_record.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        // The csv reader reads ahead up to its buffer (8 KiB) past a record's end.
        if since > MAX_ROW_BYTES + 16 * 1024 {
            return Err(exceeded(format!(
                "a row is longer than {MAX_ROW_BYTES} bytes (limit max_row_bytes)"
            )));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_cuts_long_values_and_escapes_control_characters() {
        assert_eq!(quote("bulk"), "\"bulk\"");
        let long = "x".repeat(1000);
        let q = quote(&long);
        assert!(q.len() < 100, "{q}");
        assert!(q.ends_with("(960 more characters)"), "{q}");
        assert_eq!(quote("a\u{1b}[31mb"), "\"a\\u{1b}[31mb\"");
    }

    #[test]
    fn a_long_record_is_refused_while_reading() {
        let data = vec![b'a'; (MAX_ROW_BYTES * 2) as usize];
        let (mut g, _budget) = Guarded::new(&data[..]);
        let mut sink = Vec::new();
        let err = std::io::copy(&mut g, &mut sink).unwrap_err();
        assert!(limit_of(&err).unwrap().contains("max_row_bytes"));
    }
}
