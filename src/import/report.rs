//! What an import job reports: counts per change kind, the changed rows (the diff), row errors,
//! warnings, and whether and how much it wrote. Serializable for `--json` and the API.

use serde::Serialize;
use uuid::Uuid;

use super::error::RowError;
use super::plan::ChangeKind;
use crate::domain::AccountId;
use crate::domain::GuardCheck;

/// How the job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Events were written (rows in `row_errors` were skipped).
    Applied,
    /// Nothing to write: the ledger already matches the file (or every changing row failed).
    NoChanges,
    /// `dry_run`: the diff below is exact; nothing was written.
    DryRun,
    /// `strict` and some row failed: nothing was written; see `row_errors`.
    RefusedStrict,
}

/// Counts per change kind. `unchanged` and `failed` count rows; the change kinds count events
/// (a row that reactivates and enables counts in both), including for accounts a full import
/// left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub created: u64,
    pub updated: u64,
    pub enabled: u64,
    pub disabled: u64,
    pub deactivated: u64,
    pub reactivated: u64,
    pub deleted: u64,
    pub unchanged: u64,
    pub failed: u64,
}

impl Counts {
    /// Each count with its change kind's name, in report order (tables, JSON, summaries).
    pub fn by_kind(&self) -> [(&'static str, u64); 9] {
        [
            ("created", self.created),
            ("updated", self.updated),
            ("enabled", self.enabled),
            ("disabled", self.disabled),
            ("deactivated", self.deactivated),
            ("reactivated", self.reactivated),
            ("deleted", self.deleted),
            ("unchanged", self.unchanged),
            ("failed", self.failed),
        ]
    }

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
