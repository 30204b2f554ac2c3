//! Per-account encryption keys, in a file of fixed slots (slot = account number), or held
//! in memory only for a store that persists them itself ([`Vault::in_memory`]: PostgreSQL
//! writes each new key in the transaction of the events that need it).
//!
//! Why a plain file and not sled: sled is log-structured and keeps old values in old segments,
//! so a removed key could still sit on disk. Here destroying a key overwrites its slot in place
//! with zeros and fsyncs: after that the key, and so the account's personal data everywhere it
//! was written (log, views), is gone. An all-zero slot means "no key".
//!
//! Layout 2: a 16-byte header (magic, slot size, CRC-32 of both) and then 40-byte slots:
//! key (32) ‖ CRC-32 of key and slot number (4) ‖ zero (4). A damaged slot or header is a
//! refusal at open naming the slot, never a key silently read wrong. Layout 1 files (bare
//! 32-byte slots) are rewritten to layout 2 on open.

use std::collections::HashMap;

use rustc_hash::FxHashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use chacha20poly1305::aead::rand_core::SeedableRng;
use chacha20poly1305::aead::{AeadCore, AeadInPlace, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_chacha::ChaCha20Rng;

use super::StoreError;
use crate::domain::AccountId;

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
/// Poly1305's tag, after the ciphertext.
const TAG_LEN: usize = 16;
const MAGIC: &[u8; 8] = b"ALVAULT2";
const HEADER_LEN: usize = 16;
const SLOT_LEN: usize = 40;
const LEGACY_SLOT_LEN: usize = 32;

/// One sealing: (plaintext, nonce ‖ ciphertext ‖ tag).
/// An account's last sealing: a fingerprint of the plaintext and the sealed bytes.
type Sealing = (u128, Vec<u8>);

/// Two SipHash keys drawn at start: a 128-bit fingerprint of a plaintext that no file can
/// aim at (the keys never leave the process). Two different profiles of one account would
/// have to collide by chance, 2^-128, to be mistaken for each other.
struct Fingerprint(std::hash::RandomState, std::hash::RandomState);

impl Fingerprint {
    fn new() -> Fingerprint {
        Fingerprint(Default::default(), Default::default())
    }

    fn of(&self, plaintext: &[u8]) -> u128 {
        use std::hash::BuildHasher;
        let a = self.0.hash_one(plaintext) as u128;
        let b = self.1.hash_one(plaintext) as u128;
        (a << 64) | b
    }
}

/// An account's key.
pub type Key = [u8; KEY_LEN];

/// Account numbers up to this have their key in a dense table (33 bytes an account, where a
/// hash map took 84); larger ones, never handed out in practice, in a map.
const DENSE_ACCOUNTS: AccountId = 1 << 28;

/// The keys by account number. Numbers are handed out in sequence, as the vault's slots are.
#[derive(Default)]
struct KeyTable {
    dense: Vec<Option<Key>>,
    sparse: FxHashMap<AccountId, Key>,
}

impl KeyTable {
    fn get(&self, account: &AccountId) -> Option<&Key> {
        if *account < DENSE_ACCOUNTS {
            self.dense.get(*account as usize)?.as_ref()
        } else {
            self.sparse.get(account)
        }
    }

    fn contains_key(&self, account: &AccountId) -> bool {
        self.get(account).is_some()
    }

    fn insert(&mut self, account: AccountId, key: Key) {
        if account < DENSE_ACCOUNTS {
            let at = account as usize;
            if self.dense.len() <= at {
                // Amortized: the capacity doubles, untouched until used.
                self.dense.resize(at + 1, None);
            }
            self.dense[at] = Some(key);
        } else {
            self.sparse.insert(account, key);
        }
    }

    fn remove(&mut self, account: &AccountId) -> Option<Key> {
        if *account < DENSE_ACCOUNTS {
            self.dense.get_mut(*account as usize)?.take()
        } else {
            self.sparse.remove(account)
        }
    }
}

pub struct Vault {
    /// Keys and nonces come from a ChaCha20 CSPRNG seeded once from the OS: one `getrandom`
    /// syscall per key was a measurable share of an import's time.
    rng: Mutex<ChaCha20Rng>,
    /// None: the keys are persisted by the store that made the vault.
    file: Option<File>,
    /// Account numbers are the ledger's own: a fast hash, no need for SipHash's resistance.
    keys: RwLock<KeyTable>,
    /// The log's last sealing per account (plaintext fingerprint, sealed) until the views'
    /// next save, which seals the same profiles and reuses these instead of encrypting again.
    /// Same key, nonce and plaintext give the same bytes, so reuse leaks nothing new.
    /// Holds a fingerprint, not the plaintext: a large import remembers a million of these.
    last_sealed: Mutex<FxHashMap<AccountId, Sealing>>,
    fingerprint: Fingerprint,
    dirty: Mutex<bool>,
    /// File length as of the last sync: what the reach record may claim.
    synced_len: AtomicU64,
}

impl Vault {
    /// Open the vault; a missing file is created only when `at_least` is 0 (nothing was ever
    /// recorded). A file shorter than `at_least` bytes, or a damaged header or slot, is
    /// [`StoreError::DataLoss`] naming the path.
    pub fn open(path: &Path, at_least: u64) -> Result<Vault, StoreError> {
        let loss = |what: String| StoreError::DataLoss {
            path: path.to_path_buf(),
            what,
        };
        let io_err = |e: std::io::Error| StoreError::Open {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let exists = path.exists();
        if !exists && at_least > 0 {
            return Err(loss(format!(
                "the key vault is missing; the reach record says it held {at_least} bytes: \
                 every account's personal data would be unreadable"
            )));
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(super::files::FILE_MODE)
            .open(path)
            .map_err(io_err)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_err)?;
        if bytes.is_empty() {
            file.write_all(&header()).map_err(io_err)?;
            file.sync_all().map_err(io_err)?;
        } else if bytes.len() >= HEADER_LEN && &bytes[..8] == MAGIC {
            if bytes[..HEADER_LEN] != header() {
                return Err(loss("the key vault's header is damaged".into()));
            }
        } else if bytes.len().is_multiple_of(LEGACY_SLOT_LEN) {
            bytes = upgrade_layout_1(path, &bytes)?;
            file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .map_err(io_err)?;
        } else {
            return Err(loss("the key vault has no valid header".into()));
        }
        let len = bytes.len().max(HEADER_LEN) as u64;
        if len < at_least {
            return Err(loss(format!(
                "the key vault is {len} bytes; the reach record says it held {at_least}: \
                 keys were lost"
            )));
        }
        let mut keys = KeyTable::default();
        // Sized once for the slots the file holds, not grown by doubling as keys are read.
        let slots = bytes.len().saturating_sub(HEADER_LEN) / SLOT_LEN;
        keys.dense.reserve_exact(slots.min(DENSE_ACCOUNTS as usize));
        if bytes.len() > HEADER_LEN {
            for (slot, chunk) in bytes[HEADER_LEN..].chunks(SLOT_LEN).enumerate() {
                let account = slot as AccountId;
                match read_slot(account, chunk) {
                    Ok(Some(k)) => {
                        keys.insert(account, k);
                    }
                    Ok(None) => {}
                    Err(why) => return Err(loss(format!("the key of account {account} {why}"))),
                }
            }
        }
        Ok(Vault {
            rng: Mutex::new(ChaCha20Rng::from_rng(OsRng).map_err(|e| StoreError::Open {
                path: path.to_path_buf(),
                reason: format!("no OS randomness: {e}"),
            })?),
            file: Some(file),
            keys: RwLock::new(keys),
            last_sealed: Mutex::new(FxHashMap::default()),
            fingerprint: Fingerprint::new(),
            dirty: Mutex::new(false),
            synced_len: AtomicU64::new(len),
        })
    }

    /// A vault over keys its store persists: [`Vault::ensure_keys`] hands back the new keys to
    /// be written with the events, and [`Vault::destroy`] only forgets.
    pub fn in_memory(keys: HashMap<AccountId, Key>) -> Result<Vault, StoreError> {
        Ok(Vault {
            rng: Mutex::new(
                ChaCha20Rng::from_rng(OsRng)
                    .map_err(|e| StoreError::Io(format!("no OS randomness: {e}")))?,
            ),
            file: None,
            keys: RwLock::new(keys.into_iter().fold(KeyTable::default(), |mut t, (a, k)| {
                t.insert(a, k);
                t
            })),
            last_sealed: Mutex::new(FxHashMap::default()),
            fingerprint: Fingerprint::new(),
            dirty: Mutex::new(false),
            synced_len: AtomicU64::new(0),
        })
    }

    /// Take keys another server made and its store persisted (an in-memory vault of a shared
    /// store); a key already held is kept.
    pub fn learn(&self, learned: impl IntoIterator<Item = (AccountId, Key)>) {
        let mut keys = self.write_keys();
        for (account, key) in learned {
            if !keys.contains_key(&account) {
                keys.insert(account, key);
            }
        }
    }

    /// Forget keys that were never persisted (their append failed).
    pub fn forget(&self, accounts: &[AccountId]) {
        let mut keys = self.write_keys();
        for a in accounts {
            keys.remove(a);
        }
    }

    /// Make sure each account has a key (no-op for those that have one). Consecutive new
    /// accounts (an import) are written with one `pwrite`. Durable after [`Vault::sync`]. Returns
    /// the new keys (an in-memory vault's store persists them).
    pub fn ensure_keys(&self, accounts: &[AccountId]) -> Result<Vec<(AccountId, Key)>, StoreError> {
        let mut new: Vec<AccountId> = {
            let keys = self.read_keys();
            accounts
                .iter()
                .copied()
                .filter(|a| !keys.contains_key(a))
                .collect()
        };
        if new.is_empty() {
            return Ok(Vec::new());
        }
        new.sort_unstable();
        new.dedup();
        if let (Some(&last), Some(_)) = (new.last(), &self.file) {
            let slots = self.len_on_disk().saturating_sub(HEADER_LEN as u64) / SLOT_LEN as u64;
            if last > slots.saturating_add(MAX_SLOTS_AHEAD) {
                return Err(StoreError::Io(format!(
                    "account number {last} is past the key vault's range (at most \
                     {MAX_SLOTS_AHEAD} past its last slot, {slots}): no key is kept for it"
                )));
            }
        }
        let mut keys = self.write_keys();
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let mut made = Vec::with_capacity(new.len());
        let mut run_start = 0;
        while run_start < new.len() {
            let mut run_end = run_start + 1;
            while run_end < new.len() && new[run_end] == new[run_end - 1] + 1 {
                run_end += 1;
            }
            let mut bytes = Vec::with_capacity((run_end - run_start) * SLOT_LEN);
            for &account in &new[run_start..run_end] {
                let key: [u8; KEY_LEN] = XChaCha20Poly1305::generate_key(&mut *rng).into();
                bytes.extend_from_slice(&slot_bytes(account, &key));
                keys.insert(account, key);
                made.push((account, key));
            }
            if let Some(file) = &self.file {
                file.write_all_at(&bytes, slot_offset(new[run_start]))?;
            }
            run_start = run_end;
        }
        *self.dirty.lock().unwrap_or_else(|e| e.into_inner()) = true;
        Ok(made)
    }

    /// Overwrite the accounts' slots with zeros and fsync once: their personal data becomes
    /// unreadable. (One sync for a job's thousands of deletions, not one each.)
    pub fn destroy(&self, accounts: &[AccountId]) -> Result<(), StoreError> {
        if accounts.is_empty() {
            return Ok(());
        }
        {
            let mut last = self.last_sealed.lock().unwrap_or_else(|e| e.into_inner());
            for a in accounts {
                last.remove(a);
            }
        }
        // A key leaves the map only once its slot is zeroed durably (under the lock), so a
        // caller that finds it gone knows it is gone from disk too: the log index checkpoint
        // relies on that for every deletion it covers.
        let mut keys = self.write_keys();
        let present: Vec<AccountId> = accounts
            .iter()
            .copied()
            .filter(|a| keys.contains_key(a))
            .collect();
        if present.is_empty() {
            return Ok(());
        }
        if let Some(file) = &self.file {
            for a in &present {
                file.write_all_at(&[0u8; SLOT_LEN], slot_offset(*a))?;
            }
            file.sync_data()?;
        }
        for a in &present {
            keys.remove(a);
        }
        Ok(())
    }

    pub fn has_key(&self, account: AccountId) -> bool {
        self.read_keys().contains_key(&account)
    }

    /// fsync new keys before the records that need them are acknowledged.
    pub fn sync(&self) -> Result<(), StoreError> {
        let mut dirty = self.dirty.lock().unwrap_or_else(|e| e.into_inner());
        if *dirty && let Some(file) = &self.file {
            let len = self.len_on_disk();
            file.sync_data()?;
            self.synced_len.fetch_max(len, Ordering::AcqRel);
            *dirty = false;
        }
        Ok(())
    }

    pub fn len_on_disk(&self) -> u64 {
        self.file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.len())
    }

    /// The file length the last sync made durable.
    pub fn synced_len(&self) -> u64 {
        self.synced_len.load(Ordering::Acquire)
    }

    /// Accounts in `accounts` that have no key.
    pub fn missing_keys(&self, accounts: impl IntoIterator<Item = AccountId>) -> Vec<AccountId> {
        let keys = self.read_keys();
        accounts
            .into_iter()
            .filter(|a| !keys.contains_key(a))
            .collect()
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
        // nonce ‖ ciphertext ‖ tag, encrypted in place in the one buffer returned.
        let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let tag = cipher
            .encrypt_in_place_detached(&nonce, b"", &mut out[NONCE_LEN..])
            .map_err(|_| StoreError::Io("encryption failed".into()))?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// [`Vault::seal`], reusing the account's remembered sealing when the plaintext is the
    /// same (the views' save after the log sealed the profile); nothing new is remembered.
    pub fn seal_reusing(
        &self,
        account: AccountId,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        {
            let last = self.last_sealed.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((print, sealed)) = last.get(&account)
                && *print == self.fingerprint.of(plaintext)
            {
                return Ok(sealed.clone());
            }
        }
        // Encrypt outside the lock: views are sealed by several threads at once.
        self.seal(account, plaintext)
    }

    /// [`Vault::seal`], remembered until the next [`Vault::forget_sealings`] for the views'
    /// save to reuse.
    pub fn seal_remembered(
        &self,
        account: AccountId,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let sealed = self.seal(account, plaintext)?;
        self.last_sealed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(account, (self.fingerprint.of(plaintext), sealed.clone()));
        Ok(sealed)
    }

    /// How many sealings are remembered.
    #[cfg(test)]
    pub(crate) fn remembered(&self) -> usize {
        self.last_sealed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Forget the remembered sealings: they only serve until the views have saved the rows
    /// changed since the last save, and kept for every account they would hold a copy of every
    /// profile in memory.
    pub fn forget_sealings(&self) {
        let mut last = self.last_sealed.lock().unwrap_or_else(|e| e.into_inner());
        *last = FxHashMap::default();
    }

    /// Decrypt; `None` when the key is destroyed (erased account) or the bytes do not open.
    pub fn open_sealed(&self, account: AccountId, sealed: &[u8]) -> Option<Vec<u8>> {
        self.opener()
            .open_with(account, sealed, |plain| plain.to_vec())
    }

    /// Opens many sealed values under one look at the key table (loading views: a lock and
    /// a buffer per bucket of rows, not per row).
    pub fn opener(&self) -> Opener<'_> {
        Opener {
            keys: self.read_keys(),
            buffer: Vec::new(),
        }
    }

    fn read_keys(&self) -> std::sync::RwLockReadGuard<'_, KeyTable> {
        self.keys.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_keys(&self) -> std::sync::RwLockWriteGuard<'_, KeyTable> {
        self.keys.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// See [`Vault::opener`]. Holds the key table's read lock: keep it for a bounded batch.
pub struct Opener<'a> {
    keys: std::sync::RwLockReadGuard<'a, KeyTable>,
    buffer: Vec<u8>,
}

impl Opener<'_> {
    /// `f` of the plaintext (decrypted in a buffer reused from call to call); `None` when
    /// the key is destroyed (erased account) or the bytes do not open.
    pub fn open_with<R>(
        &mut self,
        account: AccountId,
        sealed: &[u8],
        f: impl FnOnce(&[u8]) -> R,
    ) -> Option<R> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let key = self.keys.get(&account)?;
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
        self.buffer.clear();
        if ct.len() <= SHORT_SEALED {
            open_short(key, nonce, ct, tag, &mut self.buffer)?;
        } else {
            self.buffer.extend_from_slice(ct);
            XChaCha20Poly1305::new(key.into())
                .decrypt_in_place_detached(
                    XNonce::from_slice(nonce),
                    b"",
                    &mut self.buffer,
                    chacha20poly1305::Tag::from_slice(tag),
                )
                .ok()?;
        }
        Some(f(&self.buffer))
    }
}

