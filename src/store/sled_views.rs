//! Persisted projections on sled (tree `views`), each save one atomic sled batch that carries
//! the checkpoint with the rows it reflects. Keys:
//! - `K` → checkpoint (last applied log position, u64 BE)
//! - `B` + bucket (u64 BE) → the account views of [`ACCOUNT_BUCKET`] consecutive accounts (codec;
//!   profiles sealed; deleted accounts keep a tombstone without personal data so "deleted"
//!   stays distinguishable from "unknown")
//! - `D` + domain name → domain view (limit, usage, guard)
//! - `C` + domain name + 0x00 + position (u64 BE) → license usage after that position
//!   (used u32 BE, limit u32 BE): the series that answers "usage as of T" with one reverse seek.

use std::sync::Arc;

use super::codec::{self, u64_key};
use super::vault::Vault;
use super::{ACCOUNT_BUCKET, LicensePoint, StoreError, ViewBatch, ViewSnapshot, ViewStore};

pub struct SledViews {
    tree: sled::Tree,
    vault: Arc<Vault>,
}

const CHECKPOINT: &[u8] = b"K";

fn bucket_key(bucket: u64) -> Vec<u8> {
    let mut k = vec![b'B'];
    k.extend_from_slice(&u64_key(bucket));
    k
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

impl SledViews {
    pub(super) fn open(db: &sled::Db, vault: Arc<Vault>) -> Result<SledViews, StoreError> {
        Ok(SledViews {
            tree: db.open_tree("views")?,
            vault,
        })
    }
}

impl ViewStore for SledViews {
    fn load(&self) -> Result<ViewSnapshot, StoreError> {
        let checkpoint = match self.tree.get(CHECKPOINT)? {
            Some(v) => codec::read_u64(&v).ok_or_else(|| StoreError::Corrupt {
                at: "views checkpoint".into(),
                reason: "not 8 bytes".into(),
            })?,
            None => 0,
        };
        let mut snapshot = ViewSnapshot {
            checkpoint,
            ..Default::default()
        };
        for item in self.tree.scan_prefix(b"B") {
            let (_, v) = item?;
            snapshot
                .accounts
                .extend(codec::decode_accounts(&v, &self.vault)?);
        }
        for item in self.tree.scan_prefix(b"D") {
            let (_, v) = item?;
            snapshot.domains.push(codec::decode_domain(&v)?);
        }
        Ok(snapshot)
    }

    fn save(&self, batch: &ViewBatch) -> Result<(), StoreError> {
        let mut b = sled::Batch::default();
        for (bucket, accounts) in &batch.account_buckets {
            debug_assert!(accounts.iter().all(|a| a.id / ACCOUNT_BUCKET == *bucket));
            b.insert(
                bucket_key(*bucket),
                codec::encode_accounts(accounts, &self.vault)?,
            );
        }
        for d in &batch.domains {
            b.insert(domain_key(&d.name), codec::encode_domain(d)?);
        }
        b.insert(CHECKPOINT, &u64_key(batch.checkpoint));
        self.tree.apply_batch(b)?;
        Ok(())
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
