//! Replay of the log into per-domain projections: start-up catch-up, rebuild and verify all
//! use it. It runs on a snapshot of its own, never inside a partition writer.

use std::collections::HashMap;

use crate::domain::{AccountId, Event, StreamId};
use crate::projections::Projections;
use crate::store::{EventLog, RecordedEvent, StoreError, ViewSnapshot};

/// Per-domain projections being built from the log.
#[derive(Default)]
pub(crate) struct Replay {
    pub(crate) parts: Vec<Projections>,
    by_domain: HashMap<String, usize>,
    /// Index in `parts` by account number.
    accounts: Vec<u32>,
    /// The log is applied through this position.
    pub(crate) position: u64,
}

const NONE: u32 = u32::MAX;

impl Replay {
    /// Start from persisted views; catch-up then begins after their floor.
    pub(crate) fn from_snapshot(snapshot: ViewSnapshot) -> Replay {
        let mut replay = Replay {
            position: snapshot.checkpoint,
            ..Default::default()
        };
        for p in snapshot.partitions {
            let i = replay.parts.len();
            replay.by_domain.insert(p.domain.name.clone(), i);
            let ids: Vec<AccountId> = p.accounts.iter().map(|a| a.id).collect();
            replay.parts.push(Projections::from_snapshot(p));
            for id in ids {
                replay.route(id, i);
            }
        }
        replay
    }

    fn route(&mut self, account: AccountId, part: usize) {
        let at = account as usize;
        if self.accounts.len() <= at {
            self.accounts.resize(at + 1, NONE);
        }
        self.accounts[at] = part as u32;
    }

    fn part_of(&mut self, e: &RecordedEvent) -> Option<usize> {
        match &e.event {
            Event::DomainRegistered { domain, .. } => Some(match self.by_domain.get(domain) {
                Some(&i) => i,
                None => {
                    let i = self.parts.len();
                    self.parts.push(Projections::default());
                    self.by_domain.insert(domain.clone(), i);
                    i
                }
            }),
            Event::AccountCreated {
                account, domain, ..
            } => {
                let i = *self.by_domain.get(domain)?;
                self.route(*account, i);
                Some(i)
            }
            other => match other.stream() {
                StreamId::Domain(d) => self.by_domain.get(&d).copied(),
                StreamId::Account(a) => match self.accounts.get(a as usize) {
                    Some(&i) if i != NONE => Some(i as usize),
                    _ => None,
                },
            },
        }
    }

    pub(crate) fn apply(&mut self, e: &RecordedEvent) {
        if let Some(i) = self.part_of(e) {
            self.parts[i].apply(e);
        }
        self.position = self.position.max(e.position);
    }

    /// The projections of one domain, taken out (a default one when the domain is unknown).
    pub(crate) fn take(&mut self, domain: &str) -> Projections {
        match self.by_domain.get(domain) {
            Some(&i) => std::mem::take(&mut self.parts[i]),
            None => Projections::default(),
        }
    }

    /// The projections of one domain, if the replay has seen it.
    pub(crate) fn get(&self, domain: &str) -> Option<&Projections> {
        self.by_domain.get(domain).map(|&i| &self.parts[i])
    }

    pub(crate) fn domains(&self) -> impl Iterator<Item = &str> {
        self.by_domain.keys().map(String::as_str)
    }

    pub(crate) fn into_parts(self) -> Vec<Projections> {
        self.parts
    }

    pub(crate) fn accounts(&self) -> usize {
        self.parts.iter().map(|p| p.state.accounts.len()).sum()
    }

    /// Apply every durable event after `self.position`. Pages are decoded on a blocking
    /// thread while the previous page is applied here, so replay uses both cores.
    pub(crate) async fn catch_up(&mut self, log: &dyn EventLog) -> Result<u64, StoreError> {
        const PAGE: usize = 16384;
        let last = log.last_position();
        let mut applied = 0;
        if self.position >= last {
            return Ok(0);
        }
        let mut page = log.read_range(self.position + 1, last, PAGE).await?;
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
                    self.apply(e);
                }
            };
            let (next, ()) = futures::join!(next, apply);
            applied += page.len() as u64;
            page = next?;
        }
        self.position = self.position.max(last);
        Ok(applied)
    }
}
