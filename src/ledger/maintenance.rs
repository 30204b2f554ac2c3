//! Work on the read models that is not deciding commands: saving them (once a second, and at
//! close), rebuilding them from the log, and verifying them against a replay. None of it runs
//! inside a partition writer: rebuild and verify replay the log on their own snapshot while
//! commands go on, and only hand each writer the short tail it has to catch up.

use std::collections::HashMap;
use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::partition::Job;
use super::replay::Replay;
use super::{Ledger, LedgerError, Shared};
use crate::projections::Projections;
use crate::store::StoreError;

/// How often changed rows are persisted (at least; see [`spawn_saver`]). Between saves a crash
/// only costs a longer catch-up at start: the checkpoints say where the rows are.
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// Result of comparing a replay of the log with the live projections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub equal: bool,
    pub events_replayed: u64,
    pub accounts: usize,
    pub detail: String,
}

pub(super) fn spawn_saver(shared: Weak<Shared>) {
    tokio::spawn(async move {
        let mut wait = SAVE_EVERY;
        loop {
            tokio::time::sleep(wait).await;
            let Some(shared) = shared.upgrade() else {
                return;
            };
            if shared.closed.load(Ordering::SeqCst) {
                return;
            }
            let started = std::time::Instant::now();
            match crate::threads::caught(save_all(&shared)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!("saving projections failed: {e}"),
                Err(panic) => tracing::error!("saving projections panicked ({panic}); retried"),
            }
            // Under heavy load saving takes longer: stretch the interval so it stays under a
            // tenth of the time (each save rewrites whole buckets; sled keeps the old ones until
            // it compacts).
            wait = SAVE_EVERY.max(started.elapsed() * 10);
        }
    });
}

/// Persist every partition's changed rows, pending license points and checkpoint, in one
/// atomic write, then make it durable.
pub(super) async fn save_all(shared: &Shared) -> Result<(), LedgerError> {
    let _one_at_a_time = shared.save_lock.lock().await;
    save_locked(shared).await
}

async fn save_locked(shared: &Shared) -> Result<(), LedgerError> {
    // Read the durable end first: a partition that starts appending after this gets
    // positions beyond it, so "not appending now" means "complete through `durable`".
    let mut durable = shared.log.last_position();
    if let Some(c) = &shared.cluster {
        // Other servers' events past this are not in the read models yet.
        durable = durable.min(c.delivered());
    }
    let mut floor = durable;
    let mut batches = Vec::new();
    let mut points = Vec::new();
    let mut changed = false;
    for part in shared.routes.all() {
        let mut read = part.write();
        if part.writer_stopped() || part.read_model_poisoned() {
            // Its read model may hold half a group (a panic while it was updated poisons its
            // lock, before the writer's stop is recorded): nothing of it is saved, and the
            // open after a restart rebuilds it from its last save and the log after that.
            // Where that save ended is not kept, so the floor says "from the start" (each
            // domain skips what its own saved checkpoint holds): one slower open after a bug.
            floor = 0;
            continue;
        }
        let through = part.complete_through(&read, durable);
        floor = floor.min(through);
        if read.domain().is_none() {
            continue;
        }
        changed |= read.has_unsaved_rows() || through != read.checkpoint;
        read.checkpoint = through;
        points.extend_from_slice(read.unsaved_license_points());
        batches.push(read.take_batch(through));
    }
    if !changed && points.is_empty() && floor == shared.saved_floor.load(Ordering::SeqCst) {
        return Ok(());
    }
    // The rows are taken (their dirty marks cleared, the checkpoints moved on): unless this
    // save lands, the next one must write every row again, whether it failed or panicked.
    let retake = RetakeUnlessSaved(shared, false);
    let views = shared.views.clone();
    let saved_points: HashMap<String, u64> = points
        .iter()
        .map(|p| (p.domain.clone(), p.position))
        .collect();
    tokio::task::spawn_blocking(move || {
        views.save_license_points(&points)?;
        let saved = views.save(&batches, Some(floor));
        drop(batches);
        // The rows were encoded and sealed on this blocking thread (a district's worth after
        // an import or a rebuild, 128 rows per account touched otherwise), which may then
        // idle holding the buffers: hand them back now. Saves run at most once a second
        // (the saver), besides the rare ones at a rebuild, a start and a close.
        crate::memory::release_freed();
        saved
    })
    .await
    .map_err(|e| StoreError::Io(format!("saving views: {e}")))??;
    shared.log.sync().await?;
    retake.saved();
    shared.saved_floor.store(floor, Ordering::SeqCst);
    // Only now may the read models drop the points: until the save is durable, "usage as of"
    // answers them from memory.
    for part in shared.routes.all() {
        let mut read = part.write();
        let saved = read.domain().and_then(|d| saved_points.get(d).copied());
        if let Some(position) = saved {
            read.forget_license_points_through(position);
        }
    }
    Ok(())
}

