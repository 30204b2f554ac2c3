//! The live read model: the domain's own fold ([`LedgerState::evolve`]) applied to recorded
//! events, plus what persisting it needs (dirty rows, the license series, the checkpoint).
//! Replay of the log into a fresh [`Projections`] must equal the live one; `verify` checks it.

use std::collections::{BTreeMap, BTreeSet};

use crate::domain::{AccountId, LedgerState};
use crate::store::{LicensePoint, RecordedEvent, ViewBatch, ViewSnapshot};

#[derive(Debug, Default, Clone)]
pub struct Projections {
    pub state: LedgerState,
    /// Last applied log position.
    pub checkpoint: u64,
    dirty_accounts: BTreeSet<AccountId>,
    dirty_domains: BTreeSet<String>,
    /// Newest (used, limit) per domain changed since the last save, at its position.
    pending_points: BTreeMap<String, LicensePoint>,
}

impl Projections {
    /// Rebuild the in-memory model from persisted rows.
    pub fn from_snapshot(snapshot: ViewSnapshot) -> Projections {
        let mut state = LedgerState::default();
        for d in snapshot.domains {
            state.domains.insert(d.name.clone(), d);
        }
        let mut accounts = snapshot.accounts;
        accounts.sort_by_key(|a| a.id);
        for acc in accounts {
            state.insert_account_row(acc);
        }
        Projections {
            state,
            checkpoint: snapshot.checkpoint,
            ..Default::default()
        }
    }

    pub fn apply(&mut self, e: &RecordedEvent) {
        if e.position <= self.checkpoint {
            return;
        }
        let domain_before = self.domain_of(e);
        let usage_before = domain_before
            .as_ref()
            .and_then(|d| self.state.domains.get(d))
            .map(|d| (d.licenses_used, d.license_limit));
        self.state.evolve(&e.event);
        self.checkpoint = e.position;
        if let Some(acc) = e.event.account() {
            self.dirty_accounts.insert(acc);
        }
        let Some(domain) = self.domain_of(e) else {
            return;
        };
        let Some(d) = self.state.domains.get(&domain) else {
            return;
        };
        let usage_after = Some((d.licenses_used, d.license_limit));
        self.dirty_domains.insert(domain.clone());
        if usage_after != usage_before {
            self.pending_points.insert(
                domain.clone(),
                LicensePoint {
                    domain,
                    position: e.position,
                    used: d.licenses_used,
                    limit: d.license_limit,
                },
            );
        }
    }

    fn domain_of(&self, e: &RecordedEvent) -> Option<String> {
        match e.stream() {
            crate::domain::StreamId::Domain(d) => Some(d),
            crate::domain::StreamId::Account(a) => {
                self.state.accounts.get(&a).map(|acc| acc.domain.clone())
            }
        }
    }

    /// Rows changed since the last call. Within one commit all events share a time stamp, so
    /// one license point per domain per save is exact for "as of T" queries.
    pub fn take_batch(&mut self) -> ViewBatch {
        let accounts = std::mem::take(&mut self.dirty_accounts)
            .into_iter()
            .filter_map(|id| self.state.accounts.get(&id).cloned())
            .collect();
        let domains = std::mem::take(&mut self.dirty_domains)
            .into_iter()
            .filter_map(|d| self.state.domains.get(&d).cloned())
            .collect();
        ViewBatch {
            checkpoint: self.checkpoint,
            accounts,
            domains,
            license_points: std::mem::take(&mut self.pending_points)
                .into_values()
                .collect(),
        }
    }

    /// Equal as read models (ignores what is pending a save).
    pub fn same_view(&self, other: &Projections) -> bool {
        self.checkpoint == other.checkpoint && self.state == other.state
    }
}
