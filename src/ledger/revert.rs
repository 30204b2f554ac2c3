//! Undo an import job (or a revert): every account the job changed goes back to its state just
//! before the job, by new compensating events (the log stays append-only) whose source names
//! the reverted job. Accounts the job created are deleted while still stubs, else deactivated;
//! accounts changed again after the job are left alone and listed; an account the job deleted
//! cannot come back (its key, so its data, is gone) and is listed. The revert is one atomic
//! batch: any refusal (a license limit) refuses all of it. A dry run decides the same batch
//! and writes nothing.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::{BatchMode, Ledger, LedgerError, Request};
use crate::domain::{AccountId, AccountState, Command, GuardCheck, StreamId};
use crate::store::Source;

/// How many times a revert refused by a change made after its plan is planned again.
const REPLANS: usize = 3;

/// What a revert does to one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevertStep {
    pub account: AccountId,
    /// The commands that take it back, in order (empty: it is already as it was).
    pub commands: Vec<Command>,
    /// In words: "deleted (created by the job, still a stub)", "re-enabled", ...
    pub what: String,
    /// The account's version the plan was made on: its first command expects it, so a change
    /// made meanwhile (or one a lagging read model did not show) refuses the plan.
    pub version: u64,
}

/// The whole revert of one job, decided before anything is written.
#[derive(Debug, Clone, Default)]
pub struct RevertPlan {
    pub reverted: Uuid,
    pub domain: String,
    pub steps: Vec<RevertStep>,
    /// Accounts changed again after the job: (account, the position of that change).
    pub changed_since: Vec<(AccountId, u64)>,
    /// Accounts the job deleted: their personal data is destroyed, they cannot come back.
    pub deleted_by_job: Vec<AccountId>,
    /// The mass-change guard on what the revert deactivates or deletes.
    pub guard: GuardCheck,
}

/// A revert as run (or as a dry run would run it).
#[derive(Debug, Clone)]
pub struct RevertOutcome {
    pub plan: RevertPlan,
    /// The revert's own job id (its events' source), None for a dry run.
    pub job_id: Option<Uuid>,
    pub events_written: u64,
}

/// The commands that take `now` back to `before` (both live accounts).
fn commands_back(before: &AccountState, now: &AccountState) -> (Vec<Command>, Vec<&'static str>) {
    let account = now.id;
    let mut commands = Vec::new();
    let mut what = Vec::new();
    if before.profile != now.profile || before.role != now.role {
        commands.push(Command::UpdateProfile {
            account,
            profile: before.profile.to_profile(),
            role: before.role.to_string(),
        });
        what.push("profile restored");
    }
    match (before.active, now.active) {
        (true, false) => {
            commands.push(Command::Reactivate {
                account,
                enabled: before.enabled,
            });
            what.push("reactivated");
        }
        (true, true) if before.enabled != now.enabled => {
            commands.push(if before.enabled {
                Command::Enable { account }
            } else {
                Command::Disable { account }
            });
            what.push(if before.enabled {
                "enabled"
            } else {
                "disabled"
            });
        }
        (false, _) => {
            if before.enabled && !now.enabled {
                // Enable also reactivates; deactivate again right after.
                commands.push(Command::Reactivate {
                    account,
                    enabled: true,
                });
                what.push("enabled");
            } else if !before.enabled && now.enabled {
                commands.push(Command::Disable { account });
                what.push("disabled");
            }
            if now.active || before.enabled && !now.enabled {
                commands.push(Command::Deactivate { account });
                what.push("deactivated");
            }
        }
        (true, true) => {}
    }
    (commands, what)
}

impl Ledger {
    /// What reverting `job` would do; None when the log holds no event of that job.
    pub async fn plan_revert(&self, job: &Uuid) -> Result<Option<RevertPlan>, LedgerError> {
        // On several servers: plan on everything committed so far.
        self.follow().await?;
        let events = self.import_job_history(job).await?;
        let Some(domain) = self.events_domain(&events) else {
            return Ok(None);
        };
        // Per account: the job's first and last position.
        let mut spans: BTreeMap<AccountId, (u64, u64)> = BTreeMap::new();
        for e in &events {
            if let Some(a) = e.event.account() {
                let span = spans.entry(a).or_insert((e.position, e.position));
                span.1 = span.1.max(e.position);
            }
        }
        let mut plan = RevertPlan {
            reverted: *job,
            domain,
            ..Default::default()
        };
        // The accounts to take back, and every event of theirs before the job: one read.
        let mut back = Vec::new();
        let mut before_positions = Vec::new();
        for (account, (first, last)) in spans {
            let positions = self.log().stream_positions(&StreamId::Account(account));
            if let Some(later) = positions.iter().find(|p| **p > last) {
                plan.changed_since.push((account, *later));
                continue;
            }
            before_positions.extend(positions.into_iter().filter(|p| *p < first));
            back.push(account);
        }
        before_positions.sort_unstable();
        let mut before = crate::domain::LedgerState::default();
        for e in self.log().read_positions(&before_positions).await? {
            before.evolve(&e.event);
        }
        for account in back {
            let Some(now) = self.account(account) else {
                continue;
            };
            if now.deleted {
                plan.deleted_by_job.push(account);
                continue;
            }
            let step = match before.account(account) {
                None if now.is_stub() => RevertStep {
                    account,
                    commands: vec![Command::Delete { account }],
                    what: "deleted (created by the job, still a stub)".into(),
                    version: now.version,
                },
                None => RevertStep {
                    account,
                    commands: if now.active {
                        vec![Command::Deactivate { account }]
                    } else {
                        vec![]
                    },
                    what: "deactivated (created by the job; it holds data or was signed into)"
                        .into(),
                    version: now.version,
                },
                Some(before) => {
                    let (commands, what) = commands_back(before, &now);
                    RevertStep {
                        account,
                        commands,
                        what: if what.is_empty() {
                            "already as before the job".into()
                        } else {
                            what.join(", ")
                        },
                        version: now.version,
                    }
                }
            };
            plan.steps.push(step);
        }
        let removals = plan
            .steps
            .iter()
            .filter(|s| {
                s.commands
                    .iter()
                    .any(|c| matches!(c, Command::Deactivate { .. } | Command::Delete { .. }))
            })
            .count() as u64;
        plan.guard = self.read_domain_or_empty(&plan.domain, |s| GuardCheck {
            active_imported: s
                .accounts
                .values()
                .filter(|a| a.import_id.is_some() && !a.deleted && a.active)
                .count() as u64,
            removals,
            percent: s
                .domains
                .get(&plan.domain)
                .map_or(crate::domain::DEFAULT_MASS_CHANGE_PERCENT, |d| {
                    d.mass_change_percent
                }),
        });
        Ok(Some(plan))
    }

