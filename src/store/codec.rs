//! The one place that turns records into bytes and back. Every stored value starts with a
//! format version byte; a reader refuses versions it does not know instead of guessing.
//! bincode (2.x, serde mode) is an implementation detail of this module: it is unmaintained
//! (RUSTSEC-2025-0141), and swapping it means a new version byte here and nothing elsewhere.
//!
//! Personal data (the `Profile` inside an event or a view) is taken out before encoding and
//! stored sealed with the account's key from the [`Vault`].

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::vault::{Opener, Vault};
use super::{RecordedEvent, StoreError};
use crate::domain::{AccountId, AccountState, DomainState, Event, PackedProfile};

mod chunk;
pub use chunk::{
    SealedRecord, decode_chunk, decode_chunk_sealed, decode_chunk_sealed_at, encode_chunk,
    encode_chunk_sealed,
};

/// Format of views, of the log index checkpoint, and of one-event log chunks.
pub const FORMAT_V1: u8 = 1;
/// Format of log chunks of several events: each event encoded on its own behind a table of
/// lengths ([`chunk_table`]), so one event is read without decoding the others. Read, no
/// longer written.
pub const FORMAT_CHUNK_V2: u8 = 2;
/// Format 2 with what the events share written once, in a header before them
/// ([`chunk_shared`]).
pub const FORMAT_CHUNK_V3: u8 = 3;

/// Most one decode may claim. bincode allocates a length it reads before it reads the bytes,
/// so a damaged length (a torn chunk, a hand-edited row) would otherwise ask for terabytes and
/// abort the process; past this it is refused as damage. Above the largest value stored (a log
/// index checkpoint: tens of MB at 1M events; one past the limit is read by scanning the log
/// instead) and a forwarded import (hundreds of MB; bincode counts about 2x that).
pub(crate) const DECODE_LIMIT: usize = 1 << 32;

pub(crate) type Config = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<DECODE_LIMIT>,
>;

/// The one bincode configuration of everything stored or sent between servers.
pub(crate) fn config() -> Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

fn to_bytes<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![FORMAT_V1];
    let body = bincode::serde::encode_to_vec(v, config())
        .map_err(|e| StoreError::Io(format!("encode: {e}")))?;
    out.extend_from_slice(&body);
    Ok(out)
}

fn from_bytes<T: DeserializeOwned>(bytes: &[u8], at: &dyn Fn() -> String) -> Result<T, StoreError> {
    let (&version, body) = bytes.split_first().ok_or_else(|| StoreError::Corrupt {
        at: at(),
        reason: "empty record".into(),
    })?;
    if version != FORMAT_V1 {
        return Err(StoreError::UnknownVersion { at: at(), version });
    }
    let (v, _) =
        bincode::serde::decode_from_slice(body, config()).map_err(|e| StoreError::Corrupt {
            at: at(),
            reason: e.to_string(),
        })?;
    Ok(v)
}

fn profile_slot(event: &mut Event) -> Option<(AccountId, &mut PackedProfile)> {
    match event {
        Event::AccountCreated {
            account, profile, ..
        }
        | Event::ProfileUpdated {
            account, profile, ..
        } => Some((*account, profile)),
        _ => None,
    }
}

/// How a profile is sealed: for the log, remembered or not; for the views, reusing what the
/// log remembered.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sealing {
    Remember,
    Once,
    Reuse,
}

/// Sealings a log batch remembers for the views' save (see [`Vault::seal_remembered`]) up to
/// this many events. A larger batch (an import job) does not: a million remembered sealings
/// held about 240 MB from the job's append until the save, which then encrypts them again
/// (about a microsecond each, off the write path).
const REMEMBER_SEALINGS_UP_TO: usize = 16_384;

/// `profile`: a [`Profile`] or a [`crate::domain::PackedProfile`] (same encoding).
fn seal_profile(
    vault: &Vault,
    account: AccountId,
    profile: &impl Serialize,
    how: Sealing,
) -> Result<Vec<u8>, StoreError> {
    let plain = bincode::serde::encode_to_vec(profile, config())
        .map_err(|e| StoreError::Io(format!("encode: {e}")))?;
    match how {
        Sealing::Remember => vault.seal_remembered(account, &plain),
        Sealing::Once => vault.seal(account, &plain),
        Sealing::Reuse => vault.seal_reusing(account, &plain),
    }
}

fn open_profile(vault: &Vault, account: AccountId, sealed: &[u8]) -> PackedProfile {
    open_profile_with(&mut vault.opener(), account, sealed)
}

fn open_profile_with(opener: &mut Opener<'_>, account: AccountId, sealed: &[u8]) -> PackedProfile {
    opener
        .open_with(account, sealed, |plain| {
            bincode::serde::borrow_decode_from_slice::<PackedProfile, _>(plain, config())
                .ok()
                .map(|(p, _)| p)
        })
        .flatten()
        .unwrap_or_else(PackedProfile::erased)
}

