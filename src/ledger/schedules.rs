//! Firing scheduled changes. One firer task per ledger looks at every domain's schedules once a
//! second (and at start, so a phase missed while the server was down fires then). A phase
//! fires as one Strict batch: the `FireSchedule` marker first, then the lifecycle commands of
//! [`schedule::plan_firing`], all with the schedule as their source. The marker is refused once
//! the phase has fired, and the batch is atomic, so a phase fires exactly once: two firers, a
//! crash mid-batch or a restart cannot make it fire twice or half. On several servers only
//! the one deciding a domain fires its schedules (taking the lease if nobody holds it).

use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{BatchMode, Ledger, LedgerError, Request, Shared};
use crate::domain::schedule::{self, Change, Phase, ScheduleId};
use crate::domain::{DomainError, Event};
use crate::store::Source;

/// How often the firer looks (at most this late).
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// A planned firing refused because the domain changed meanwhile is planned again this often.
const ATTEMPTS: usize = 5;

/// The actor of fired changes (the schedule's author is on its `ChangeScheduled` event).
pub const SCHEDULER: &str = "scheduler";

/// One phase that fired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    pub domain: String,
    pub schedule: ScheduleId,
    pub phase: Phase,
    pub changed: usize,
    pub not_enabled: usize,
}

pub(super) fn spawn_firer(shared: Weak<Shared>) {
    tokio::spawn(async move {
        loop {
            {
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                if shared.closed.load(Ordering::SeqCst) {
                    return;
                }
                let ledger = Ledger { shared };
                match crate::threads::caught(ledger.fire_due_schedules()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::error!("firing scheduled changes failed: {e}"),
                    Err(panic) => {
                        tracing::error!("firing scheduled changes panicked ({panic}); retried")
                    }
                }
            }
            tokio::time::sleep(LOOK_EVERY).await;
        }
    });
}

impl Ledger {
    /// Fire every phase due by the ledger's clock, earliest first per domain. Safe to call
    /// beside the firer task: a phase fires once whoever gets there first. A domain whose
    /// firing fails is logged and tried again at the next look; the others still fire.
    pub async fn fire_due_schedules(&self) -> Result<Vec<Fired>, LedgerError> {
        let now = self.shared.clock.now_us();
        let mut fired = Vec::new();
        for part in self.shared.routes.all() {
            let due = schedule::due(&part.read().state, &part.domain, now);
            // On several servers the one deciding the domain fires its schedules, planned on
            // the read model its own writer keeps: another server's may not have the latest
            // changes, and a phase fires only once, so a plan made there would stay wrong.
            if due.is_empty() {
                continue;
            }
            match self.decides_here(&part).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    // Another domain's schedules still fire; this one is tried next time.
                    tracing::warn!(domain = %part.domain, "firing its schedules waits: {e}");
                    continue;
                }
            }
            for (_, id, phase) in due {
                let once = match self.fire(&part.domain, id, phase).await {
                    Ok(once) => once,
                    // The lease moved meanwhile: the new owner fires it, on its own read model.
                    Err(LedgerError::Store(crate::store::StoreError::LeaseLost { .. })) => break,
                    // Tried again next time; the other domains' schedules still fire.
                    Err(e) => {
                        tracing::error!(domain = %part.domain, "firing a scheduled change failed: {e}");
                        break;
                    }
                };
                if let Some(f) = once {
                    tracing::info!(
                        domain = %f.domain,
                        schedule = f.schedule,
                        phase = f.phase.as_str(),
                        changed = f.changed,
                        not_enabled = f.not_enabled,
                        "scheduled change fired"
                    );
                    fired.push(f);
                }
            }
        }
        Ok(fired)
    }

    /// Fire one phase; None when it already fired (or was cancelled) meanwhile.
    async fn fire(
        &self,
        domain: &str,
        id: ScheduleId,
        phase: Phase,
    ) -> Result<Option<Fired>, LedgerError> {
        let mut last_refusal = None;
        for _ in 0..ATTEMPTS {
            let Some(firing) =
                self.read_domain_or_empty(domain, |s| schedule::plan_firing(s, domain, id, phase))
            else {
                return Ok(None);
            };
            let source = Source::Schedule {
                schedule: id,
                phase,
            };
            // The marker is refused unless the state still plans exactly this firing (see
            // `decide`), so the commands need no expected versions.
            let requests: Vec<Request> = std::iter::once(firing.marker())
                .chain(firing.commands.iter().cloned())
                .map(|command| Request {
                    command,
                    actor: SCHEDULER.into(),
                    source: source.clone(),
                    request_id: None,
                    expected_version: None,
                })
                .collect();
            // Decided here or refused, never forwarded: the plan was made on this server's
            // read model, which only its own writer's domains keep current.
            let outcome = self.execute_forwarded(requests, BatchMode::Strict).await?;
            let mut results = outcome.results.into_iter();
            match results.next() {
                Some(Err(LedgerError::Domain(
                    DomainError::ScheduleNotOpen { .. } | DomainError::UnknownSchedule { .. },
                ))) => return Ok(None),
                // Planned on a state that changed since: plan again on the new one.
                Some(Err(e @ LedgerError::Domain(DomainError::FiringOutdated { .. }))) => {
                    last_refusal = Some(e);
                    continue;
                }
                Some(Err(e)) => return Err(e),
                _ => {}
            }
            match results.find_map(Result::err) {
                None => {
                    return Ok(Some(Fired {
                        domain: domain.to_string(),
                        schedule: id,
                        phase,
                        changed: firing.changed.len(),
                        not_enabled: firing.not_enabled.len(),
                    }));
                }
                // The domain changed between planning and deciding (a license taken, an
                // account deleted): plan again on the new state.
                Some(e) => last_refusal = Some(e),
            }
        }
        Err(last_refusal.unwrap_or(LedgerError::Closed))
    }

    /// The schedules that the events at `positions` made (a command's or a job's answer), as
    /// (number, change), read back from the log.
    pub async fn schedules_made(
        &self,
        positions: &[u64],
    ) -> Result<Vec<(ScheduleId, Change)>, LedgerError> {
        let events = self.shared.log.read_positions(positions).await?;
        Ok(events
            .iter()
            .filter_map(|e| match &e.event {
                Event::ChangeScheduled {
                    schedule, change, ..
                } => Some((*schedule, *change)),
                _ => None,
            })
            .collect())
    }

    /// The clock schedules fire by.
    pub fn now_us(&self) -> i64 {
        self.shared.clock.now_us()
    }
}
