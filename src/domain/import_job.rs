//! What the log keeps of an import job that ran: enough to list a domain's jobs and show their
//! row errors on every server and after a restart. The row errors are kept without the values
//! they quote and without import ids ([`KeptRowError`]): the log is never erased, and a row
//! error would otherwise keep a person's login or email after their account is deleted. The
//! diff (which account changed how) is not kept: it is the job's events.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// One finished job, as recorded on its domain's stream (`ImportJobRecorded`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportJobSummary {
    pub job_id: Uuid,
    /// Who ran it, and when it finished (UTC µs).
    pub actor: String,
    pub finished_at_us: i64,
    /// The file as named in audit records.
    pub file: String,
    /// What the file was read as.
    pub format: String,
    pub status: JobStatus,
    pub counts: Counts,
    pub events_written: u64,
    pub rows_read: u64,
    /// Row errors in all (listed or not).
    pub row_errors: u64,
    pub warnings: Vec<String>,
    pub held: u64,
    pub start_schedule: Option<super::schedule::ScheduleId>,
    pub deletion_schedule: Option<super::schedule::ScheduleId>,
}

/// A domain's recorded jobs, oldest first; shared, so copying the domain's state (each
/// decision does) copies no job.
pub type ImportJobs = Arc<Vec<Arc<ImportJobSummary>>>;

/// A bad row as the log keeps it: where, and why, with every quoted value replaced by `"…"`
/// (row errors quote values with Rust's escaping, see `import::limits::quote`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptRowError {
    /// Line of the file (0: an account the file left out).
    pub row: u64,
    /// The column at fault, as named in the file's header.
    pub column: Option<String>,
    pub reason: String,
}

impl KeptRowError {
    pub fn new(row: u64, column: Option<String>, reason: &str) -> KeptRowError {
        KeptRowError {
            row,
            column,
            reason: without_quoted_values(reason),
        }
    }
}

/// `text` with each double-quoted span (escapes inside honoured) replaced by `"…"`.
pub fn without_quoted_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            out.push(c);
            continue;
        }
        out.push_str("\"…\"");
        // Skip to the closing quote; an unclosed quote hides the rest.
        while let Some(q) = chars.next() {
            match q {
                '\\' => {
                    chars.next();
                }
                '"' => break,
                _ => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_are_replaced_escapes_and_all() {
        assert_eq!(
            without_quoted_values(r#"duplicate login "ada.l": already on row 2 of this file"#),
            r#"duplicate login "…": already on row 2 of this file"#
        );
        assert_eq!(
            without_quoted_values(r#""a\"b" is not a flag value; "x"… (3 more characters)"#),
            r#""…" is not a flag value; "…"… (3 more characters)"#
        );
        assert_eq!(without_quoted_values(r#"open "secret"#), r#"open "…""#);
        assert_eq!(without_quoted_values("no values"), "no values");
    }
}