    /// Revert `job` as `actor` (see the module doc); `dry_run` decides and writes nothing. A
    /// revert that deactivates or deletes more than the domain's mass-change share needs
    /// `confirm_mass_change`, as a full import does. None when the log holds no event of that
    /// job.
    pub async fn revert_job(
        &self,
        job: &Uuid,
        actor: &str,
        dry_run: bool,
        confirm_mass_change: bool,
    ) -> Result<Option<RevertOutcome>, LedgerError> {
        match self.plan_revert(job).await? {
            Some(plan) => self
                .run_revert(plan, actor, dry_run, confirm_mass_change)
                .await
                .map(Some),
            None => Ok(None),
        }
    }

    /// Carry out a plan from [`Ledger::plan_revert`] (a caller that needs the plan first, to
    /// check rights in its domain, reads the job once). A plan refused because an account
    /// changed after it was made is made again (a few times) on the new state.
    pub async fn run_revert(
        &self,
        mut plan: RevertPlan,
        actor: &str,
        dry_run: bool,
        confirm_mass_change: bool,
    ) -> Result<RevertOutcome, LedgerError> {
        let mut attempts = REPLANS;
        loop {
            match self
                .run_revert_once(&plan, actor, dry_run, confirm_mass_change)
                .await
            {
                Err(LedgerError::VersionMismatch { .. }) if attempts > 0 => {
                    attempts -= 1;
                    let job = plan.reverted;
                    plan = self.plan_revert(&job).await?.ok_or_else(|| {
                        LedgerError::Store(crate::store::StoreError::Io(format!(
                            "job {job} vanished from the log while it was reverted"
                        )))
                    })?;
                }
                Err(e) => return Err(e),
                Ok((job_id, events_written)) => {
                    return Ok(RevertOutcome {
                        plan,
                        job_id,
                        events_written,
                    });
                }
            }
        }
    }

    /// One try of [`Ledger::run_revert`]: the revert's job id (None when nothing was
    /// written) and the number of events written.
    async fn run_revert_once(
        &self,
        plan: &RevertPlan,
        actor: &str,
        dry_run: bool,
        confirm_mass_change: bool,
    ) -> Result<(Option<Uuid>, u64), LedgerError> {
        let job = &plan.reverted;
        if !dry_run && !confirm_mass_change && plan.guard.exceeded() {
            return Err(LedgerError::MassRevert {
                job: *job,
                domain: plan.domain.clone(),
                affected: plan.guard.removals,
                active: plan.guard.active_imported,
                percent: plan.guard.percent,
            });
        }
        let job_id = Uuid::new_v4();
        let requests: Vec<Request> = plan
            .steps
            .iter()
            .flat_map(|s| {
                s.commands
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.clone(), (i == 0).then_some(s.version)))
            })
            .map(|(command, expected_version)| Request {
                command,
                actor: actor.into(),
                source: Source::Revert {
                    job_id,
                    reverted: *job,
                },
                request_id: None,
                expected_version,
            })
            .collect();
        let mode = if dry_run {
            BatchMode::DryRun
        } else {
            BatchMode::Strict
        };
        let outcome = if requests.is_empty() {
            None
        } else {
            Some(self.execute_batch(requests, mode).await?)
        };
        if let Some(refused) = outcome
            .as_ref()
            .and_then(|o| o.results.iter().find_map(|r| r.as_ref().err()))
        {
            return Err(clone_refusal(refused));
        }
        let events_written = match (&outcome, dry_run) {
            (Some(o), false) => o
                .results
                .iter()
                .flatten()
                .map(|r| r.positions.len() as u64)
                .sum(),
            _ => 0,
        };
        Ok((
            (!dry_run && events_written > 0).then_some(job_id),
            events_written,
        ))
    }
}

/// The first refusal of a strict batch, as the revert's error.
fn clone_refusal(e: &LedgerError) -> LedgerError {
    match e {
        LedgerError::Domain(d) => LedgerError::Domain(d.clone()),
        LedgerError::VersionMismatch {
            stream,
            expected,
            actual,
        } => LedgerError::VersionMismatch {
            stream: stream.clone(),
            expected: *expected,
            actual: *actual,
        },
        other => LedgerError::Store(crate::store::StoreError::Io(other.to_string())),
    }
}
