//! The application service and its single writer.
//!
//! Every change goes through [`Ledger::execute`] (or [`Ledger::execute_batch`] for an import
//! job). Callers send requests over a channel to one writer task, which drains what is queued,
//! decides each command in order against its in-memory state, appends all resulting events in one
//! durable log batch (one flush + fsync for everyone queued: group commit), applies them to the
//! read projections, and then answers every caller. One writer gives, without locks, per-domain
//! serialization (two enables never both take the last license), group commit, and a total
//! order that replay reproduces. Reads use the projections and never wait for the writer's I/O.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use tokio::sync::{broadcast, mpsc, oneshot};
use uuid::Uuid;

use crate::domain::{self, AccountId, Command, DomainError, Event, LedgerState, StreamId};
use crate::projections::Projections;
use crate::store::{self, EventLog, NewEvent, RecordedEvent, Source, StoreError, ViewStore};

/// One command with who asked, through what, and retry/concurrency controls.
#[derive(Debug, Clone)]
pub struct Request {
    pub command: Command,
    pub actor: String,
    pub source: Source,
    /// A client's id for this request: a retry with the same id returns the first result and
    /// records nothing new. Only accepted requests are remembered (through their events): a
    /// retry of a refused request is decided again, which for a refusal gives the same answer
    /// unless the state changed meanwhile.
    pub request_id: Option<String>,
    /// The version the target account's stream must be at (optimistic concurrency).
    pub expected_version: Option<u64>,
}

impl Request {
    pub fn manual(actor: &str, command: Command) -> Request {
        Request {
            command,
            actor: actor.to_string(),
            source: Source::Manual,
            request_id: None,
            expected_version: None,
        }
    }
}

/// What one accepted command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executed {
    /// The account acted on (the new one for CreateAccount).
    pub account: Option<AccountId>,
    /// Log positions of its events (empty for a no-op).
    pub positions: Vec<u64>,
    /// True when this answers a retry of an earlier request id.
    pub replayed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// ABORTED: the stream (an account or a domain) moved on; re-read and retry.
    #[error("{stream} is at version {actual}, expected {expected}")]
    VersionMismatch {
        stream: StreamId,
        expected: u64,
        actual: u64,
    },
    /// UNAVAILABLE: the ledger is shutting down.
    #[error("the ledger is shutting down")]
    Closed,
}

/// How a batch (an import job) treats rows that are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchMode {
    /// Refused rows are reported; the others are appended, atomically, as one batch.
    BestEffort,
    /// Any refused row refuses the whole batch: nothing is appended.
    Strict,
    /// Decide everything, append nothing: the exact outcome without writing.
    DryRun,
}

/// The outcome of a batch: one result per request, and whether events were written.
#[derive(Debug)]
pub struct BatchOutcome {
    pub results: Vec<Result<Executed, LedgerError>>,
    pub written: bool,
}

/// Result of comparing a replay of the log with the live projections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub equal: bool,
    pub events_replayed: u64,
    pub accounts: usize,
    pub detail: String,
}

enum Job {
    Execute {
        requests: Vec<Request>,
        mode: BatchMode,
        reply: oneshot::Sender<BatchOutcome>,
    },
    Rebuild {
        reply: oneshot::Sender<Result<u64, LedgerError>>,
    },
    Verify {
        reply: oneshot::Sender<Result<Verification, LedgerError>>,
    },
    Close {
        reply: oneshot::Sender<Result<(), LedgerError>>,
    },
}

pub(crate) struct Shared {
    pub(crate) log: Arc<dyn EventLog>,
    pub(crate) views: Arc<dyn ViewStore>,
    pub(crate) read: RwLock<Projections>,
    pub(crate) live: broadcast::Sender<Arc<RecordedEvent>>,
}

/// Handle to the ledger; cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    pub(crate) shared: Arc<Shared>,
    jobs: mpsc::Sender<Job>,
}

/// Most requests the writer decides before one append (bounds latency of the first caller).
const MAX_GROUP: usize = 4096;

impl Ledger {
    /// Open the data directory and start the writer. Must run inside a tokio runtime.
    pub async fn open(dir: &Path) -> Result<Ledger, LedgerError> {
        let dir = dir.to_path_buf();
        let opened = tokio::task::spawn_blocking(move || store::open_store(&dir))
            .await
            .map_err(|e| StoreError::Io(e.to_string()))??;
        Ledger::start(Arc::new(opened.log), Arc::new(opened.views)).await
    }

