//! The live read model of one partition (one domain): the domain's own fold
//! ([`LedgerState::evolve`]) applied to its recorded events, plus what persisting it needs
//! (dirty rows, the license series, the checkpoint). Replay of the log into a fresh
//! [`Projections`] must equal the live one; `verify` checks it. A live read model also holds
//! the [`AccountIndex`] lists and searches use; replay leaves it out and it is built (in one
//! sorted pass) when a read model goes live. Loaded views go live without it: it is built
//! from the loaded rows off the opening path (~0.2 s of a 1M-account district's open) and
//! then updated for what changed meanwhile; lists wait for it, commands never do.

pub mod index;

use std::collections::BTreeSet;

use crate::domain::{AccountId, LedgerState};
use crate::store::{
    ACCOUNT_BUCKET, LicensePoint, PartitionSnapshot, RecordParts, RecordedEvent, ViewBatch,
};
pub use index::AccountIndex;

#[derive(Debug, Default, Clone)]
pub struct Projections {
    /// The domain's rules state: its domain row and its accounts only.
    pub state: LedgerState,
    /// Lists and search over `state` (see [`index`]); kept in step by [`Projections::publish`].
    pub index: AccountIndex,
    /// Every event of this domain at or before this position is applied (events at or below
    /// it are skipped, so catch-up may start before it).
    pub checkpoint: u64,
    /// Position of the last event applied here (0 when none since loading).
    pub last_applied: u64,
    /// Account buckets changed since the last save.
    dirty_buckets: BTreeSet<u64>,
    dirty_domain: bool,
    /// License series points not yet saved, at most one per time stamp.
    pending_points: Vec<LicensePoint>,
    /// Stamp of the newest pending point.
    newest_stamp: Option<i64>,
    /// A state `index` is built from (or, when `index_unbuilt`, is to be built from), and the
    /// accounts changed since, so going live updates it instead of building anew.
    index_base: Option<Box<(LedgerState, Vec<AccountId>)>>,
    /// Set from loading until [`Projections::finish_index`]: `index` is empty meanwhile.
    index_unbuilt: bool,
}

impl Projections {
    /// Rebuild the in-memory model from one domain's persisted rows. The list and search
    /// index is left to build later ([`Projections::index_to_build`]).
    pub fn from_snapshot(snapshot: PartitionSnapshot) -> Projections {
        let mut state = LedgerState::default();
        state
            .domains
            .insert(snapshot.domain.name.clone(), snapshot.domain);
        let mut accounts = snapshot.accounts;
        accounts.sort_by_key(|a| a.id);
        state.load_rows(&accounts);
        drop(accounts);
        let base = state.clone();
        Projections {
            state,
            checkpoint: snapshot.checkpoint,
            index_base: Some(Box::new((base, Vec::new()))),
            index_unbuilt: true,
            ..Default::default()
        }
    }

    /// While the index is unbuilt: the state to build it from (an O(1) copy).
    pub fn index_to_build(&self) -> Option<LedgerState> {
        match (&self.index_base, self.index_unbuilt) {
            (Some(base), true) => Some(base.0.clone()),
            _ => None,
        }
    }

    /// Whether lists must wait: the index is still being built after a load.
    pub fn index_unbuilt(&self) -> bool {
        self.index_unbuilt
    }

    /// Take the index built from [`Projections::index_to_build`]'s state, updated for what
    /// changed since. Ignored when the index is no longer unbuilt (a rebuild was swapped in).
    /// Should the update fail (a panic), the index stays unbuilt: never an empty one in use.
    pub fn finish_index(&mut self, built: AccountIndex) {
        if !self.index_unbuilt {
            return;
        }
        let (before, touched) = self.index_base.take().map(|b| *b).unwrap_or_default();
        self.index = Projections::index_after(built, &before, &self.state, touched);
        self.index_unbuilt = false;
    }

    /// While unbuilt: how many changes are noted for the index since its base state.
    pub fn index_changes(&self) -> usize {
        match (&self.index_base, self.index_unbuilt) {
            (Some(base), true) => base.1.len(),
            _ => 0,
        }
    }

    /// While unbuilt: hand over the base state and the accounts changed since, with the
    /// state now, and note changes anew from now (an index brought from the old base to
    /// the state now, off the lock, is then finished with the few changes after).
    pub fn take_index_changes(&mut self) -> Option<(LedgerState, Vec<AccountId>, LedgerState)> {
        if !self.index_unbuilt {
            return None;
        }
        let now = self.state.clone();
        let base = self
            .index_base
            .replace(Box::new((now.clone(), Vec::new())))?;
        let (before, touched) = *base;
        Some((before, touched, now))
    }

