//! Where each stream's events are, in memory: per stream its newest position and event count,
//! and per event the previous position of the same stream. 8 bytes an event and 16 an
//! account (a map of position vectors took about 120 bytes an account), and a stream's
//! positions are a walk back from its newest.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::domain::{AccountId, StreamId};

/// Account numbers up to this are held in a dense table; larger ones (never handed out in
/// practice) and domain streams in a map.
const DENSE_ACCOUNTS: u64 = 1 << 28;

#[derive(Clone, Default, Serialize, Deserialize)]
pub(crate) struct StreamIndex {
    /// By account number: (newest position, event count); (0, 0) for none.
    accounts: Vec<(u64, u64)>,
    others: HashMap<StreamId, (u64, u64)>,
    /// At `position - 1`: the previous position of that event's stream (0: its first).
    #[serde(with = "super::number_blob::previous_positions")]
    previous: Vec<u64>,
}

impl StreamIndex {
    fn head(&self, stream: &StreamId) -> (u64, u64) {
        match stream {
            StreamId::Account(a) if *a < DENSE_ACCOUNTS => {
                self.accounts.get(*a as usize).copied().unwrap_or((0, 0))
            }
            other => self.others.get(other).copied().unwrap_or((0, 0)),
        }
    }

    fn head_mut(&mut self, stream: StreamId) -> &mut (u64, u64) {
        match stream {
            StreamId::Account(a) if a < DENSE_ACCOUNTS => {
                let at = a as usize;
                if self.accounts.len() <= at {
                    self.accounts.resize(at + 1, (0, 0));
                }
                &mut self.accounts[at]
            }
            other => self.others.entry(other).or_insert((0, 0)),
        }
    }

    /// Record the event at `position` (positions arrive in order, gap-free from 1).
    pub(crate) fn add(&mut self, stream: StreamId, position: u64) {
        let head = self.head_mut(stream);
        let previous = head.0;
        *head = (position, head.1 + 1);
        let at = (position - 1) as usize;
        if self.previous.len() <= at {
            self.previous.resize(at + 1, 0);
        }
        self.previous[at] = previous;
    }

    /// Number of events in the stream (its version).
    pub(crate) fn version(&self, stream: &StreamId) -> u64 {
        self.head(stream).1
    }

    /// The stream's newest position (0: none); no walk.
    pub(crate) fn newest(&self, stream: &StreamId) -> u64 {
        self.head(stream).0
    }

    /// Those of `accounts` whose newest event is after `position`, in the order given.
    pub(crate) fn changed_after(&self, accounts: &[AccountId], position: u64) -> Vec<AccountId> {
        accounts
            .iter()
            .copied()
            .filter(|a| self.newest(&StreamId::Account(*a)) > position)
            .collect()
    }

    /// The stream's positions up to `through`, oldest first.
    pub(crate) fn positions(&self, stream: &StreamId, through: u64) -> Vec<u64> {
        let mut out = Vec::new();
        let mut p = self.head(stream).0;
        while p != 0 {
            if p <= through {
                out.push(p);
            }
            p = self.previous.get((p - 1) as usize).copied().unwrap_or(0);
        }
        out.reverse();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_walk_back_per_stream_and_stop_at_the_durable_end() {
        let mut index = StreamIndex::default();
        let d = StreamId::Domain("d".into());
        for (p, s) in [
            (1, &d),
            (2, &StreamId::Account(7)),
            (3, &d),
            (4, &StreamId::Account(7)),
        ] {
            index.add(s.clone(), p);
        }
        assert_eq!(index.positions(&d, u64::MAX), vec![1, 3]);
        assert_eq!(index.positions(&StreamId::Account(7), 3), vec![2]);
        assert_eq!(index.version(&StreamId::Account(7)), 2);
        assert_eq!(index.version(&StreamId::Account(8)), 0);
        assert_eq!(index.newest(&StreamId::Account(7)), 4);
        assert_eq!(index.newest(&StreamId::Account(8)), 0);
        assert_eq!(index.changed_after(&[9, 7, 8], 3), vec![7]);
        assert!(index.changed_after(&[7], 4).is_empty());
        assert!(index.positions(&StreamId::Account(1 << 40), 9).is_empty());
    }
}
