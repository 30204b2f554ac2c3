//! Per-account encryption keys, in a file of fixed 32-byte slots (slot = account number).
//!
//! Why a plain file and not sled: sled is log-structured and keeps old values in old segments,
//! so a removed key could still sit on disk. Here destroying a key overwrites its slot in place
//! with zeros and fsyncs: after that the key, and so the account's personal data everywhere it
//! was written (log, views), is gone. An all-zero slot means "no key".

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Mutex, RwLock};

use chacha20poly1305::aead::rand_core::SeedableRng;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_chacha::ChaCha20Rng;

use super::StoreError;
use crate::domain::AccountId;

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;

/// One sealing: (plaintext, nonce ‖ ciphertext ‖ tag).
type Sealing = (Vec<u8>, Vec<u8>);

pub struct Vault {
    /// Keys and nonces come from a ChaCha20 CSPRNG seeded once from the OS: one `getrandom`
    /// syscall per key was a measurable share of an import's time.
    rng: Mutex<ChaCha20Rng>,
    file: File,
    keys: RwLock<HashMap<AccountId, [u8; KEY_LEN]>>,
    /// The last sealing per account (plaintext, sealed): the log and the views seal the same
    /// profile, and views re-save unchanged rows; both reuse it instead of encrypting again.
    /// Same key, nonce and plaintext give the same bytes, so reuse leaks nothing new.
    last_sealed: Mutex<HashMap<AccountId, Sealing>>,
    dirty: Mutex<bool>,
}

impl Vault {
    pub fn open(path: &Path) -> Result<Vault, StoreError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| StoreError::Open {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let mut keys = HashMap::new();
        for (slot, chunk) in bytes.chunks_exact(KEY_LEN).enumerate() {
            if chunk.iter().any(|b| *b != 0) {
                let mut k = [0u8; KEY_LEN];
                k.copy_from_slice(chunk);
                keys.insert(slot as AccountId, k);
            }
        }
        Ok(Vault {
            rng: Mutex::new(ChaCha20Rng::from_rng(OsRng).map_err(|e| StoreError::Open {
                path: path.to_path_buf(),
                reason: format!("no OS randomness: {e}"),
            })?),
            file,
            keys: RwLock::new(keys),
            last_sealed: Mutex::new(HashMap::new()),
            dirty: Mutex::new(false),
        })
    }

    /// Make sure each account has a key (no-op for those that have one). Consecutive new
    /// accounts (an import) are written with one `pwrite`. Durable after [`Vault::sync`].
    pub fn ensure_keys(&self, accounts: &[AccountId]) -> Result<(), StoreError> {
        let mut new: Vec<AccountId> = {
            let keys = self.read_keys();
            accounts
                .iter()
                .copied()
                .filter(|a| !keys.contains_key(a))
                .collect()
        };
        if new.is_empty() {
            return Ok(());
        }
        new.sort_unstable();
        new.dedup();
        let mut keys = self.write_keys();
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let mut run_start = 0;
        while run_start < new.len() {
            let mut run_end = run_start + 1;
            while run_end < new.len() && new[run_end] == new[run_end - 1] + 1 {
                run_end += 1;
            }
            let mut bytes = Vec::with_capacity((run_end - run_start) * KEY_LEN);
            for &account in &new[run_start..run_end] {
                let key: [u8; KEY_LEN] = XChaCha20Poly1305::generate_key(&mut *rng).into();
                bytes.extend_from_slice(&key);
                keys.insert(account, key);
            }
            self.file
                .write_all_at(&bytes, slot_offset(new[run_start]))?;
            run_start = run_end;
        }
        *self.dirty.lock().unwrap_or_else(|e| e.into_inner()) = true;
        Ok(())
    }

    /// Overwrite the account's slot with zeros and fsync: its personal data becomes unreadable.
    pub fn destroy(&self, account: AccountId) -> Result<(), StoreError> {
        self.last_sealed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&account);
        if self.write_keys().remove(&account).is_none() {
            return Ok(());
        }
        self.file
            .write_all_at(&[0u8; KEY_LEN], slot_offset(account))?;
        self.file.sync_data()?;
        Ok(())
    }

    pub fn has_key(&self, account: AccountId) -> bool {
        self.read_keys().contains_key(&account)
    }

    /// fsync new keys before the records that need them are acknowledged.
    pub fn sync(&self) -> Result<(), StoreError> {
        let mut dirty = self.dirty.lock().unwrap_or_else(|e| e.into_inner());
        if *dirty {
            self.file.sync_data()?;
            *dirty = false;
        }
        Ok(())
    }

    pub fn len_on_disk(&self) -> u64 {
        self.file.metadata().map(|m| m.len()).unwrap_or(0)
    }

    /// Encrypt with the account's key: nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, account: AccountId, plaintext: &[u8]) -> Result<Vec<u8>, StoreError> {
        let keys = self.read_keys();
        let key = keys
            .get(&account)
            .ok_or_else(|| StoreError::Io(format!("no key for account {account}")))?;
        let cipher = XChaCha20Poly1305::new(key.into());
        let nonce = {
            let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
            XChaCha20Poly1305::generate_nonce(&mut *rng)
        };
        let ct = cipher
            .encrypt(&nonce, plaintext)
            .map_err(|_| StoreError::Io("encryption failed".into()))?;
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// [`Vault::seal`], reusing the account's last sealing when the plaintext is the same.
    pub fn seal_reusing(
        &self,
        account: AccountId,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let mut last = self.last_sealed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((plain, sealed)) = last.get(&account)
            && plain.as_slice() == plaintext
        {
            return Ok(sealed.clone());
        }
        let sealed = self.seal(account, plaintext)?;
        last.insert(account, (plaintext.to_vec(), sealed.clone()));
        Ok(sealed)
    }

    /// Forget the remembered sealings: they only serve until the views have saved the rows
    /// changed since the last save, and kept for every account they would hold a copy of every
    /// profile in memory.
    pub fn forget_sealings(&self) {
        let mut last = self.last_sealed.lock().unwrap_or_else(|e| e.into_inner());
        *last = HashMap::new();
    }

    /// Decrypt; `None` when the key is destroyed (erased account) or the bytes do not open.
    pub fn open_sealed(&self, account: AccountId, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let keys = self.read_keys();
        let key = keys.get(&account)?;
        let cipher = XChaCha20Poly1305::new(key.into());
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        cipher.decrypt(XNonce::from_slice(nonce), ct).ok()
    }

    fn read_keys(&self) -> std::sync::RwLockReadGuard<'_, HashMap<AccountId, [u8; KEY_LEN]>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_keys(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<AccountId, [u8; KEY_LEN]>> {
        self.keys.write().unwrap_or_else(|e| e.into_inner())
    }
}

fn slot_offset(account: AccountId) -> u64 {
    account * KEY_LEN as u64
}