    /// Build the list and search index from the rows now, ahead of going live (off the
    /// writer): going live then only updates it for the events applied in between.
    pub fn prepare_index(&mut self) {
        self.build_index();
        self.index_base = Some(Box::new((self.state.clone(), Vec::new())));
    }

    /// Build the list and search index from the rows (when this read model goes live).
    pub fn build_index(&mut self) {
        self.index_base = None;
        self.index_unbuilt = false;
        self.index = AccountIndex::build(self.state.accounts.values().map(|a| &**a));
    }

    /// Make the index match the rows now: the one built from `index_base`, updated for the
    /// accounts changed since; built from the rows when there is none.
    pub fn ready_index(&mut self) {
        if self.index_unbuilt {
            self.build_index();
            return;
        }
        match self.index_base.take() {
            Some(base) => {
                let (before, touched) = *base;
                let index = std::mem::take(&mut self.index);
                self.index = Projections::index_after(index, &before, &self.state, touched);
            }
            None => self.build_index(),
        }
    }

    /// The domain this partition holds (None before its registration is applied).
    pub fn domain(&self) -> Option<&str> {
        self.state.domains.keys().next().map(String::as_str)
    }

    pub fn apply(&mut self, e: &RecordedEvent) {
        if e.position <= self.checkpoint {
            return;
        }
        let usage_before = self.usage();
        self.state.evolve(&e.event);
        self.checkpoint = e.position;
        self.last_applied = e.position;
        if let Some(acc) = e.event.account() {
            self.dirty_buckets.insert(acc / ACCOUNT_BUCKET);
            if let Some(base) = &mut self.index_base {
                base.1.push(acc);
            }
        }
        self.dirty_domain = true;
        let Some(d) = self.state.domains.values().next() else {
            return;
        };
        if Some((d.licenses_used, d.license_limit)) == usage_before {
            return;
        }
        self.push_license_point(e.position, e.recorded_at_us);
    }

    /// Record the domain's usage after `position` in the license series.
    fn push_license_point(&mut self, position: u64, stamp: i64) {
        let Some(d) = self.state.domains.values().next() else {
            return;
        };
        let point = LicensePoint {
            domain: d.name.clone(),
            position,
            used: d.licenses_used,
            limit: d.license_limit,
        };
        // Events with one stamp are indistinguishable "as of T": keep the last of them.
        match (self.newest_stamp, self.pending_points.last_mut()) {
            (Some(last_stamp), Some(last)) if last_stamp == stamp => *last = point,
            _ => {
                self.newest_stamp = Some(stamp);
                self.pending_points.push(point);
            }
        }
    }

    /// The index after the accounts `touched` went from their rows in `before` to those in
    /// `after`. Computed by the writer outside the read model's lock, on an O(1) copy of the
    /// index (for a large group, on a blocking thread while the group is being appended).
    pub fn index_after(
        mut index: AccountIndex,
        before: &LedgerState,
        after: &LedgerState,
        mut touched: Vec<AccountId>,
    ) -> AccountIndex {
        touched.sort_unstable();
        touched.dedup();
        // A large share of the domain (an import): one sorted build beats row-by-row updates.
        if touched.len() > 4096 && touched.len() * 4 > after.accounts.len() {
            return AccountIndex::build(after.accounts.values().map(|a| &**a));
        }
        for id in touched {
            index.replace(before.account(id), after.account(id));
        }
        if index.wants_rebuild() {
            return AccountIndex::build(after.accounts.values().map(|a| &**a));
        }
        index
    }

    /// Take the state a writer reached by deciding `recorded` (now durable) as the read model,
    /// with its index (from [`Projections::index_after`]): the same result as applying them one
    /// by one, without folding them a second time. The state is a persistent map, so this
    /// shares every row with the writer's copy.
    /// `index` is None when the writer found the index unbuilt: the accounts are then noted
    /// for its build, or, when the build finished meanwhile, the index is updated here.
    pub fn publish(
        &mut self,
        state: &LedgerState,
        recorded: &RecordParts,
        index: Option<AccountIndex>,
    ) {
        let Some(last) = recorded.last() else {
            return;
        };
        let usage_before = self.usage();
        let before = std::mem::replace(&mut self.state, state.clone());
        self.checkpoint = self.checkpoint.max(last.position);
        self.last_applied = last.position;
        let touched: Vec<AccountId> = recorded.iter().filter_map(|e| e.event.account()).collect();
        for acc in &touched {
            self.dirty_buckets.insert(acc / ACCOUNT_BUCKET);
        }
        match index {
            Some(index) => self.index = index,
            None => self.update_index(&before, touched),
        }
        #[cfg(test)]
        if let Some(domain) = self.state.domains.keys().next() {
            crate::ledger::writer_faults::panic_if_armed(
                domain,
                crate::ledger::writer_faults::Armed::Publishing,
            );
        }
        self.dirty_domain = true;
        if self.usage() != usage_before {
            // One append is one stamp: its usage after the last event is what "as of T" sees.
            self.push_license_point(last.position, last.recorded_at_us);
        }
    }

