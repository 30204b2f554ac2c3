//! The results of an import job's own commands (after its rows'): the holds recorded on
//! schedules and the schedules the job made, turned into the report's schedule numbers and
//! warnings.

use super::plan::Plan;
use crate::domain::DomainError;
use crate::domain::schedule::{Change, ScheduleId};
use crate::ledger::Ledger;

/// What the job's own commands made.
pub(super) struct JobMade {
    pub start: Option<ScheduleId>,
    pub deletion: Option<ScheduleId>,
    pub written: u64,
}

/// The results of the job's own commands (after its rows'): holds recorded, the start
/// schedule made. Returns that schedule and the events written; a refusal is a warning.
pub(super) async fn job_results(
    ledger: &Ledger,
    plan: &Plan,
    results: impl Iterator<Item = Result<crate::ledger::Executed, crate::ledger::LedgerError>>,
    count: usize,
    warnings: &mut Vec<String>,
) -> JobMade {
    let mut made = JobMade {
        start: None,
        deletion: None,
        written: 0,
    };
    for result in results.take(count) {
        match result {
            Ok(done) => {
                made.written += done.positions.len() as u64;
                match ledger.schedules_made(&done.positions).await {
                    Ok(schedules) => {
                        for (schedule, change) in schedules {
                            match change {
                                Change::Enable { .. } => made.start = Some(schedule),
                                Change::Delete { .. } => made.deletion = Some(schedule),
                                Change::Disable { .. } => {}
                            }
                        }
                    }
                    Err(e) => warnings.push(format!("{}: {e}", plan.file)),
                }
            }
            Err(crate::ledger::LedgerError::Domain(DomainError::ScheduleNotOpen {
                schedule,
                ..
            })) => warnings.push(format!(
                "{}: scheduled change {schedule} ended while this file was being applied: the \
                 rows it held stay as they are now (disabled); run the file again to apply them",
                plan.file
            )),
            Err(e) => warnings.push(format!("{}: {e}", plan.file)),
        }
    }
    let schedule = made.start;
    let mut held_by: Vec<_> = plan
        .held
        .iter()
        .flat_map(|h| h.schedules.iter().copied())
        .collect();
    held_by.sort_unstable();
    held_by.dedup();
    if !held_by.is_empty() {
        let list: Vec<String> = held_by.iter().map(|s| s.to_string()).collect();
        warnings.push(format!(
            "{}: {} rows held by scheduled change {} (a running lock-out or a pending start): \
             their accounts stay disabled until it enables them",
            plan.file,
            plan.held.len(),
            list.join(", ")
        ));
    }
    if plan.start_at.is_some() && !plan.starting.is_empty() {
        warnings.push(match schedule {
            Some(s) => format!(
                "{}: {} new accounts created disabled; schedule {s} enables them at the start \
                 instant",
                plan.file,
                plan.starting.len()
            ),
            None => format!(
                "{}: {} new accounts would be created disabled and enabled at the start instant",
                plan.file,
                plan.starting.len()
            ),
        });
    }
    if !plan.grace_deletions.is_empty() {
        warnings.push(format!(
            "{}: {} stubs deactivated instead of deleted (the domain's deletion grace period){}",
            plan.file,
            plan.grace_deletions.len(),
            match made.deletion {
                Some(s) => format!(
                    "; schedule {s} deletes those still deactivated stubs when the period ends"
                ),
                None => String::new(),
            }
        ));
    }
    made
}
