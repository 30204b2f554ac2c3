//! Spread CPU-bound work (sealing or opening many account rows) over the machine's cores, in
//! order. Sealing and opening are independent per bucket of rows; on the 2-core target this
//! halves the time of a full views save (rebuild) and of loading views at start-up.

/// `f` over `items`, results in input order; inline when there is little to do.
pub fn map<T: Sync, R: Send>(
    items: &[T],
    min_per_thread: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || items.len() < 2 * min_per_thread.max(1) {
        return items.iter().map(f).collect();
    }
    let per = items.len().div_ceil(threads);
    let mut chunks = items.chunks(per);
    let here = chunks.next().unwrap_or_default();
    let f = &f;
    std::thread::scope(|scope| {
        // A chunk whose thread the OS refuses (a thread limit, memory) runs here instead:
        // `scope.spawn` would panic, and the callers are a partition writer or the open.
        let others: Vec<_> = chunks
            .map(|chunk| {
                std::thread::Builder::new()
                    .spawn_scoped(scope, move || chunk.iter().map(f).collect::<Vec<R>>())
                    .map_err(|e| {
                        tracing::warn!("no thread for parallel work ({e}): running it here");
                        chunk
                    })
            })
            .collect();
        let mut out: Vec<R> = here.iter().map(f).collect();
        for other in others {
            match other {
                Ok(handle) => match handle.join() {
                    Ok(part) => out.extend(part),
                    Err(panic) => std::panic::resume_unwind(panic),
                },
                Err(chunk) => out.extend(chunk.iter().map(f)),
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_keep_the_input_order() {
        let items: Vec<u32> = (0..10_000).collect();
        let out = super::map(&items, 100, |x| x * 2);
        assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
    }
}
