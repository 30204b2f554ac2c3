//! Log chunks: the events of one commit in one stored value, in format 1 (one bincode value),
//! 2 (each event alone behind a table of lengths; read, no longer written) or 3 (format 2 with
//! what the events share written once, [`super::super::chunk_shared`]). Profiles are sealed
//! before encoding and opened only for the events a reader returns.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::super::chunk_shared::{self, HeaderRef};
use super::super::chunk_table;
use super::super::vault::Vault;
use super::super::{RecordedEvent, Source, StoreError};
use super::{
    FORMAT_CHUNK_V2, FORMAT_CHUNK_V3, config, from_bytes, open_profile, profile_slot,
    seal_profiles, to_bytes,
};
use crate::domain::{Event, PackedProfile};

/// Events of one chunk share their commit's time stamp.
#[derive(Serialize, Deserialize)]
struct ChunkV1 {
    recorded_at_us: i64,
    events: Vec<EventV1>,
}

#[derive(Serialize, Deserialize)]
struct EventV1 {
    stream_version: u64,
    event_id: [u8; 16],
    actor: String,
    source: Source,
    request_id: Option<String>,
    /// The event with its profile blanked out.
    event: Event,
    /// The profile, sealed with the account's key.
    sealed_profile: Option<Vec<u8>>,
}

/// [`EventV1`] borrowed from a record, encoded the same way: a chunk is written without
/// cloning its events.
#[derive(Serialize)]
struct EventV1Ref<'a> {
    stream_version: u64,
    event_id: [u8; 16],
    actor: &'a str,
    source: &'a Source,
    request_id: Option<&'a str>,
    event: &'a Event,
    sealed_profile: Option<&'a Vec<u8>>,
}

/// [`ChunkV1`], borrowed.
#[derive(Serialize)]
struct ChunkV1Ref<'a> {
    recorded_at_us: i64,
    events: Vec<EventV1Ref<'a>>,
}

/// Encode consecutive events of one commit (all stamped `recorded_at_us`), with their
/// profiles already sealed by [`seal_profiles`] (one entry per event). The profiles are taken
/// out of `events` while encoding (the clear text is never encoded) and put back after.
pub fn encode_chunk_sealed(
    events: &mut [RecordedEvent],
    sealed: &[Option<Vec<u8>>],
) -> Result<Vec<u8>, StoreError> {
    let recorded_at_us = events.first().map(|e| e.recorded_at_us).unwrap_or(0);
    let profiles: Vec<Option<PackedProfile>> = events
        .iter_mut()
        .map(|e| profile_slot(&mut e.event).map(|(_, p)| std::mem::take(p)))
        .collect();
    // One event (a single command; every PostgreSQL row) gains nothing from a length table
    // or a header.
    let encoded = if events.len() > 1 {
        encode_shared(recorded_at_us, events, sealed)
    } else {
        to_bytes(&ChunkV1Ref {
            recorded_at_us,
            events: v1_refs(events, sealed).collect(),
        })
    };
    for (e, profile) in events.iter_mut().zip(profiles) {
        if let (Some((_, slot)), Some(profile)) = (profile_slot(&mut e.event), profile) {
            *slot = profile;
        }
    }
    encoded
}

/// Encode consecutive events of one commit, sealing their profiles.
pub fn encode_chunk(events: &mut [RecordedEvent], vault: &Vault) -> Result<Vec<u8>, StoreError> {
    let sealed = seal_profiles(events.iter().map(|e| &e.event), vault, events.len())?;
    encode_chunk_sealed(events, &sealed)
}

/// A decoded event whose profile (if any) is still sealed: decoding a chunk is cheap, opening
/// a profile costs a decryption, so readers open only the events they return.
#[derive(Debug, Clone)]
pub struct SealedRecord {
    pub record: RecordedEvent,
    sealed_profile: Option<Vec<u8>>,
}

impl SealedRecord {
    /// Put the profile back (erased where the key is gone).
    pub fn open(self, vault: &Vault) -> RecordedEvent {
        let mut record = self.record;
        if let Some(sealed) = &self.sealed_profile
            && let Some((account, profile)) = profile_slot(&mut record.event)
        {
            *profile = open_profile(vault, account, sealed);
        }
        record
    }
}

fn v1_refs<'a>(
    events: &'a [RecordedEvent],
    sealed: &'a [Option<Vec<u8>>],
) -> impl Iterator<Item = EventV1Ref<'a>> {
    events
        .iter()
        .zip(sealed)
        .map(|(e, sealed_profile)| EventV1Ref {
            stream_version: e.stream_version,
            event_id: *e.event_id.as_bytes(),
            actor: &e.actor,
            source: &e.source,
            request_id: e.request_id.as_deref(),
            event: &e.event,
            sealed_profile: sealed_profile.as_ref(),
        })
}

