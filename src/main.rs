//! The `account-ledger` binary: parse flags, hand over to the library.

use std::cell::Cell;
use std::time::{Duration, Instant};

use clap::Parser;

fn main() -> std::process::ExitCode {
    // No transparent huge pages: mimalloc asks for them on its arenas, and then every page
    // fault zeroes 2 MiB, also where memory freed and purged is touched again. Measured on a
    // 1M-account data dir (README, Figures): open ~10% faster, ~50 MiB less resident.
    // SAFETY: prctl with PR_SET_THP_DISABLE only sets a flag of this process; a failure (an
    // old kernel) leaves huge pages on, which is harmless.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    // After a large group (an import job) the ledger returns what it freed at once.
    // SAFETY: as in release_freed_memory.
    account_ledger::memory::set_releaser(|| unsafe { mi_collect(true) });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(release_freed_memory)
        .on_thread_unpark(note_busy)
        // A blocking thread (log reads, saves) keeps the pages it freed until it exits: an
        // idle one exits after half a second, not tokio's ten (1M district, the daily queries:
        // RSS rose 110-160 MiB at their point-in-time reads instead of 210-230).
        .thread_keep_alive(Duration::from_millis(500))
        .build()
        .expect("starting the tokio runtime");
    runtime.block_on(account_ledger::cli::run(account_ledger::cli::Cli::parse()))
}

/// When a runtime thread goes idle: hand the pages it freed back to the OS. mimalloc keeps a
/// thread's freed pages for that thread, and a thread that then idles never gets to return them
/// (after a 1M-row import, ~100 MiB held that way). At most once a second, so that a busy
/// server's many short parks do not each pay for it, unless the thread has just worked for
/// long (a large job's end): then after a quarter of a second already, or the pages it freed
/// would stay held while it idles.
fn release_freed_memory() {
    let now = Instant::now();
    let (last, busy_since) = (LAST_RELEASE.get(), BUSY_SINCE.get());
    let long_work = busy_since.is_some_and(|t| now - t >= Duration::from_millis(50));
    // Under steady load most parks follow long work: still no more than four a second.
    let gap = if long_work {
        Duration::from_millis(250)
    } else {
        Duration::from_secs(1)
    };
    if last.is_some_and(|t| now - t < gap) {
        return;
    }
    LAST_RELEASE.set(Some(now));
    // SAFETY: mi_collect only walks this thread's own heap and the shared arenas.
    unsafe { mi_collect(true) };
}

/// When a runtime thread wakes: when its work began (see [`release_freed_memory`]).
fn note_busy() {
    BUSY_SINCE.set(Some(Instant::now()));
}

thread_local! {
    static LAST_RELEASE: Cell<Option<Instant>> = const { Cell::new(None) };
    static BUSY_SINCE: Cell<Option<Instant>> = const { Cell::new(None) };
}

unsafe extern "C" {
    /// mimalloc's own (linked in by the `mimalloc` crate).
    fn mi_collect(force: bool);
}

// The ledger allocates many small strings and maps; mimalloc is markedly faster at that than
// glibc's allocator (measured with `account-ledger bench`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
