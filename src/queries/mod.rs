//! Reads: the current views (from the live projections, no I/O), point-in-time answers and
//! audit (from the log's per-stream index), and subscriptions.
//!
//! Point-in-time costs (none replays the log):
//! - "as of T" → position P: one binary search over commit stamps, O(log commits).
//! - account as of T: fold of that account's own stream up to P: O(events of the account),
//!   each read decoding one log chunk.
//! - license usage as of T: one reverse seek in the domain's license series: O(log n).
//! - account list as of T: the current rows with the accounts changed since P folded back
//!   to P, or only the accounts that existed at P folded ([`list`]).

mod list;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::{broadcast::error::RecvError, mpsc};
use uuid::Uuid;

use crate::domain::{AccountId, AccountState, DomainError, Event, Status, StreamId};
use crate::ledger::{Ledger, LedgerError};
use crate::store::RecordedEvent;

pub use list::{AccountFilter, AccountPage, PageStart, PastView};

/// Events read at a time when folding accounts as of an instant.
const FOLD_READ: usize = 16_384;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicenseUsage {
    pub domain: String,
    pub used: u32,
    pub limit: u32,
}

/// In the users export: Enabled and Disabled, never Deactivated or Deleted.
pub fn in_users_export(a: &AccountState) -> bool {
    matches!(a.status(), Status::Enabled | Status::Disabled)
}

pub(crate) fn unknown_domain(domain: &str) -> LedgerError {
    DomainError::UnknownDomain {
        domain: domain.to_string(),
    }
    .into()
}

impl Ledger {
    pub fn account(&self, id: AccountId) -> Option<AccountState> {
        self.read_account_domain(id, |s| s.account(id).cloned())
            .flatten()
    }

    /// A live (not deleted) account by its SIS import id.
    pub fn account_by_import_id(&self, domain: &str, import_id: &str) -> Option<AccountState> {
        self.read_domain(domain, |s| {
            s.account_by_import_id(domain, import_id).cloned()
        })
        .flatten()
    }

    /// Every domain's (name, licenses used, license limit), now.
    pub fn license_usage_all(&self) -> Vec<(String, u32, u32)> {
        self.shared
            .routes
            .all()
            .iter()
            .filter_map(|part| {
                let read = part.read();
                let d = read.state.domains.get(&part.domain)?;
                Some((d.name.clone(), d.licenses_used, d.license_limit))
            })
            .collect()
    }

    /// The import jobs recorded for `domain`, newest first.
    pub fn recorded_import_jobs(
        &self,
        domain: &str,
    ) -> Vec<std::sync::Arc<crate::domain::import_job::ImportJobSummary>> {
        self.read_domain(domain, |s| {
            s.domains
                .get(domain)
                .map(|d| d.import_jobs.iter().rev().cloned().collect())
                .unwrap_or_default()
        })
        .unwrap_or_default()
    }

    /// A recorded import job and its domain, from any domain.
    pub fn recorded_import_job(
        &self,
        job: &uuid::Uuid,
    ) -> Option<(
        String,
        std::sync::Arc<crate::domain::import_job::ImportJobSummary>,
    )> {
        self.shared.routes.all().iter().find_map(|part| {
            let read = part.read();
            let d = read.state.domains.get(&part.domain)?;
            let j = d.import_jobs.iter().find(|j| j.job_id == *job)?;
            Some((part.domain.clone(), j.clone()))
        })
    }

    /// The row errors the log keeps of `job` of `domain` (none recorded: empty), read from
    /// the domain's stream, newest first, back to the job's summary (the errors are recorded
    /// right after it, in the same commit).
    pub async fn recorded_row_errors(
        &self,
        domain: &str,
        job: &uuid::Uuid,
    ) -> Result<Vec<crate::domain::import_job::KeptRowError>, LedgerError> {
        let mut positions = self
            .log()
            .stream_positions(&StreamId::Domain(domain.to_string()));
        positions.reverse();
        for batch in positions.chunks(256) {
            let mut batch = batch.to_vec();
            batch.sort_unstable();
            for e in self.log().read_positions(&batch).await?.into_iter().rev() {
                match e.event {
                    Event::ImportRowErrorsRecorded {
                        job: recorded,
                        errors,
                        ..
                    } if recorded == *job => return Ok(errors),
                    Event::ImportJobRecorded { job: summary, .. } if summary.job_id == *job => {
                        return Ok(Vec::new());
                    }
                    _ => {}
                }
            }
        }
        Ok(Vec::new())
    }

    pub fn domain_exists(&self, domain: &str) -> bool {
        self.read_domain(domain, |_| ()).is_some()
    }