    /// Start over any log and view store: load the views, catch up from their checkpoint.
    pub async fn start(
        log: Arc<dyn EventLog>,
        views: Arc<dyn ViewStore>,
    ) -> Result<Ledger, LedgerError> {
        let snapshot = views.load()?;
        let mut projections = if snapshot.checkpoint > log.last_position() {
            // Views ahead of the log cannot come from our writes; trust the log.
            views.clear()?;
            Projections::default()
        } else {
            Projections::from_snapshot(snapshot)
        };
        catch_up(&*log, &mut projections).await?;
        save_views(&mut projections, &*views)?;
        log.sync().await?;
        let decision_state = projections.state.clone();
        let (live, _) = broadcast::channel(8192);
        let shared = Arc::new(Shared {
            log,
            views,
            read: RwLock::new(projections),
            live,
        });
        let (jobs, rx) = mpsc::channel(65536);
        let writer = Writer {
            shared: shared.clone(),
            state: decision_state,
            last_save: Instant::now(),
            last_save_took: Duration::ZERO,
            ids: EventIds::new(),
        };
        tokio::spawn(writer.run(rx));
        Ok(Ledger { shared, jobs })
    }

    /// Execute one command: decided, durably appended, projected, then answered.
    pub async fn execute(&self, request: Request) -> Result<Executed, LedgerError> {
        let mut outcome = self
            .execute_batch(vec![request], BatchMode::BestEffort)
            .await?;
        outcome.results.pop().unwrap_or(Err(LedgerError::Closed))
    }

    /// Execute many commands as one job: decided in order, appended as one atomic batch.
    pub async fn execute_batch(
        &self,
        requests: Vec<Request>,
        mode: BatchMode,
    ) -> Result<BatchOutcome, LedgerError> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::Execute {
            requests,
            mode,
            reply,
        })
        .await?;
        rx.await.map_err(|_| LedgerError::Closed)
    }

    /// Drop the persisted projections and replay the whole log. Returns events replayed.
    pub async fn rebuild_projections(&self) -> Result<u64, LedgerError> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::Rebuild { reply }).await?;
        rx.await.map_err(|_| LedgerError::Closed)?
    }

    /// Replay the log into a scratch projection and compare it with the live one.
    pub async fn verify_projections(&self) -> Result<Verification, LedgerError> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::Verify { reply }).await?;
        rx.await.map_err(|_| LedgerError::Closed)?
    }

    /// Finish queued work, persist projections, flush. Later calls fail with `Closed`.
    pub async fn close(&self) -> Result<(), LedgerError> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::Close { reply }).await?;
        rx.await.map_err(|_| LedgerError::Closed)?
    }

    async fn send(&self, job: Job) -> Result<(), LedgerError> {
        self.jobs.send(job).await.map_err(|_| LedgerError::Closed)
    }

    /// The log behind the ledger (reads, audit).
    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.shared.log
    }

    /// Read the live projections.
    pub fn read<T>(&self, f: impl FnOnce(&LedgerState) -> T) -> T {
        let guard = self.shared.read.read().unwrap_or_else(|e| e.into_inner());
        f(&guard.state)
    }

    /// Last log position reflected in the projections.
    pub fn checkpoint(&self) -> u64 {
        self.shared
            .read
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .checkpoint
    }
}

/// How often the writer persists projection rows (and when idle that long). Between saves a
/// crash only costs a longer catch-up at start: the checkpoint says where the rows are. Under
/// heavy load the interval stretches to ten times the last save's duration, so saving never
/// takes more than a tenth of the writer's time.
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// Persist everything pending: license points, then rows with their checkpoint.
fn save_views(projections: &mut Projections, views: &dyn ViewStore) -> Result<(), StoreError> {
    views.save_license_points(&projections.take_license_points())?;
    views.save(&projections.take_batch())
}

/// Apply every event after the projections' checkpoint. Pages are decoded on a blocking thread
/// while the previous page is applied here, so replay uses both cores.
async fn catch_up(log: &dyn EventLog, projections: &mut Projections) -> Result<u64, StoreError> {
    const PAGE: usize = 16384;
    let last = log.last_position();
    let mut applied = 0;
    if projections.checkpoint >= last {
        return Ok(0);
    }
    let mut page = log
        .read_range(projections.checkpoint + 1, last, PAGE)
        .await?;
    while let Some(tail) = page.last().map(|e| e.position) {
        let next = async {
            if tail < last {
                log.read_range(tail + 1, last, PAGE).await
            } else {
                Ok(Vec::new())
            }
        };
        let apply = async {
            for e in &page {
                projections.apply(e);
            }
        };
        let (next, ()) = futures::join!(next, apply);
        applied += page.len() as u64;
        page = next?;
    }
    Ok(applied)
}

