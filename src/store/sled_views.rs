//! Persisted projections on sled (tree `views`), each save one atomic sled batch that carries
//! the checkpoint with the rows it reflects. Keys:
//! - `L` → layout version (u64 BE); views of another layout are dropped and rebuilt from the log
//! - `K` → the floor: every domain registered at or before it has a saved partition
//! - `P` + domain name → that domain's checkpoint (its views are complete through it)
//! - `B` + name length (u16 BE) + domain name + bucket (u64 BE) → the domain's accounts among
//!   [`ACCOUNT_BUCKET`] consecutive account numbers (codec; profiles sealed; deleted accounts
//!   keep a tombstone without personal data so "deleted" stays distinguishable from "unknown")
//! - `D` + domain name → domain view (limit, usage, guard)
//! - `C` + domain name + 0x00 + position (u64 BE) → license usage after that position
//!   (used u32 BE, limit u32 BE): the series that answers "usage as of T" with one reverse seek.

use std::sync::Arc;

use super::codec::{self, u64_key};
use super::vault::Vault;
use super::{
    ACCOUNT_BUCKET, LicensePoint, PartitionSnapshot, StoreError, ViewBatch, ViewSnapshot, ViewStore,
};

pub struct SledViews {
    tree: sled::Tree,
    vault: Arc<Vault>,
}

const FLOOR: &[u8] = b"K";
const LAYOUT: &[u8] = b"L";
/// Views are partitioned by domain since layout 2.
/// 3: domain rows carry their schedules. 6: a schedule's `restore` holds the accounts another
/// schedule's start or end handed over (derived since then, so older rows lack them).
const LAYOUT_VERSION: u64 = 6;

fn bucket_key(domain: &str, bucket: u64) -> Vec<u8> {
    let mut k = vec![b'B'];
    k.extend_from_slice(&(domain.len() as u16).to_be_bytes());
    k.extend_from_slice(domain.as_bytes());
    k.extend_from_slice(&u64_key(bucket));
    k
}

fn checkpoint_key(name: &str) -> Vec<u8> {
    let mut k = vec![b'P'];
    k.extend_from_slice(name.as_bytes());
    k
}

fn read_checkpoint(v: &[u8], at: &str) -> Result<u64, StoreError> {
    codec::read_u64(v).ok_or_else(|| StoreError::Corrupt {
        at: at.to_string(),
        reason: "not 8 bytes".into(),
    })
}

fn domain_key(name: &str) -> Vec<u8> {
    let mut k = vec![b'D'];
    k.extend_from_slice(name.as_bytes());
    k
}

fn series_prefix(name: &str) -> Vec<u8> {
    let mut k = vec![b'C'];
    k.extend_from_slice(name.as_bytes());
    k.push(0);
    k
}

/// Views kept in a sled directory of their own, as a local cache beside a log stored elsewhere
/// (PostgreSQL): derived data, rebuilt from the log when missing or behind.
pub fn open_cache(dir: &std::path::Path, vault: Arc<Vault>) -> Result<SledViews, StoreError> {
    let open_err = |reason: String| StoreError::Open {
        path: dir.to_path_buf(),
        reason,
    };
    super::files::create_private_dir(dir).map_err(|e| open_err(e.to_string()))?;
    let db = super::sled_open::open_sled(dir).map_err(open_err)?;
    super::files::narrow_tree(dir).map_err(|e| open_err(e.to_string()))?;
    SledViews::open(&db, vault)
}

impl SledViews {
    pub(super) fn open(db: &sled::Db, vault: Arc<Vault>) -> Result<SledViews, StoreError> {
        Ok(SledViews {
            tree: db.open_tree("views")?,
            vault,
        })
    }
}

/// Buckets written in one sled batch (about 9 MB at 128 accounts of ~140 bytes each). A save
/// of more (after a large import or a rebuild) is written in parts: the save after a 1M-row
/// import held its 142 MB of sealed rows in one batch beside sled's copy of it.
const SAVE_PART_BUCKETS: usize = 512;

