//! The unique keys of live accounts within their domain (import id, login), as a persistent
//! set of (hash of domain and key, account): 16 bytes an entry where a map of two strings
//! took about 160 with its allocations (a 1M-account district held two such maps).
//!
//! A lookup returns candidates; the caller keeps the one whose own row has the key, so a
//! hash collision costs one more row probe, never a wrong answer. The hash has a fixed key:
//! the set must be equal in every replay of the same events.

use std::hash::{DefaultHasher, Hash, Hasher};

use imbl::OrdSet;

use super::AccountId;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyIndex(OrdSet<(u64, AccountId)>);

fn hash(domain: &str, key: &str) -> u64 {
    let mut h = DefaultHasher::new();
    domain.hash(&mut h);
    key.hash(&mut h);
    h.finish()
}

impl KeyIndex {
    pub fn insert(&mut self, domain: &str, key: &str, account: AccountId) {
        self.0.insert((hash(domain, key), account));
    }

    pub fn remove(&mut self, domain: &str, key: &str, account: AccountId) {
        self.0.remove(&(hash(domain, key), account));
    }

    /// Accounts that may have `key` in `domain` (check each row).
    pub fn candidates(&self, domain: &str, key: &str) -> impl Iterator<Item = AccountId> + '_ {
        let h = hash(domain, key);
        self.0
            .range((h, 0)..=(h, AccountId::MAX))
            .map(|(_, id)| *id)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Add every entry of `other` (disjoint domains).
    pub fn extend(&mut self, other: KeyIndex) {
        self.0.extend(other.0);
    }
}
