//! Opening a sled directory: its lock (waited for briefly, then named with the pid that holds
//! it) and sled's panics on a damaged file (sled #1533), both turned into errors.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

/// The pid of the process that last opened the store (named when the store is found locked).
pub(super) const PID_FILE: &str = "server.pid";

/// sled's file lock is released by its background threads shortly after the last handle is
/// dropped; a reopen in the same process (restart, tests) waits briefly for it.
pub(crate) fn open_sled(sled_dir: &Path) -> Result<sled::Db, String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let opened = catch_unwind(AssertUnwindSafe(|| {
            // sled holds more than this in decoded pages (it counts less than it keeps); with
            // 64 MiB a 1M-account server kept ~110 MiB more after the daily queries, and no
            // query, import or bench figure was faster for it (README, Figures).
            sled::Config::new()
                .path(sled_dir)
                .cache_capacity(16 * 1024 * 1024)
                .open()
        }))
        .map_err(|panic| {
            format!(
                "sled panicked while opening: {}",
                crate::threads::panic_text(&panic)
            )
        })?;
        match opened {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e)) if is_locked(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(sled::Error::Io(e)) if is_locked(&e) => {
                let pid = sled_dir
                    .parent()
                    .and_then(|d| std::fs::read_to_string(d.join(PID_FILE)).ok())
                    .map(|p| format!(" (pid {})", p.trim()))
                    .unwrap_or_default();
                return Err(format!(
                    "another account-ledger{pid} is using this data dir; stop it, or give this \
                     server another --data-dir"
                ));
            }
            Err(e) => return Err(format!("sled: {e}")),
        }
    }
}

/// sled reports a held lock as an I/O error of kind WouldBlock, or wrapped in one of kind
/// Other whose text says so.
fn is_locked(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock
        || e.raw_os_error() == Some(libc::EWOULDBLOCK)
        || e.to_string().contains("could not acquire lock")
}