/// Marks every row for the next save when dropped before [`RetakeUnlessSaved::saved`].
struct RetakeUnlessSaved<'a>(&'a Shared, bool);

impl RetakeUnlessSaved<'_> {
    fn saved(mut self) {
        self.1 = true;
    }
}

impl Drop for RetakeUnlessSaved<'_> {
    fn drop(&mut self) {
        if !self.1 {
            for part in self.0.routes.all() {
                part.write().mark_all_dirty();
            }
        }
    }
}

/// Replay the whole log into fresh projections while commands go on, then hand each
/// partition its part (it applies the events that came after the replay) and persist
/// everything anew.
pub(super) async fn rebuild(ledger: &Ledger) -> Result<u64, LedgerError> {
    let shared = &ledger.shared;
    let no_saves = shared.save_lock.clone().lock_owned().await;
    // The view store is cleared below and every domain handed its rebuilt model in turn: a
    // stopped writer would end that half way, leaving the domains after it saved short.
    if let Some(part) = shared.routes.all().into_iter().find(|p| p.writer_stopped()) {
        return Err(part.writer_gone().await);
    }
    let started = std::time::Instant::now();
    let mut fresh = Replay::default();
    let mut replayed = fresh.catch_up(&*shared.log).await?;
    // A second pass shortens the tail each writer must apply.
    replayed += fresh.catch_up(&*shared.log).await?;
    let replay_took = started.elapsed();
    {
        let views = shared.views.clone();
        tokio::task::spawn_blocking(move || views.clear())
            .await
            .map_err(|e| StoreError::Io(format!("clearing views: {e}")))??;
    }
    shared.saved_floor.store(u64::MAX, Ordering::SeqCst);
    let replayed_to = fresh.position;
    let domains: Vec<String> = fresh.domains().map(str::to_string).collect();
    for domain in &domains {
        // Domains the live side does not know yet (views were damaged) get a partition.
        ledger.read_domain(domain, |_| ()).unwrap_or_else(|| {
            ledger.add_partition(domain, Projections::default());
        });
    }
    // On a shared store: other servers' events up to here are routed first, and none is
    // applied to a read model while it is being replaced.
    let _follower = ledger.hold_follower().await?;
    let parts: Vec<_> = shared
        .routes
        .all()
        .into_iter()
        .filter_map(|part| ledger.sender(&part).map(|sender| (part, sender)))
        .collect();
    // Each domain's list and search index is built here, not in the writer (its domain's
    // commands wait only for the swap itself). The next domain is indexed on the other core
    // while one is awaited and swapped.
    let mut indexed = parts.iter().map(|(part, sender)| {
        let taken = fresh.take(&part.domain);
        (part, sender, index_on_blocking_thread(taken))
    });
    let mut next = indexed.next();
    while let Some((part, sender, task)) = next {
        next = indexed.next();
        let prepared = task
            .await
            .map_err(|e| StoreError::Io(format!("indexing a rebuilt domain: {e}")))?;
        let (reply, rx) = tokio::sync::oneshot::channel();
        let job = Job::Swap {
            fresh: Box::new(prepared),
            replayed_to,
            reply,
        };
        if sender.send(job).await.is_err() {
            return Err(part.writer_gone().await);
        }
        match rx.await {
            Ok(swapped) => swapped?,
            Err(_) => return Err(part.writer_gone().await),
        }
    }
    tracing::info!(
        events = replayed,
        "views rebuilt in {:.2?}: log replayed in {replay_took:.2?}, then indexed and swapped \
         into the writers",
        started.elapsed()
    );
    // Saving every row anew (a third of a second per million accounts) is not on the
    // rebuild's path: the writers serve the rebuilt views already, and until the save is
    // durable the cleared view store only means a longer catch-up after a crash. The save goes
    // on in a task that keeps the save lock: the next periodic save and `close` wait for it.
    let shared = ledger.shared.clone();
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        // Failed, it leaves every row marked for the next save.
        let saved = save_locked(&shared).await;
        // The store is released before the lock: whoever waited on it (close) may reopen it.
        drop(shared);
        drop(no_saves);
        match saved {
            Ok(()) => tracing::info!("rebuilt views saved in {:.2?}", started.elapsed()),
            Err(e) => tracing::error!("saving the rebuilt views failed (retried whole): {e}"),
        }
    });
    Ok(replayed)
}

