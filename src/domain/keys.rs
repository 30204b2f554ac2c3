//! The unique keys of live accounts within their domain (import id, login), held as hashes: a
//! set of (hash, account) entries, 16 bytes each, where a map of two strings took about 160
//! with its allocations (a 1M-account district holds two such indexes).
//!
//! A lookup returns candidates; the caller keeps the one whose own row has the key, so a hash
//! collision costs one more row probe, never a wrong answer. The hash (FNV-1a) has no secret
//! key: the indexes must be equal in every replay of the same events, and a crafted collision
//! only adds a candidate.
//!
//! The entries are a sorted vector, as built when views are loaded (one sort each, where a
//! million tree inserts each made a 1M-account district's views load ~0.12 s slower), shared
//! by every copy of the state, plus persistent sets of the entries added and removed since. Once those outgrow a quarter of the vector they are folded into a new one.

use std::sync::Arc;

use imbl::OrdSet;

use super::AccountId;

type Entry = (u64, AccountId);

/// Changes kept beside the sorted vector before a fold, besides a quarter of its length
/// (small in the unit tests, so that they fold often).
const FOLD_SLACK: usize = if cfg!(test) { 64 } else { 65_536 };

#[derive(Debug, Clone, Default)]
pub struct KeyIndex {
    /// Sorted, without duplicates; never changed once built (copies share it).
    built: Arc<Vec<Entry>>,
    /// Entries not in `built`.
    added: OrdSet<Entry>,
    /// Entries of `built` that are gone.
    removed: OrdSet<Entry>,
}

/// Equal when they hold the same entries, however they are split between the parts.
impl PartialEq for KeyIndex {
    fn eq(&self, other: &KeyIndex) -> bool {
        self.len() == other.len() && self.entries().eq(other.entries())
    }
}

impl Eq for KeyIndex {}

fn hash(domain: &str, key: &str) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    // The separator keeps ("ab", "c") and ("a", "bc") apart; names hold no NUL.
    for b in domain.bytes().chain([0]).chain(key.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(PRIME);
    }
    h
}

impl KeyIndex {
    pub fn insert(&mut self, domain: &str, key: &str, account: AccountId) {
        self.insert_entry(KeyIndex::entry(domain, key, account));
    }

    /// Insert an entry made by [`KeyIndex::entry`].
    pub fn insert_entry(&mut self, entry: Entry) {
        if self.built.binary_search(&entry).is_ok() {
            self.removed.remove(&entry);
        } else {
            self.added.insert(entry);
            self.fold_if_large();
        }
    }

    pub fn remove(&mut self, domain: &str, key: &str, account: AccountId) {
        self.remove_entry((hash(domain, key), account));
    }

    fn remove_entry(&mut self, entry: Entry) {
        if self.added.remove(&entry).is_none() && self.built.binary_search(&entry).is_ok() {
            self.removed.insert(entry);
            self.fold_if_large();
        }
    }