/// A batch ready to write: each event's sealed profile (if it carries one), and the keys made
/// for the accounts it creates (an in-memory vault's store writes them with the events).
pub struct PreparedBatch {
    pub sealed: Vec<Option<Vec<u8>>>,
    pub new_keys: Vec<(AccountId, super::vault::Key)>,
}

/// Before a batch is written: the keys of the accounts it creates, durable first (a durable
/// record must never point at a key that is not), then every profile sealed. The costly part
/// of an append, done before any log lock.
pub fn prepare_batch<'a>(
    events: impl Iterator<Item = &'a Event> + Clone,
    vault: &Vault,
) -> Result<PreparedBatch, StoreError> {
    let len = events.clone().count();
    let created: Vec<u64> = events.clone().filter_map(Event::created_account).collect();
    let mut new_keys = Vec::new();
    if !created.is_empty() {
        new_keys = vault.ensure_keys(&created)?;
        vault.sync()?;
    }
    Ok(PreparedBatch {
        sealed: seal_profiles(events, vault, len)?,
        new_keys,
    })
}

/// After a batch is durable: destroy the keys of the accounts it deleted (crypto-shredding).
pub fn destroy_deleted_keys<'a>(
    records: impl Iterator<Item = &'a RecordedEvent>,
    vault: &Vault,
) -> Result<(), StoreError> {
    let deleted: Vec<AccountId> = records.filter_map(|r| r.event.deleted_account()).collect();
    vault.destroy(&deleted)
}

/// Seal the profile of each event that carries one (`None` for the others). Sealing is the
/// costly part of encoding and needs no position, so appenders do it before taking the log's
/// append lock.
pub fn seal_profiles<'a>(
    events: impl Iterator<Item = &'a Event>,
    vault: &Vault,
    batch_len: usize,
) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
    let how = if batch_len <= REMEMBER_SEALINGS_UP_TO {
        Sealing::Remember
    } else {
        Sealing::Once
    };
    events
        .map(|event| match event {
            Event::AccountCreated {
                account, profile, ..
            }
            | Event::ProfileUpdated {
                account, profile, ..
            } => seal_profile(vault, *account, profile, how).map(Some),
            _ => Ok(None),
        })
        .collect()
}

#[derive(Serialize, Deserialize)]
struct AccountViewV1 {
    state: AccountState,
    sealed_profile: Vec<u8>,
}

