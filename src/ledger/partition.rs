//! A partition: one domain's read model and the writer task that owns its decisions.
//!
//! The writer drains what is queued for its domain, decides each command in order against
//! its own state, appends the group's events as one log batch (the log shares one flush +
//! fsync among all partitions appending at once), applies them to the partition's read model
//! and answers every caller. Partitions never wait for each other's decisions, and an import
//! job in one domain never holds up another domain's commands.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::sync::{broadcast, mpsc, oneshot};

use super::decider::{Decider, EventIds, Pending};
use super::routes::Routes;
use super::writer_stop;
use super::{BatchMode, BatchOutcome, Executed, LedgerError, Request};
use crate::domain::{AccountId, Event, LedgerState, StreamId};
use crate::projections::{AccountIndex, Projections};
use crate::store::pg_cluster::Fence;
use crate::store::{EventLog, EventParts, RecordedEvent, StoreError};

/// Most requests a writer decides before one append (bounds latency of the first caller).
const MAX_GROUP: usize = 4096;

/// Groups touching more accounts than this update the list index on a blocking thread.
const PARALLEL_INDEX_ROWS: usize = 256;

/// Changes made while a loaded index was being built that are applied under the read
/// model's lock when it is finished; more are applied off the lock first.
const INLINE_INDEX_CHANGES: usize = 4096;

/// The read model's next list index, computed inline or on a blocking thread; none while
/// the index is unbuilt (after a load), with the accounts the group touched.
enum IndexUpdate {
    Unbuilt(Vec<AccountId>),
    Inline(
        Box<(
            LedgerState,
            crate::projections::AccountIndex,
            Vec<AccountId>,
        )>,
    ),
    Spawned(tokio::task::JoinHandle<crate::projections::AccountIndex>),
}

/// One domain's shared half: its read model, readable by anyone without waiting for the writer.
pub(crate) struct Partition {
    pub(crate) index: u32,
    pub(crate) domain: String,
    read: RwLock<Projections>,
    /// Set while the writer has an append in flight whose events are not applied yet: a save
    /// then cannot claim this partition is complete through the log's end.
    pub(crate) appending: AtomicBool,
    /// On a shared store: the lease this server decides the domain under (None: another
    /// server decides it, or nobody yet).
    fence: RwLock<Option<Fence>>,
    /// One lease claim at a time.
    pub(crate) claiming: tokio::sync::Mutex<()>,
    /// Positions of this domain's events the follower left to the writer (the lease was held
    /// here) before the read model had them, in position order. Once the lease is gone, those
    /// still unapplied (the new owner's, or this server's own that an append failed to
    /// acknowledge) are read back and applied ([`crate::ledger::Ledger::follow`]).
    left_to_writer: std::sync::Mutex<Vec<u64>>,
    /// True once the read model's list and search index is built (lists wait for it).
    index_built: tokio::sync::watch::Sender<bool>,
    /// Why the writer stopped, once it stopped on a panic ([`writer_stop`]).
    pub(super) stopped: std::sync::OnceLock<String>,
    /// True once the writer's task has ended (stopped, or closed with the ledger).
    pub(super) writer_ended: tokio::sync::watch::Sender<bool>,
}

impl Partition {
    /// A live partition over `projections`. Loaded views come without their list and search
    /// index: it is built on a blocking thread ([`Partition::build_index`]).
    pub(crate) fn new(index: u32, domain: &str, mut projections: Projections) -> Partition {
        if !projections.index_unbuilt() {
            projections.ready_index();
        }
        let built = !projections.index_unbuilt();
        Partition {
            index,
            domain: domain.to_string(),
            read: RwLock::new(projections),
            appending: AtomicBool::new(false),
            fence: RwLock::new(None),
            claiming: tokio::sync::Mutex::new(()),
            left_to_writer: std::sync::Mutex::default(),
            index_built: tokio::sync::watch::channel(built).0,
            stopped: std::sync::OnceLock::new(),
            writer_ended: tokio::sync::watch::channel(false).0,
        }
    }