    /// Accounts that may have `key` in `domain` (check each row).
    pub fn candidates(&self, domain: &str, key: &str) -> impl Iterator<Item = AccountId> + '_ {
        self.with_hash(hash(domain, key))
    }

    fn with_hash(&self, h: u64) -> impl Iterator<Item = AccountId> + '_ {
        let from = self.built.partition_point(|e| e.0 < h);
        let built = self.built[from..]
            .iter()
            .take_while(move |e| e.0 == h)
            .filter(|e| self.removed.is_empty() || !self.removed.contains(*e))
            .map(|e| e.1);
        let added = (!self.added.is_empty())
            .then(|| self.added.range((h, 0)..=(h, AccountId::MAX)).map(|e| e.1))
            .into_iter()
            .flatten();
        built.chain(added)
    }

    pub fn len(&self) -> usize {
        self.built.len() - self.removed.len() + self.added.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entry `insert` would add for `key` of `domain` (for [`KeyIndex::from_entries`]).
    pub fn entry(domain: &str, key: &str, account: AccountId) -> Entry {
        (hash(domain, key), account)
    }

    /// The index of these entries (duplicates allowed), built with one sort.
    pub fn from_entries(mut entries: Vec<Entry>) -> KeyIndex {
        entries.sort_unstable();
        entries.dedup();
        KeyIndex {
            built: Arc::new(entries),
            ..KeyIndex::default()
        }
    }

    /// Add every entry of `other` (disjoint domains).
    pub fn extend(&mut self, other: KeyIndex) {
        if self.is_empty() {
            *self = other;
            return;
        }
        let all: Vec<Entry> = self.entries().chain(other.entries()).collect();
        *self = KeyIndex::from_entries(all);
    }

    /// Every entry, in order.
    fn entries(&self) -> impl Iterator<Item = Entry> + '_ {
        let mut built = self
            .built
            .iter()
            .filter(|e| self.removed.is_empty() || !self.removed.contains(*e))
            .copied()
            .peekable();
        let mut added = self.added.iter().copied().peekable();
        std::iter::from_fn(move || match (built.peek(), added.peek()) {
            (Some(b), Some(a)) if a < b => added.next(),
            (Some(_), _) => built.next(),
            (None, _) => added.next(),
        })
    }

    /// Fold the changes into a new sorted vector once they outgrow a quarter of it: lookups
    /// stay a binary search and a few tree probes, and a copy of the state stays O(1).
    fn fold_if_large(&mut self) {
        if self.added.len() + self.removed.len() > self.built.len() / 4 + FOLD_SLACK {
            let all: Vec<Entry> = self.entries().collect();
            *self = KeyIndex {
                built: Arc::new(all),
                ..KeyIndex::default()
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colliding_hashes_keep_every_account_findable() {
        let h = hash("d", "a");
        // A collision made directly: account 2's key has account 1's hash.
        let mut index = KeyIndex::from_entries(vec![(h, 1)]);
        index.insert_entry((h, 2));
        assert_eq!(index.candidates("d", "a").collect::<Vec<_>>(), vec![1, 2]);
        index.remove("d", "a", 1);
        assert_eq!(index.candidates("d", "a").collect::<Vec<_>>(), vec![2]);
        index.remove("d", "a", 2);
        assert!(index.is_empty());
        assert_ne!(hash("ab", "c"), hash("a", "bc"));
    }

    #[test]
    fn built_from_entries_equals_inserted_one_by_one() {
        let h = hash("d", "x");
        let entries = vec![(h, 9), (5, 3), (h, 4), (5, 3), (1, 8), (h, 6)];
        let built = KeyIndex::from_entries(entries.clone());
        let mut inserted = KeyIndex::default();
        for entry in entries {
            inserted.insert_entry(entry);
        }
        assert_eq!(built, inserted);
        assert_eq!(built.len(), 5);
        assert_eq!(
            built.candidates("d", "x").collect::<Vec<_>>(),
            vec![4, 6, 9]
        );
    }

    /// Random inserts and removes on a built index, folds included, answer as a plain set.
    #[test]
    fn changes_on_a_built_index_answer_as_a_set_of_entries() {
        let mut want = std::collections::BTreeSet::new();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut start = Vec::new();
        for _ in 0..1_000 {
            let e = (next() % 512, next() % 64);
            start.push(e);
            want.insert(e);
        }
        let mut index = KeyIndex::from_entries(start);
        for round in 0..200_000 {
            let e = (next() % 512, next() % 64);
            if next() % 2 == 0 {
                index.insert_entry(e);
                want.insert(e);
            } else {
                index.remove_entry(e);
                want.remove(&e);
            }
            if round % 1_000 == 0 {
                let entries: Vec<Entry> = index.entries().collect();
                assert_eq!(entries, want.iter().copied().collect::<Vec<_>>());
                let (h, a) = e;
                let mut found: Vec<AccountId> = index.with_hash(h).collect();
                found.sort_unstable();
                let want_found: Vec<AccountId> = want
                    .range((h, 0)..=(h, AccountId::MAX))
                    .map(|x| x.1)
                    .collect();
                assert_eq!(found, want_found);
                assert_eq!(found.contains(&a), want.contains(&e));
            }
        }
        assert_eq!(index.len(), want.len());
        let rebuilt = KeyIndex::from_entries(want.iter().copied().collect());
        assert_eq!(index, rebuilt);
    }
}
