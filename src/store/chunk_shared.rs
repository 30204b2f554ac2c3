//! The fields of a log chunk of format 3 that its events share, written once in a header
//! instead of in each event. The events of one commit mostly name one actor and one source (an
//! import job's million events: one job id and file name, rows counting up) and take their ids
//! from one partition's generator (consecutive numbers under one random prefix,
//! `ledger::decider::EventIds`). Against the header, such an event keeps a row offset and an
//! id offset of a byte or two instead of 16 (id) + 16 (job) + file name + actor bytes.
//!
//! Each field is either the header's, close to it, or the event's own: an event that shares
//! nothing (another partition's, another actor's) is written whole, a few tag bytes longer.
//! Framing is [`super::chunk_table`]'s with the header as the first body, so one event is
//! still read with only the header beside it.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{RecordedEvent, Source};
use crate::domain::Event;

/// What the chunk's events are written against: its first event's id, actor and source.
#[derive(Serialize)]
pub(super) struct HeaderRef<'a> {
    id: [u8; 16],
    actor: &'a str,
    source: &'a Source,
}

#[derive(Deserialize)]
pub(super) struct Header {
    id: [u8; 16],
    actor: std::sync::Arc<str>,
    source: Source,
}

impl<'a> HeaderRef<'a> {
    /// The header of a chunk whose first event is `first`.
    pub(super) fn new(first: &'a RecordedEvent) -> HeaderRef<'a> {
        HeaderRef {
            id: *first.event_id.as_bytes(),
            actor: &first.actor,
            source: &first.source,
        }
    }
}

/// An event id: the header's high 96 bits with its low 32 bits moved by an offset, or whole.
#[derive(Serialize, Deserialize)]
enum Id {
    Near(u32),
    Own([u8; 16]),
}

#[derive(Serialize, Deserialize)]
enum Actor<S> {
    Shared,
    Own(S),
}

#[derive(Serialize, Deserialize)]
enum Src<S> {
    Shared,
    /// The header's import job and file, at the header's row plus this (wrapping).
    Row(i64),
    Own(S),
}

/// One event of a format 3 chunk, borrowed from its record.
#[derive(Serialize)]
pub(super) struct EventRef<'a> {
    stream_version: u64,
    id: Id,
    actor: Actor<&'a str>,
    source: Src<&'a Source>,
    request_id: Option<&'a str>,
    event: &'a Event,
    sealed_profile: Option<&'a Vec<u8>>,
}

#[derive(Deserialize)]
pub(super) struct EventOwned {
    stream_version: u64,
    id: Id,
    actor: Actor<std::sync::Arc<str>>,
    source: Src<Source>,
    request_id: Option<String>,
    event: Event,
    sealed_profile: Option<Vec<u8>>,
}

const LOW: u128 = u32::MAX as u128;

/// One event (its profile taken out and given `sealed_profile`), written against `header`.
pub(super) fn event_ref<'a>(
    header: &HeaderRef<'_>,
    e: &'a RecordedEvent,
    sealed_profile: Option<&'a Vec<u8>>,
) -> EventRef<'a> {
    let (event_id, actor, source) = (e.event_id, &*e.actor, &e.source);
    let base = u128::from_be_bytes(header.id);
    let own = event_id.as_u128();
    let id = if own & !LOW == base & !LOW {
        Id::Near((own as u32).wrapping_sub(base as u32))
    } else {
        Id::Own(*event_id.as_bytes())
    };
    let actor = if actor == header.actor {
        Actor::Shared
    } else {
        Actor::Own(actor)
    };
    let source = match (source, header.source) {
        (own, shared) if own == shared => Src::Shared,
        (
            Source::Import { job_id, file, row },
            Source::Import {
                job_id: shared_job,
                file: shared_file,
                row: shared_row,
            },
        ) if job_id == shared_job && file == shared_file => {
            Src::Row(row.wrapping_sub(*shared_row) as i64)
        }
        (own, _) => Src::Own(own),
    };
    EventRef {
        stream_version: e.stream_version,
        id,
        actor,
        source,
        request_id: e.request_id.as_deref(),
        event: &e.event,
        sealed_profile,
    }
}

/// The event at `position` of a chunk stamped `recorded_at_us`, decoded against `header`,
/// with the header's fields put back, and its profile still sealed.
pub(super) fn record(
    header: &Header,
    e: EventOwned,
    position: u64,
    recorded_at_us: i64,
) -> Result<(RecordedEvent, Option<Vec<u8>>), &'static str> {
    let base = u128::from_be_bytes(header.id);
    let event_id = match e.id {
        Id::Near(offset) => {
            Uuid::from_u128((base & !LOW) | u128::from((base as u32).wrapping_add(offset)))
        }
        Id::Own(bytes) => Uuid::from_bytes(bytes),
    };
    let actor = match e.actor {
        Actor::Shared => header.actor.clone(),
        Actor::Own(a) => a,
    };
    let source = match e.source {
        Src::Shared => header.source.clone(),
        Src::Row(offset) => match &header.source {
            Source::Import { job_id, file, row } => Source::Import {
                job_id: *job_id,
                file: file.clone(),
                row: row.wrapping_add(offset as u64),
            },
            _ => return Err("a row offset against a header that names no import"),
        },
        Src::Own(s) => s,
    };
    let record = RecordedEvent {
        position,
        stream_version: e.stream_version,
        event_id,
        recorded_at_us,
        actor,
        source,
        request_id: e.request_id,
        event: e.event,
    };
    Ok((record, e.sealed_profile))
}
