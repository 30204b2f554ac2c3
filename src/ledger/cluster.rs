//! Several servers over one PostgreSQL store. Every server serves reads for every domain from
//! its own read models; each domain's commands are decided by exactly one server at a time,
//! the holder of the domain's lease ([`crate::store::pg_cluster`]).
//!
//! - **Who decides.** A command for a domain this server holds goes to the domain's writer as
//!   on one server. A domain nobody holds (or whose lease ran out) is taken over on the spot.
//!   A domain another live server holds is **forwarded** to that server (`Peer/Execute`),
//!   which answers as if called directly: taking the lease over instead would make two busy
//!   servers steal a domain back and forth, each steal a catch-up, and a client talking to
//!   any server should not decide where work runs.
//! - **Fencing.** The writer appends with the epoch it took the lease at; the store refuses
//!   the append if the lease moved ([`crate::store::StoreError::LeaseLost`]) and the command
//!   is routed again. Two servers can never both take a domain's last license.
//! - **Reads catch up.** A follower reads what other servers appended (woken by the store's
//!   notification of each commit, at the latest every [`FOLLOW_EVERY`], and at once when a
//!   command names something not seen yet) and applies it to the read models of domains this
//!   server does not hold.
//! - **Losing a domain.** While a domain is held here the follower leaves its events to the
//!   writer, noting those the read model does not have yet. A lease can be gone before this
//!   server knows it (a stall past [`LEASE_TTL`]; the renewal or a refused append tells), and
//!   an append can fail after its COMMIT: once the lease is dropped here, the noted events
//!   (the new owner's, or this server's unacknowledged ones) are read back and applied first.
//! - **Taking a domain over** first applies everything committed before the lease was won,
//!   then gives the writer that state: the new owner decides on the whole history.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use uuid::Uuid;

use super::partition::{Job, Partition};
use super::{BatchMode, BatchOutcome, Ledger, LedgerError, Request, Shared};
use crate::domain::{Event, StreamId};
use crate::projections::Projections;
use crate::store::pg_cluster::{Claim, Fence, LEASE_TTL, PgCluster};
use crate::store::{RecordedEvent, StoreError};

/// How often a server looks for what the others appended when no notification woke it (the
/// store notifies each commit; this is the fallback).
pub const FOLLOW_EVERY: Duration = Duration::from_millis(250);
/// How often held leases are renewed (well inside [`LEASE_TTL`]).
const RENEW_EVERY: Duration = Duration::from_secs(1);
/// Account numbers reserved at a time (fewer round trips; unused ones are skipped).
const NUMBER_BLOCK: u64 = 256;

/// Sends a batch to the server at `address` (the API layer implements it over gRPC).
#[async_trait]
pub trait Forwarder: Send + Sync {
    async fn forward(
        &self,
        address: &str,
        requests: Vec<Request>,
        mode: BatchMode,
    ) -> Result<Result<BatchOutcome, LedgerError>, String>;
}

/// Where a domain's commands are decided now.
pub(crate) enum Owner {
    Here,
    Peer(String),
}

pub(crate) struct Cluster {
    pub(crate) store: Arc<PgCluster>,
    /// Owners seen in the store, remembered until their lease would run out.
    owners: Mutex<HashMap<String, (String, Instant)>>,
    /// One catch-up at a time; every event through `delivered` is applied.
    follow: tokio::sync::Mutex<()>,
    delivered: AtomicU64,
    forwarder: RwLock<Option<Arc<dyn Forwarder>>>,
    /// Where peers reach this server, once announced.
    address: Mutex<Option<String>>,
}

impl Cluster {
    pub(crate) fn new(store: PgCluster, delivered: u64) -> Cluster {
        Cluster {
            store: Arc::new(store),
            owners: Mutex::default(),
            follow: tokio::sync::Mutex::new(()),
            delivered: AtomicU64::new(delivered),
            forwarder: RwLock::new(None),
            address: Mutex::new(None),
        }
    }

    pub(crate) fn server(&self) -> Uuid {
        self.store.server()
    }

