//! The disk's own floor for one durable command: a 4 KiB write and an fdatasync, on the file
//! system the bench writes to. Appending grows the file, so each fdatasync also commits its new
//! size to the file system's journal; overwriting a file already written (as PostgreSQL does
//! with its pre-allocated WAL segments) syncs the data alone. sled grows its file as the log
//! grows, so the ledger's single commands pay the first.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

const WRITES: u64 = 1000;
const BLOCK: usize = 4096;

/// Median time of a 4 KiB write + fdatasync, appending and overwriting.
pub fn sync_floor(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let block = vec![0x5a_u8; BLOCK];
    let appended = timed_writes(&File::create(dir.join("append"))?, &block)?;
    let written = File::create(dir.join("overwrite"))?;
    written.write_all_at(&vec![0u8; BLOCK * WRITES as usize], 0)?;
    written.sync_all()?;
    let overwritten = timed_writes(&written, &block)?;
    println!(
        "disk floor, 4 KiB write + fdatasync: appending {:.0?}, overwriting {:.0?} (median of {WRITES})",
        appended, overwritten
    );
    Ok(())
}

fn timed_writes(file: &File, block: &[u8]) -> std::io::Result<Duration> {
    let mut took = Vec::with_capacity(WRITES as usize);
    for i in 0..WRITES {
        let started = Instant::now();
        file.write_all_at(block, i * BLOCK as u64)?;
        file.sync_data()?;
        took.push(started.elapsed());
    }
    took.sort();
    Ok(took[took.len() / 2])
}