/// Longest ciphertext [`open_short`] takes: three ChaCha20 blocks after the one that keys
/// Poly1305 (a profile is ~60-120 bytes).
const SHORT_SEALED: usize = 192;

/// XChaCha20-Poly1305 opening (no associated data) of a short ciphertext, the same
/// construction as `chacha20poly1305`'s (RFC 8439 with HChaCha20's subkey): keystream block 0
/// keys Poly1305, blocks 1.. decrypt. All four blocks come from one call over 256 bytes: the
/// library asks the ChaCha20 core for each block apart, and the AVX2 core computes four
/// blocks each time (opening a 1M-account district's rows: ~40% of their decryption).
/// Appends the plaintext to `out`; `None` when the tag does not match.
fn open_short(
    key: &[u8; KEY_LEN],
    nonce: &[u8],
    ct: &[u8],
    tag: &[u8],
    out: &mut Vec<u8>,
) -> Option<()> {
    use chacha20::cipher::{KeyIvInit, StreamCipher};
    use poly1305::universal_hash::{KeyInit, UniversalHash};
    debug_assert!(ct.len() <= SHORT_SEALED && nonce.len() == NONCE_LEN && tag.len() == TAG_LEN);
    let mut blocks = [0u8; 64 + SHORT_SEALED];
    blocks[64..64 + ct.len()].copy_from_slice(ct);
    chacha20::XChaCha20::new(key.into(), nonce.into()).apply_keystream(&mut blocks);
    let mut mac = poly1305::Poly1305::new(poly1305::Key::from_slice(&blocks[..32]));
    mac.update_padded(ct);
    let mut lengths = poly1305::Block::default();
    lengths[8..].copy_from_slice(&(ct.len() as u64).to_le_bytes());
    mac.update(&[lengths]);
    // Compared in constant time (universal-hash's verify).
    mac.verify(poly1305::Block::from_slice(tag)).ok()?;
    out.extend_from_slice(&blocks[64..64 + ct.len()]);
    Some(())
}