    /// Every event through this position is in the read models.
    pub(crate) fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Acquire)
    }

    pub(crate) fn set_forwarder(&self, f: Arc<dyn Forwarder>) {
        *self.forwarder.write().unwrap_or_else(|e| e.into_inner()) = Some(f);
    }

    fn forwarder(&self) -> Option<Arc<dyn Forwarder>> {
        self.forwarder
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn remembered_owner(&self, domain: &str) -> Option<String> {
        let owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
        owners
            .get(domain)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(a, _)| a.clone())
    }

    fn forget_owner(&self, domain: &str) {
        self.owners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(domain);
    }

    /// `n` account numbers for a writer.
    pub(crate) async fn reserve_numbers(
        &self,
        n: u64,
        at_least: u64,
    ) -> Result<Range<u64>, StoreError> {
        self.store
            .reserve_accounts(n.max(NUMBER_BLOCK), at_least)
            .await
    }
}

impl Ledger {
    /// Let this server forward commands to the servers that decide their domains.
    pub fn set_forwarder(&self, f: Arc<dyn Forwarder>) {
        if let Some(c) = &self.shared.cluster {
            c.set_forwarder(f);
        }
    }

    /// Tell the other servers where to forward commands to this one.
    pub async fn announce(&self, address: &str) -> Result<(), LedgerError> {
        if let Some(c) = &self.shared.cluster {
            c.store.announce(address).await?;
            *c.address.lock().unwrap_or_else(|e| e.into_inner()) = Some(address.to_string());
        }
        Ok(())
    }

    /// [`Ledger::announce`] unless an address was announced already.
    pub async fn announce_default(&self, address: &str) -> Result<(), LedgerError> {
        let announced = self.shared.cluster.as_ref().is_some_and(|c| {
            c.address
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some()
        });
        if announced {
            return Ok(());
        }
        self.announce(address).await
    }

    /// The secret servers of one store forward commands with (None on a one-server store).
    pub async fn peer_secret(&self) -> Result<Option<Vec<u8>>, LedgerError> {
        match &self.shared.cluster {
            Some(c) => Ok(Some(c.store.secret().await?)),
            None => Ok(None),
        }
    }

    /// The store's shared coordination (tokens live there too), on a multi-server store.
    pub fn cluster_store(&self) -> Option<Arc<PgCluster>> {
        self.shared.cluster.as_ref().map(|c| c.store.clone())
    }