    /// Bring the index up to date after the accounts `touched` changed from their rows in
    /// `before`; while it is unbuilt they are noted for the build instead.
    pub fn update_index(&mut self, before: &LedgerState, touched: Vec<AccountId>) {
        if self.index_unbuilt {
            if let Some(base) = &mut self.index_base {
                base.1.extend(touched);
            }
            return;
        }
        let index = std::mem::take(&mut self.index);
        self.index = Projections::index_after(index, before, &self.state, touched);
    }

    fn usage(&self) -> Option<(u32, u32)> {
        let d = self.state.domains.values().next()?;
        Some((d.licenses_used, d.license_limit))
    }

    /// Rows changed since the last call, in whole buckets, complete through `through`.
    pub fn take_batch(&mut self, through: u64) -> ViewBatch {
        let account_buckets = std::mem::take(&mut self.dirty_buckets)
            .into_iter()
            .map(|b| {
                let rows = (b * ACCOUNT_BUCKET..(b + 1) * ACCOUNT_BUCKET)
                    .filter_map(|id| self.state.accounts.get(&id).cloned())
                    .collect();
                (b, rows)
            })
            .collect();
        let domain_row = if std::mem::take(&mut self.dirty_domain) {
            self.state.domains.values().next().cloned()
        } else {
            None
        };
        ViewBatch {
            domain: self.domain().unwrap_or_default().to_string(),
            checkpoint: through,
            account_buckets,
            domain_row,
        }
    }

    /// Mark every row for saving (after a rebuild replaced the persisted views).
    pub fn mark_all_dirty(&mut self) {
        self.dirty_buckets = self
            .state
            .accounts
            .keys()
            .map(|id| id / ACCOUNT_BUCKET)
            .collect();
        self.dirty_domain = true;
    }

    /// License series points not saved yet (oldest first).
    pub fn unsaved_license_points(&self) -> &[LicensePoint] {
        &self.pending_points
    }

    /// Drop the points a save wrote (those at or before `position`).
    pub fn forget_license_points_through(&mut self, position: u64) {
        self.pending_points.retain(|p| p.position > position);
        if self.pending_points.is_empty() {
            self.newest_stamp = None;
        }
    }

    /// The newest unsaved point at or before `position`. Saved points are all older than
    /// unsaved ones, so when this answers it is the domain's usage as of `position`.
    pub fn unsaved_license_point_at(&self, position: u64) -> Option<&LicensePoint> {
        self.pending_points
            .iter()
            .rev()
            .find(|p| p.position <= position)
    }

    /// Whether rows changed since the last save.
    pub fn has_unsaved_rows(&self) -> bool {
        !self.dirty_buckets.is_empty() || self.dirty_domain
    }

    /// Equal as read models (ignores checkpoints and what is pending a save).
    pub fn same_view(&self, other: &Projections) -> bool {
        self.state == other.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Event, Profile, Status};

    fn recorded(position: u64, event: Event) -> RecordedEvent {
        RecordedEvent::at(position, event)
    }

    fn profile(login: &str, first: &str) -> Profile {
        Profile {
            login: login.into(),
            first_name: first.into(),
            last_name: "Doe".into(),
            email: format!("{login}@school.example"),
        }
    }

    fn created(position: u64, account: AccountId, login: &str, first: &str) -> RecordedEvent {
        recorded(
            position,
            Event::AccountCreated {
                account,
                domain: "d".into(),
                import_id: Some(format!("sis-{account}")),
                profile: (&profile(login, first)).into(),
                role: "student".into(),
                enabled: true,
            },
        )
    }