/// How far past the file's last slot a new key may go. Account numbers are handed out from 1
/// in order (a whole import's at once), so only a damaged or hand-written number lands further:
/// its slot would make a sparse file of terabytes that the next open reads whole.
const MAX_SLOTS_AHEAD: u64 = 1 << 24;

/// Where an account's slot is in the file.
fn slot_offset(account: AccountId) -> u64 {
    HEADER_LEN as u64 + account * SLOT_LEN as u64
}

fn header() -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&(SLOT_LEN as u32).to_le_bytes());
    let crc = crc32fast::hash(&h[..12]);
    h[12..16].copy_from_slice(&crc.to_le_bytes());
    h
}

fn slot_crc(account: AccountId, key: &[u8; KEY_LEN]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(key);
    h.update(&account.to_le_bytes());
    h.finalize()
}

fn slot_bytes(account: AccountId, key: &[u8; KEY_LEN]) -> [u8; SLOT_LEN] {
    let mut slot = [0u8; SLOT_LEN];
    slot[..KEY_LEN].copy_from_slice(key);
    slot[KEY_LEN..KEY_LEN + 4].copy_from_slice(&slot_crc(account, key).to_le_bytes());
    slot
}

/// The key in one slot: `None` for an empty (all-zero) slot, an error for a damaged one.
fn read_slot(account: AccountId, slot: &[u8]) -> Result<Option<[u8; KEY_LEN]>, &'static str> {
    if slot.len() < SLOT_LEN {
        return Err("is cut short (the file was truncated)");
    }
    if slot.iter().all(|b| *b == 0) {
        return Ok(None);
    }
    let mut key = [0u8; KEY_LEN];
    key.copy_from_slice(&slot[..KEY_LEN]);
    let crc = u32::from_le_bytes(slot[KEY_LEN..KEY_LEN + 4].try_into().expect("4 bytes"));
    if crc != slot_crc(account, &key) {
        return Err("is damaged (checksum mismatch)");
    }
    Ok(Some(key))
}

