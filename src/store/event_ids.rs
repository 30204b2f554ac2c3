//! Event id → position, for every event of a log: the ids in position order (16 bytes an
//! event) and a hash table of their indexes (4 bytes a slot). A map of (id, position) pairs
//! took about 50 bytes an event in memory (hashbrown's slots of 24 bytes at under 7/8 load)
//! and 22 in the log index checkpoint; this takes about 26 and 16.
//!
//! Positions start at 1 and arrive in order (the log's invariant); a position skipped would be
//! held as the nil id, which no event has.

use std::hash::{BuildHasher, BuildHasherDefault};

use hashbrown::HashTable;
use rustc_hash::FxHasher;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use uuid::Uuid;

use super::number_blob::{self, ByteBuf, Bytes};

/// Ids keyed by a fast hash: the ledger makes them (random), never a client.
type Hasher = BuildHasherDefault<FxHasher>;

#[derive(Clone, Default)]
pub(crate) struct EventIds {
    /// At `position - 1`: that event's id.
    ids: Vec<Uuid>,
    /// Indexes into `ids` (`position - 1`), found by the id's hash.
    table: HashTable<u32>,
    /// Positions past `u32::MAX + 1` (not reached in practice, kept correct all the same).
    far: rustc_hash::FxHashMap<Uuid, u64>,
}

fn hash(id: &Uuid) -> u64 {
    Hasher::default().hash_one(id.as_u128())
}

impl EventIds {
    /// The position of `id`, if indexed.
    pub(crate) fn get(&self, id: &Uuid) -> Option<u64> {
        if let Some(&at) = self
            .table
            .find(hash(id), |&at| self.ids.get(at as usize) == Some(id))
        {
            return Some(u64::from(at) + 1);
        }
        self.far.get(id).copied()
    }

    /// Index `id` at `position`, past every position indexed so far. The nil id stands for
    /// "none" and is not indexed (the ledger's ids are random, never nil).
    pub(crate) fn insert(&mut self, id: Uuid, position: u64) {
        if id.is_nil() {
            return;
        }
        let at = position.saturating_sub(1);
        let Ok(small) = u32::try_from(at) else {
            self.far.insert(id, position);
            return;
        };
        if self.ids.len() as u64 > at {
            return; // not past the end: already indexed
        }
        self.ids.resize(small as usize, Uuid::nil());
        self.ids.push(id);
        let ids = &self.ids;
        self.table
            .insert_unique(hash(&id), small, |&at| hash(&ids[at as usize]));
    }

    /// Positions indexed in the vector (the last one's, skipped ones included).
    pub(crate) fn len(&self) -> u64 {
        self.ids.len() as u64
    }

    fn from_ids(ids: Vec<Uuid>) -> EventIds {
        let mut table = HashTable::with_capacity(ids.len());
        for (at, id) in ids.iter().enumerate() {
            if !id.is_nil() {
                table.insert_unique(hash(id), at as u32, |&at| hash(&ids[at as usize]));
            }
        }
        EventIds {
            ids,
            table,
            far: Default::default(),
        }
    }
}

/// Saved in position order as runs of consecutive ids (a partition's generator hands them out
/// so, `ledger::decider::EventIds`): each run's first id and its length (LEB128), about 17
/// bytes a run instead of 16 an event. The rare far ones as pairs.
impl Serialize for EventIds {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::new();
        let mut ids = self.ids.iter().map(Uuid::as_u128).peekable();
        while let Some(first) = ids.next() {
            let mut len = 1u64;
            while ids.peek() == Some(&first.wrapping_add(u128::from(len))) {
                ids.next();
                len += 1;
            }
            bytes.extend_from_slice(&first.to_be_bytes());
            number_blob::put(&mut bytes, len);
        }
        let far: Vec<(Uuid, u64)> = self.far.iter().map(|(i, p)| (*i, *p)).collect();
        (Bytes(&bytes), far).serialize(s)
    }
}

