//! A preallocated file rewritten in place whose every write is durable when it returns (the
//! commit journal, [`super::journal`]).
//!
//! Where the file system allows it the file is opened `O_DIRECT | O_DSYNC` and written by whole
//! aligned blocks: the write goes to the device without the page cache and without a separate
//! `fdatasync` (on this box 0.12-0.16 ms per small record against 0.19-0.20 ms for a buffered
//! write and `fdatasync`). A block holds earlier records, so the caller passes what the block
//! holds before the write. Where
//! `O_DIRECT` is refused (at the open or at a write; older tmpfs, some network and FUSE file
//! systems) the file falls back to buffered writes and `fdatasync`.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Alignment of a direct write's offset, length and memory: a multiple of every device's
/// logical block size.
pub(super) const BLOCK: usize = 4096;

#[derive(Debug)]
pub(super) struct BlockFile {
    file: File,
    path: PathBuf,
    direct: bool,
    /// Reused for each direct write (one block more than the largest write, for alignment).
    buffer: Vec<u8>,
}

impl BlockFile {
    /// Open an existing file for durable writes, direct where allowed.
    pub(super) fn open(path: &Path) -> io::Result<BlockFile> {
        let direct = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_DIRECT | libc::O_DSYNC)
            .open(path);
        match direct {
            Ok(file) => Ok(BlockFile {
                file,
                path: path.to_path_buf(),
                direct: true,
                buffer: Vec::new(),
            }),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Self::open_buffered(path),
            Err(e) => Err(e),
        }
    }

    /// Open for buffered writes, each followed by `fdatasync`.
    pub(super) fn open_buffered(path: &Path) -> io::Result<BlockFile> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(BlockFile {
            file,
            path: path.to_path_buf(),
            direct: false,
            buffer: Vec::new(),
        })
    }

    /// Whether writes bypass the page cache.
    pub(super) fn is_direct(&self) -> bool {
        self.direct
    }

    /// Write `bytes` at `at` and return once they are durable. `before` is what the file holds
    /// from the start of `at`'s block up to `at`; a direct write rewrites it and fills the rest
    /// of the last block with zeros.
    pub(super) fn write_durably(&mut self, at: u64, before: &[u8], bytes: &[u8]) -> io::Result<()> {
        if self.direct {
            match self.write_direct(at, before, bytes) {
                // The file system took the open but not the write: buffered from now on, on a
                // descriptor without O_DIRECT (the direct one refuses unaligned writes).
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    tracing::warn!(
                        "{}: direct writes refused ({e}); writing through the page cache",
                        self.path.display()
                    );
                    *self = Self::open_buffered(&self.path)?;
                }
                done => return done,
            }
        }
        self.file.write_all_at(bytes, at)?;
        self.file.sync_data()
    }

    fn write_direct(&mut self, at: u64, before: &[u8], bytes: &[u8]) -> io::Result<()> {
        // Not at a block (a caller's mistake): refused as the kernel would, so that the
        // buffered path writes it.
        let start = at
            .checked_sub(before.len() as u64)
            .filter(|s| s % BLOCK as u64 == 0)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        let len = before.len() + bytes.len();
        let padded = len.div_ceil(BLOCK) * BLOCK;
        self.buffer.clear();
        self.buffer.resize(padded + BLOCK, 0);
        let offset = self.buffer.as_ptr().align_offset(BLOCK);
        let blocks = &mut self.buffer[offset..offset + padded];
        blocks[..before.len()].copy_from_slice(before);
        blocks[before.len()..len].copy_from_slice(bytes);
        self.file.write_all_at(blocks, start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zeros(dir: &Path, len: usize) -> std::path::PathBuf {
        let path = dir.join("f");
        std::fs::write(&path, vec![0u8; len]).unwrap();
        path
    }

    #[test]
    fn writes_land_where_asked_and_keep_what_the_block_held_before() {
        let dir = tempfile::tempdir().unwrap();
        let path = zeros(dir.path(), 4 * BLOCK);
        for buffered in [false, true] {
            let mut f = match buffered {
                true => BlockFile::open_buffered(&path).unwrap(),
                false => BlockFile::open(&path).unwrap(),
            };
            if buffered {
                assert!(!f.is_direct());
            }
            let first = vec![7u8; BLOCK + 100];
            f.write_durably(BLOCK as u64, &[], &first).unwrap();
            // The next write starts inside the second block: it passes what that block holds.
            let second = b"next record".to_vec();
            let at = (2 * BLOCK + 100) as u64;
            f.write_durably(at, &first[BLOCK..], &second).unwrap();
            let read = std::fs::read(&path).unwrap();
            assert_eq!(read.len(), 4 * BLOCK);
            assert!(read[..BLOCK].iter().all(|b| *b == 0));
            assert_eq!(&read[BLOCK..2 * BLOCK + 100], &first[..]);
            assert_eq!(&read[2 * BLOCK + 100..2 * BLOCK + 111], &second[..]);
            assert!(read[2 * BLOCK + 111..].iter().all(|b| *b == 0));
            std::fs::write(&path, vec![0u8; 4 * BLOCK]).unwrap();
        }
    }

    #[test]
    fn a_refused_direct_write_is_written_through_the_page_cache_from_then_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = zeros(dir.path(), 2 * BLOCK);
        let mut f = BlockFile::open(&path).unwrap();
        if !f.is_direct() {
            eprintln!("this file system refuses O_DIRECT: the fallback at open is what runs");
            return;
        }
        // `before` does not reach back to a block: the direct write is refused with EINVAL.
        f.write_durably(100, &[1, 2], b"xyz").unwrap();
        assert!(!f.is_direct());
        f.write_durably(103, &[], b"w").unwrap();
        let read = std::fs::read(&path).unwrap();
        assert_eq!(&read[98..105], &[0, 0, b'x', b'y', b'z', b'w', 0]);
    }
}