struct Writer {
    shared: Arc<Shared>,
    /// Decision state: ahead of the read projections while a group is being decided.
    state: LedgerState,
    last_save: Instant,
    last_save_took: Duration,
    ids: EventIds,
}

/// One accepted request waiting for its group's append.
struct Pending {
    account: Option<AccountId>,
    events: std::ops::Range<usize>,
    replayed: Option<Executed>,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        loop {
            let first = match tokio::time::timeout(SAVE_EVERY, rx.recv()).await {
                Ok(Some(job)) => job,
                Ok(None) => break,
                Err(_idle) => {
                    self.save_rows_if(true).await;
                    continue;
                }
            };
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
                    Job::Close { reply } => {
                        self.run_group(std::mem::take(&mut group)).await;
                        let result = self.persist_and_sync().await;
                        // Release the store (its file lock) before answering, so the caller
                        // may reopen the directory as soon as `close` returns.
                        drop(self);
                        let _ = reply.send(result);
                        return;
                    }
                    admin => {
                        self.run_group(std::mem::take(&mut group)).await;
                        self.run_admin(admin).await;
                        next = rx.try_recv().ok();
                    }
                }
            }
            self.run_group(group).await;
            self.save_rows_if(self.last_save.elapsed() >= SAVE_EVERY)
                .await;
        }
        // Every handle is gone: leave the views saved and durable.
        if let Err(e) = self.persist_and_sync().await {
            tracing::error!("saving projections at shutdown failed: {e}");
        }
    }

    /// Save projection rows when `due` and something changed. Made durable by the next append's
    /// flush, or right away when idle.
    async fn save_rows_if(&mut self, due: bool) {
        if !due
            || !self
                .shared
                .read
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .has_unsaved_rows()
        {
            return;
        }
        if let Err(e) = self.persist_and_sync().await {
            tracing::error!("saving projections failed: {e}");
        }
    }

    async fn run_admin(&mut self, job: Job) {
        match job {
            Job::Execute { .. } | Job::Close { .. } => {}
            Job::Rebuild { reply } => {
                let _ = reply.send(self.rebuild().await);
            }
            Job::Verify { reply } => {
                let _ = reply.send(self.verify().await);
            }
        }
    }

    async fn persist_and_sync(&mut self) -> Result<(), LedgerError> {
        let started = Instant::now();
        // Rows are cloned under the lock, encoded and written outside it.
        let (points, batch) = {
            let mut read = self.read_mut();
            (read.take_license_points(), read.take_batch())
        };
        self.shared.views.save_license_points(&points)?;
        self.shared.views.save(&batch)?;
        self.shared.log.sync().await?;
        self.last_save = Instant::now();
        self.last_save_took = started.elapsed();
        Ok(())
    }

    fn read_mut(&self) -> std::sync::RwLockWriteGuard<'_, Projections> {
        self.shared.read.write().unwrap_or_else(|e| e.into_inner())
    }

    async fn rebuild(&mut self) -> Result<u64, LedgerError> {
        let mut fresh = Projections::default();
        let replayed = catch_up(&*self.shared.log, &mut fresh).await?;
        self.shared.views.clear()?;
        save_views(&mut fresh, &*self.shared.views)?;
        self.shared.log.sync().await?;
        self.state = fresh.state.clone();
        *self.read_mut() = fresh;
        Ok(replayed)
    }

    async fn verify(&mut self) -> Result<Verification, LedgerError> {
        let mut fresh = Projections::default();
        let replayed = catch_up(&*self.shared.log, &mut fresh).await?;
        let live = self.shared.read.read().unwrap_or_else(|e| e.into_inner());
        let equal = live.same_view(&fresh);
        let detail = if equal {
            "replay equals the live projections".to_string()
        } else {
            describe_difference(&live, &fresh)
        };
        Ok(Verification {
            equal,
            events_replayed: replayed,
            accounts: fresh.state.accounts.len(),
            detail,
        })
    }

    async fn run_group(
        &mut self,
        group: Vec<(Vec<Request>, BatchMode, oneshot::Sender<BatchOutcome>)>,
    ) {
        if group.is_empty() {
            return;
        }
        let mut new_events: Vec<NewEvent> = Vec::new();
        let mut group_seen = HashMap::new();
        let mut answers = Vec::new();
        for (requests, mode, reply) in group {
            match mode {
                BatchMode::DryRun => {
                    let mut scratch = self.state.clone();
                    let mut scratch_events = Vec::new();
                    let results = Decider {
                        log: &*self.shared.log,
                        ids: &mut self.ids,
                        seen: HashMap::new(),
                    }
                    .decide_all(&mut scratch, requests, &mut scratch_events);
                    let results = results
                        .into_iter()
                        .map(|r| {
                            r.map(|p| {
                                p.replayed.unwrap_or(Executed {
                                    account: p.account,
                                    positions: vec![],
                                    replayed: false,
                                })
                            })
                        })
                        .collect();
                    let _ = reply.send(BatchOutcome {
                        results,
                        written: false,
                    });
                }
                BatchMode::Strict => {
                    let mut scratch = self.state.clone();
                    let mut scratch_events = Vec::new();
                    let results = Decider {
                        log: &*self.shared.log,
                        ids: &mut self.ids,
                        seen: HashMap::new(),
                    }
                    .decide_all(&mut scratch, requests, &mut scratch_events);
                    if results.iter().any(|r| r.is_err()) {
                        let results = results
                            .into_iter()
                            .map(|r| {
                                r.map(|p| Executed {
                                    account: p.account,
                                    positions: vec![],
                                    replayed: false,
                                })
                            })
                            .collect();
                        let _ = reply.send(BatchOutcome {
                            results,
                            written: false,
                        });
                    } else {
                        self.state = scratch;
                        let offset = new_events.len();
                        new_events.extend(scratch_events);
                        let results = results
                            .into_iter()
                            .map(|r| {
                                r.map(|mut p| {
                                    p.events = p.events.start + offset..p.events.end + offset;
                                    p
                                })
                            })
                            .collect();
                        answers.push((results, reply));
                    }
                }
                BatchMode::BestEffort => {
                    let mut decider = Decider {
                        log: &*self.shared.log,
                        ids: &mut self.ids,
                        seen: std::mem::take(&mut group_seen),
                    };
                    let results = decider.decide_all(&mut self.state, requests, &mut new_events);
                    group_seen = decider.seen;
                    answers.push((results, reply));
                }
            }
        }
        if answers.is_empty() {
            return;
        }
        let appended = if new_events.is_empty() {
            Ok(Default::default())
        } else {
            self.shared.log.append(new_events, Vec::new()).await
        };
        let appended = match appended {
            Ok(a) => a,
            Err(e) => {
                // Nothing of this group is acknowledged; go back to what is durable.
                self.state = self
                    .shared
                    .read
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .state
                    .clone();
                let msg = e.to_string();
                for (results, reply) in answers {
                    let results = results
                        .into_iter()
                        .map(|_| Err(LedgerError::Store(StoreError::Io(msg.clone()))))
                        .collect();
                    let _ = reply.send(BatchOutcome {
                        results,
                        written: false,
                    });
                }
                return;
            }
        };
        let points = {
            let mut read = self.read_mut();
            for e in &appended.recorded {
                read.apply(e);
            }
            read.take_license_points()
        };
        if let Err(e) = self.shared.views.save_license_points(&points) {
            // The log is durable; the series is rewritten by catch-up at restart.
            tracing::error!("saving license points failed: {e}");
        }
        if self.shared.live.receiver_count() > 0 {
            for e in &appended.recorded {
                let _ = self.shared.live.send(Arc::new(e.clone()));
            }
        }
        let written = !appended.recorded.is_empty();
        for (results, reply) in answers {
            let results = results
                .into_iter()
                .map(|r| {
                    r.map(|p| match p.replayed {
                        Some(done) => done,
                        None => Executed {
                            account: p.account,
                            positions: appended.positions[p.events].to_vec(),
                            replayed: false,
                        },
                    })
                })
                .collect();
            let _ = reply.send(BatchOutcome { results, written });
        }
    }
}