/// A chunk of format 2 (as earlier builds wrote them): each event encoded alone, then framed
/// behind their lengths.
#[cfg(test)]
fn encode_v2(
    recorded_at_us: i64,
    events: &[RecordedEvent],
    sealed: &[Option<Vec<u8>>],
) -> Result<Vec<u8>, StoreError> {
    // As those builds wrote them: the clear profiles taken out.
    let mut events = events.to_vec();
    for e in &mut events {
        if let Some((_, p)) = profile_slot(&mut e.event) {
            *p = PackedProfile::erased();
        }
    }
    let mut bodies = Vec::new();
    let mut lengths = Vec::new();
    for e in v1_refs(&events, sealed) {
        let before = bodies.len();
        bincode::serde::encode_into_std_write(&e, &mut bodies, config())
            .map_err(|e| StoreError::Io(format!("encode: {e}")))?;
        lengths.push(bodies.len() - before);
    }
    let mut out = Vec::with_capacity(bodies.len() + 2 * lengths.len() + 16);
    out.push(FORMAT_CHUNK_V2);
    chunk_table::write(&mut out, recorded_at_us, &bodies, &lengths);
    Ok(out)
}

/// A chunk of format 3: a header of what the events share, then each event encoded alone
/// against it, all framed behind their lengths.
fn encode_shared(
    recorded_at_us: i64,
    events: &[RecordedEvent],
    sealed: &[Option<Vec<u8>>],
) -> Result<Vec<u8>, StoreError> {
    let encode_err = |e: bincode::error::EncodeError| StoreError::Io(format!("encode: {e}"));
    let Some(first) = events.first() else {
        return Err(StoreError::Io("encode: a chunk of no events".into()));
    };
    let header = HeaderRef::new(first);
    let mut bodies = bincode::serde::encode_to_vec(&header, config()).map_err(encode_err)?;
    let mut lengths = Vec::with_capacity(events.len() + 1);
    lengths.push(bodies.len());
    for (e, sealed_profile) in events.iter().zip(sealed) {
        let event = chunk_shared::event_ref(&header, e, sealed_profile.as_ref());
        let before = bodies.len();
        bincode::serde::encode_into_std_write(&event, &mut bodies, config()).map_err(encode_err)?;
        lengths.push(bodies.len() - before);
    }
    let mut out = Vec::with_capacity(bodies.len() + 2 * lengths.len() + 16);
    out.push(FORMAT_CHUNK_V3);
    chunk_table::write(&mut out, recorded_at_us, &bodies, &lengths);
    Ok(out)
}

fn sealed_record(position: u64, recorded_at_us: i64, e: EventV1) -> SealedRecord {
    SealedRecord {
        record: RecordedEvent {
            position,
            stream_version: e.stream_version,
            event_id: Uuid::from_bytes(e.event_id),
            recorded_at_us,
            actor: e.actor.into(),
            source: e.source,
            request_id: e.request_id,
            event: e.event,
        },
        sealed_profile: e.sealed_profile,
    }
}

