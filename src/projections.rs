//! The live read model: the domain's own fold ([`LedgerState::evolve`]) applied to recorded
//! events, plus what persisting it needs (dirty rows, the license series, the checkpoint).
//! Replay of the log into a fresh [`Projections`] must equal the live one; `verify` checks it.

use std::collections::{BTreeMap, BTreeSet};

use crate::domain::LedgerState;
use crate::store::{ACCOUNT_BUCKET, LicensePoint, RecordedEvent, ViewBatch, ViewSnapshot};

#[derive(Debug, Default, Clone)]
pub struct Projections {
    pub state: LedgerState,
    /// Last applied log position.
    pub checkpoint: u64,
    /// Account buckets changed since the last save.
    dirty_buckets: BTreeSet<u64>,
    dirty_domains: BTreeSet<String>,
    /// License series points not yet saved, at most one per domain per time stamp.
    pending_points: Vec<LicensePoint>,
    /// Per domain: index in `pending_points` of its newest point, and that point's stamp.
    newest_point: BTreeMap<String, (usize, i64)>,
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
        let usage_before = self.usage_of(e);
        self.state.evolve(&e.event);
        self.checkpoint = e.position;
        if let Some(acc) = e.event.account() {
            self.dirty_buckets.insert(acc / ACCOUNT_BUCKET);
        }
        let Some(domain) = domain_name(&self.state, e) else {
            return;
        };
        let Some(d) = self.state.domains.get(domain) else {
            return;
        };
        if !self.dirty_domains.contains(domain) {
            self.dirty_domains.insert(domain.to_string());
        }
        if Some((d.licenses_used, d.license_limit)) == usage_before {
            return;
        }
        let point = LicensePoint {
            domain: domain.to_string(),
            position: e.position,
            used: d.licenses_used,
            limit: d.license_limit,
        };
        // Events with one stamp are indistinguishable "as of T": keep the last of them.
        match self.newest_point.get(domain) {
            Some(&(i, stamp)) if stamp == e.recorded_at_us => self.pending_points[i] = point,
            _ => {
                self.newest_point.insert(
                    domain.to_string(),
                    (self.pending_points.len(), e.recorded_at_us),
                );
                self.pending_points.push(point);
            }
        }
    }

    fn usage_of(&self, e: &RecordedEvent) -> Option<(u32, u32)> {
        let domain = domain_name(&self.state, e)?;
        let d = self.state.domains.get(domain)?;
        Some((d.licenses_used, d.license_limit))
    }

    /// Rows changed since the last call, in whole buckets, with the checkpoint.
    pub fn take_batch(&mut self) -> ViewBatch {
        let account_buckets = std::mem::take(&mut self.dirty_buckets)
            .into_iter()
            .map(|b| {
                let rows = (b * ACCOUNT_BUCKET..(b + 1) * ACCOUNT_BUCKET)
                    .filter_map(|id| self.state.accounts.get(&id).cloned())
                    .collect();
                (b, rows)
            })
            .collect();
        let domains = std::mem::take(&mut self.dirty_domains)
            .into_iter()
            .filter_map(|d| self.state.domains.get(&d).cloned())
            .collect();
        ViewBatch {
            checkpoint: self.checkpoint,
            account_buckets,
            domains,
        }
    }

    /// License series points since the last call.
    pub fn take_license_points(&mut self) -> Vec<LicensePoint> {
        self.newest_point.clear();
        std::mem::take(&mut self.pending_points)
    }

    /// Whether rows changed since the last save.
    pub fn has_unsaved_rows(&self) -> bool {
        !self.dirty_buckets.is_empty() || !self.dirty_domains.is_empty()
    }

    /// Equal as read models (ignores what is pending a save).
    pub fn same_view(&self, other: &Projections) -> bool {
        self.checkpoint == other.checkpoint && self.state == other.state
    }
}

/// The domain an event belongs to, borrowed from the state (no allocation on the hot path).
fn domain_name<'a>(state: &'a LedgerState, e: &'a RecordedEvent) -> Option<&'a str> {
    use crate::domain::Event;
    match &e.event {
        Event::DomainRegistered { domain, .. }
        | Event::LicenseLimitChanged { domain, .. }
        | Event::MassChangeGuardChanged { domain, .. } => Some(domain.as_str()),
        other => {
            let id = other.account()?;
            state.accounts.get(&id).map(|a| a.domain.as_str())
        }
    }
}