impl<'de> Deserialize<'de> for EventIds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (bytes, far): (ByteBuf, Vec<(Uuid, u64)>) = Deserialize::deserialize(d)?;
        let mut rest = &bytes.0[..];
        let mut runs = Vec::new();
        let mut total = 0u64;
        while !rest.is_empty() {
            let (first, after) = rest
                .split_first_chunk::<16>()
                .ok_or_else(|| de::Error::custom("event ids: a run cut short"))?;
            rest = after;
            let len = number_blob::take(&mut rest)
                .filter(|&len| len > 0 && len <= u64::from(u32::MAX))
                .ok_or_else(|| de::Error::custom("event ids: a run without a length"))?;
            total += len;
            if total > u64::from(u32::MAX) + 1 {
                return Err(de::Error::custom(
                    "event ids: more than positions can index",
                ));
            }
            runs.push((u128::from_be_bytes(*first), len));
        }
        // Allocated only once the whole claim is known, and refused (not aborted on) when it
        // cannot be; the index's own check then holds it to the log's last position.
        let mut ids: Vec<Uuid> = Vec::new();
        ids.try_reserve_exact(total as usize)
            .map_err(|_| de::Error::custom("event ids: more than memory can hold"))?;
        for (first, len) in runs {
            ids.extend((0..len).map(|i| Uuid::from_u128(first.wrapping_add(u128::from(i)))));
        }
        let mut out = EventIds::from_ids(ids);
        out.far = far.into_iter().collect();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_found_at_their_positions_and_survive_encoding() {
        let mut ids = EventIds::default();
        let some: Vec<Uuid> = (0..1000).map(|_| Uuid::new_v4()).collect();
        for (i, id) in some.iter().enumerate() {
            ids.insert(*id, i as u64 + 1);
        }
        // Small made-up ids (tests use them) and a skipped position.
        ids.insert(Uuid::from_u128(9), 1002);
        ids.insert(some[3], 1003); // not past the end for its id: a second id at a new position
        let far = Uuid::from_u128(7);
        ids.insert(far, u64::from(u32::MAX) + 5);
        let check = |ids: &EventIds| {
            for (i, id) in some.iter().enumerate() {
                assert!(ids.get(id).is_some_and(|p| p == i as u64 + 1 || p == 1003));
            }
            assert_eq!(ids.get(&Uuid::from_u128(9)), Some(1002));
            assert_eq!(ids.get(&far), Some(u64::from(u32::MAX) + 5));
            assert_eq!(ids.get(&Uuid::new_v4()), None);
            assert_eq!(ids.get(&Uuid::nil()), None);
        };
        check(&ids);
        let bytes = bincode::serde::encode_to_vec(&ids, bincode::config::standard()).unwrap();
        let (back, _): (EventIds, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
        check(&back);
        assert!(bytes.len() < 1003 * 17 + 64, "{} bytes", bytes.len());
    }

    #[test]
    fn consecutive_ids_are_saved_as_runs() {
        let mut ids = EventIds::default();
        let first = Uuid::new_v4().as_u128() & !u128::from(u32::MAX);
        let other = Uuid::new_v4();
        for i in 0..10_000u64 {
            // One id of another generator amid the run, and the nil of a skipped position.
            let id = match i {
                5_000 => other,
                _ => Uuid::from_u128(first + u128::from(i)),
            };
            if i != 7_000 {
                ids.insert(id, i + 1);
            }
        }
        let bytes = bincode::serde::encode_to_vec(&ids, bincode::config::standard()).unwrap();
        assert!(bytes.len() < 6 * 20, "{} bytes", bytes.len());
        let (back, _): (EventIds, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
        for i in 0..10_000u64 {
            let id = Uuid::from_u128(first + u128::from(i));
            let want = match i {
                5_000 | 7_000 => None,
                _ => Some(i + 1),
            };
            assert_eq!(back.get(&id), want, "id {i}");
        }
        assert_eq!(back.get(&other), Some(5_001));
        assert_eq!(back.ids, ids.ids);
    }
}