impl SledViews {
    /// Save `batches`, `part` buckets per sled batch. A save of more than one part first
    /// removes the layout key and puts it back with the checkpoints in its last part: sled
    /// recovers a prefix of its operations, so a crash in between leaves views without the
    /// key, which the next open drops and rebuilds from the log (the checkpoints never claim
    /// rows that a crash kept from the disk).
    fn save_in_parts(
        &self,
        batches: &[ViewBatch],
        floor: Option<u64>,
        part: usize,
    ) -> Result<(), StoreError> {
        let buckets: Vec<(&str, u64, &Vec<Arc<crate::domain::AccountState>>)> = batches
            .iter()
            .flat_map(|batch| {
                batch
                    .account_buckets
                    .iter()
                    .map(|(bucket, accounts)| (batch.domain.as_str(), *bucket, accounts))
            })
            .collect();
        // At least one part: the last carries the checkpoints.
        let slices: Vec<&[_]> = match buckets.is_empty() {
            true => vec![&[]],
            false => buckets.chunks(part.max(1)).collect(),
        };
        let parts = slices.len();
        if parts > 1 {
            self.tree.remove(LAYOUT)?;
        }
        for (n, slice) in slices.into_iter().enumerate() {
            let mut b = sled::Batch::default();
            // Sealing rows is the costly part: buckets are encoded in parallel.
            let encoded = super::parallel::map(slice, 64, |(_, _, accounts)| {
                (!accounts.is_empty()).then(|| codec::encode_accounts(accounts, &self.vault))
            });
            for ((domain, bucket, accounts), value) in slice.iter().zip(encoded) {
                debug_assert!(accounts.iter().all(|a| a.id / ACCOUNT_BUCKET == *bucket));
                let key = bucket_key(domain, *bucket);
                match value {
                    None => b.remove(key),
                    Some(v) => b.insert(key, v?),
                }
            }
            if n + 1 == parts {
                for batch in batches {
                    if let Some(d) = &batch.domain_row {
                        b.insert(domain_key(&d.name), codec::encode_domain(d)?);
                    }
                    b.insert(checkpoint_key(&batch.domain), &u64_key(batch.checkpoint));
                }
                if let Some(floor) = floor {
                    b.insert(FLOOR, &u64_key(floor));
                }
                b.insert(LAYOUT, &u64_key(LAYOUT_VERSION));
            }
            self.tree.apply_batch(b)?;
        }
        // The rows changed since the last save are sealed now: the reuse cache has served.
        self.vault.forget_sealings();
        Ok(())
    }
}

impl ViewStore for SledViews {
    fn load(&self) -> Result<ViewSnapshot, StoreError> {
        let layout = self.tree.get(LAYOUT)?.and_then(|v| codec::read_u64(&v));
        if layout != Some(LAYOUT_VERSION) {
            // Views are derived data: an older layout is dropped and rebuilt from the log.
            self.tree.clear()?;
            self.tree.insert(LAYOUT, &u64_key(LAYOUT_VERSION))?;
            return Ok(ViewSnapshot::default());
        }
        let floor = match self.tree.get(FLOOR)? {
            Some(v) => read_checkpoint(&v, "views floor")?,
            None => 0,
        };
        let mut partitions = std::collections::BTreeMap::new();
        for item in self.tree.scan_prefix(b"D") {
            let (_, v) = item?;
            let domain = codec::decode_domain(&v)?;
            let checkpoint = match self.tree.get(checkpoint_key(&domain.name))? {
                Some(v) => read_checkpoint(&v, &format!("checkpoint of {:?}", domain.name))?,
                None => 0,
            };
            partitions.insert(
                domain.name.clone(),
                PartitionSnapshot {
                    domain,
                    checkpoint,
                    accounts: Vec::new(),
                },
            );
        }
        // Buckets are opened (decrypted) in parallel, a slice at a time so the raw values of
        // the whole store are never held at once.
        const SLICE: usize = 1024;
        let mut raw = Vec::with_capacity(SLICE);
        let mut buckets = self.tree.scan_prefix(b"B");
        loop {
            raw.clear();
            for item in buckets.by_ref().take(SLICE) {
                raw.push(item?.1);
            }
            if raw.is_empty() {
                break;
            }
            for decoded in
                super::parallel::map(&raw, 64, |v| codec::decode_accounts(v, &self.vault))
            {
                for acc in decoded? {
                    if let Some(p) = partitions.get_mut(acc.domain.as_str()) {
                        p.accounts.push(acc);
                    }
                }
            }
        }
        Ok(ViewSnapshot {
            checkpoint: floor,
            partitions: partitions.into_values().collect(),
        })
    }

    fn save(&self, batches: &[ViewBatch], floor: Option<u64>) -> Result<(), StoreError> {
        self.save_in_parts(batches, floor, SAVE_PART_BUCKETS)
    }

    fn save_license_points(&self, points: &[LicensePoint]) -> Result<(), StoreError> {
        let mut b = sled::Batch::default();
        for p in points {
            let mut k = series_prefix(&p.domain);
            k.extend_from_slice(&u64_key(p.position));
            let mut v = p.used.to_be_bytes().to_vec();
            v.extend_from_slice(&p.limit.to_be_bytes());
            b.insert(k, v);
        }
        self.tree.apply_batch(b)?;
        Ok(())
    }