    /// Run a batch of one partition where its domain is decided: here, or forwarded. A batch
    /// refused because the lease moved meanwhile is routed again (until a lease could have
    /// run out twice). `may_forward` is false for a batch a peer forwarded here: it is decided
    /// here or refused, never sent on (no forwarding loops).
    pub(crate) async fn run_on_owner(
        &self,
        part: &Arc<Partition>,
        requests: Vec<Request>,
        mode: BatchMode,
        may_forward: bool,
    ) -> Result<BatchOutcome, LedgerError> {
        let Some(cluster) = self.shared.cluster.clone() else {
            return self.run_here(part, requests, mode).await;
        };
        let deadline = Instant::now() + 2 * LEASE_TTL;
        loop {
            let mut forwarded = false;
            let outcome = match self.owner(&cluster, part).await? {
                Owner::Here => self.run_here(part, requests.clone(), mode).await?,
                Owner::Peer(address) if may_forward => {
                    forwarded = true;
                    let forwarder = cluster.forwarder().ok_or(LedgerError::Closed)?;
                    match forwarder.forward(&address, requests.clone(), mode).await {
                        Ok(Ok(outcome)) => outcome,
                        Ok(Err(LedgerError::Store(StoreError::LeaseLost { .. })))
                            if Instant::now() < deadline =>
                        {
                            // It had just lost the domain: ask the store again.
                            cluster.forget_owner(&part.domain);
                            continue;
                        }
                        Ok(Err(e)) => return Err(e),
                        Err(reason) => {
                            cluster.forget_owner(&part.domain);
                            if Instant::now() >= deadline {
                                return Err(LedgerError::OwnerUnreachable {
                                    domain: part.domain.clone(),
                                    address,
                                    reason,
                                });
                            }
                            // A stopped owner's lease runs out; then this server takes over.
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    }
                }
                Owner::Peer(_) => {
                    cluster.forget_owner(&part.domain);
                    return Err(StoreError::LeaseLost {
                        domain: part.domain.clone(),
                    }
                    .into());
                }
            };
            let moved = !outcome.written
                && outcome
                    .results
                    .iter()
                    .any(|r| matches!(r, Err(LedgerError::Store(StoreError::LeaseLost { .. }))));
            if moved && Instant::now() < deadline {
                cluster.forget_owner(&part.domain);
                continue;
            }
            if forwarded && outcome.written {
                // Read your writes here too: what answers the caller next (the schedule it
                // just made, the account it just changed) reads this server's read models.
                if let Err(e) = self.follow().await {
                    tracing::warn!("reading back a forwarded write failed (caught up later): {e}");
                }
            }
            return Ok(outcome);
        }
    }

    /// Whether this server decides `part`'s domain now, taking the lease when nobody holds
    /// it (always, on a one-server store). Work planned from a read model, such as firing a
    /// schedule, runs only there: another server's read model may lag behind the writer's.
    pub(crate) async fn decides_here(&self, part: &Arc<Partition>) -> Result<bool, LedgerError> {
        match &self.shared.cluster {
            None => Ok(true),
            // Asked of the store, not of the owners remembered for forwarding: a domain whose
            // owner stopped gracefully is taken at once, not once the remembered lease is over.
            Some(cluster) => Ok(matches!(
                self.claim_or_find(cluster, part).await?,
                Owner::Here
            )),
        }
    }

    /// Who decides `part`'s domain now; takes the lease when nobody holds it.
    async fn owner(&self, cluster: &Cluster, part: &Arc<Partition>) -> Result<Owner, LedgerError> {
        if part.fence().is_some() {
            return Ok(Owner::Here);
        }
        if let Some(address) = cluster.remembered_owner(&part.domain) {
            return Ok(Owner::Peer(address));
        }
        self.claim_or_find(cluster, part).await
    }

    /// Take `part`'s lease if nobody holds it, else say (and remember) who does.
    async fn claim_or_find(
        &self,
        cluster: &Cluster,
        part: &Arc<Partition>,
    ) -> Result<Owner, LedgerError> {
        if part.fence().is_some() {
            return Ok(Owner::Here);
        }
        if self.is_closed() {
            // Closing: its leases are being given up, none is taken.
            return Err(LedgerError::Closed);
        }
        if part.writer_stopped() {
            // It cannot decide the domain: another server takes the lease once it runs out.
            return Err(part.writer_gone().await);
        }
        let _one_claim = part.claiming.lock().await;
        if part.fence().is_some() {
            return Ok(Owner::Here);
        }
        match cluster.store.claim(&part.domain).await? {
            Claim::Won { epoch } => {
                // Everything committed before the lease was won, then the writer takes it.
                self.follow().await?;
                self.refresh_writer(part).await?;
                if part.writer_stopped() {
                    // Stopped meanwhile: the lease runs out unrenewed.
                    return Err(part.writer_gone().await);
                }
                part.set_fence(Some(Fence {
                    domain: part.domain.clone(),
                    owner: cluster.server(),
                    epoch,
                }));
                tracing::info!(domain = %part.domain, epoch, "took over the domain's lease");
                Ok(Owner::Here)
            }
            Claim::Held { address, left, .. } => {
                cluster
                    .owners
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(
                        part.domain.clone(),
                        (address.clone(), Instant::now() + left),
                    );
                Ok(Owner::Peer(address))
            }
        }
    }

    async fn refresh_writer(&self, part: &Partition) -> Result<(), LedgerError> {
        let sender = self.sender(part).ok_or(LedgerError::Closed)?;
        let (reply, rx) = tokio::sync::oneshot::channel();
        if sender.send(Job::Refresh { reply }).await.is_err() {
            return Err(part.writer_gone().await);
        }
        match rx.await {
            Ok(answer) => Ok(answer),
            Err(_) => Err(part.writer_gone().await),
        }
    }

    /// Apply what other servers appended to the read models of the domains this server does
    /// not hold (a no-op on a one-server store).
    pub(crate) async fn follow(&self) -> Result<(), LedgerError> {
        let Some(cluster) = &self.shared.cluster else {
            return Ok(());
        };
        let _one_at_a_time = cluster.follow.lock().await;
        self.follow_locked(cluster).await
    }

    /// Stop the follower and catch up (a rebuild swaps read models under this): while the
    /// guard lives, nothing else applies other servers' events.
    pub(crate) async fn hold_follower(
        &self,
    ) -> Result<Option<tokio::sync::MutexGuard<'_, ()>>, LedgerError> {
        let Some(cluster) = &self.shared.cluster else {
            return Ok(None);
        };
        let guard = cluster.follow.lock().await;
        self.follow_locked(cluster).await?;
        Ok(Some(guard))
    }

