//! What an import job reports: counts per change kind, the changed rows (the diff), row errors,
//! warnings, and whether and how much it wrote. Serializable for `--json` and the API.

use serde::Serialize;
use uuid::Uuid;

use super::error::RowError;
use super::plan::ChangeKind;
use crate::domain::AccountId;
use crate::domain::GuardCheck;

pub use crate::domain::import_job::{Counts, JobStatus};

/// Counting the plan's changes (here: the domain does not know the plan's kinds).
impl Counts {
    pub(crate) fn add(&mut self, kind: ChangeKind) {
        match kind {
            ChangeKind::Created => self.created += 1,
            ChangeKind::Updated => self.updated += 1,
            ChangeKind::Enabled => self.enabled += 1,
            ChangeKind::Disabled => self.disabled += 1,
            ChangeKind::Deactivated => self.deactivated += 1,
            ChangeKind::Reactivated => self.reactivated += 1,
            ChangeKind::Deleted => self.deleted += 1,
        }
    }

    /// Events the changes amount to.
    pub fn changes(&self) -> u64 {
        self.created
            + self.updated
            + self.enabled
            + self.disabled
            + self.deactivated
            + self.reactivated
            + self.deleted
    }
}

/// One row of the diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowChange {
    /// Line in the file; 0 for an account a full import left out.
    pub row: u64,
    pub import_id: String,
    /// The account (None only for a create in a dry run or a refused strict job).
    pub account: Option<AccountId>,
    pub changes: Vec<ChangeKind>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    pub job_id: Uuid,
    pub domain: String,
    /// The file as named in audit records.
    pub file: String,
    /// What the file was read as (e.g. "PowerSchool users.csv v2, full import").
    pub format: String,
    pub status: JobStatus,
    pub counts: Counts,
    pub events_written: u64,
    pub rows_read: u64,
    /// The diff, in application order: left-out removals first, then rows in file order.
    pub changes: Vec<RowChange>,
    /// Bad and refused rows, in row order: the first [`super::limits::MAX_ROW_ERRORS_LISTED`].
    pub row_errors: Vec<RowError>,
    /// Failed rows beyond those listed (counted in `counts.failed` too).
    pub row_errors_omitted: u64,
    pub warnings: Vec<String>,
    pub guard: GuardCheck,
    /// Rows a scheduled change held (their accounts stay disabled until it enables them).
    pub held: u64,
    /// The schedule the job made to enable its new accounts at its start instant.
    pub start_schedule: Option<crate::domain::schedule::ScheduleId>,
    /// The schedule the job made to delete, when the grace period ends, the stubs it
    /// deactivated instead of deleting.
    pub deletion_schedule: Option<crate::domain::schedule::ScheduleId>,
}

impl ImportReport {
    /// A report of `job` with nothing counted, listed or warned yet.
    pub fn new(job_id: Uuid, domain: &str, file: &str, status: JobStatus) -> ImportReport {
        ImportReport {
            job_id,
            domain: domain.to_string(),
            file: file.to_string(),
            format: String::new(),
            status,
            counts: Counts::default(),
            events_written: 0,
            rows_read: 0,
            changes: Vec::new(),
            row_errors: Vec::new(),
            row_errors_omitted: 0,
            warnings: Vec::new(),
            guard: GuardCheck::default(),
            held: 0,
            start_schedule: None,
            deletion_schedule: None,
        }
    }

    /// What the log keeps of this job (no rows: see [`crate::domain::import_job`]).
    pub fn to_job_summary(
        &self,
        actor: &str,
        finished_at_us: i64,
    ) -> crate::domain::import_job::ImportJobSummary {
        crate::domain::import_job::ImportJobSummary {
            job_id: self.job_id,
            actor: actor.to_string(),
            finished_at_us,
            file: self.file.clone(),
            format: self.format.clone(),
            status: self.status,
            counts: self.counts,
            events_written: self.events_written,
            rows_read: self.rows_read,
            row_errors: self.row_errors.len() as u64 + self.row_errors_omitted,
            warnings: self.warnings.clone(),
            held: self.held,
            start_schedule: self.start_schedule,
            deletion_schedule: self.deletion_schedule,
        }
    }

    /// A report rebuilt from what the log keeps: counts and totals, no rows.
    pub fn from_job_summary(
        domain: &str,
        s: &crate::domain::import_job::ImportJobSummary,
    ) -> ImportReport {
        ImportReport {
            format: s.format.clone(),
            counts: s.counts,
            events_written: s.events_written,
            rows_read: s.rows_read,
            row_errors_omitted: s.row_errors,
            warnings: s.warnings.clone(),
            held: s.held,
            start_schedule: s.start_schedule,
            deletion_schedule: s.deletion_schedule,
            ..ImportReport::new(s.job_id, domain, &s.file, s.status)
        }
    }

    /// True when some row was bad or refused (the CLI's non-zero exit).
    pub fn has_failures(&self) -> bool {
        self.counts.failed > 0
    }

    /// One line for humans: "created 3, updated 1, ..., failed 0".
    pub fn summary(&self) -> String {
        let counts = self
            .counts
            .by_kind()
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        let status = match self.status {
            JobStatus::Applied => format!("{} events written", self.events_written),
            JobStatus::NoChanges => "no changes".to_string(),
            JobStatus::DryRun => "dry run, nothing written".to_string(),
            JobStatus::RefusedStrict => "refused (strict): nothing written".to_string(),
        };
        format!("{}: {counts}; {status}", self.file)
    }
}