/// Event ids from a ChaCha20 CSPRNG seeded once from the OS (a `getrandom` syscall per event
/// showed in profiles).
pub(crate) struct EventIds(ChaCha20Rng);

impl EventIds {
    fn new() -> EventIds {
        EventIds(ChaCha20Rng::from_entropy())
    }

    fn next(&mut self) -> Uuid {
        let mut bytes = [0u8; 16];
        self.0.fill_bytes(&mut bytes);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
}

/// Decides the requests of one writer group against a state, collecting their events.
struct Decider<'a> {
    log: &'a dyn EventLog,
    ids: &'a mut EventIds,
    /// Request ids decided in this group (not yet in the log's index): a retry that arrives
    /// while the first attempt is still queued gets the first attempt's events.
    seen: HashMap<String, (Option<AccountId>, std::ops::Range<usize>)>,
}

impl Decider<'_> {
    /// Decide requests in order, evolving `state` and collecting events. A refused request
    /// leaves the state as it was.
    fn decide_all(
        &mut self,
        state: &mut LedgerState,
        requests: Vec<Request>,
        out: &mut Vec<NewEvent>,
    ) -> Vec<Result<Pending, LedgerError>> {
        requests
            .into_iter()
            .map(|req| self.decide_one(state, req, out))
            .collect()
    }

    fn decide_one(
        &mut self,
        state: &mut LedgerState,
        req: Request,
        out: &mut Vec<NewEvent>,
    ) -> Result<Pending, LedgerError> {
        let log = self.log;
        if let Some(id) = &req.request_id {
            let positions = log.request_positions(id);
            if !positions.is_empty() {
                let account = first_account_at(log, &positions);
                return Ok(Pending {
                    account,
                    events: 0..0,
                    replayed: Some(Executed {
                        account,
                        positions,
                        replayed: true,
                    }),
                });
            }
            if let Some((account, range)) = self.seen.get(id) {
                return Ok(Pending {
                    account: *account,
                    events: range.clone(),
                    replayed: None,
                });
            }
        }
        let mut command = req.command;
        if let Command::CreateAccount { account, .. } = &mut command {
            // Numbers start at 1: people read them in the CLI, and 0 looks like "unset".
            *account = state.next_account_id.max(1);
        }
        let target = match &command {
            Command::CreateAccount { account, .. } => Some(*account),
            other => other.target_account(),
        };
        if let Some(expected) = req.expected_version {
            let stream = command.stream();
            let actual = match &stream {
                StreamId::Account(account) => state.account(*account).map_or(0, |a| a.version),
                StreamId::Domain(_) => {
                    // Durable events of the stream plus those decided earlier in this group.
                    let pending = out.iter().filter(|e| e.event.stream() == stream).count();
                    log.stream_version(&stream) + pending as u64
                }
            };
            if actual != expected {
                return Err(LedgerError::VersionMismatch {
                    stream,
                    expected,
                    actual,
                });
            }
        }
        let events = domain::decide(state, &command)?;
        let start = out.len();
        for event in events {
            state.evolve(&event);
            out.push(NewEvent {
                event_id: self.ids.next(),
                actor: req.actor.clone(),
                source: req.source.clone(),
                request_id: req.request_id.clone(),
                event,
            });
        }
        let range = start..out.len();
        if let Some(id) = req.request_id {
            self.seen.insert(id, (target, range.clone()));
        }
        Ok(Pending {
            account: target,
            events: range,
            replayed: None,
        })
    }
}

