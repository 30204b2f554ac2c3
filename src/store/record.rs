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
}