    /// [`Ledger::domain_exists`], also for a domain registered through another server a
    /// moment ago (see [`Ledger::fresh`]).
    pub async fn domain_exists_fresh(&self, domain: &str) -> bool {
        self.fresh(|l| l.domain_exists(domain).then_some(()))
            .await
            .is_some()
    }

    pub fn license_usage(&self, domain: &str) -> Result<LicenseUsage, LedgerError> {
        self.read_domain_or_empty(domain, |s| {
            s.domains
                .get(domain)
                .map(|d| LicenseUsage {
                    domain: d.name.clone(),
                    used: d.licenses_used,
                    limit: d.license_limit,
                })
                .ok_or_else(|| unknown_domain(domain))
        })
    }

    /// May this login sign in now? Only an Enabled account may. One hash lookup.
    pub fn can_sign_in(&self, domain: &str, login: &str) -> Option<(AccountId, Status)> {
        self.read_domain(domain, |s| {
            s.account_by_login(domain, login)
                .map(|a| (a.id, a.status()))
        })
        .flatten()
    }

    /// The users export of a domain, now.
    pub fn export_users(&self, domain: &str) -> Result<Vec<AccountState>, LedgerError> {
        Ok(self.export_snapshot(domain)?.rows().cloned().collect())
    }

    /// The domain's users export as of now, to be walked without copying it: the snapshot is
    /// an O(1) copy of the domain's persistent maps, so a million-row export streams with flat
    /// memory while commands go on.
    pub fn export_snapshot(&self, domain: &str) -> Result<ExportSnapshot, LedgerError> {
        self.read_domain(domain, |s| ExportSnapshot::Now {
            domain: domain.to_string(),
            state: s.clone(),
        })
        .ok_or_else(|| unknown_domain(domain))
    }

    /// The domain's users export as it was at `at_us`, walked the same way (the past rows
    /// are held, once, by the view; see [`PastView`]); it waits its turn to fold, then streams
    /// without holding it.
    pub async fn export_snapshot_as_of(
        &self,
        domain: &str,
        at_us: i64,
    ) -> Result<ExportSnapshot, LedgerError> {
        let mut view = self.past_view(domain, at_us).await?;
        // The turn of large views is for folding: a client reading slowly must not hold up
        // every other large view for as long as it streams.
        view.end_turn();
        Ok(ExportSnapshot::AsOf(view))
    }

    /// The account as it was at `at_us` (None: it did not exist yet).
    pub async fn account_as_of(
        &self,
        id: AccountId,
        at_us: i64,
    ) -> Result<Option<AccountState>, LedgerError> {
        let position = self.log().position_at(at_us);
        Ok(self.fold_accounts(&[id], position).await?.remove(&id))
    }

    pub async fn license_usage_as_of(
        &self,
        domain: &str,
        at_us: i64,
    ) -> Result<LicenseUsage, LedgerError> {
        let position = self.log().position_at(at_us);
        // Points since the last save are only in the domain's read model.
        let unsaved = self
            .shared
            .routes
            .partition(domain)
            .and_then(|part| part.read().unsaved_license_point_at(position).cloned());
        let point = match unsaved {
            Some(p) => p,
            None => self
                .shared
                .views
                .license_at(domain, position)?
                .ok_or_else(|| unknown_domain(domain))?,
        };
        Ok(LicenseUsage {
            domain: domain.to_string(),
            used: point.used,
            limit: point.limit,
        })
    }

    /// The rows of `ids` as they were at `position` (those that existed then), folded from
    /// their streams alone (no indexes, no counts), reading [`FOLD_READ`] events at a time: a
    /// district's events are never all in memory at once.
    pub(crate) async fn fold_accounts(
        &self,
        ids: &[AccountId],
        position: u64,
    ) -> Result<BTreeMap<AccountId, AccountState>, LedgerError> {
        let mut positions: Vec<u64> = ids
            .iter()
            .flat_map(|id| self.log().stream_positions(&StreamId::Account(*id)))
            .filter(|p| *p <= position)
            .collect();
        positions.sort_unstable();
        let mut rows = BTreeMap::new();
        // Two reads at a time (decoding and opening are most of a fold: both cores), applied in
        // order.
        let parts: Vec<Vec<u64>> = positions.chunks(FOLD_READ).map(<[u64]>::to_vec).collect();
        drop(positions);
        let mut parts = futures::stream::iter(parts)
            .map(|part| {
                let log = self.log().clone();
                async move { log.read_positions(&part).await }
            })
            .buffered(2);
        while let Some(events) = parts.next().await {
            for e in events? {
                if let Some(row) = AccountState::created(&e.event) {
                    rows.insert(row.id, row);
                } else if let Some(row) = e.event.account().and_then(|id| rows.get_mut(&id)) {
                    row.apply(&e.event);
                }
            }
        }
        Ok(rows)
    }

