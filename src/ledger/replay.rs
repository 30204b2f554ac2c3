//! Replay of the log into per-domain projections: start-up catch-up, rebuild and verify all
//! use it. It runs on a snapshot of its own, never inside a partition writer.

use std::collections::HashMap;

use super::account_table::AccountTable;
use crate::domain::{AccountId, Event, StreamId};
use crate::projections::Projections;
use crate::store::{EventLog, RecordedEvent, StoreError, ViewSnapshot};

/// Per-domain projections being built from the log.
#[derive(Default)]
pub(crate) struct Replay {
    pub(crate) parts: Vec<Projections>,
    by_domain: HashMap<String, usize>,
    /// Index in `parts` by account number.
    accounts: AccountTable,
    /// The log is applied through this position.
    pub(crate) position: u64,
}

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
        self.accounts.set(account, part as u32);
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
                let i = *self.by_domain.get(domain.as_str())?;
                self.route(*account, i);
                Some(i)
            }
            other => match other.stream() {
                StreamId::Domain(d) => self.by_domain.get(&d).copied(),
                StreamId::Account(a) => self.accounts.get(a).map(|i| i as usize),
            },
        }
    }

    pub(crate) fn apply(&mut self, e: &RecordedEvent) {
        if let Some(i) = self.part_of(e) {
            self.parts[i].apply(e);
        }
        self.position = self.position.max(e.position);
    }

    /// Apply a page of events. Each domain's events are applied in log order; different
    /// domains' are independent, so a page that spans several domains is applied on two
    /// threads, the domains dealt to them by event count (routing, which records the accounts
    /// each creation adds, runs first, in order).
    fn apply_page(&mut self, page: &[RecordedEvent]) {
        const PARALLEL_FROM: usize = 4096;
        let Some(last) = page.last() else {
            return;
        };
        if page.len() < PARALLEL_FROM {
            page.iter().for_each(|e| self.apply(e));
            return;
        }
        let mut by_part: Vec<Vec<&RecordedEvent>> = Vec::new();
        for e in page {
            if let Some(i) = self.part_of(e) {
                if by_part.len() <= i {
                    by_part.resize_with(i + 1, Vec::new);
                }
                by_part[i].push(e);
            }
        }
        self.position = self.position.max(last.position);
        let mut loads = [0usize; 2];
        let mut halves: [Vec<(&mut Projections, Vec<&RecordedEvent>)>; 2] = Default::default();
        let mut busiest_first: Vec<_> = self.parts.iter_mut().zip(by_part).collect();
        busiest_first.sort_by_key(|(_, events)| std::cmp::Reverse(events.len()));
        for (part, events) in busiest_first {
            if events.is_empty() {
                continue;
            }
            let half = usize::from(loads[1] < loads[0]);
            loads[half] += events.len();
            halves[half].push((part, events));
        }
        let apply = |half: Vec<(&mut Projections, Vec<&RecordedEvent>)>| {
            for (part, events) in half {
                events.into_iter().for_each(|e| part.apply(e));
            }
        };
        let [first, second] = halves;
        if second.is_empty() {
            apply(first);
            return;
        }
        crate::threads::join(|| apply(second), || apply(first));
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
        self.catch_up_to(log, log.last_position()).await
    }

    /// [`Replay::catch_up`], through `last` at most.
    pub(crate) async fn catch_up_to(
        &mut self,
        log: &dyn EventLog,
        last: u64,
    ) -> Result<u64, StoreError> {
        const PAGE: usize = 16384;
        let last = last.min(log.last_position());
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
            let apply = async { self.apply_page(&page) };
            let (next, ()) = futures::join!(next, apply);
            applied += page.len() as u64;
            page = next?;
        }
        self.position = self.position.max(last);
        Ok(applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{PackedProfile, Profile};

    /// Three domains of different sizes, interleaved: registrations, creations, then status
    /// changes and deletions; more than one parallel page.
    fn log() -> Vec<RecordedEvent> {
        let mut events = Vec::new();
        let mut next =
            |event: Event| events.push(RecordedEvent::at(events.len() as u64 + 1, event));
        for d in ["a", "b", "c"] {
            next(Event::DomainRegistered {
                domain: d.into(),
                license_limit: 5000,
            });
        }
        for account in 1..=3000u64 {
            let domain = ["a", "a", "b", "c"][account as usize % 4];
            next(Event::AccountCreated {
                account,
                domain: domain.into(),
                import_id: Some(format!("sis-{account}")),
                profile: PackedProfile::new(&Profile {
                    login: format!("user{account}"),
                    first_name: "F".into(),
                    last_name: "L".into(),
                    email: String::new(),
                }),
                role: "student".into(),
                enabled: account % 3 != 0,
            });
        }
        for round in 0..3u64 {
            for account in 1..=3000u64 {
                next(match (account + round) % 5 {
                    0 => Event::AccountEnabled { account },
                    1 => Event::AccountDisabled { account },
                    2 => Event::AccountDeactivated { account },
                    3 => Event::AccountReactivated { account },
                    _ if round == 2 && account % 7 == 0 => Event::AccountDeleted { account },
                    _ => Event::SignInRecorded {
                        account,
                        at_us: account as i64,
                    },
                });
            }
        }
        events
    }

    #[test]
    fn pages_applied_on_two_threads_equal_events_applied_one_by_one() {
        let events = log();
        let mut one_by_one = Replay::default();
        events.iter().for_each(|e| one_by_one.apply(e));
        let mut paged = Replay::default();
        for page in events.chunks(5000) {
            paged.apply_page(page);
        }
        assert_eq!(paged.position, one_by_one.position);
        assert_eq!(paged.accounts(), 3000);
        for d in ["a", "b", "c"] {
            let (p, o) = (paged.get(d).unwrap(), one_by_one.get(d).unwrap());
            assert!(p.same_view(o), "domain {d} differs");
            assert_eq!(p.unsaved_license_points(), o.unsaved_license_points());
        }
    }
}