/// Rewrite a layout-1 vault (bare 32-byte slots) as layout 2, atomically; returns the new bytes.
fn upgrade_layout_1(path: &Path, old: &[u8]) -> Result<Vec<u8>, StoreError> {
    let mut bytes = header().to_vec();
    for (slot, chunk) in old.chunks_exact(LEGACY_SLOT_LEN).enumerate() {
        if chunk.iter().all(|b| *b == 0) {
            bytes.extend_from_slice(&[0u8; SLOT_LEN]);
        } else {
            let mut key = [0u8; KEY_LEN];
            key.copy_from_slice(chunk);
            bytes.extend_from_slice(&slot_bytes(slot as AccountId, &key));
        }
    }
    let tmp = path.with_extension("upgrade");
    {
        let mut f = super::files::create_private(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    tracing::info!(path = %path.display(), "key vault upgraded to layout 2");
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destroying_many_keys_zeroes_exactly_their_slots_durably() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.vault");
        let vault = Vault::open(&path, 0).unwrap();
        vault.ensure_keys(&(1..=6).collect::<Vec<_>>()).unwrap();
        vault.sync().unwrap();
        let sealed = vault.seal(2, b"ann").unwrap();
        // 9 never had a key; 3 is named twice.
        vault.destroy(&[2, 3, 5, 3, 9]).unwrap();
        assert_eq!(vault.open_sealed(2, &sealed), None);
        let kept: Vec<bool> = (1..=6).map(|a| vault.has_key(a)).collect();
        assert_eq!(kept, [true, false, false, true, false, true]);
        drop(vault);
        let reopened = Vault::open(&path, 0).unwrap();
        let kept: Vec<bool> = (1..=6).map(|a| reopened.has_key(a)).collect();
        assert_eq!(kept, [true, false, false, true, false, true]);
    }

    /// The short path opens exactly what the library opens, and refuses what it refuses.
    #[test]
    fn short_values_open_as_the_library_opens_them() {
        let vault = Vault::in_memory(Default::default()).unwrap();
        vault.ensure_keys(&[3]).unwrap();
        let library = |sealed: &[u8]| {
            let keys = vault.read_keys();
            let cipher = XChaCha20Poly1305::new(keys.get(&3).unwrap().into());
            let (nonce, ct) = sealed.split_at(NONCE_LEN);
            chacha20poly1305::aead::Aead::decrypt(&cipher, XNonce::from_slice(nonce), ct).ok()
        };
        for len in (0..=SHORT_SEALED + 70)
            .step_by(7)
            .chain([SHORT_SEALED, SHORT_SEALED + 1])
        {
            let plain: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
            let sealed = vault.seal(3, &plain).unwrap();
            assert_eq!(
                vault.open_sealed(3, &sealed),
                Some(plain.clone()),
                "length {len}"
            );
            assert_eq!(library(&sealed), Some(plain), "length {len}");
            for at in [0, NONCE_LEN, sealed.len() / 2, sealed.len() - 1] {
                let mut bad = sealed.clone();
                bad[at] ^= 0x40;
                assert_eq!(vault.open_sealed(3, &bad), None, "length {len}, byte {at}");
                assert_eq!(library(&bad), None);
            }
        }
    }
}