fn index_on_blocking_thread(mut taken: Projections) -> tokio::task::JoinHandle<Projections> {
    tokio::task::spawn_blocking(move || {
        taken.prepare_index();
        taken
    })
}

/// Replay the log on a snapshot of its own while commands go on, and compare each domain with
/// its live read model once that has nothing newer than the replay.
pub(super) async fn verify(ledger: &Ledger) -> Result<Verification, LedgerError> {
    /// Catch-up rounds allowed for a domain that keeps writing while it is compared.
    const ROUNDS: usize = 50;
    let shared = &ledger.shared;
    let mut fresh = Replay::default();
    let mut replayed = fresh.catch_up(&*shared.log).await?;
    // On a shared store the replay goes only as far as the other servers' events are applied
    // here: this server's index may hold more (its own appends read them), and a read model
    // would then look behind. Each round applies what is indexed, with the follower held so
    // that nothing else applies any while the models are compared.
    let _follower = ledger.hold_follower().await?;
    let bound = ledger.deliver_held().await?;
    replayed += fresh.catch_up_to(&*shared.log, bound).await?;
    let mut difference = None;
    let live_parts = shared.routes.all();
    for part in &live_parts {
        let mut rounds = 0;
        loop {
            let compared = {
                let live = part.read();
                let settled =
                    live.last_applied <= fresh.position && !part.appending.load(Ordering::SeqCst);
                (settled || rounds == ROUNDS).then(|| compare(&part.domain, &live, &fresh))
            };
            match compared {
                Some(result) => {
                    if let Err(d) = result {
                        difference.get_or_insert(d);
                    }
                    break;
                }
                None => {
                    rounds += 1;
                    let bound = ledger.deliver_held().await?;
                    replayed += fresh.catch_up_to(&*shared.log, bound).await?;
                }
            }
        }
    }
    for domain in fresh.domains() {
        if !live_parts.iter().any(|p| p.domain == domain) {
            difference.get_or_insert(format!("domain {domain:?} is in the log but not live"));
        }
    }
    Ok(Verification {
        equal: difference.is_none(),
        events_replayed: replayed,
        accounts: fresh.accounts(),
        detail: difference.unwrap_or_else(|| "replay equals the live projections".to_string()),
    })
}

fn compare(domain: &str, live: &Projections, fresh: &Replay) -> Result<(), String> {
    let Some(replay) = fresh.get(domain) else {
        return match live.domain() {
            None => Ok(()),
            Some(_) => Err(format!("domain {domain:?} is live but not in the log")),
        };
    };
    if live.same_view(replay) {
        return Ok(());
    }
    let (a, b) = (&live.state, &replay.state);
    if a.domains != b.domains {
        return Err(format!(
            "domain {domain:?} differs: live {:?}, replay {:?}",
            a.domains.get(domain),
            b.domains.get(domain)
        ));
    }
    for (id, acc) in &b.accounts {
        if a.accounts.get(id) != Some(acc) {
            return Err(format!("account {id} of domain {domain:?} differs"));
        }
    }
    if a.accounts.len() != b.accounts.len() {
        return Err(format!(
            "domain {domain:?}: live has {} accounts, replay {}",
            a.accounts.len(),
            b.accounts.len()
        ));
    }
    Err(format!("indexes of domain {domain:?} differ"))
}
