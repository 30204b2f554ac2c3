//! Which partition owns what: domain name → partition, account number → partition, and the
//! allocation of account numbers. Shared by the API side (routing a command) and the writers
//! (registering the accounts they create).
//!
//! Nothing here is held across a decision: lookups take a read lock for a map probe, and a
//! writer takes the account table's write lock once per decided group to record the accounts
//! it created. Account numbers come from one atomic counter.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use super::account_table::AccountTable;
use super::partition::Partition;
use crate::domain::AccountId;

pub(crate) struct Routes {
    /// Partitions by index; never removed.
    partitions: RwLock<Vec<Arc<Partition>>>,
    by_domain: RwLock<HashMap<String, u32>>,
    /// Partition index by account number.
    accounts: RwLock<AccountTable>,
    /// The next account number to hand out (numbers start at 1).
    next_account: AtomicU64,
}

impl Default for Routes {
    fn default() -> Routes {
        Routes {
            partitions: RwLock::default(),
            by_domain: RwLock::default(),
            accounts: RwLock::default(),
            // Numbers start at 1: people read them in the CLI, and 0 looks like "unset".
            next_account: AtomicU64::new(1),
        }
    }
}

impl Routes {
    pub(crate) fn partition(&self, domain: &str) -> Option<Arc<Partition>> {
        let index = *self.read_by_domain().get(domain)?;
        self.partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(index as usize)
            .cloned()
    }

    /// The partition for `domain`, created by `make(index)` when there is none yet.
    pub(crate) fn partition_or_insert(
        &self,
        domain: &str,
        make: impl FnOnce(u32) -> Arc<Partition>,
    ) -> (Arc<Partition>, bool) {
        if let Some(p) = self.partition(domain) {
            return (p, false);
        }
        let mut by_domain = self.by_domain.write().unwrap_or_else(|e| e.into_inner());
        let mut partitions = self.partitions.write().unwrap_or_else(|e| e.into_inner());
        if let Some(&i) = by_domain.get(domain) {
            return (partitions[i as usize].clone(), false);
        }
        let index = partitions.len() as u32;
        let p = make(index);
        partitions.push(p.clone());
        by_domain.insert(domain.to_string(), index);
        (p, true)
    }

    pub(crate) fn all(&self) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn account(&self, account: AccountId) -> Option<Arc<Partition>> {
        let index = self
            .accounts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(account)?;
        self.partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(index as usize)
            .cloned()
    }

    /// Record that `accounts` belong to the partition at `index`.
    pub(crate) fn register_accounts(&self, index: u32, accounts: &[AccountId]) {
        let Some(&max) = accounts.iter().max() else {
            return;
        };
        let mut table = self.accounts.write().unwrap_or_else(|e| e.into_inner());
        for &a in accounts {
            table.set(a, index);
        }
        drop(table);
        self.next_account
            .fetch_max(max.saturating_add(1), Ordering::AcqRel);
    }

    /// A new account number (never handed out twice).
    pub(crate) fn allocate_account(&self) -> AccountId {
        self.next_account.fetch_add(1, Ordering::AcqRel)
    }

    /// The number the next allocation would likely get (dry runs predict with it).
    pub(crate) fn peek_next_account(&self) -> AccountId {
        self.next_account.load(Ordering::Acquire)
    }

    fn read_by_domain(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, u32>> {
        self.by_domain.read().unwrap_or_else(|e| e.into_inner())
    }
}
