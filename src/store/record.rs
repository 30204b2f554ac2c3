//! A stored event with its metadata.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{Event, StreamId};

/// Where a change came from: a person, an import file row, the LMS, the revert of an
/// import job, or a scheduled change firing. (Stored: new variants go at the end.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Source {
    Manual,
    Import {
        job_id: Uuid,
        /// Shared by every row of a job (one file name, not a copy per event).
        file: std::sync::Arc<str>,
        row: u64,
    },
    LmsReport,
    /// A compensating change of the revert job `job_id`, undoing job `reverted`.
    Revert {
        job_id: Uuid,
        reverted: Uuid,
    },
    /// A phase of a scheduled change of the account's domain, fired by the ledger.
    Schedule {
        schedule: crate::domain::schedule::ScheduleId,
        phase: crate::domain::schedule::Phase,
    },
}

impl Source {
    /// The job this change belongs to (an import or a revert), for the job index.
    pub fn job_id(&self) -> Option<Uuid> {
        match self {
            Source::Import { job_id, .. } | Source::Revert { job_id, .. } => Some(*job_id),
            Source::Manual | Source::LmsReport | Source::Schedule { .. } => None,
        }
    }
}

/// An event on its way into the log; position and time are assigned by the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub event_id: Uuid,
    /// Shared: a job's million events name one actor, not a million copies.
    pub actor: std::sync::Arc<str>,
    pub source: Source,
    /// The client request id of the command that caused it (idempotent retries).
    pub request_id: Option<String>,
    pub event: Event,
}

/// A batch's new events in parts of at most [`EventParts::PART`], in order. A store records
/// them part by part and frees each part once recorded: a million-event import job is never
/// held as one 288 MB buffer beside the records made from it.
#[derive(Debug, Default)]
pub struct EventParts {
    parts: Vec<Vec<NewEvent>>,
    len: usize,
    /// Capacity of the first part (a single command's group allocates for one event).
    first: usize,
}

impl EventParts {
    pub const PART: usize = 4096;

    /// Parts for about `expected` events.
    pub fn with_expected(expected: usize) -> EventParts {
        EventParts {
            first: expected.clamp(1, Self::PART),
            ..EventParts::default()
        }
    }

    pub fn push(&mut self, event: NewEvent) {
        match self.parts.last_mut() {
            Some(part) if part.len() < Self::PART => part.push(event),
            _ => {
                let capacity = match self.parts.is_empty() {
                    true => self.first.max(1),
                    false => Self::PART,
                };
                let mut part = Vec::with_capacity(capacity);
                part.push(event);
                self.parts.push(part);
            }
        }
        self.len += 1;
    }

    pub fn extend(&mut self, events: impl Iterator<Item = NewEvent>) {
        events.for_each(|e| self.push(e));
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = &NewEvent> + Clone {
        self.parts.iter().flatten()
    }

    /// The events in order, each part freed once its events are taken.
    pub fn into_events(self) -> impl Iterator<Item = NewEvent> {
        self.parts.into_iter().flatten()
    }
}

impl From<Vec<NewEvent>> for EventParts {
    fn from(events: Vec<NewEvent>) -> EventParts {
        EventParts {
            len: events.len(),
            first: events.len(),
            parts: vec![events],
        }
    }
}

/// A recorded event back on its way in (a store that must assign it again).
impl From<RecordedEvent> for NewEvent {
    fn from(r: RecordedEvent) -> NewEvent {
        NewEvent {
            event_id: r.event_id,
            actor: r.actor,
            source: r.source,
            request_id: r.request_id,
            event: r.event,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    pub position: u64,
    pub stream_version: u64,
    pub event_id: Uuid,
    /// UTC microseconds since the Unix epoch.
    pub recorded_at_us: i64,
    pub actor: std::sync::Arc<str>,
    pub source: Source,
    pub request_id: Option<String>,
    pub event: Event,
}

impl RecordedEvent {
    pub fn stream(&self) -> StreamId {
        self.event.stream()
    }

    /// A manual event at `position` (stamped with it), for unit tests of folds.
    #[cfg(test)]
    pub(crate) fn at(position: u64, event: Event) -> RecordedEvent {
        RecordedEvent {
            position,
            stream_version: 1,
            event_id: Uuid::from_u128(position as u128),
            recorded_at_us: position as i64,
            actor: "admin".into(),
            source: Source::Manual,
            request_id: None,
            event,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u64) -> NewEvent {
        NewEvent {
            event_id: Uuid::from_u128(n as u128),
            actor: "a".into(),
            source: Source::Manual,
            request_id: None,
            event: Event::AccountDisabled { account: n },
        }
    }

    #[test]
    fn parts_keep_the_order_and_hold_at_most_a_part_each() {
        let n = EventParts::PART * 2 + 3;
        let mut parts = EventParts::with_expected(1);
        parts.extend((0..n as u64).map(event));
        assert_eq!(parts.len(), n);
        assert_eq!(parts.parts.len(), 3);
        assert!(parts.parts.iter().all(|p| p.len() <= EventParts::PART));
        let ids: Vec<u128> = parts.iter().map(|e| e.event_id.as_u128()).collect();
        assert_eq!(ids, (0..n as u128).collect::<Vec<_>>());
        let taken: Vec<u128> = parts.into_events().map(|e| e.event_id.as_u128()).collect();
        assert_eq!(taken, (0..n as u128).collect::<Vec<_>>());
        assert!(EventParts::default().is_empty());
    }
}