/// Decode the chunk whose first event is at `first_position`, profiles left sealed: every
/// event (`wanted` None), or only those at the given offsets in the chunk (offsets past its
/// end are skipped). Also answers how many events the chunk holds.
fn decode_sealed(
    first_position: u64,
    bytes: &[u8],
    wanted: Option<&[usize]>,
) -> Result<(Vec<SealedRecord>, usize), StoreError> {
    let at = || format!("log position {first_position}");
    let format = bytes.first().copied();
    if format != Some(FORMAT_CHUNK_V2) && format != Some(FORMAT_CHUNK_V3) {
        let chunk: ChunkV1 = from_bytes(bytes, &at)?;
        let stamp = chunk.recorded_at_us;
        let len = chunk.events.len();
        let all = chunk
            .events
            .into_iter()
            .enumerate()
            .map(|(i, e)| sealed_record(first_position + i as u64, stamp, e));
        let records = match wanted {
            None => all.collect(),
            Some(offsets) => {
                let all: Vec<SealedRecord> = all.collect();
                offsets
                    .iter()
                    .filter_map(|i| all.get(*i).cloned())
                    .collect()
            }
        };
        return Ok((records, len));
    }
    let corrupt = |reason: String| StoreError::Corrupt { at: at(), reason };
    let table = chunk_table::split(&bytes[1..]).map_err(corrupt)?;
    fn whole<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, String> {
        let (v, used) =
            bincode::serde::borrow_decode_from_slice(bytes, config()).map_err(|e| e.to_string())?;
        if used != bytes.len() {
            return Err("bytes left after it".into());
        }
        Ok(v)
    }
    // Format 3: the first body is the header the events are written against.
    let (header, events) = if format == Some(FORMAT_CHUNK_V3) {
        let (header, events) = table
            .events
            .split_first()
            .ok_or_else(|| corrupt("no header".into()))?;
        let header: chunk_shared::Header =
            whole(header).map_err(|e| corrupt(format!("header: {e}")))?;
        (Some(header), events)
    } else {
        (None, &table.events[..])
    };
    let decode = |i: usize| -> Result<SealedRecord, StoreError> {
        let position = first_position + i as u64;
        let event = |e: String| corrupt(format!("event {i}: {e}"));
        let Some(header) = &header else {
            return Ok(sealed_record(
                position,
                table.recorded_at_us,
                whole(events[i]).map_err(event)?,
            ));
        };
        let (record, sealed_profile) = chunk_shared::record(
            header,
            whole(events[i]).map_err(event)?,
            position,
            table.recorded_at_us,
        )
        .map_err(|e| event(e.into()))?;
        Ok(SealedRecord {
            record,
            sealed_profile,
        })
    };
    let len = events.len();
    let records = match wanted {
        None => (0..len).map(decode).collect::<Result<_, _>>()?,
        Some(offsets) => offsets
            .iter()
            .filter(|i| **i < len)
            .map(|i| decode(*i))
            .collect::<Result<_, _>>()?,
    };
    Ok((records, len))
}

/// Decode a chunk whose first event is at `first_position`, profiles left sealed.
pub fn decode_chunk_sealed(
    first_position: u64,
    bytes: &[u8],
) -> Result<Vec<SealedRecord>, StoreError> {
    Ok(decode_sealed(first_position, bytes, None)?.0)
}

/// Only the events at `offsets` of the chunk that starts at `first_position` (in that order;
/// offsets past its end are skipped), profiles left sealed, and how many events the chunk
/// holds. A chunk of format 2 decodes just those.
pub fn decode_chunk_sealed_at(
    first_position: u64,
    bytes: &[u8],
    offsets: &[usize],
) -> Result<(Vec<SealedRecord>, usize), StoreError> {
    decode_sealed(first_position, bytes, Some(offsets))
}

