//! Two pieces of work on both cores, never a panic for want of a thread: `std::thread::scope`'s
//! `spawn` panics when the OS refuses a thread (a thread limit, memory), and the callers run
//! inside a partition writer or the open, where a panic stops a domain or the server.

use std::sync::Mutex;

/// Run `a` on a new scoped thread and `b` on this one; both here, `a` first, when no thread can
/// be made.
pub fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    RA: Send,
    B: FnOnce() -> RB,
{
    // Held here so that `a` is still ours when the spawn fails (the closure given to it is
    // then dropped unrun).
    let a = Mutex::new(Some(a));
    let take = || a.lock().unwrap_or_else(|e| e.into_inner()).take();
    std::thread::scope(|s| {
        let spawned = std::thread::Builder::new().spawn_scoped(s, || take().map(|a| a()));
        let rb = b();
        let ra = match spawned {
            Ok(handle) => match handle.join() {
                Ok(ra) => ra,
                Err(panic) => std::panic::resume_unwind(panic),
            },
            Err(e) => {
                tracing::warn!("no thread for parallel work ({e}): running it here");
                None
            }
        };
        let ra = ra.or_else(|| take().map(|a| a()));
        (ra.expect("`a` ran on the thread or runs here"), rb)
    })
}

/// What a caught panic said (its message when it had one).
pub fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Run `work` to its end, or say what it panicked with: a background loop (saving views,
/// firing schedules, following other servers) logs the panic and goes on at its next turn
/// instead of stopping for good while the server looks healthy.
pub async fn caught<T>(work: impl std::future::Future<Output = T>) -> Result<T, String> {
    use futures::FutureExt;
    std::panic::AssertUnwindSafe(work)
        .catch_unwind()
        .await
        .map_err(|panic| panic_text(&panic))
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_run_and_return_their_results() {
        let mut here = 0;
        let (a, ()) = super::join(|| 6 * 7, || here += 1);
        assert_eq!((a, here), (42, 1));
    }
}
