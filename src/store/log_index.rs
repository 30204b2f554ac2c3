//! The in-memory indexes of a log, the same for every backend: each stream's positions, the
//! events of each request id and job, event ids, and commit times. Rebuilt by one scan at open
//! (decoding without decrypting) and kept up to date by each append. Also the one place that
//! assigns positions and stream versions to a batch.

use std::collections::HashMap;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::event_ids::EventIds;
use super::stream_index::StreamIndex;
use super::{EventParts, RecordParts, RecordedEvent};
use crate::domain::{AccountId, StreamId};

/// Serializable as a whole: the sled backend saves it as a checkpoint
/// ([`super::index_checkpoint`]) so that an open reads only the log after it.
#[derive(Clone, Default, Serialize, Deserialize)]
pub(crate) struct LogIndex {
    pub(crate) streams: StreamIndex,
    pub(crate) requests: HashMap<String, Vec<u64>>,
    /// Keyed by ids the ledger makes (never a client's): a fast hash, no need for SipHash's
    /// resistance to chosen keys. Client request ids keep the default hasher.
    pub(crate) jobs: FxHashMap<Uuid, Runs>,
    pub(crate) event_ids: EventIds,
    /// (stamp, last position) per commit; stamps never decrease.
    #[serde(with = "super::number_blob::commit_times")]
    pub(crate) commit_times: Vec<(i64, u64)>,
    pub(crate) last_position: u64,
    pub(crate) last_stamp: i64,
    /// Id of the event at `last_position`: a checkpoint of the index names the event it ends
    /// with, so one made from another log (or before a loss) is not taken for this one's.
    pub(crate) last_event_id: Uuid,
}

impl LogIndex {
    /// Index one event after the indexed end; one already indexed (seen by a catch-up before
    /// its own append reported it) is left as it is.
    pub(crate) fn add(&mut self, e: &RecordedEvent) {
        if e.position <= self.last_position {
            return;
        }
        self.streams.add(e.stream(), e.position);
        self.event_ids.insert(e.event_id, e.position);
        if let Some(r) = &e.request_id {
            self.requests.entry(r.clone()).or_default().push(e.position);
        }
        if let Some(job_id) = e.source.job_id() {
            self.jobs.entry(job_id).or_default().push(e.position);
        }
        match self.commit_times.last_mut() {
            Some((t, last)) if *t == e.recorded_at_us => *last = e.position,
            _ => self.commit_times.push((e.recorded_at_us, e.position)),
        }
        self.last_position = e.position;
        self.last_event_id = e.event_id;
        self.last_stamp = self.last_stamp.max(e.recorded_at_us);
    }

    /// What a checkpoint read back must hold for this log's positions: no event id or job
    /// position past the last position, jobs' runs ascending and apart. (Its CRC catches
    /// damage; this keeps a file made by hand from making a job's history huge.)
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.event_ids.len() > self.last_position {
            return Err(format!(
                "{} event ids for {} positions",
                self.event_ids.len(),
                self.last_position
            ));
        }
        for (job, runs) in &self.jobs {
            if !runs.within(self.last_position) {
                return Err(format!("job {job}: positions out of order or past the end"));
            }
        }
        Ok(())
    }

    /// The last position recorded at or before `at_us` (0 when none).
    pub(crate) fn position_at(&self, at_us: i64) -> u64 {
        let n = self.commit_times.partition_point(|(t, _)| *t <= at_us);
        if n == 0 {
            0
        } else {
            self.commit_times[n - 1].1
        }
    }

    /// Positions and stream versions for a batch stamped `stamp`, after the indexed end,
    /// assigned in place in the batch's own parts (which become the records). An event id
    /// already stored (or twice in the batch) is answered with its first position and not
    /// recorded again. Returns one position per event, the new records, and the sealed
    /// profiles of those records.
    #[allow(clippy::type_complexity)]
    pub(crate) fn assign(
        &self,
        events: EventParts,
        sealed_all: Vec<Option<Vec<u8>>>,
        stamp: i64,
    ) -> (Vec<u64>, RecordParts, Vec<Option<Vec<u8>>>) {
        // One sealed entry per event.
        let len = sealed_all.len();
        let mut next = self.last_position + 1;
        // Accounts' versions by number (16 bytes an entry, not a `StreamId`'s 40: an import
        // job touches a million streams).
        let mut account_versions: FxHashMap<AccountId, u64> = FxHashMap::default();
        let mut domain_versions: FxHashMap<StreamId, u64> = FxHashMap::default();
        // This batch's event ids and the positions they got.
        let mut seen: FxHashMap<Uuid, u64> = FxHashMap::default();
        seen.reserve(len);
        let mut positions = Vec::with_capacity(len);
        let mut records = RecordParts::default();
        let mut sealed = Vec::with_capacity(len);
        let mut sealed_all = sealed_all.into_iter();
        for mut part in events.into_unassigned_parts() {
            part.retain_mut(|e| {
                let sealed_profile = sealed_all.next().flatten();
                let known = self.event_ids.get(&e.event_id);
                // Same id twice in one batch: the first one wins.
                if let Some(p) = known.or_else(|| seen.get(&e.event_id).copied()) {
                    positions.push(p);
                    return false;
                }
                seen.insert(e.event_id, next);
                let version = match e.event.stream() {
                    StreamId::Account(a) => account_versions
                        .entry(a)
                        .or_insert_with(|| self.streams.version(&StreamId::Account(a))),
                    stream => domain_versions
                        .entry(stream)
                        .or_insert_with_key(|s| self.streams.version(s)),
                };
                *version += 1;
                e.position = next;
                e.stream_version = *version;
                e.recorded_at_us = stamp;
                positions.push(next);
                sealed.push(sealed_profile);
                next += 1;
                true
            });
            records.push_part(part);
        }
        (positions, records, sealed)
    }
}