    /// Every event of one account, oldest first, with actor, time and source.
    pub async fn account_history(&self, id: AccountId) -> Result<Vec<RecordedEvent>, LedgerError> {
        let positions = self.log().stream_positions(&StreamId::Account(id));
        Ok(self.log().read_positions(&positions).await?)
    }

    /// The domain of a list of events (an import job's): that of the first one known.
    pub fn events_domain(&self, events: &[RecordedEvent]) -> Option<String> {
        events.iter().find_map(|e| self.event_domain(&e.event))
    }

    /// The domain of an import job: from its recorded summary, or else from its first events
    /// (not all of them), so that a caller's rights are checked before a job of a million
    /// events is read.
    pub async fn import_job_domain(&self, job: &Uuid) -> Result<Option<String>, LedgerError> {
        if let Some((domain, _)) = self.recorded_import_job(job) {
            return Ok(Some(domain));
        }
        for some in self.log().job_positions(job).chunks(256) {
            let events = self.log().read_positions(some).await?;
            if let Some(domain) = self.events_domain(&events) {
                return Ok(Some(domain));
            }
        }
        Ok(None)
    }

    /// Up to `limit` events of one import job after log position `after`, oldest first; empty
    /// when the job has none there (or none at all).
    pub async fn import_job_history_page(
        &self,
        job: &Uuid,
        after: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LedgerError> {
        let positions = self.log().job_positions(job);
        let start = positions.partition_point(|p| *p <= after);
        let end = start.saturating_add(limit).min(positions.len());
        Ok(self.log().read_positions(&positions[start..end]).await?)
    }

    /// Every event one import job caused.
    pub async fn import_job_history(&self, job: &Uuid) -> Result<Vec<RecordedEvent>, LedgerError> {
        let positions = self.log().job_positions(job);
        Ok(self.log().read_positions(&positions).await?)
    }

    pub async fn read_log(
        &self,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LedgerError> {
        Ok(self.log().read_range(from, to, limit).await?)
    }

    /// Events from `from` on: first what the log holds (catch-up), then live ones as they are
    /// recorded, optionally only one domain's. Ends when the receiver is dropped.
    pub fn subscribe(
        &self,
        from: u64,
        domain: Option<String>,
    ) -> mpsc::Receiver<Result<Arc<RecordedEvent>, LedgerError>> {
        let (tx, rx) = mpsc::channel(1024);
        let this = self.clone();
        let mut live = self.shared.live.subscribe();
        tokio::spawn(async move {
            let mut next = from.max(1);
            let wanted = |e: &RecordedEvent| match &domain {
                None => true,
                Some(d) => this.event_domain(&e.event).as_deref() == Some(d),
            };
            loop {
                // Catch up from the log (also after falling behind the live channel).
                loop {
                    let last = this.log().last_position();
                    if next > last {
                        break;
                    }
                    let page = match this.log().read_range(next, last, 4096).await {
                        Ok(p) => p,
                        Err(e) => {
                            let _ = tx.send(Err(e.into())).await;
                            return;
                        }
                    };
                    if page.is_empty() {
                        break;
                    }
                    for e in page {
                        next = e.position + 1;
                        if wanted(&e) && tx.send(Ok(Arc::new(e))).await.is_err() {
                            return;
                        }
                    }
                }
                loop {
                    // Also wake when the subscriber goes away, so an idle filtered subscription
                    // does not keep its task until the next event.
                    let received = tokio::select! {
                        r = live.recv() => r,
                        () = tx.closed() => return,
                    };
                    match received {
                        Ok(e) if e.position < next => continue,
                        Ok(e) if e.position == next => {
                            next += 1;
                            if wanted(&e) && tx.send(Ok(e)).await.is_err() {
                                return;
                            }
                        }
                        Ok(_) | Err(RecvError::Lagged(_)) => break,
                        Err(RecvError::Closed) => return,
                    }
                }
            }
        });
        rx
    }
}

/// A domain's accounts frozen for an export, now or as of an instant (see
/// [`Ledger::export_snapshot`], [`Ledger::export_snapshot_as_of`]).
pub enum ExportSnapshot {
    Now {
        domain: String,
        state: crate::domain::LedgerState,
    },
    AsOf(PastView),
}

impl ExportSnapshot {
    /// Enabled and Disabled accounts, in account-list order.
    pub fn rows(&self) -> Box<dyn Iterator<Item = &AccountState> + Send + '_> {
        match self {
            ExportSnapshot::Now { domain, state } => Box::new(
                state
                    .domain_accounts
                    .get(domain)
                    .into_iter()
                    .flatten()
                    .filter_map(|id| state.account(*id))
                    .filter(|a| in_users_export(a)),
            ),
            ExportSnapshot::AsOf(view) => Box::new(view.rows().filter(|a| in_users_export(a))),
        }
    }
}