    fn clear(&self) -> Result<(), StoreError> {
        // sled's clear removes keys one by one: a crash midway would leave some rows with
        // checkpoints that claim them complete. Dropping the layout key first (sled recovers a
        // prefix of its operations) makes any partly cleared tree load as "rebuild from the log".
        self.tree.remove(LAYOUT)?;
        self.tree.clear()?;
        Ok(())
    }

    fn license_at(&self, domain: &str, position: u64) -> Result<Option<LicensePoint>, StoreError> {
        let prefix = series_prefix(domain);
        let mut upper = prefix.clone();
        upper.extend_from_slice(&u64_key(position));
        let Some(item) = self.tree.range(prefix.clone()..=upper).next_back() else {
            return Ok(None);
        };
        let (k, v) = item?;
        let at = codec::read_u64(&k[prefix.len()..]).unwrap_or(0);
        if v.len() != 8 {
            return Err(StoreError::Corrupt {
                at: format!("license series of {domain:?}"),
                reason: "value is not 8 bytes".into(),
            });
        }
        Ok(Some(LicensePoint {
            domain: domain.to_string(),
            position: at,
            used: u32::from_be_bytes([v[0], v[1], v[2], v[3]]),
            limit: u32::from_be_bytes([v[4], v[5], v[6], v[7]]),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AccountState, DomainState, Profile};

    fn account(id: u64) -> Arc<AccountState> {
        Arc::new(AccountState {
            id,
            domain: "d".into(),
            import_id: Some(format!("S{id}")),
            profile: crate::domain::PackedProfile::from(&Profile {
                login: format!("u{id}"),
                ..Profile::default()
            }),
            role: "student".into(),
            enabled: true,
            active: true,
            deleted: false,
            last_sign_in_us: None,
            owns_data: true,
            version: 1,
        })
    }

    fn views() -> (tempfile::TempDir, SledViews) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let vault = Arc::new(Vault::in_memory(Default::default()).unwrap());
        vault.ensure_keys(&(0..1000).collect::<Vec<_>>()).unwrap();
        let views = SledViews::open(&db, vault).unwrap();
        assert!(views.load().unwrap().partitions.is_empty());
        (dir, views)
    }

    fn batch(ids: std::ops::Range<u64>, checkpoint: u64) -> ViewBatch {
        let mut buckets = std::collections::BTreeMap::<u64, Vec<_>>::new();
        for id in ids {
            buckets
                .entry(id / ACCOUNT_BUCKET)
                .or_default()
                .push(account(id));
        }
        ViewBatch {
            domain: "d".into(),
            checkpoint,
            account_buckets: buckets.into_iter().collect(),
            domain_row: Some(DomainState {
                name: "d".into(),
                license_limit: 10,
                licenses_used: 0,
                mass_change_percent: 10,
                schedules: Default::default(),
                deletion_grace_us: 0,
                import_jobs: Default::default(),
            }),
        }
    }

    #[test]
    fn a_save_in_parts_loads_back_whole() {
        let (_dir, views) = views();
        // 7 buckets, 2 per part: four sled batches.
        views
            .save_in_parts(&[batch(0..7 * ACCOUNT_BUCKET, 42)], Some(42), 2)
            .unwrap();
        let loaded = views.load().unwrap();
        assert_eq!(loaded.checkpoint, 42);
        let p = &loaded.partitions[0];
        assert_eq!(p.checkpoint, 42);
        assert_eq!(p.accounts.len(), 7 * ACCOUNT_BUCKET as usize);
        let expected: Vec<_> = (0..7 * ACCOUNT_BUCKET).map(account).collect();
        assert_eq!(p.accounts, expected);
    }

    /// What a crash inside a save in parts leaves (its first part, no layout key) loads as no
    /// views: the ledger rebuilds them from the log.
    #[test]
    fn views_cut_short_inside_a_save_in_parts_are_rebuilt() {
        let (_dir, views) = views();
        views.save_in_parts(&[batch(0..10, 5)], Some(5), 2).unwrap();
        assert_eq!(views.load().unwrap().partitions.len(), 1);
        views.tree.remove(LAYOUT).unwrap();
        let first_part = batch(0..2 * ACCOUNT_BUCKET, 9);
        let key = bucket_key("d", 1);
        let value = codec::encode_accounts(&first_part.account_buckets[1].1, &views.vault);
        views.tree.insert(key, value.unwrap()).unwrap();
        let loaded = views.load().unwrap();
        assert!(loaded.partitions.is_empty());
        assert_eq!(loaded.checkpoint, 0);
    }
}