/// Accounts looked up under one hold of the index's read lock when a whole domain is asked
/// about: ~0.4 ms, so appends (which take the write lock) are not held up for a district's
/// worth of lookups.
const LOOKUPS_PER_LOCK: usize = 4096;

/// Those of `accounts` with an event after `position`, in the order given
/// ([`super::EventLog::accounts_changed_after`]), the lock taken for [`LOOKUPS_PER_LOCK`]
/// accounts at a time. A stream's newest position only grows: a later lookup can only add an
/// account.
pub(crate) fn accounts_changed_after(
    index: &std::sync::RwLock<LogIndex>,
    accounts: &[AccountId],
    position: u64,
) -> Vec<AccountId> {
    accounts
        .chunks(LOOKUPS_PER_LOCK)
        .flat_map(|part| {
            let index = index.read().unwrap_or_else(|e| e.into_inner());
            index.streams.changed_after(part, position)
        })
        .collect()
}

/// The durable part of an index entry (positions ascending): an append in flight is not shown
/// to readers before it is durable.
pub(crate) fn durable_only(positions: Option<&Vec<u64>>, durable: u64) -> Vec<u64> {
    positions.map_or_else(Vec::new, |p| {
        p[..p.partition_point(|&x| x <= durable)].to_vec()
    })
}

/// Ascending positions as runs of consecutive ones: a job's events are mostly one run (a
/// million-row import: 16 bytes, not 8 MB in memory and 3 MB in the checkpoint).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Runs(Vec<(u64, u64)>);

impl Runs {
    /// Add `position`, after every position added so far.
    pub(crate) fn push(&mut self, position: u64) {
        match self.0.last_mut() {
            Some((first, len)) if first.checked_add(*len) == Some(position) => *len += 1,
            _ => self.0.push((position, 1)),
        }
    }

    /// Each run starts after the one before ends, and none runs past `last`.
    fn within(&self, last: u64) -> bool {
        let mut next = 1u64;
        self.0.iter().all(|&(first, len)| {
            let ok = len > 0
                && first >= next
                && first.checked_add(len - 1).is_some_and(|end| end <= last);
            next = first.saturating_add(len);
            ok
        })
    }

    /// The positions through `durable`, ascending.
    pub(crate) fn durable_only(runs: Option<&Runs>, durable: u64) -> Vec<u64> {
        runs.into_iter()
            .flat_map(|r| &r.0)
            .flat_map(|&(first, len)| first..first.saturating_add(len))
            .take_while(|&p| p <= durable)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Runs;

    #[test]
    fn runs_hold_positions_and_answer_the_durable_ones() {
        let mut runs = Runs::default();
        let positions = [3, 4, 5, 9, 11, 12, 13, 14];
        for p in positions {
            runs.push(p);
        }
        assert_eq!(runs.0, [(3, 3), (9, 1), (11, 4)]);
        assert_eq!(Runs::durable_only(Some(&runs), 100), positions);
        assert_eq!(Runs::durable_only(Some(&runs), 12), [3, 4, 5, 9, 11, 12]);
        assert_eq!(Runs::durable_only(Some(&runs), 2), Vec::<u64>::new());
        assert_eq!(Runs::durable_only(None, 100), Vec::<u64>::new());
        assert!(runs.within(14));
        assert!(!runs.within(13));
        assert!(!Runs(vec![(1, 5), (3, 1)]).within(10), "overlapping");
        assert!(!Runs(vec![(5, 1), (2, 1)]).within(10), "out of order");
        assert!(!Runs(vec![(1, 0)]).within(10), "empty");
        assert!(
            !Runs(vec![(u64::MAX, 2)]).within(u64::MAX),
            "past the end of numbers"
        );
    }
}
