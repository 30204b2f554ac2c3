//! The unique keys of live accounts within their domain (import id, login), held as hashes:
//! a persistent map hash → account (16 bytes an entry, where a map of two strings took about
//! 160 with its allocations: a 1M-account district held two such maps), plus a set for the
//! rare second account whose key has the same hash.
//!
//! A lookup returns candidates; the caller keeps the one whose own row has the key, so a hash
//! collision costs one more row probe, never a wrong answer. The hash (FNV-1a) has no secret
//! key: the maps must be equal in every replay of the same events, and a crafted collision
//! only adds a candidate.

use imbl::{OrdMap, OrdSet};

use super::AccountId;

#[derive(Debug, Clone, Default)]
pub struct KeyIndex {
    first: OrdMap<u64, AccountId>,
    /// (hash, account) of accounts whose hash was already taken in `first`.
    more: OrdSet<(u64, AccountId)>,
}

/// Equal when they hold the same entries, whichever of two colliding accounts came first.
impl PartialEq for KeyIndex {
    fn eq(&self, other: &KeyIndex) -> bool {
        if self.more.is_empty() && other.more.is_empty() {
            return self.first == other.first;
        }
        let entries = |k: &KeyIndex| {
            let mut all: Vec<(u64, AccountId)> = k
                .first
                .iter()
                .map(|(h, a)| (*h, *a))
                .chain(k.more.iter().copied())
                .collect();
            all.sort_unstable();
            all
        };
        entries(self) == entries(other)
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
    pub fn insert_entry(&mut self, (h, account): (u64, AccountId)) {
        match self.first.get(&h) {
            None => {
                self.first.insert(h, account);
            }
            Some(a) if *a == account => {}
            Some(_) => {
                self.more.insert((h, account));
            }
        }
    }

    pub fn remove(&mut self, domain: &str, key: &str, account: AccountId) {
        let h = hash(domain, key);
        if self.more.remove(&(h, account)).is_some() {
            return;
        }
        if self.first.get(&h) == Some(&account) {
            self.first.remove(&h);
            // Promote a colliding account, if any, so `first` keeps every hash in use.
            let next = self
                .more
                .range((h, 0)..=(h, AccountId::MAX))
                .next()
                .copied();
            if let Some((_, other)) = next {
                self.more.remove(&(h, other));
                self.first.insert(h, other);
            }
        }
    }

    /// Accounts that may have `key` in `domain` (check each row).
    pub fn candidates(&self, domain: &str, key: &str) -> impl Iterator<Item = AccountId> + '_ {
        let h = hash(domain, key);
        let more = (!self.more.is_empty())
            .then(|| {
                self.more
                    .range((h, 0)..=(h, AccountId::MAX))
                    .map(|(_, a)| *a)
            })
            .into_iter()
            .flatten();
        self.first.get(&h).copied().into_iter().chain(more)
    }

    pub fn len(&self) -> usize {
        self.first.len() + self.more.len()
    }

    pub fn is_empty(&self) -> bool {
        self.first.is_empty()
    }

    /// The entry `insert` would add for `key` of `domain` (for [`KeyIndex::from_entries`]).
    pub fn entry(domain: &str, key: &str, account: AccountId) -> (u64, AccountId) {
        (hash(domain, key), account)
    }

    /// The index of these entries, built from them sorted: the same as inserting them in
    /// account order (the smallest account of a hash is in `first`), without a random-order
    /// insert per entry (start-up loads a district's million rows this way).
    pub fn from_entries(mut entries: Vec<(u64, AccountId)>) -> KeyIndex {
        entries.sort_unstable();
        entries.dedup();
        let mut more = Vec::new();
        let mut first = Vec::with_capacity(entries.len());
        for (h, a) in entries {
            match first.last() {
                Some(&(last, _)) if last == h => more.push((h, a)),
                _ => first.push((h, a)),
            }
        }
        KeyIndex {
            first: first.into_iter().collect(),
            more: more.into_iter().collect(),
        }
    }

    /// Add every entry of `other` (disjoint domains).
    pub fn extend(&mut self, other: KeyIndex) {
        for (h, a) in other.first.into_iter().chain(other.more) {
            match self.first.get(&h) {
                None => {
                    self.first.insert(h, a);
                }
                Some(_) => {
                    self.more.insert((h, a));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colliding_hashes_keep_every_account_findable() {
        // Force a collision by inserting under one hash directly.
        let mut index = KeyIndex::default();
        index.insert("d", "a", 1);
        let h = hash("d", "a");
        index.more.insert((h, 2));
        assert_eq!(index.candidates("d", "a").collect::<Vec<_>>(), vec![1, 2]);
        index.remove("d", "a", 1);
        assert_eq!(index.candidates("d", "a").collect::<Vec<_>>(), vec![2]);
        index.remove("d", "a", 2);
        assert!(index.is_empty() && index.more.is_empty());
        assert_ne!(hash("ab", "c"), hash("a", "bc"));
    }

    #[test]
    fn built_from_entries_equals_inserted_in_account_order() {
        let h = hash("d", "x");
        let entries = vec![(h, 9), (5, 3), (h, 4), (5, 3), (1, 8), (h, 6)];
        let built = KeyIndex::from_entries(entries.clone());
        let mut inserted = KeyIndex::default();
        let mut in_order = entries;
        in_order.sort_by_key(|&(_, a)| a);
        for entry in in_order {
            inserted.insert_entry(entry);
        }
        assert_eq!(built.first, inserted.first);
        assert_eq!(built.more, inserted.more);
        assert_eq!(
            built.candidates("d", "x").collect::<Vec<_>>(),
            vec![4, 6, 9]
        );
    }
}