    /// What lists and searches answer from an index, checked against the rows.
    fn answers(index: &AccountIndex, state: &LedgerState) -> Vec<Vec<AccountId>> {
        let mut out = Vec::new();
        for statuses in [
            &[Status::Enabled][..],
            &[Status::Disabled],
            &[Status::Enabled, Status::Disabled, Status::Deactivated],
        ] {
            out.push(index.listed_after(statuses, None, 0).collect());
            out.push(vec![index.count(statuses, Some("student"))]);
        }
        for word in ["ann", "lou", "zed", "tom", "doe", "sis-2"] {
            let words = index::search_words(word);
            let mut found: Vec<_> = index
                .search_candidates(word)
                .into_iter()
                .filter(|id| {
                    state
                        .account(*id)
                        .is_some_and(|a| index::matches_search(a, &words))
                })
                .collect();
            found.sort_unstable();
            out.push(found);
        }
        out
    }

    /// The index of a loaded read model is built from the rows as loaded, off the opening
    /// path, while events keep coming (catch-up, the writer's groups); finished, it answers
    /// as one built from the rows after them. Built at once instead (the fallback), the same.
    #[test]
    fn an_index_built_after_load_while_events_come_answers_as_one_built_after() {
        let mut live = Projections::default();
        live.apply(&recorded(
            1,
            Event::DomainRegistered {
                domain: "d".into(),
                license_limit: 10,
            },
        ));
        for (i, (login, first)) in [("ann", "Ann"), ("tom", "Tom"), ("amy", "Amy")]
            .into_iter()
            .enumerate()
        {
            live.apply(&created(2 + i as u64, 1 + i as u64, login, first));
        }
        let snapshot = PartitionSnapshot {
            domain: live.state.domains["d"].clone(),
            checkpoint: live.checkpoint,
            accounts: live.state.accounts.values().cloned().collect(),
        };
        let mut loaded = Projections::from_snapshot(snapshot);
        assert!(loaded.index_unbuilt());
        let base = loaded
            .index_to_build()
            .expect("a loaded read model has its index to build");
        // After the load: a new account, a rename, a status change, a delete.
        let tail = [
            created(5, 4, "zed", "Zed"),
            recorded(
                6,
                Event::ProfileUpdated {
                    account: 1,
                    profile: (&profile("ann", "Louise")).into(),
                    role: "student".into(),
                },
            ),
            recorded(7, Event::AccountDisabled { account: 3 }),
            recorded(8, Event::AccountDeleted { account: 2 }),
        ];
        // Two by catch-up (applied one by one), two as a writer publishes a group.
        for e in &tail[..2] {
            loaded.apply(e);
            live.apply(e);
        }
        let mut writer = loaded.state.clone();
        for e in &tail[2..] {
            writer.evolve(&e.event);
            live.apply(e);
        }
        let mut group = RecordParts::default();
        group.push_part(tail[2..].to_vec());
        loaded.publish(&writer, &group, None);
        assert!(
            loaded.index_unbuilt(),
            "a group leaves an unbuilt index to its build"
        );
        let mut at_once = loaded.clone();
        // As Partition::build_index does when many changes came meanwhile: one round off
        // the lock (base to now), then finished with what came after (nothing here).
        let mut in_rounds = loaded.clone();
        let (before, touched, now) = in_rounds.take_index_changes().expect("unbuilt");
        assert_eq!((touched.len(), in_rounds.index_changes()), (4, 0));
        let built = AccountIndex::build(base.accounts.values().map(|a| &**a));
        in_rounds.finish_index(Projections::index_after(built, &before, &now, touched));
        let built = AccountIndex::build(base.accounts.values().map(|a| &**a));
        let stale = answers(&built, &loaded.state);
        loaded.finish_index(built);
        assert!(!loaded.index_unbuilt());
        at_once.ready_index();
        live.build_index();
        assert!(loaded.same_view(&live));
        let want = answers(&live.index, &live.state);
        assert_eq!(answers(&loaded.index, &loaded.state), want);
        assert_eq!(answers(&at_once.index, &at_once.state), want);
        assert_eq!(answers(&in_rounds.index, &in_rounds.state), want);
        // A group the writer decided while the index was unbuilt, published once it is built:
        // the index is updated then.
        let late = created(9, 5, "lou", "Lou");
        let mut writer = loaded.state.clone();
        writer.evolve(&late.event);
        live.apply(&late);
        live.build_index();
        let mut group = RecordParts::default();
        group.push_part(vec![late]);
        loaded.publish(&writer, &group, None);
        assert_eq!(
            answers(&loaded.index, &loaded.state),
            answers(&live.index, &live.state)
        );
        assert_ne!(
            stale, want,
            "the changes after the load are in the finished index"
        );
        // The test sees each kind of change: a listed account, a renamed one, a deleted one.
        assert_eq!(want[0], vec![1, 4]);
        assert_eq!(want[7], vec![1], "found by the new first name");
        assert!(
            want[9].is_empty(),
            "the deleted account is found by nothing"
        );
    }
}