/// Decode a chunk. With `vault`, profiles are opened (erased where the key is gone); without,
/// they stay blank (index building needs no names).
pub fn decode_chunk(
    first_position: u64,
    bytes: &[u8],
    vault: Option<&Vault>,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let sealed = decode_chunk_sealed(first_position, bytes)?;
    Ok(match vault {
        Some(v) => sealed.into_iter().map(|s| s.open(v)).collect(),
        None => sealed.into_iter().map(|s| s.record).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::created;
    use super::super::*;
    use super::*;
    use crate::domain::{AccountId, Profile};

    /// A chunk encoded from borrowed records reads back as the owned format, profile sealed
    /// (never in clear) and opened with the key; the records keep their profiles.
    #[test]
    fn borrowed_chunk_encoding_reads_back_and_keeps_profiles() {
        let vault = Vault::in_memory(Default::default()).unwrap();
        vault.ensure_keys(&[7]).unwrap();
        let profile = Profile {
            login: "ada.l".into(),
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            email: "ada@example.org".into(),
        };
        let mut records = vec![RecordedEvent {
            position: 5,
            stream_version: 1,
            event_id: Uuid::from_u128(9),
            recorded_at_us: 1_700_000_000_000_000,
            actor: "admin".into(),
            source: Source::Import {
                job_id: Uuid::from_u128(3),
                file: "users.csv".into(),
                row: 2,
            },
            request_id: Some("r-1".into()),
            event: Event::AccountCreated {
                account: 7,
                domain: "d".into(),
                import_id: Some("S1".into()),
                profile: (&profile).into(),
                role: "student".into(),
                enabled: true,
            },
        }];
        let expected = records.clone();
        let bytes = encode_chunk(&mut records, &vault).unwrap();
        assert_eq!(records, expected, "the records keep their profiles");
        assert!(
            !bytes.windows(5).any(|w| w == b"ada.l"),
            "no clear-text login in the chunk"
        );
        assert_eq!(decode_chunk(5, &bytes, Some(&vault)).unwrap(), expected);
        let owned: ChunkV1 = from_bytes(&bytes, &|| "test".into()).unwrap();
        assert_eq!(owned.events[0].actor, "admin");
        assert!(owned.events[0].sealed_profile.is_some());
    }

    #[test]
    fn unknown_version_is_an_error_not_a_panic() {
        let mut bytes = encode_domain(&DomainState {
            name: "d".into(),
            license_limit: 1,
            licenses_used: 0,
            mass_change_percent: 10,
            schedules: Default::default(),
            deletion_grace_us: 0,
            import_jobs: Default::default(),
        })
        .unwrap();
        bytes[0] = 99;
        assert!(matches!(
            decode_domain(&bytes),
            Err(StoreError::UnknownVersion { version: 99, .. })
        ));
        assert!(matches!(
            decode_chunk(1, &bytes, None),
            Err(StoreError::UnknownVersion { version: 99, .. })
        ));
        assert!(matches!(
            decode_chunk(1, &[], None),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(matches!(
            decode_chunk(1, &[FORMAT_V1, 0xff, 0xff], None),
            Err(StoreError::Corrupt { .. })
        ));
    }

    fn recorded(position: u64, account: AccountId) -> RecordedEvent {
        let e = created(account);
        RecordedEvent {
            position,
            stream_version: 1,
            event_id: e.event_id,
            recorded_at_us: 77,
            actor: e.actor,
            source: e.source,
            request_id: Some(format!("r{account}")),
            event: e.event,
        }
    }

    /// A chunk of several events is written in format 3 and reads back whole, or only the
    /// events asked for; a one-event chunk stays in format 1; chunks of formats 1 and 2
    /// (written by earlier builds) still read back, whole or in part.
    #[test]
    fn chunks_read_back_whole_or_only_the_events_asked_for() {
        let vault = Vault::in_memory(Default::default()).unwrap();
        vault.ensure_keys(&(1..=5).collect::<Vec<_>>()).unwrap();
        let mut records: Vec<_> = (1..=5).map(|a| recorded(9 + a, a)).collect();
        let expected = records.clone();
        let v3 = encode_chunk(&mut records, &vault).unwrap();
        assert_eq!(v3[0], FORMAT_CHUNK_V3);
        assert_eq!(decode_chunk(10, &v3, Some(&vault)).unwrap(), expected);
        let sealed = seal_profiles(records.iter().map(|r| &r.event), &vault, 5).unwrap();
        let v2 = encode_v2(77, &records, &sealed).unwrap();
        assert_eq!(decode_chunk(10, &v2, Some(&vault)).unwrap(), expected);
        let blanked: Vec<Event> = records
            .iter()
            .map(|r| {
                let mut blank = r.event.clone();
                if let Some((_, p)) = profile_slot(&mut blank) {
                    *p = PackedProfile::erased();
                }
                blank
            })
            .collect();
        let v1 = to_bytes(&ChunkV1Ref {
            recorded_at_us: 77,
            events: records
                .iter()
                .zip(&sealed)
                .zip(&blanked)
                .map(|((e, s), event)| EventV1Ref {
                    stream_version: e.stream_version,
                    event_id: *e.event_id.as_bytes(),
                    actor: &e.actor,
                    source: &e.source,
                    request_id: e.request_id.as_deref(),
                    event,
                    sealed_profile: s.as_ref(),
                })
                .collect(),
        })
        .unwrap();
        assert_eq!(decode_chunk(10, &v1, Some(&vault)).unwrap(), expected);
        for bytes in [&v3, &v2, &v1] {
            let (some, len) = decode_chunk_sealed_at(10, bytes, &[1, 3, 3, 9]).unwrap();
            assert_eq!(len, 5);
            let opened: Vec<_> = some.into_iter().map(|s| s.open(&vault)).collect();
            assert_eq!(
                opened,
                vec![
                    expected[1].clone(),
                    expected[3].clone(),
                    expected[3].clone()
                ]
            );
        }
        let mut one = vec![recorded(3, 2)];
        assert_eq!(encode_chunk(&mut one, &vault).unwrap()[0], FORMAT_V1);
    }

    /// Format 3 writes an event's id, actor and source against the chunk's first event's,
    /// and every mix of shared and own fields reads back as it was: ids of one generator and
    /// of another, one import job's rows (up and down), another job, another actor, no source.
    #[test]
    fn shared_fields_read_back_exactly_and_take_little_room() {
        let vault = Vault::in_memory(Default::default()).unwrap();
        vault.ensure_keys(&(1..=300).collect::<Vec<_>>()).unwrap();
        let prefix = Uuid::new_v4().as_u128() & !u128::from(u32::MAX);
        let job = Uuid::new_v4();
        let file: std::sync::Arc<str> = "users.csv".into();
        let import = |row: u64| Source::Import {
            job_id: job,
            file: file.clone(),
            row,
        };
        let mut records: Vec<RecordedEvent> = (1..=300u64)
            .map(|n| {
                let mut e = recorded(n, n);
                e.request_id = None;
                e.actor = "admin@district".into();
                e.event_id =
                    Uuid::from_u128(prefix | u128::from((u32::MAX - 5).wrapping_add(n as u32)));
                e.source = import(n + 1);
                e
            })
            .collect();
        records[7].event_id = Uuid::new_v4();
        records[8].actor = "someone else".into();
        records[9].source = Source::Manual;
        records[10].source = import(1);
        records[11].source = Source::Import {
            job_id: Uuid::new_v4(),
            file: file.clone(),
            row: 5,
        };
        records[12].source = Source::Import {
            job_id: job,
            file: "other.csv".into(),
            row: 5,
        };
        records[13].request_id = Some("retry-13".into());
        let expected = records.clone();
        let sealed = seal_profiles(records.iter().map(|r| &r.event), &vault, 300).unwrap();
        let v2 = encode_v2(77, &records, &sealed).unwrap();
        let v3 = encode_chunk(&mut records, &vault).unwrap();
        assert_eq!(v3[0], FORMAT_CHUNK_V3);
        assert_eq!(decode_chunk(1, &v3, Some(&vault)).unwrap(), expected);
        let (some, len) = decode_chunk_sealed_at(1, &v3, &[299, 7, 12]).unwrap();
        assert_eq!(len, 300);
        let ids: Vec<_> = some.iter().map(|s| s.record.event_id).collect();
        assert_eq!(ids, [299, 7, 12].map(|i| expected[i].event_id));
        // Id (16), actor (15) and job and file (27) each become a byte or three.
        assert!(
            v3.len() + 300 * 40 < v2.len(),
            "format 3: {} bytes, format 2: {}",
            v3.len(),
            v2.len()
        );
        // After a header that names no import, an import event's source is written whole.
        let mut manual: Vec<RecordedEvent> = records[..2].to_vec();
        manual[0].source = Source::Manual;
        let bytes = encode_chunk(&mut manual, &vault).unwrap();
        assert_eq!(
            decode_chunk(1, &bytes, None).unwrap()[1].source,
            manual[1].source
        );
    }

    /// A format 3 chunk whose header is damaged is an error naming the header, not a guess.
    #[test]
    fn a_damaged_format_3_header_is_refused() {
        let vault = Vault::in_memory(Default::default()).unwrap();
        vault.ensure_keys(&[1, 2]).unwrap();
        let mut records = vec![recorded(4, 1), recorded(5, 2)];
        let mut bytes = encode_chunk(&mut records, &vault).unwrap();
        assert_eq!(bytes[0], FORMAT_CHUNK_V3);
        let header_at = {
            let table = chunk_table::split(&bytes[1..]).unwrap();
            table.events[0].as_ptr() as usize - bytes.as_ptr() as usize
        };
        // The actor's length, after the 16 bytes of the first id: far past the chunk's end.
        bytes[header_at + 16] = 0xfc;
        match decode_chunk(4, &bytes, None) {
            Err(StoreError::Corrupt { at, reason }) => {
                assert!(
                    at.contains('4') && reason.contains("header"),
                    "{at}: {reason}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    /// A chunk of format 2 or 3 cut short or with a damaged table is an error naming its
    /// position.
    #[test]
    fn a_damaged_format_2_chunk_is_refused() {
        let vault = Vault::in_memory(Default::default()).unwrap();
        vault.ensure_keys(&[1, 2]).unwrap();
        let mut records = vec![recorded(4, 1), recorded(5, 2)];
        let sealed = seal_profiles(records.iter().map(|r| &r.event), &vault, 2).unwrap();
        let v2 = encode_v2(77, &records, &sealed).unwrap();
        let v3 = encode_chunk(&mut records, &vault).unwrap();
        for bytes in [v2, v3] {
            for cut in [1, 9, bytes.len() - 1] {
                match decode_chunk(4, &bytes[..cut], None) {
                    Err(StoreError::Corrupt { at, .. }) => assert!(at.contains('4'), "{at}"),
                    other => panic!("cut at {cut}: {other:?}"),
                }
            }
        }
    }
}
