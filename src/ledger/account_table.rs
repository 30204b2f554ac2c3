//! Partition index by account number, for routing ([`super::routes`]) and replay
//! ([`super::replay`]). Numbers are handed out in order from 1, so a vector indexed by number is
//! the compact table; numbers past [`DENSE_ACCOUNTS`] (only a damaged log, view or shared
//! number row can hold one) go to a map, so that one such number never asks for a table of
//! terabytes (as the stream index and the key vault do).

use std::collections::HashMap;

use crate::domain::AccountId;

/// Numbers below this are held in the vector (4 bytes each: 1 GiB at the bound).
const DENSE_ACCOUNTS: AccountId = 1 << 28;
/// No partition (account number never used).
const NONE: u32 = u32::MAX;

#[derive(Default)]
pub(crate) struct AccountTable {
    dense: Vec<u32>,
    sparse: HashMap<AccountId, u32>,
}

impl AccountTable {
    pub(crate) fn get(&self, account: AccountId) -> Option<u32> {
        let index = match account < DENSE_ACCOUNTS {
            true => *self.dense.get(account as usize)?,
            false => *self.sparse.get(&account)?,
        };
        (index != NONE).then_some(index)
    }

    pub(crate) fn set(&mut self, account: AccountId, index: u32) {
        if account < DENSE_ACCOUNTS {
            let at = account as usize;
            if self.dense.len() <= at {
                self.dense.resize(at + 1, NONE);
            }
            self.dense[at] = index;
        } else {
            self.sparse.insert(account, index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_near_and_far_are_held_and_unknown_ones_are_none() {
        let mut t = AccountTable::default();
        t.set(1, 0);
        t.set(7, 3);
        t.set(u64::MAX, 5);
        t.set(DENSE_ACCOUNTS, 2);
        assert_eq!(t.get(1), Some(0));
        assert_eq!(t.get(7), Some(3));
        assert_eq!(t.get(2), None, "a number between two used ones");
        assert_eq!(t.get(8), None);
        assert_eq!(t.get(u64::MAX), Some(5));
        assert_eq!(t.get(DENSE_ACCOUNTS), Some(2));
        assert_eq!(t.get(DENSE_ACCOUNTS + 1), None);
        assert!(t.dense.len() <= 8, "far numbers do not grow the vector");
    }
}