    /// With the follower held ([`Ledger::hold_follower`]): apply what is indexed now, and
    /// answer the position through which every event is in the read models (the log's end on
    /// a store only this server writes).
    pub(crate) async fn deliver_held(&self) -> Result<u64, LedgerError> {
        match &self.shared.cluster {
            Some(cluster) => {
                self.follow_locked(cluster).await?;
                Ok(cluster.delivered())
            }
            None => Ok(self.shared.log.last_position()),
        }
    }

    async fn follow_locked(&self, cluster: &Cluster) -> Result<(), LedgerError> {
        let log = &self.shared.log;
        let last = log.refresh().await?;
        let mut from = cluster.delivered() + 1;
        while from <= last {
            let page = log.read_range(from, last, 4096).await?;
            let Some(tail) = page.last().map(|e| e.position) else {
                break;
            };
            self.apply_foreign(&page);
            cluster.delivered.store(tail, Ordering::Release);
            from = tail + 1;
        }
        self.apply_left_events().await
    }

    /// Apply, in the read models of domains whose lease this server no longer holds, what the
    /// follower left to their writers meanwhile (see [`Partition::leave_to_writer`]). A
    /// partition whose events cannot be read now keeps them for the next catch-up; the others
    /// go on.
    async fn apply_left_events(&self) -> Result<(), LedgerError> {
        let mut failed = None;
        for part in self.shared.routes.all() {
            let positions = part.left_to_apply();
            if positions.is_empty() {
                continue;
            }
            match self.shared.log.read_positions(&positions).await {
                Ok(events) => {
                    let mut applied = Vec::new();
                    apply_to(&part, events.iter().collect(), &mut applied);
                    part.forget_applied_left();
                    self.publish(applied);
                }
                Err(e) => failed = Some(e),
            }
        }
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    fn apply_foreign(&self, events: &[RecordedEvent]) {
        let routes = &self.shared.routes;
        let mut parts: Vec<(Arc<Partition>, Vec<&RecordedEvent>)> = Vec::new();
        for e in events {
            let part = match &e.event {
                Event::DomainRegistered { domain, .. } => {
                    Some(self.add_partition(domain, Projections::default()))
                }
                Event::AccountCreated {
                    account, domain, ..
                } => routes.partition(domain).inspect(|p| {
                    routes.register_accounts(p.index, &[*account]);
                }),
                other => match other.stream() {
                    StreamId::Domain(d) => routes.partition(&d),
                    StreamId::Account(a) => routes.account(a),
                },
            };
            let Some(part) = part else {
                continue;
            };
            match parts.iter_mut().find(|(p, _)| p.index == part.index) {
                Some((_, list)) => list.push(e),
                None => parts.push((part, vec![e])),
            }
        }
        let mut applied = Vec::new();
        for (part, list) in parts {
            // A domain held here gets every one of its events through its writer.
            if part.leaves_to_writer() {
                part.leave_to_writer(list.iter().map(|e| e.position));
                continue;
            }
            apply_to(&part, list, &mut applied);
        }
        self.publish(applied);
    }

    /// Send what was applied to the subscribers, in position order.
    fn publish(&self, mut applied: Vec<&RecordedEvent>) {
        if self.shared.live.receiver_count() > 0 {
            applied.sort_by_key(|e| e.position);
            for e in applied {
                let _ = self.shared.live.send(Arc::new(e.clone()));
            }
        }
    }

    /// `found()`, or, on a store several servers share, `found()` again after reading what the
    /// others appended: what a client just made through another server is found here too.
    pub async fn fresh<T>(&self, found: impl Fn(&Ledger) -> Option<T>) -> Option<T> {
        if let Some(hit) = found(self) {
            return Some(hit);
        }
        self.shared.cluster.as_ref()?;
        if let Err(e) = self.follow().await {
            tracing::warn!("reading other servers' changes failed: {e}");
        }
        found(self)
    }

    /// Give up this server's leases (at close): the other servers take its domains at once.
    pub(crate) async fn leave_cluster(&self) -> Result<(), LedgerError> {
        if let Some(c) = &self.shared.cluster {
            for part in self.shared.routes.all() {
                part.set_fence(None);
            }
            c.store.leave().await?;
        }
        Ok(())
    }
}

/// Apply `list` (one partition's events, in position order) to its read model; those it
/// applies are added to `applied`.
fn apply_to<'a>(
    part: &Partition,
    list: Vec<&'a RecordedEvent>,
    applied: &mut Vec<&'a RecordedEvent>,
) {
    let mut read = part.write();
    let before = read.state.clone();
    let touched = list.iter().filter_map(|e| e.event.account()).collect();
    for e in list {
        if e.position > read.checkpoint {
            read.apply(e);
            applied.push(e);
        }
    }
    read.update_index(&before, touched);
}

