//! The application service: every change goes through [`Ledger::execute`] (or
//! [`Ledger::execute_batch`] for an import job).
//!
//! Domains are the unit of consistency (licenses, logins and import ids are per domain), so
//! each domain is a partition with one writer task ([`partition`]) that owns its decisions:
//! commands of one domain are decided in order (two enables never both take the last
//! license), and domains decide in parallel. All partitions append to one log, which gives
//! every event a gap-free position in commit order and shares one flush + fsync among the
//! partitions appending at once. Reads go to the partitions' read models and never wait for a
//! writer. Rebuild, verify and dry runs replay or decide on snapshots, off the write path.
//!
//! Layout: [`routes`] (who owns which domain and account), [`decider`] (request ids, expected
//! versions, `decide`), [`partition`] (the writer), [`replay`] (log → projections),
//! [`maintenance`] (saving views, rebuild, verify).

mod account_table;
pub mod clock;
mod cluster;
mod decider;
mod error;
mod maintenance;
mod partition;
mod replay;
mod revert;
mod routes;
mod schedules;
mod writer_stop;
#[cfg(test)]
pub(crate) use writer_stop::tests as writer_faults;

pub use clock::{Clock, ManualClock, SystemClock};
pub use cluster::{FOLLOW_EVERY, Forwarder};
pub use error::LedgerError;
pub use revert::{RevertOutcome, RevertPlan, RevertStep};
pub use schedules::{Fired, SCHEDULER};

use std::path::Path;
use std::sync::{Arc, RwLock};

use tokio::sync::{broadcast, mpsc, oneshot};

use crate::domain::{AccountId, Command, DomainError, Event, LedgerState, StreamId};
use crate::projections::Projections;
use crate::store::{self, EventLog, RecordedEvent, Source, StoreError, StoreOptions, ViewStore};
use partition::{Job, Partition, Writer, WriterContext};
use replay::Replay;
use routes::Routes;

pub use maintenance::Verification;

/// One command with who asked, through what, and retry/concurrency controls. (Serializable:
/// a server forwards commands to the server deciding their domain.)
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Request {
    pub command: Command,
    pub actor: Arc<str>,
    pub source: Source,
    /// A client's id for this request: a retry with the same id returns the first result and
    /// records nothing new. Only accepted requests are remembered (through their events): a
    /// retry of a refused request is decided again, which for a refusal gives the same answer
    /// unless the state changed meanwhile.
    pub request_id: Option<String>,
    /// The version the command's stream (its account, or its domain) must be at.
    pub expected_version: Option<u64>,
}

impl Request {
    pub fn manual(actor: &str, command: Command) -> Request {
        Request {
            command,
            actor: actor.into(),
            source: Source::Manual,
            request_id: None,
            expected_version: None,
        }
    }
}

/// What one accepted command did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Executed {
    /// The account acted on (the new one for CreateAccount).
    pub account: Option<AccountId>,
    /// Log positions of its events (empty for a no-op).
    pub positions: Vec<u64>,
    /// True when this answers a retry of an earlier request id.
    pub replayed: bool,
    /// The version of the command's stream (account or domain) right after it; for a retry,
    /// the version the first attempt answered.
    pub version: u64,
}

/// How a batch (an import job) treats rows that are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BatchMode {
    /// Refused rows are reported; the others are appended, atomically, as one batch.
    BestEffort,
    /// Any refused row refuses the whole batch: nothing is appended.
    Strict,
    /// Decide everything, append nothing: the exact outcome without writing.
    DryRun,
}

/// The outcome of a batch: one result per request, and whether events were written.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct BatchOutcome {
    pub results: Vec<Result<Executed, LedgerError>>,
    pub written: bool,
}

pub(crate) struct Shared {
    pub(crate) log: Arc<dyn EventLog>,
    pub(crate) views: Arc<dyn ViewStore>,
    pub(crate) routes: Arc<Routes>,
    /// Job senders by partition index.
    senders: RwLock<Vec<mpsc::Sender<Job>>>,
    pub(crate) live: broadcast::Sender<Arc<RecordedEvent>>,
    /// Saves and rebuilds of the persisted views, one at a time.
    save_lock: Arc<tokio::sync::Mutex<()>>,
    /// Folds of many accounts as of an instant, one at a time: each holds a district's past
    /// rows in memory while it runs (see [`crate::queries::PastView`]).
    pub(crate) large_folds: Arc<tokio::sync::Semaphore>,
    /// The floor last persisted (a save with nothing new is skipped).
    saved_floor: std::sync::atomic::AtomicU64,
    closed: std::sync::atomic::AtomicBool,
    /// The time scheduled changes fire by.
    clock: Arc<dyn Clock>,
    /// Set on a store several servers share (PostgreSQL): leases, forwarding, the follower.
    pub(crate) cluster: Option<Arc<cluster::Cluster>>,
    /// How many domains' writers stopped on a panic ([`LedgerError::WriterStopped`]).
    stopped_writers: Arc<tokio::sync::watch::Sender<usize>>,
}

