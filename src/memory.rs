//! Handing freed memory back to the operating system after large work. The allocator is the
//! binary's choice (mimalloc, see `main.rs`), and it keeps freed pages for a while before it
//! returns them: the 450 MB of records a 1M-row import frees once they are applied would still
//! be resident while the job's answers are built, and set its peak. The binary registers how to
//! release them; the library calls [`release_freed`] off the path of single commands, where a
//! thread has just freed a large amount and may then sleep: after a large group, after each
//! views save (at most one a second) and after each log index checkpoint.

use std::sync::OnceLock;

static RELEASE: OnceLock<fn()> = OnceLock::new();

/// Groups of at least this many events release what they freed (their records: about 110 MB
/// at 450 bytes an event with their strings).
pub const LARGE_GROUP: usize = 250_000;

/// Set how freed memory is returned (once; later calls are ignored).
pub fn set_releaser(release: fn()) {
    let _ = RELEASE.set(release);
}

/// Return freed memory now, if the binary said how.
pub fn release_freed() {
    if let Some(release) = RELEASE.get() {
        release();
    }
}