/// The follower and the lease renewal, until the ledger is dropped or closed.
pub(super) fn spawn_tasks(shared: Weak<Shared>) {
    let follower = shared.clone();
    let log = shared.upgrade().map(|s| s.log.clone());
    tokio::spawn(async move {
        let Some(log) = log else { return };
        loop {
            log.appended_elsewhere(FOLLOW_EVERY).await;
            let Some(shared) = follower.upgrade() else {
                return;
            };
            if shared.closed.load(Ordering::SeqCst) {
                return;
            }
            match crate::threads::caught((Ledger { shared }).follow()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!("reading other servers' changes failed (retried): {e}")
                }
                Err(panic) => {
                    tracing::error!("reading other servers' changes panicked ({panic}); retried")
                }
            }
        }
    });
    tokio::spawn(async move {
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(RENEW_EVERY).await;
            let Some(shared) = shared.upgrade() else {
                return;
            };
            if shared.closed.load(Ordering::SeqCst) {
                return;
            }
            let Some(cluster) = &shared.cluster else {
                return;
            };
            let held: Vec<Arc<Partition>> = shared
                .routes
                .all()
                .into_iter()
                .filter(|p| p.fence().is_some() && !p.writer_stopped())
                .collect();
            let names: Vec<String> = held.iter().map(|p| p.domain.clone()).collect();
            // A renewal that hangs (a database gone without a word) counts as failed.
            // A panic counts as failed too (logged; the loop goes on).
            let renewal = tokio::time::timeout(
                LEASE_TTL - RENEW_EVERY,
                crate::threads::caught(cluster.store.renew(&names)),
            );
            let renewal = match renewal.await {
                Ok(Ok(renewal)) => renewal,
                Ok(Err(panic)) => Err(StoreError::Io(format!("the renewal panicked: {panic}"))),
                Err(_) => Err(StoreError::Io("no answer within the lease's length".into())),
            };
            match renewal {
                Ok(kept) => {
                    renewed = Instant::now();
                    for part in held {
                        if !kept.contains(&part.domain) {
                            tracing::warn!(domain = %part.domain, "lost the domain's lease");
                            part.set_fence(None);
                        }
                    }
                }
                // Not renewed: the store refuses this server's appends once a lease is taken
                // over, so nothing is decided twice meanwhile; past the lease's length another
                // server may have taken them, so they are dropped here (and the follower then
                // reads back what the new owners wrote).
                Err(e) if renewed.elapsed() >= LEASE_TTL => {
                    tracing::warn!("renewing leases failed for a lease's length, dropped: {e}");
                    for part in held {
                        part.set_fence(None);
                    }
                }
                Err(e) => tracing::warn!("renewing leases failed (retried): {e}"),
            }
        }
    });
}
