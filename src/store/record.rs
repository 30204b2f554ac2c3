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

/// A batch's new events in parts of at most [`EventParts::PART`], in order. Each event is held
/// in the shape it is recorded in (position, version and stamp not assigned yet), so that a
/// store assigns them in place and hands the same parts back as the [`RecordParts`]: a
/// million-event import job is never held twice over (its events, 288 MB, beside the records
/// made from them, 312 MB).
#[derive(Debug, Default)]
pub struct EventParts {
    parts: Vec<Vec<RecordedEvent>>,
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
        let slot = RecordedEvent::unassigned(event);
        match self.parts.last_mut() {
            Some(part) if part.len() < Self::PART => part.push(slot),
            _ => {
                let capacity = match self.parts.is_empty() {
                    true => self.first.max(1),
                    false => Self::PART,
                };
                let mut part = Vec::with_capacity(capacity);
                part.push(slot);
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

    /// The events, in order.
    pub fn events(&self) -> impl Iterator<Item = &Event> + Clone {
        self.parts.iter().flatten().map(|e| &e.event)
    }

    /// The events in order, each part freed once its events are taken.
    pub fn into_events(self) -> impl Iterator<Item = NewEvent> {
        self.parts.into_iter().flatten().map(NewEvent::from)
    }

    /// The parts, for a store to assign in place (positions, versions and stamps still 0).
    pub(crate) fn into_unassigned_parts(self) -> Vec<Vec<RecordedEvent>> {
        self.parts
    }
}

impl From<Vec<NewEvent>> for EventParts {
    fn from(events: Vec<NewEvent>) -> EventParts {
        let mut parts = EventParts::with_expected(events.len());
        parts.extend(events.into_iter());
        parts
    }
}

/// Records to be assigned again (a store whose first try was refused), in the same parts.
impl From<RecordParts> for EventParts {
    fn from(records: RecordParts) -> EventParts {
        EventParts {
            len: records.len,
            first: records.parts.first().map_or(1, Vec::len),
            parts: records.parts,
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

/// The events one append recorded, in order: the parts of the [`EventParts`] they came in,
/// assigned in place (events already stored left out).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecordParts {
    parts: Vec<Vec<RecordedEvent>>,
    len: usize,
}

impl RecordParts {
    /// Add a run of consecutive records.
    pub(crate) fn push_part(&mut self, part: Vec<RecordedEvent>) {
        if !part.is_empty() {
            self.len += part.len();
            self.parts.push(part);
        }
    }

    /// How many parts hold the records.
    pub fn part_count(&self) -> usize {
        self.parts.len()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &RecordedEvent> + Clone {
        self.parts.iter().flatten()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut RecordedEvent> {
        self.parts.iter_mut().flatten()
    }

    /// The parts, in order, each a run of consecutive records.
    pub fn parts(&self) -> impl Iterator<Item = &[RecordedEvent]> {
        self.parts.iter().map(Vec::as_slice)
    }

    /// [`RecordParts::parts`], to change in place.
    pub fn parts_mut(&mut self) -> impl Iterator<Item = &mut [RecordedEvent]> {
        self.parts.iter_mut().map(Vec::as_mut_slice)
    }

    pub fn first(&self) -> Option<&RecordedEvent> {
        self.parts.first().and_then(|p| p.first())
    }

    pub fn last(&self) -> Option<&RecordedEvent> {
        self.parts.last().and_then(|p| p.last())
    }
}

impl std::ops::Index<usize> for RecordParts {
    type Output = RecordedEvent;

    fn index(&self, i: usize) -> &RecordedEvent {
        let mut at = i;
        for part in &self.parts {
            match part.get(at) {
                Some(r) => return r,
                None => at -= part.len(),
            }
        }
        panic!("record {i} past the end of {} records", self.len)
    }
}

impl<'a> IntoIterator for &'a RecordParts {
    type Item = &'a RecordedEvent;
    type IntoIter = std::iter::Flatten<std::slice::Iter<'a, Vec<RecordedEvent>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.parts.iter().flatten()
    }
}

impl<'a> IntoIterator for &'a mut RecordParts {
    type Item = &'a mut RecordedEvent;
    type IntoIter = std::iter::Flatten<std::slice::IterMut<'a, Vec<RecordedEvent>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.parts.iter_mut().flatten()
    }
}

impl IntoIterator for RecordParts {
    type Item = RecordedEvent;
    type IntoIter = std::iter::Flatten<std::vec::IntoIter<Vec<RecordedEvent>>>;

    /// The records in order, each part freed once its records are taken.
    fn into_iter(self) -> Self::IntoIter {
        self.parts.into_iter().flatten()
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

    /// A new event in its recorded shape, before a store assigns its position, stream
    /// version and stamp.
    fn unassigned(e: NewEvent) -> RecordedEvent {
        RecordedEvent {
            position: 0,
            stream_version: 0,
            event_id: e.event_id,
            recorded_at_us: 0,
            actor: e.actor,
            source: e.source,
            request_id: e.request_id,
            event: e.event,
        }
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
        let accounts: Vec<u64> = parts.events().filter_map(Event::account).collect();
        assert_eq!(accounts, (0..n as u64).collect::<Vec<_>>());
        let taken: Vec<u128> = parts.into_events().map(|e| e.event_id.as_u128()).collect();
        assert_eq!(taken, (0..n as u128).collect::<Vec<_>>());
        assert!(EventParts::default().is_empty());
    }

    #[test]
    fn record_parts_index_across_parts_and_go_back_as_event_parts() {
        let mut records = RecordParts::default();
        let mut position = 0;
        for size in [3usize, 0, 5, 1] {
            let part: Vec<RecordedEvent> = (0..size)
                .map(|_| {
                    position += 1;
                    RecordedEvent::at(position, Event::AccountEnabled { account: position })
                })
                .collect();
            records.push_part(part);
        }
        assert_eq!((records.len(), records.part_count()), (9, 3));
        assert_eq!(records[0].position, 1);
        assert_eq!(records[3].position, 4);
        assert_eq!(records[8].position, 9);
        assert_eq!(records.last().map(|r| r.position), Some(9));
        let again = EventParts::from(records.clone());
        assert_eq!(again.len(), 9);
        let ids: Vec<Uuid> = again.into_events().map(|e| e.event_id).collect();
        assert_eq!(ids, records.iter().map(|r| r.event_id).collect::<Vec<_>>());
        let all: Vec<u64> = records.into_iter().map(|r| r.position).collect();
        assert_eq!(all, (1..=9).collect::<Vec<_>>());
    }
}