/// Handle to the ledger; cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    pub(crate) shared: Arc<Shared>,
}

impl Ledger {
    /// Open the data directory and start the writers. Must run inside a tokio runtime. The
    /// log is indexed while the views load (both cores, disjoint trees).
    pub async fn open(dir: &Path) -> Result<Ledger, LedgerError> {
        Ledger::open_with(dir, StoreOptions::default()).await
    }

    /// [`Ledger::open`] with options (accepting data loss).
    pub async fn open_with(dir: &Path, options: StoreOptions) -> Result<Ledger, LedgerError> {
        Ledger::open_with_clock(dir, options, Arc::new(SystemClock)).await
    }

    /// [`Ledger::open_with`], firing scheduled changes by `clock` (tests move it by hand).
    pub async fn open_with_clock(
        dir: &Path,
        options: StoreOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Ledger, LedgerError> {
        let dir = dir.to_path_buf();
        let vault_path = dir.join("keys.vault");
        let started = std::time::Instant::now();
        let opened = tokio::task::spawn_blocking(move || store::open_store_with(&dir, options))
            .await
            .map_err(|e| StoreError::Io(e.to_string()))??;
        tracing::info!(
            "store opened in {:.2?} (sled and the key vault)",
            started.elapsed()
        );
        let vault = opened.vault.clone();
        let log = Arc::new(opened.log);
        let views: Arc<dyn ViewStore> = Arc::new(opened.views);
        let indexing = {
            let log = log.clone();
            tokio::task::spawn_blocking(move || log.index_log())
        };
        let (indexed, loaded) = tokio::join!(indexing, load_views(views.clone()));
        indexed.map_err(|e| StoreError::Io(e.to_string()))??;
        let ledger = Ledger::start_from(log, views, loaded?, clock, None).await?;
        ledger.check_live_keys(&vault, &vault_path, options)?;
        tracing::info!("ledger open in {:.2?}", started.elapsed());
        Ok(ledger)
    }

    /// Open over a PostgreSQL event log and key table (`schema` in the database at `url`),
    /// with the views as a local cache in `views_dir` (derived data: rebuilt from the log when
    /// missing or behind).
    pub async fn open_postgres(
        views_dir: &Path,
        url: &str,
        schema: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<Ledger, LedgerError> {
        let started = std::time::Instant::now();
        let log = store::pg_log::PgEventLog::open(url, schema).await?;
        let vault = log.vault();
        let identity = log.identity().await?;
        let dir = views_dir.to_path_buf();
        let cache_vault = vault.clone();
        let views = tokio::task::spawn_blocking(move || {
            let views = store::sled_views::open_cache(&dir, cache_vault)?;
            // A cache made from another store (the schema dropped and made again, another
            // database) starts over: its positions mean nothing here.
            let mark = dir.join("STORE_ID");
            let id = identity.to_string();
            if std::fs::read_to_string(&mark).ok().as_deref() != Some(id.as_str()) {
                views.clear()?;
                std::fs::write(&mark, &id)?;
            }
            Ok::<_, StoreError>(views)
        })
        .await
        .map_err(|e| StoreError::Io(e.to_string()))??;
        let views: Arc<dyn ViewStore> = Arc::new(views);
        let loaded = load_views(views.clone()).await?;
        let server = uuid::Uuid::new_v4();
        let coordination = store::pg_cluster::PgCluster::open(url, schema, server).await?;
        let ledger =
            Ledger::start_from(Arc::new(log), views, loaded, clock, Some(coordination)).await?;
        ledger.check_live_keys(
            &vault,
            Path::new(&format!("PostgreSQL schema {schema}")),
            StoreOptions::default(),
        )?;
        tracing::info!("ledger open on PostgreSQL in {:.2?}", started.elapsed());
        Ok(ledger)
    }

    /// Every account not deleted must have its key: without it the account's personal data
    /// reads blank, which must never pass for an intact ledger.
    fn check_live_keys(
        &self,
        vault: &store::vault::Vault,
        vault_path: &Path,
        options: StoreOptions,
    ) -> Result<(), StoreError> {
        let mut missing = Vec::new();
        for part in self.shared.routes.all() {
            let read = part.read();
            let live = read
                .state
                .accounts
                .iter()
                .filter(|(_, a)| !a.deleted)
                .map(|(id, _)| *id);
            missing.extend(vault.missing_keys(live));
        }
        if missing.is_empty() {
            return Ok(());
        }
        missing.sort_unstable();
        let first: Vec<String> = missing
            .iter()
            .take(5)
            .map(|a| format!("account {a}"))
            .collect();
        store::sled_log::accept_or_refuse(
            options,
            vault_path.to_path_buf(),
            format!(
                "{} accounts that are not deleted have no key (first: {}): their personal data \
                 cannot be read",
                missing.len(),
                first.join(", ")
            ),
        )
    }

    /// Start over any log and view store: load the views, catch up from their checkpoints.
    pub async fn start(
        log: Arc<dyn EventLog>,
        views: Arc<dyn ViewStore>,
    ) -> Result<Ledger, LedgerError> {
        let loaded = load_views(views.clone()).await?;
        Ledger::start_from(log, views, loaded, Arc::new(SystemClock), None).await
    }

    /// Catch the loaded views up with the log and start a writer per domain.
    async fn start_from(
        log: Arc<dyn EventLog>,
        views: Arc<dyn ViewStore>,
        loaded: Replay,
        clock: Arc<dyn Clock>,
        coordination: Option<store::pg_cluster::PgCluster>,
    ) -> Result<Ledger, LedgerError> {
        let started = std::time::Instant::now();
        let mut replay = if loaded.position > log.last_position() {
            // Views ahead of the log cannot come from our writes; trust the log.
            views.clear()?;
            Replay::default()
        } else {
            loaded
        };
        let caught_up = replay.catch_up(&*log).await?;
        tracing::info!(
            events = caught_up,
            "views caught up with the log in {:.2?}",
            started.elapsed()
        );
        let (live, _) = broadcast::channel(8192);
        let cluster = coordination.map(|c| Arc::new(cluster::Cluster::new(c, replay.position)));
        let shared = Arc::new(Shared {
            log,
            views,
            routes: Arc::new(Routes::default()),
            senders: RwLock::new(Vec::new()),
            live,
            save_lock: Arc::new(tokio::sync::Mutex::new(())),
            large_folds: Arc::new(tokio::sync::Semaphore::new(1)),
            saved_floor: u64::MAX.into(),
            closed: false.into(),
            clock,
            cluster,
            stopped_writers: Arc::new(tokio::sync::watch::channel(0).0),
        });
        let ledger = Ledger { shared };
        for projections in replay.into_parts() {
            let Some(domain) = projections.domain().map(str::to_string) else {
                continue;
            };
            let ids: Vec<AccountId> = projections.state.accounts.keys().copied().collect();
            let part = ledger.add_partition(&domain, projections);
            ledger.shared.routes.register_accounts(part.index, &ids);
            part.build_index();
        }
        tracing::info!(
            "writers started {:.2?} after the views loaded (list and search indexes building)",
            started.elapsed()
        );
        ledger.save_views().await?;
        maintenance::spawn_saver(Arc::downgrade(&ledger.shared));
        schedules::spawn_firer(Arc::downgrade(&ledger.shared));
        if ledger.shared.cluster.is_some() {
            cluster::spawn_tasks(Arc::downgrade(&ledger.shared));
        }
        Ok(ledger)
    }

    fn writer_context(&self) -> WriterContext {
        WriterContext {
            log: self.shared.log.clone(),
            routes: self.shared.routes.clone(),
            live: self.shared.live.clone(),
            cluster: self.shared.cluster.clone(),
            stopped_writers: self.shared.stopped_writers.clone(),
        }
    }

    /// The partition of `domain`, created with its writer when new.
    fn add_partition(&self, domain: &str, projections: Projections) -> Arc<Partition> {
        let ctx = self.writer_context();
        let mut senders = self
            .shared
            .senders
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let (part, created) = self.shared.routes.partition_or_insert(domain, |index| {
            Arc::new(Partition::new(index, domain, projections))
        });
        if created {
            let tx = Writer::spawn(ctx, part.clone());
            senders.push(tx);
        }
        part
    }

    fn sender(&self, part: &Partition) -> Option<mpsc::Sender<Job>> {
        self.shared
            .senders
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(part.index as usize)
            .cloned()
    }

    /// The partition a command belongs to. A domain's partition is created by its
    /// registration; a command for an unknown domain or account is refused here, as `decide`
    /// would.
    fn route(&self, command: &Command) -> Result<Arc<Partition>, LedgerError> {
        match command {
            Command::RegisterDomain { domain, .. } => {
                Ok(match self.shared.routes.partition(domain) {
                    Some(p) => p,
                    None => {
                        // A refused registration (a bad name) must not leave a partition.
                        crate::domain::decide(&LedgerState::default(), command)?;
                        self.add_partition(domain, Projections::default())
                    }
                })
            }
            Command::SetLicenseLimit { domain, .. }
            | Command::SetMassChangeGuard { domain, .. }
            | Command::CreateAccount { domain, .. }
            | Command::ScheduleChange { domain, .. }
            | Command::CancelSchedule { domain, .. }
            | Command::FireSchedule { domain, .. }
            | Command::HoldImport { domain, .. }
            | Command::SetDeletionGrace { domain, .. }
            | Command::RecordImportJob { domain, .. } => self
                .shared
                .routes
                .partition(domain)
                .ok_or_else(|| unknown_domain(domain)),
            other => {
                let account = other.target_account().unwrap_or_default();
                self.shared
                    .routes
                    .account(account)
                    .ok_or_else(|| DomainError::UnknownAccount { account }.into())
            }
        }
    }

    /// Execute one command: decided, durably appended, projected, then answered.
    pub async fn execute(&self, request: Request) -> Result<Executed, LedgerError> {
        let mut outcome = self
            .execute_batch(vec![request], BatchMode::BestEffort)
            .await?;
        outcome.results.pop().unwrap_or(Err(LedgerError::Closed))
    }

    /// Execute many commands as one job: decided in order by their domain's writer, appended
    /// as one atomic batch. A job's commands must all belong to one domain (an import job
    /// does); a job spanning domains is split by domain and is atomic per domain only.
    pub async fn execute_batch(
        &self,
        requests: Vec<Request>,
        mode: BatchMode,
    ) -> Result<BatchOutcome, LedgerError> {
        self.execute_routed(requests, mode, true).await
    }

    /// A batch another server forwarded here: decided here (taking the domain's lease if it
    /// is free) or refused, never forwarded again.
    pub async fn execute_forwarded(
        &self,
        requests: Vec<Request>,
        mode: BatchMode,
    ) -> Result<BatchOutcome, LedgerError> {
        self.execute_routed(requests, mode, false).await
    }

    async fn execute_routed(
        &self,
        requests: Vec<Request>,
        mode: BatchMode,
        may_forward: bool,
    ) -> Result<BatchOutcome, LedgerError> {
        let started = std::time::Instant::now();
        let kinds: Vec<&'static str> = requests.iter().map(|r| r.command.kind()).collect();
        let outcome = self.execute_routed_inner(requests, mode, may_forward).await;
        if mode != BatchMode::DryRun {
            crate::metrics::record_batch(&kinds, outcome.as_ref(), started.elapsed());
        }
        outcome
    }

    async fn execute_routed_inner(
        &self,
        requests: Vec<Request>,
        mode: BatchMode,
        may_forward: bool,
    ) -> Result<BatchOutcome, LedgerError> {
        if self.is_closed() {
            return Err(LedgerError::Closed);
        }
        // Group by partition, keeping each request's place in the answer. Requests that
        // cannot be routed are answered from `unrouted`: a slot per request allocated up front
        // held about 290 MB through a million-row import's append.
        let mut unrouted: Vec<(usize, LedgerError)> = Vec::new();
        let mut groups: Vec<(Arc<Partition>, Vec<usize>, Vec<Request>)> = Vec::new();
        let mut followed = false;
        let total = requests.len();
        for (i, req) in requests.into_iter().enumerate() {
            let mut routed = self.route(&req.command);
            if routed.is_err() && self.shared.cluster.is_some() && !followed {
                // Maybe made on another server a moment ago: read what it appended, once.
                followed = true;
                self.follow().await?;
                routed = self.route(&req.command);
            }
            match routed {
                Ok(part) => match groups.iter_mut().find(|g| g.0.index == part.index) {
                    Some(g) => {
                        g.1.push(i);
                        g.2.push(req);
                    }
                    None => {
                        // Sized for the rest of the batch: an import names one domain, and
                        // growing a million-request Vec by doubling copies and faults it in
                        // again and again. Space never filled is never touched.
                        let rest = total - i;
                        let mut places = Vec::with_capacity(rest);
                        let mut reqs = Vec::with_capacity(rest);
                        places.push(i);
                        reqs.push(req);
                        groups.push((part, places, reqs))
                    }
                },
                Err(e) => unrouted.push((i, e)),
            }
        }
        let mut written = false;
        let mut answered: Vec<GroupAnswers> = Vec::new();
        if mode == BatchMode::Strict && !unrouted.is_empty() {
            // A strict job with a row that cannot even be routed writes nothing.
            for (part, places, reqs) in groups.drain(..) {
                let mut outcome = self.dry_run(&part, reqs).await;
                for e in outcome.results.iter_mut().flatten() {
                    e.positions.clear();
                }
                answered.push((places, outcome.results));
            }
        }
        for (part, places, reqs) in groups {
            let outcome = if mode == BatchMode::DryRun {
                self.dry_run(&part, reqs).await
            } else {
                self.run_on_owner(&part, reqs, mode, may_forward).await?
            };
            written |= outcome.written;
            answered.push((places, outcome.results));
        }
        Ok(BatchOutcome {
            results: in_request_order(total, answered, unrouted),
            written,
        })
    }

    /// Hand a batch to this server's writer of its domain.
    async fn run_here(
        &self,
        part: &Partition,
        requests: Vec<Request>,
        mode: BatchMode,
    ) -> Result<BatchOutcome, LedgerError> {
        let sender = self.sender(part).ok_or(LedgerError::Closed)?;
        let (reply, rx) = oneshot::channel();
        if sender
            .send(Job::Execute {
                requests,
                mode,
                reply,
            })
            .await
            .is_err()
        {
            return Err(part.writer_gone().await);
        }
        match rx.await {
            Ok(answer) => Ok(answer),
            Err(_) => Err(part.writer_gone().await),
        }
    }

    /// Decide a job on a copy of its domain's read model, in the caller's task: the exact
    /// outcome, nothing written, and the domain's writer never waits for it.
    async fn dry_run(&self, part: &Partition, requests: Vec<Request>) -> BatchOutcome {
        let state = part.read().state.clone();
        let domain_version = self
            .shared
            .log
            .stream_version(&StreamId::Domain(part.domain.clone()));
        partition::decide_on_copy(
            &*self.shared.log,
            &self.shared.routes,
            state,
            domain_version,
            requests,
        )
        .await
    }

    /// Drop the persisted projections and replay the whole log, while commands go on.
    /// Returns events replayed.
    pub async fn rebuild_projections(&self) -> Result<u64, LedgerError> {
        maintenance::rebuild(self).await
    }

    /// Replay the log into scratch projections and compare them with the live ones, while
    /// commands go on.
    pub async fn verify_projections(&self) -> Result<Verification, LedgerError> {
        maintenance::verify(self).await
    }

    /// Finish queued work, persist projections, flush. Later calls fail with `Closed`.
    pub async fn close(&self) -> Result<(), LedgerError> {
        self.shared
            .closed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let senders: Vec<_> = self
            .shared
            .senders
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for tx in senders {
            let (reply, rx) = oneshot::channel();
            if tx.send(Job::Close { reply }).await.is_ok() {
                let _ = rx.await;
            }
        }
        self.save_views().await?;
        self.shared.log.sync().await?;
        self.leave_cluster().await?;
        Ok(())
    }

    /// How many domains' writers stopped on a panic, watched: health says NOT_SERVING from
    /// the first (a restart brings the domains back from the log).
    pub fn stopped_writers(&self) -> tokio::sync::watch::Receiver<usize> {
        self.shared.stopped_writers.subscribe()
    }

    fn is_closed(&self) -> bool {
        self.shared.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Persist every partition's changed rows and checkpoint (also done once a second).
    pub async fn save_views(&self) -> Result<(), LedgerError> {
        maintenance::save_all(&self.shared).await
    }

    /// The log behind the ledger (reads, audit).
    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.shared.log
    }

    /// Read one domain's live state (its domain row and accounts). None for an unknown domain.
    pub fn read_domain<T>(&self, domain: &str, f: impl FnOnce(&LedgerState) -> T) -> Option<T> {
        let part = self.shared.routes.partition(domain)?;
        let read = part.read();
        read.domain()?;
        Some(f(&read.state))
    }

    /// Read one domain's live state; an empty state for an unknown domain (so rules that look
    /// for the domain refuse as they would).
    pub fn read_domain_or_empty<T>(&self, domain: &str, f: impl FnOnce(&LedgerState) -> T) -> T {
        match self.shared.routes.partition(domain) {
            Some(part) => f(&part.read().state),
            None => f(&LedgerState::default()),
        }
    }

    /// Read the live state of the domain that holds `account`.
    pub fn read_account_domain<T>(
        &self,
        account: AccountId,
        f: impl FnOnce(&LedgerState) -> T,
    ) -> Option<T> {
        let part = self.shared.routes.account(account)?;
        let read = part.read();
        Some(f(&read.state))
    }

    /// A copy of every domain's live state merged into one (tests, tools; costs a full copy).
    pub fn state_snapshot(&self) -> LedgerState {
        let mut all = LedgerState::default();
        for part in self.shared.routes.all() {
            all.merge(part.read().state.clone());
        }
        all
    }

    /// The domain an event belongs to, for subscriptions and audit filtered by domain.
    pub fn event_domain(&self, e: &Event) -> Option<String> {
        match e.stream() {
            StreamId::Domain(d) => Some(d),
            StreamId::Account(a) => self.shared.routes.account(a).map(|p| p.domain.clone()),
        }
    }
}

/// Load the persisted views into per-domain projections (on a blocking thread).
async fn load_views(views: Arc<dyn ViewStore>) -> Result<Replay, LedgerError> {
    tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let snapshot = views.load()?;
        let domains = snapshot.partitions.len();
        let read = started.elapsed();
        let replay = Replay::from_snapshot(snapshot);
        tracing::info!(
            domains,
            "views loaded in {:.2?} (rows read and opened in {read:.2?}, then built into maps)",
            started.elapsed()
        );
        Ok(replay)
    })
    .await
    .map_err(|e| StoreError::Io(e.to_string()))?
}

