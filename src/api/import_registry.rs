//! The bounded in-memory registry of an import service's recent jobs: their full reports, row
//! errors and diffs included (see `import.rs`; what outlives it is the job's summary in the log).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use uuid::Uuid;

use crate::import::ImportReport;

/// Jobs the registry keeps (newest first out last).
pub const MAX_JOBS: usize = 64;
/// Row errors plus changed rows the registry keeps over all its jobs (about 100 bytes each).
pub const MAX_RETAINED_ROWS: usize = 2_000_000;
/// A finished job as the registry holds it.
#[derive(Debug)]
pub struct JobRecord {
    pub report: ImportReport,
    pub actor: String,
    pub finished_at_us: i64,
}

impl JobRecord {
    fn rows(&self) -> usize {
        self.report.row_errors.len() + self.report.changes.len()
    }
}

/// The bounded registry of recent jobs (see the module doc).
#[derive(Debug, Default)]
pub struct JobRegistry {
    order: VecDeque<Uuid>,
    jobs: HashMap<Uuid, Arc<JobRecord>>,
    rows: usize,
}

impl JobRegistry {
    pub fn insert(&mut self, record: JobRecord) {
        let id = record.report.job_id;
        self.rows += record.rows();
        if let Some(old) = self.jobs.insert(id, Arc::new(record)) {
            self.rows -= old.rows();
            self.order.retain(|j| *j != id);
        }
        self.order.push_back(id);
        while self.order.len() > MAX_JOBS || (self.rows > MAX_RETAINED_ROWS && self.order.len() > 1)
        {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(old) = self.jobs.remove(&oldest) {
                self.rows -= old.rows();
            }
        }
    }

    pub fn get(&self, id: &Uuid) -> Option<Arc<JobRecord>> {
        self.jobs.get(id).cloned()
    }

    /// A domain's jobs, newest first.
    pub fn of_domain(&self, domain: &str) -> Vec<Arc<JobRecord>> {
        self.order
            .iter()
            .rev()
            .filter_map(|id| self.jobs.get(id))
            .filter(|r| r.report.domain == domain)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::{JobStatus, RowError};

    fn record(rows: usize, domain: &str) -> JobRecord {
        let err = RowError {
            file: "users.csv".into(),
            row: 2,
            column: None,
            import_id: None,
            reason: "bad".into(),
        };
        JobRecord {
            report: ImportReport {
                rows_read: rows as u64,
                row_errors: vec![err; rows],
                ..ImportReport::new(Uuid::new_v4(), domain, "users.csv", JobStatus::Applied)
            },
            actor: "a".into(),
            finished_at_us: 0,
        }
    }

    #[test]
    fn registry_is_bounded_in_jobs_and_rows_and_lists_newest_first() {
        let mut reg = JobRegistry::default();
        let first = record(1, "d1");
        let first_id = first.report.job_id;
        reg.insert(first);
        for _ in 0..MAX_JOBS {
            reg.insert(record(1, "d1"));
        }
        assert_eq!(reg.jobs.len(), MAX_JOBS);
        assert!(reg.get(&first_id).is_none(), "the oldest job is evicted");
        let big = record(MAX_RETAINED_ROWS, "d2");
        let big_id = big.report.job_id;
        reg.insert(big);
        assert_eq!(reg.jobs.len(), 1, "rows over the bound evict older jobs");
        assert!(reg.rows <= MAX_RETAINED_ROWS);
        let newer = record(0, "d2");
        let newer_id = newer.report.job_id;
        reg.insert(newer);
        let listed: Vec<Uuid> = reg
            .of_domain("d2")
            .iter()
            .map(|r| r.report.job_id)
            .collect();
        assert_eq!(listed, vec![newer_id, big_id]);
        assert!(reg.of_domain("d1").is_empty());
    }
}
