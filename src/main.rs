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
        .build()
        .expect("starting the tokio runtime");
    runtime.block_on(account_ledger::cli::run(account_ledger::cli::Cli::parse()))
}

/// When a runtime thread goes idle, at most once a second: hand the pages it freed back to the
/// OS. mimalloc keeps a thread's freed pages for that thread, and a thread that then idles
/// never gets to return them (after a 1M-row import, ~100 MiB held that way).
fn release_freed_memory() {
    thread_local! {
        static LAST: Cell<Option<Instant>> = const { Cell::new(None) };
    }
    LAST.with(|last| {
        let now = Instant::now();
        if last.get().is_some_and(|t| now - t < Duration::from_secs(1)) {
            return;
        }
        last.set(Some(now));
        // SAFETY: mi_collect only walks this thread's own heap and the shared arenas.
        unsafe { mi_collect(true) };
    });
}

unsafe extern "C" {
    /// mimalloc's own (linked in by the `mimalloc` crate).
    fn mi_collect(force: bool);
}

// The ledger allocates many small strings and maps; mimalloc is markedly faster at that than
// glibc's allocator (measured with `account-ledger bench`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