/// One partition's answers, with the places of its requests in the batch.
type GroupAnswers = (Vec<usize>, Vec<Result<Executed, LedgerError>>);

/// A batch's answers in the order of its requests: each group's results at its places, and
/// the unrouted requests' errors. A batch that went to one partition whole (an import job)
/// is answered in order already and is passed through as it is.
fn in_request_order(
    total: usize,
    mut answered: Vec<GroupAnswers>,
    unrouted: Vec<(usize, LedgerError)>,
) -> Vec<Result<Executed, LedgerError>> {
    if unrouted.is_empty()
        && answered.len() == 1
        && answered[0].0.len() == total
        && answered[0].1.len() == total
    {
        return answered
            .pop()
            .map(|(_, results)| results)
            .unwrap_or_default();
    }
    let mut slots: Vec<Option<Result<Executed, LedgerError>>> = (0..total).map(|_| None).collect();
    for (places, results) in answered {
        for (i, r) in places.into_iter().zip(results) {
            slots[i] = Some(r);
        }
    }
    for (i, e) in unrouted {
        slots[i] = Some(Err(e));
    }
    slots
        .into_iter()
        .map(|r| r.unwrap_or(Err(LedgerError::Closed)))
        .collect()
}

fn unknown_domain(domain: &str) -> LedgerError {
    DomainError::UnknownDomain {
        domain: domain.to_string(),
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(n: u64) -> Result<Executed, LedgerError> {
        Ok(Executed {
            account: Some(n),
            positions: vec![n],
            replayed: false,
            version: 1,
        })
    }

    fn account(r: &Result<Executed, LedgerError>) -> Option<u64> {
        r.as_ref().ok().and_then(|e| e.account)
    }

    #[test]
    fn answers_follow_the_requests_order() {
        // Two groups interleaved, and one request that could not be routed.
        let answered = vec![
            (vec![0, 3], vec![ok(10), ok(13)]),
            (vec![1, 4], vec![ok(11), ok(14)]),
        ];
        let unrouted = vec![(2, unknown_domain("x"))];
        let out = in_request_order(5, answered, unrouted);
        let got: Vec<_> = out.iter().map(account).collect();
        assert_eq!(got, vec![Some(10), Some(11), None, Some(13), Some(14)]);
        assert!(matches!(out[2], Err(LedgerError::Domain(_))));
        // One group with every request: passed through.
        let whole = in_request_order(2, vec![(vec![0, 1], vec![ok(1), ok(2)])], Vec::new());
        assert_eq!(
            whole.iter().map(account).collect::<Vec<_>>(),
            vec![Some(1), Some(2)]
        );
    }
}