/// The account of an earlier request (to answer its retry).
fn first_account_at(log: &dyn EventLog, positions: &[u64]) -> Option<AccountId> {
    let first = *positions.first()?;
    // The stream index knows which account stream holds this position; a linear probe over
    // one decode is simpler: the request's events all live in one chunk or two.
    futures::executor::block_on(log.read_positions(&[first]))
        .ok()?
        .first()
        .and_then(|e| e.event.account())
}

fn describe_difference(live: &Projections, replay: &Projections) -> String {
    if live.checkpoint != replay.checkpoint {
        return format!(
            "live checkpoint {} but the log ends at {}",
            live.checkpoint, replay.checkpoint
        );
    }
    let (a, b) = (&live.state, &replay.state);
    for (name, d) in &b.domains {
        if a.domains.get(name) != Some(d) {
            return format!(
                "domain {name:?} differs: live {:?}, replay {d:?}",
                a.domains.get(name)
            );
        }
    }
    for (id, acc) in &b.accounts {
        if a.accounts.get(id) != Some(acc) {
            return format!("account {id} differs");
        }
    }
    if a.accounts.len() != b.accounts.len() {
        return format!(
            "live has {} accounts, replay {}",
            a.accounts.len(),
            b.accounts.len()
        );
    }
    "indexes differ".to_string()
}

/// Which stream of a domain an event belongs to, for subscriptions filtered by domain.
pub(crate) fn event_domain(state: &LedgerState, e: &Event) -> Option<String> {
    match e.stream() {
        StreamId::Domain(d) => Some(d),
        StreamId::Account(a) => state.accounts.get(&a).map(|acc| acc.domain.clone()),
    }
}