    /// Build the read model's index off the opening path when it is unbuilt: from the rows
    /// as loaded, on a blocking thread, then brought up to date for what changed since (off
    /// the read model's lock but for the last few changes).
    pub(crate) fn build_index(self: &Arc<Partition>) {
        let Some(base) = self.read().index_to_build() else {
            return;
        };
        /// Lists wait for the build: they are let go however it ends, a panic included.
        struct LetListsGo(Arc<Partition>);
        impl Drop for LetListsGo {
            fn drop(&mut self) {
                self.0.index_built.send_replace(true);
            }
        }
        let part = LetListsGo(self.clone());
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let mut index = AccountIndex::build(base.accounts.values().map(|a| &**a));
            drop(base);
            // Changes made meanwhile (an import, say) are applied off the lock, in rounds,
            // until few are left to apply under it.
            loop {
                let mut read = part.0.write();
                if read.index_changes() <= INLINE_INDEX_CHANGES {
                    read.finish_index(index);
                    break;
                }
                let Some((before, touched, now)) = read.take_index_changes() else {
                    break;
                };
                drop(read);
                index = Projections::index_after(index, &before, &now, touched);
            }
            tracing::info!(
                domain = part.0.domain,
                "list and search index built in {:.2?}",
                started.elapsed()
            );
        });
    }

    /// The read model once its index is built (at once, but right after opening).
    pub(crate) async fn indexed(&self) -> RwLockReadGuard<'_, Projections> {
        if self.read().index_unbuilt() {
            let mut built = self.index_built.subscribe();
            let _ = built.wait_for(|b| *b).await;
            let mut write = self.write();
            // The build failed (a panic on its thread): build it here rather than answer
            // from an empty index.
            if write.index_unbuilt() {
                write.ready_index();
            }
        }
        self.read()
    }

    /// Whether a panic left the read model part way through an update.
    pub(crate) fn read_model_poisoned(&self) -> bool {
        self.read.is_poisoned()
    }

    pub(crate) fn fence(&self) -> Option<Fence> {
        self.fence.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn set_fence(&self, fence: Option<Fence>) {
        *self.fence.write().unwrap_or_else(|e| e.into_inner()) = fence;
    }

    fn left(&self) -> std::sync::MutexGuard<'_, Vec<u64>> {
        self.left_to_writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the follower must leave this domain's events to the writer (noting them):
    /// the lease is held here, or an append is in flight (its publish replaces the read
    /// model's state with the writer's), or noted events wait, which later ones queue behind.
    pub(crate) fn leaves_to_writer(&self) -> bool {
        self.fence().is_some() || self.appending.load(Ordering::SeqCst) || !self.left().is_empty()
    }

    /// Note events (in position order) the follower left to the writer; those the read model
    /// already holds are dropped, here and among the noted ones.
    pub(crate) fn leave_to_writer(&self, positions: impl IntoIterator<Item = u64>) {
        let checkpoint = self.read().checkpoint;
        let mut left = self.left();
        forget_applied(&mut left, checkpoint);
        left.extend(positions.into_iter().filter(|p| *p > checkpoint));
    }

    /// The position `read` (this partition's read model) is complete through when the log's
    /// events through `durable` were all delivered: its own checkpoint while an append is in
    /// flight, and never past an event left to the writer that it does not have yet.
    pub(crate) fn complete_through(&self, read: &Projections, durable: u64) -> u64 {
        if self.appending.load(Ordering::SeqCst) {
            return read.checkpoint;
        }
        let mut left = self.left();
        forget_applied(&mut left, read.checkpoint);
        match left.first() {
            Some(first) => read.checkpoint.max(durable.min(first - 1)),
            None => read.checkpoint.max(durable),
        }
    }

    /// The events left to the writer that its read model still lacks, to be applied now that
    /// the lease is gone (none while it is held here or an append is in flight). They stay
    /// noted until applied ([`Partition::forget_applied_left`]), so that a save meanwhile does
    /// not claim them.
    pub(crate) fn left_to_apply(&self) -> Vec<u64> {
        if self.fence().is_some() || self.appending.load(Ordering::SeqCst) {
            return Vec::new();
        }
        let checkpoint = self.read().checkpoint;
        let mut left = self.left();
        forget_applied(&mut left, checkpoint);
        left.clone()
    }

    /// Drop the noted events the read model now holds.
    pub(crate) fn forget_applied_left(&self) {
        let checkpoint = self.read().checkpoint;
        forget_applied(&mut self.left(), checkpoint);
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Projections> {
        self.read.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Projections> {
        self.read.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Drop the positions through `checkpoint` from `left` (in position order).
fn forget_applied(left: &mut Vec<u64>, checkpoint: u64) {
    let applied = left.partition_point(|p| *p <= checkpoint);
    left.drain(..applied);
}

pub(crate) enum Job {
    Execute {
        requests: Vec<Request>,
        mode: BatchMode,
        reply: oneshot::Sender<BatchOutcome>,
    },
    /// Replace the read model and the decision state with a rebuilt one, after applying the
    /// events of this domain that came after it.
    Swap {
        fresh: Box<Projections>,
        replayed_to: u64,
        reply: oneshot::Sender<Result<(), LedgerError>>,
    },
    /// Take the read model as the decision state (this server just took the domain's lease;
    /// the read model holds everything committed before).
    Refresh { reply: oneshot::Sender<()> },
    /// Finish what is queued, then stop.
    Close { reply: oneshot::Sender<()> },
}

/// What a writer needs besides its partition. Holds no job sender, so the writers stop when
/// the last [`super::Ledger`] handle is gone.
#[derive(Clone)]
pub(crate) struct WriterContext {
    pub(crate) log: Arc<dyn EventLog>,
    pub(crate) routes: Arc<Routes>,
    pub(crate) live: broadcast::Sender<Arc<RecordedEvent>>,
    pub(crate) cluster: Option<Arc<super::cluster::Cluster>>,
    /// How many writers stopped on a panic (health turns NOT_SERVING at the first).
    pub(crate) stopped_writers: Arc<tokio::sync::watch::Sender<usize>>,
}

pub(crate) struct Writer {
    ctx: WriterContext,
    part: Arc<Partition>,
    /// Decision state: equal to the read model between groups (and sharing its rows: it is
    /// published as the read model after each durable append).
    state: LedgerState,
    domain_version: u64,
    ids: EventIds,
    /// On a shared store: account numbers reserved for this writer, not handed out yet.
    numbers: std::ops::Range<u64>,
}

impl Writer {
    pub(crate) fn spawn(ctx: WriterContext, part: Arc<Partition>) -> mpsc::Sender<Job> {
        let state = part.read().state.clone();
        let domain_version = ctx
            .log
            .stream_version(&StreamId::Domain(part.domain.clone()));
        let (tx, rx) = mpsc::channel(65536);
        let stopped_writers = ctx.stopped_writers.clone();
        let writer = Writer {
            ctx,
            part: part.clone(),
            state,
            domain_version,
            ids: EventIds::new(),
            numbers: 0..0,
        };
        tokio::spawn(writer_stop::supervise(
            part,
            stopped_writers,
            writer.run(rx),
        ));
        tx
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        while let Some(first) = rx.recv().await {
            let mut group = Vec::new();
            let mut next = Some(first);
            while let Some(job) = next.take() {
                match job {
                    Job::Execute {
                        requests,
                        mode,
                        reply,
                    } => {
                        group.push((requests, mode, reply));
                        if group.len() < MAX_GROUP {
                            next = rx.try_recv().ok();
                        }
                    }
                    Job::Swap {
                        fresh,
                        replayed_to,
                        reply,
                    } => {
                        self.run_group(std::mem::take(&mut group)).await;
                        let _ = reply.send(self.swap(*fresh, replayed_to).await);
                        next = rx.try_recv().ok();
                    }
                    Job::Refresh { reply } => {
                        self.run_group(std::mem::take(&mut group)).await;
                        self.state = self.part.read().state.clone();
                        self.domain_version = self
                            .ctx
                            .log
                            .stream_version(&StreamId::Domain(self.part.domain.clone()));
                        let _ = reply.send(());
                        next = rx.try_recv().ok();
                    }
                    Job::Close { reply } => {
                        self.run_group(std::mem::take(&mut group)).await;
                        drop(self);
                        let _ = reply.send(());
                        return;
                    }
                }
            }
            self.run_group(group).await;
        }
    }

    /// Take a rebuilt read model: first apply this domain's events the rebuild has not seen.
    async fn swap(&mut self, mut fresh: Projections, replayed_to: u64) -> Result<(), LedgerError> {
        let last = self.ctx.log.last_position();
        let mut from = replayed_to + 1;
        while from <= last {
            let page = self.ctx.log.read_range(from, last, 16384).await?;
            let Some(tail) = page.last().map(|e| e.position) else {
                break;
            };
            for e in &page {
                if self.owns(e) {
                    fresh.apply(e);
                }
            }
            from = tail + 1;
        }
        fresh.checkpoint = fresh.checkpoint.max(last);
        fresh.mark_all_dirty();
        // Built by the rebuild before the swap; only the tail applied here is indexed here.
        fresh.ready_index();
        self.state = fresh.state.clone();
        *self.part.write() = fresh;
        self.part.index_built.send_replace(true);
        Ok(())
    }

    /// The read model's next index after a group touching `touched` (the writer's state is
    /// already past it): none while the index is unbuilt (the accounts are noted for its
    /// build when the group is published), on a blocking thread for a large group, else
    /// computed inline when the group is published.
    fn start_index_update(&self, touched: Vec<AccountId>) -> IndexUpdate {
        let (before, index) = {
            let read = self.part.read();
            if read.index_unbuilt() {
                return IndexUpdate::Unbuilt(touched);
            }
            (read.state.clone(), read.index.clone())
        };
        if touched.len() > PARALLEL_INDEX_ROWS {
            let after = self.state.clone();
            IndexUpdate::Spawned(tokio::task::spawn_blocking(move || {
                Projections::index_after(index, &before, &after, touched)
            }))
        } else {
            IndexUpdate::Inline(Box::new((before, index, touched)))
        }
    }

    /// Whether a recorded event belongs to this partition's domain.
    fn owns(&self, e: &RecordedEvent) -> bool {
        match e.event.stream() {
            StreamId::Domain(d) => d == self.part.domain,
            StreamId::Account(a) => self
                .ctx
                .routes
                .account(a)
                .is_some_and(|p| p.index == self.part.index),
        }
    }

    /// Hold at least `creates` spare account numbers from the shared store. A block that does
    /// not follow the spare ones (another partition reserved in between) replaces them, so it
    /// must cover the whole group by itself.
    async fn reserve_numbers(
        &mut self,
        cluster: &super::cluster::Cluster,
        creates: u64,
    ) -> Result<(), StoreError> {
        let spare = self.numbers.end - self.numbers.start;
        if creates <= spare {
            return Ok(());
        }
        let at_least = self.ctx.routes.peek_next_account();
        let block = cluster.reserve_numbers(creates - spare, at_least).await?;
        if block.start == self.numbers.end {
            self.numbers.end = block.end;
        } else if block.end - block.start >= creates {
            self.numbers = block;
        } else {
            self.numbers = cluster.reserve_numbers(creates, at_least).await?;
        }
        Ok(())
    }

    async fn run_group(
        &mut self,
        group: Vec<(Vec<Request>, BatchMode, oneshot::Sender<BatchOutcome>)>,
    ) {
        if group.is_empty() {
            return;
        }
        #[cfg(test)]
        writer_stop::tests::panic_if_armed(&self.part.domain, writer_stop::tests::Armed::Deciding);
        let routes = self.ctx.routes.clone();
        let fence = self.part.fence();
        if let Some(cluster) = self.ctx.cluster.clone() {
            if fence.is_none() {
                // The lease moved after this group was routed here: route it again.
                let domain = &self.part.domain;
                fail_group(group, || StoreError::LeaseLost {
                    domain: domain.clone(),
                });
                return;
            }
            // Numbers for every account the group may create, from the shared store.
            let creates = group
                .iter()
                .flat_map(|(requests, _, _)| requests)
                .filter(|r| matches!(r.command, crate::domain::Command::CreateAccount { .. }))
                .count() as u64;
            if let Err(e) = self.reserve_numbers(&cluster, creates).await {
                let reason = e.to_string();
                fail_group(group, || StoreError::Io(reason.clone()));
                return;
            }
        }
        let mut numbers = std::mem::replace(&mut self.numbers, 0..0);
        let shared_numbers = self.ctx.cluster.is_some();
        let mut allocate = || {
            if shared_numbers {
                // Reserved above for every CreateAccount of the group.
                numbers
                    .next()
                    .expect("a number is reserved for every CreateAccount of the group")
            } else {
                routes.allocate_account()
            }
        };
        // Most commands make one event: sized up front, a large job's events are not copied
        // by doubling (see execute_routed_inner).
        let mut new_events =
            EventParts::with_expected(group.iter().map(|(requests, ..)| requests.len()).sum());
        let mut group_seen = HashMap::new();
        let mut created = Vec::new();
        let mut answers = Vec::new();
        for (requests, mode, reply) in group {
            match mode {
                BatchMode::DryRun => {
                    // Normally run by the caller on a snapshot (Ledger::execute_batch); decided
                    // here on a copy if it ever arrives.
                    let outcome = decide_on_copy(
                        &*self.ctx.log,
                        &routes,
                        self.state.clone(),
                        self.domain_version,
                        requests,
                    )
                    .await;
                    let _ = reply.send(outcome);
                }
                BatchMode::Strict => {
                    let mut scratch = self.state.clone();
                    let mut version = self.domain_version;
                    let mut scratch_events = EventParts::with_expected(requests.len());
                    let mut decider = Decider {
                        log: &*self.ctx.log,
                        ids: &mut self.ids,
                        allocate: &mut allocate,
                        domain_version: &mut version,
                        seen: HashMap::new(),
                        created: Vec::new(),
                    };
                    let results = decider.decide_all(&mut scratch, requests, &mut scratch_events);
                    let strict_created = std::mem::take(&mut decider.created);
                    if results.iter().any(|r| r.is_err()) {
                        let results = answer_unwritten(&*self.ctx.log, results).await;
                        let _ = reply.send(BatchOutcome {
                            results,
                            written: false,
                        });
                    } else {
                        self.state = scratch;
                        self.domain_version = version;
                        created.extend(strict_created);
                        let offset = new_events.len();
                        new_events.extend(scratch_events.into_events());
                        let results = results
                            .into_iter()
                            .map(|r| r.map(|p| shift(p, offset)))
                            .collect();
                        answers.push((results, reply));
                    }
                }
                BatchMode::BestEffort => {
                    let mut decider = Decider {
                        log: &*self.ctx.log,
                        ids: &mut self.ids,
                        allocate: &mut allocate,
                        domain_version: &mut self.domain_version,
                        seen: std::mem::take(&mut group_seen),
                        created: Vec::new(),
                    };
                    let results = decider.decide_all(&mut self.state, requests, &mut new_events);
                    group_seen = decider.seen;
                    created.extend(decider.created);
                    answers.push((results, reply));
                }
            }
        }
        self.numbers = numbers;
        if answers.is_empty() {
            return;
        }
        // Commands for the new accounts route here from now on (they are decided here first).
        routes.register_accounts(self.part.index, &created);
        self.part.appending.store(true, Ordering::SeqCst);
        // The read model's next index: for a large group it is computed on a blocking thread
        // while the group is appended (the fsync hides it); a small one is cheap inline.
        let touched: Vec<AccountId> = new_events.events().filter_map(Event::account).collect();
        let next_index = self.start_index_update(touched);
        let appended = if new_events.is_empty() {
            Ok(Default::default())
        } else {
            let events = new_events.len();
            let started = std::time::Instant::now();
            let appended = self.ctx.log.append_parts(new_events, fence.as_ref()).await;
            let m = &*crate::metrics::METRICS;
            m.append_seconds.observe(started.elapsed().as_secs_f64());
            m.group_commit_events.observe(events as f64);
            appended
        };
        let appended = match appended {
            Ok(a) => a,
            Err(e) => {
                self.part.appending.store(false, Ordering::SeqCst);
                // Nothing of this group is acknowledged; go back to what is durable.
                self.state = self.part.read().state.clone();
                self.domain_version = self
                    .ctx
                    .log
                    .stream_version(&StreamId::Domain(self.part.domain.clone()));
                let msg = e.to_string();
                let lost = matches!(e, StoreError::LeaseLost { .. });
                if lost || self.ctx.cluster.is_some() {
                    // On a shared store the group may have committed although the append
                    // failed (a connection lost after COMMIT): without the lease, the follower
                    // reads back what the store holds before this server decides again.
                    self.part.set_fence(None);
                }
                let error = || match lost {
                    true => StoreError::LeaseLost {
                        domain: self.part.domain.clone(),
                    },
                    false => StoreError::Io(msg.clone()),
                };
                for (results, reply) in answers {
                    let results = results
                        .into_iter()
                        .map(|_| Err(LedgerError::Store(error())))
                        .collect();
                    let _ = reply.send(BatchOutcome {
                        results,
                        written: false,
                    });
                }
                return;
            }
        };
        // License points wait in the read model for the saver: writing them here cost a
        // second sled write (and sync) per command, inside the writer's task.
        let next_index = match next_index {
            // Built while this group was appended: its update starts now, off the lock.
            IndexUpdate::Unbuilt(touched) => self.start_index_update(touched),
            started => started,
        };
        let index = match next_index {
            IndexUpdate::Unbuilt(_) => None,
            IndexUpdate::Inline(inline) => {
                let (before, index, touched) = *inline;
                Some(Projections::index_after(
                    index,
                    &before,
                    &self.state,
                    touched,
                ))
            }
            IndexUpdate::Spawned(task) => Some(match task.await {
                Ok(index) => index,
                // The computation panicked: build it whole rather than serve a wrong list.
                Err(_) => AccountIndex::build(self.state.accounts.values().map(|a| &**a)),
            }),
        };
        self.part
            .write()
            .publish(&self.state, &appended.recorded, index);
        self.part.appending.store(false, Ordering::SeqCst);
        if self.ctx.live.receiver_count() > 0 {
            for e in &appended.recorded {
                let _ = self.ctx.live.send(Arc::new(e.clone()));
            }
        }
        let written = !appended.recorded.is_empty();
        // The records are applied and sent: free them before the answers are built (a 1M-row
        // job's records are about 450 MB; its answers 90 MB more).
        let positions = appended.positions;
        let large = appended.recorded.len() >= crate::memory::LARGE_GROUP;
        drop(appended.recorded);
        if large {
            // Before the answers take memory again (a 1M-row job's peak was here).
            crate::memory::release_freed();
        }
        for (results, reply) in answers {
            let mut out = Vec::with_capacity(results.len());
            for r in results {
                out.push(match r {
                    Ok(Pending::Decided {
                        account,
                        events,
                        version,
                    }) => Ok(Executed {
                        account,
                        positions: positions[events].to_vec(),
                        replayed: false,
                        version,
                    }),
                    Ok(Pending::Replay { positions }) => replayed(&*self.ctx.log, positions).await,
                    Err(e) => Err(e),
                });
            }
            let _ = reply.send(BatchOutcome {
                results: out,
                written,
            });
        }
    }
}

/// Answer every request of a group that could not be decided with the store's failure.
fn fail_group(
    group: Vec<(Vec<Request>, BatchMode, oneshot::Sender<BatchOutcome>)>,
    error: impl Fn() -> StoreError,
) {
    for (requests, _, reply) in group {
        let results = requests
            .iter()
            .map(|_| Err(LedgerError::Store(error())))
            .collect();
        let _ = reply.send(BatchOutcome {
            results,
            written: false,
        });
    }
}

fn shift(p: Pending, offset: usize) -> Pending {
    match p {
        Pending::Decided {
            account,
            events,
            version,
        } => Pending::Decided {
            account,
            events: events.start + offset..events.end + offset,
            version,
        },
        replay => replay,
    }
}

/// Decide a job on a copy of a domain's state: the exact outcome, nothing written, no account
/// number used up (new accounts get the numbers they would likely get).
pub(crate) async fn decide_on_copy(
    log: &dyn EventLog,
    routes: &Routes,
    mut state: LedgerState,
    mut domain_version: u64,
    requests: Vec<Request>,
) -> BatchOutcome {
    let mut next = routes.peek_next_account();
    let mut predict = || {
        next += 1;
        next - 1
    };
    let decided = Decider {
        log,
        ids: &mut EventIds::new(),
        allocate: &mut predict,
        domain_version: &mut domain_version,
        seen: HashMap::new(),
        created: Vec::new(),
    }
    .decide_all(&mut state, requests, &mut EventParts::default());
    BatchOutcome {
        results: answer_unwritten(log, decided).await,
        written: false,
    }
}

/// Answers for a batch that writes nothing (dry run, refused strict batch).
async fn answer_unwritten(
    log: &dyn EventLog,
    results: Vec<Result<Pending, LedgerError>>,
) -> Vec<Result<Executed, LedgerError>> {
    let mut out = Vec::with_capacity(results.len());
    for r in results {
        out.push(match r {
            Ok(Pending::Decided {
                account, version, ..
            }) => Ok(Executed {
                account,
                positions: vec![],
                replayed: false,
                version,
            }),
            Ok(Pending::Replay { positions }) => replayed(log, positions).await,
            Err(e) => Err(e),
        });
    }
    out
}

/// The first answer to a request id, rebuilt from the events it recorded: the account acted
/// on and its stream version right after them.
async fn replayed(log: &dyn EventLog, positions: Vec<u64>) -> Result<Executed, LedgerError> {
    let events = log.read_positions(&positions).await?;
    let account = events.iter().find_map(|e| e.event.account());
    let version = events.last().map_or(0, |e| e.stream_version);
    Ok(Executed {
        account,
        positions,
        replayed: true,
        version,
    })
}