/// A bucket of account view rows (consecutive account numbers), each profile sealed with its
/// own account's key. A deleted account is a tombstone with no personal data and needs no key.
pub fn encode_accounts(
    accounts: &[std::sync::Arc<AccountState>],
    vault: &Vault,
) -> Result<Vec<u8>, StoreError> {
    let rows = accounts
        .iter()
        .map(|acc| {
            let sealed_profile = if acc.deleted || acc.profile.is_erased() {
                Vec::new()
            } else {
                match seal_profile(vault, acc.id, &acc.profile, Sealing::Reuse) {
                    Ok(sealed) => sealed,
                    // The key goes as soon as a deletion is durable, which the row may not
                    // show yet: the row is saved as the deletion will leave it, erased.
                    Err(_) if !vault.has_key(acc.id) => Vec::new(),
                    Err(e) => return Err(e),
                }
            };
            let mut state = AccountState::clone(acc);
            state.profile = crate::domain::PackedProfile::erased();
            Ok(AccountViewV1 {
                state,
                sealed_profile,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    to_bytes(&rows)
}

/// Rows come back shared (`Arc`), the form the read model keeps them in: no second copy of a
/// district's rows while it loads.
pub fn decode_accounts(
    bytes: &[u8],
    vault: &Vault,
) -> Result<Vec<std::sync::Arc<AccountState>>, StoreError> {
    let rows: Vec<AccountViewV1> = from_bytes(bytes, &|| "account views".to_string())?;
    let mut opener = vault.opener();
    Ok(rows
        .into_iter()
        .map(|v| {
            let mut state = v.state;
            state.profile = open_profile_with(&mut opener, state.id, &v.sealed_profile);
            std::sync::Arc::new(state)
        })
        .collect())
}

pub fn encode_domain(d: &DomainState) -> Result<Vec<u8>, StoreError> {
    to_bytes(d)
}

pub fn decode_domain(bytes: &[u8]) -> Result<DomainState, StoreError> {
    from_bytes(bytes, &|| "domain view".to_string())
}

/// The log's in-memory indexes, for their checkpoint file (no personal data: stream ids,
/// event and job ids, request ids and times, all of which the log itself holds in clear).
pub(crate) fn encode_log_index(index: &super::log_index::LogIndex) -> Result<Vec<u8>, StoreError> {
    to_bytes(index)
}

pub(crate) fn decode_log_index(bytes: &[u8]) -> Result<super::log_index::LogIndex, StoreError> {
    from_bytes(bytes, &|| "log index checkpoint".to_string())
}

/// Small integers (checkpoints, counts) are plain big-endian: no version byte needed for a
/// fixed-width number, and keys must sort.
pub fn u64_key(v: u64) -> [u8; 8] {
    v.to_be_bytes()
}

pub fn read_u64(bytes: &[u8]) -> Option<u64> {
    bytes.try_into().ok().map(u64::from_be_bytes)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn a_damaged_length_is_refused_as_damage_not_allocated() {
        for length in [1u64 << 40, u64::MAX] {
            let mut bytes = vec![FORMAT_V1, 0xFD];
            bytes.extend_from_slice(&length.to_le_bytes());
            bytes.extend_from_slice(b"short");
            let got = from_bytes::<String>(&bytes, &|| "a damaged value".into());
            assert!(
                matches!(got, Err(StoreError::Corrupt { ref at, .. }) if at == "a damaged value"),
                "{got:?}"
            );
        }
    }
    use crate::domain::Profile;
    use crate::store::Source;
    use uuid::Uuid;

    /// A view row whose account's key is gone (its deletion is durable, the row does not
    /// show it yet) is saved erased; a key that is there still seals the profile.
    #[test]
    fn a_row_whose_key_is_gone_is_saved_erased() {
        let vault = Vault::in_memory(Default::default()).unwrap();
        vault.ensure_keys(&[1, 2]).unwrap();
        let row = |id: AccountId| {
            std::sync::Arc::new(crate::domain::AccountState {
                id,
                domain: "d".into(),
                import_id: None,
                profile: (&Profile {
                    login: format!("u{id}"),
                    ..Profile::default()
                })
                    .into(),
                role: "student".into(),
                enabled: true,
                active: true,
                deleted: false,
                last_sign_in_us: None,
                owns_data: true,
                version: 1,
            })
        };
        vault.destroy(&[2]).unwrap();
        let bytes = encode_accounts(&[row(1), row(2)], &vault).unwrap();
        let back = decode_accounts(&bytes, &vault).unwrap();
        assert_eq!(back[0].profile.login(), "u1");
        assert!(back[1].profile.is_erased());
        vault.destroy(&[1]).unwrap();
        let back = decode_accounts(&bytes, &vault).unwrap();
        assert!(back[0].profile.is_erased(), "sealed, not in clear");
    }

    pub(crate) fn created(account: AccountId) -> crate::store::NewEvent {
        crate::store::NewEvent {
            event_id: Uuid::from_u128(account as u128),
            actor: "admin".into(),
            source: Source::Manual,
            request_id: None,
            event: Event::AccountCreated {
                account,
                domain: "d".into(),
                import_id: None,
                profile: (&Profile {
                    login: format!("u{account}"),
                    ..Profile::default()
                })
                    .into(),
                role: "student".into(),
                enabled: true,
            },
        }
    }

    /// A small batch's sealings are remembered for the views' save, and reused by it; an
    /// import-sized batch remembers none (they would be held until the save).
    #[test]
    fn only_small_batches_remember_their_sealings() {
        let vault = Vault::in_memory(Default::default()).unwrap();
        let small: Vec<_> = (1..=10).map(created).collect();
        let sealed = prepare_batch(small.iter().map(|e| &e.event), &vault)
            .unwrap()
            .sealed;
        assert_eq!(vault.remembered(), 10);
        let Event::AccountCreated { profile, .. } = &small[0].event else {
            unreachable!()
        };
        let again = seal_profile(&vault, 1, profile, Sealing::Reuse).unwrap();
        assert_eq!(
            Some(again),
            sealed[0],
            "the views' save reuses the log's sealing"
        );
        vault.forget_sealings();

        let large: Vec<_> = (1..=REMEMBER_SEALINGS_UP_TO as u64 + 1)
            .map(created)
            .collect();
        let sealed = prepare_batch(large.iter().map(|e| &e.event), &vault)
            .unwrap()
            .sealed;
        assert_eq!(sealed.len(), large.len());
        assert!(sealed.iter().all(Option::is_some));
        assert_eq!(vault.remembered(), 0);
        // Reusing finds nothing and remembers nothing, but seals.
        let Event::AccountCreated { profile, .. } = &large[0].event else {
            unreachable!()
        };
        let fresh = seal_profile(&vault, 1, profile, Sealing::Reuse).unwrap();
        assert_ne!(Some(fresh.clone()), sealed[0]);
        assert_eq!(open_profile(&vault, 1, &fresh), *profile);
        assert_eq!(vault.remembered(), 0);
    }
}
