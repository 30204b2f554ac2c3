//! `ScheduleService`: scheduled changes of a domain's accounts (make, cancel, list). The rules
//! are in `domain::schedule`; firing is the ledger's (`ledger::schedules`).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::auth::{Auth, Op, Principal};
use super::convert::{self, required, schedule_to_wire};
use super::pb;
use super::status::{domain_not_found, invalid, request_id_used_elsewhere};
use crate::domain::Command;
use crate::domain::schedule::{Change, ScheduleId};
use crate::ledger::{Ledger, Request as LedgerRequest};
use crate::store::Source;

#[derive(Clone)]
pub struct ScheduleService {
    ledger: Ledger,
    auth: Arc<Auth>,
}

impl ScheduleService {
    pub fn new(ledger: Ledger, auth: Arc<Auth>) -> ScheduleService {
        ScheduleService { ledger, auth }
    }

    async fn domain(&self, who: &Principal, op: Op, domain: String) -> Result<String, Status> {
        let domain = required("domain", domain)?;
        who.require_in(op, &domain)?;
        if !self.ledger.domain_exists_fresh(&domain).await {
            return Err(domain_not_found(&domain));
        }
        Ok(domain)
    }

    /// Run a schedule command; the answer is the schedule as the log now has it.
    async fn run(
        &self,
        who: &Principal,
        command: Command,
        request_id: Option<String>,
    ) -> Result<(ScheduleId, u64), Status> {
        let request_id = convert::request_id(request_id)?.map(|id| format!("{}/{id}", who.name));
        let cancelled = match &command {
            Command::CancelSchedule { schedule, .. } => Some(*schedule),
            _ => None,
        };
        let done = self
            .ledger
            .execute(LedgerRequest {
                command,
                actor: who.name.as_str().into(),
                source: Source::Manual,
                request_id,
                expected_version: None,
            })
            .await?;
        let position = done.positions.last().copied().unwrap_or(0);
        let id = match cancelled {
            Some(schedule) => schedule,
            None => self
                .ledger
                .schedules_made(&done.positions)
                .await?
                .first()
                .map(|(schedule, _)| *schedule)
                // The ledger answered a replay of the request id's first command.
                .ok_or_else(|| request_id_used_elsewhere("made no schedule"))?,
        };
        Ok((id, position))
    }

    /// Every schedule of `domain` and its grace period, as of now.
    fn listing(&self, domain: &str) -> pb::ListSchedulesResponse {
        let position = self.ledger.log().last_position();
        self.ledger
            .read_domain(domain, |s| {
                let d = &s.domains[domain];
                pb::ListSchedulesResponse {
                    schedules: d
                        .schedules
                        .values()
                        .map(|sc| schedule_to_wire(domain, sc, position))
                        .collect(),
                    deletion_grace_seconds: (d.deletion_grace_us / 1_000_000) as u64,
                }
            })
            .unwrap_or_default()
    }

    fn answer(
        &self,
        domain: &str,
        id: ScheduleId,
        position: u64,
    ) -> Result<Response<pb::ScheduledChange>, Status> {
        self.ledger
            .read_domain(domain, |s| {
                s.domains
                    .get(domain)
                    .and_then(|d| d.schedules.get(&id))
                    .map(|sc| schedule_to_wire(domain, sc, position))
            })
            .flatten()
            .map(Response::new)
            .ok_or_else(|| Status::not_found(format!("domain {domain:?} has no schedule {id}")))
    }
}

/// The first instant of a change.
fn starts_at(change: &Change) -> i64 {
    match change {
        Change::Disable { at_us, .. } | Change::Enable { at_us } | Change::Delete { at_us } => {
            *at_us
        }
    }
}

#[tonic::async_trait]
impl pb::schedule_service_server::ScheduleService for ScheduleService {
    async fn schedule_change(
        &self,
        request: Request<pb::ScheduleChangeRequest>,
    ) -> Result<Response<pb::ScheduledChange>, Status> {
        let who = self.auth.authenticate(&request).await?;
        let req = request.into_inner();
        let domain = self.domain(&who, Op::ManageAccounts, req.domain).await?;
        let target = convert::schedule_target(req.selection)?;
        let change = convert::schedule_change(req.action, req.at, req.until)?;
        if starts_at(&change) < self.ledger.now_us() {
            return Err(invalid(
                "at",
                "is in the past; a schedule is for later (change the accounts directly now)",
            ));
        }
        let reason = required("reason", req.reason)?;
        let command = Command::ScheduleChange {
            domain: domain.clone(),
            target,
            change,
            reason,
        };
        let (id, position) = self.run(&who, command, req.request_id).await?;
        self.answer(&domain, id, position)
    }

    async fn cancel_schedule(
        &self,
        request: Request<pb::CancelScheduleRequest>,
    ) -> Result<Response<pb::ScheduledChange>, Status> {
        let who = self.auth.authenticate(&request).await?;
        let req = request.into_inner();
        let domain = self.domain(&who, Op::ManageAccounts, req.domain).await?;
        if req.schedule == 0 {
            return Err(invalid(
                "schedule",
                "required (schedules are numbered from 1)",
            ));
        }
        let command = Command::CancelSchedule {
            domain: domain.clone(),
            schedule: req.schedule,
            reason: required("reason", req.reason)?,
        };
        let (id, position) = self.run(&who, command, None).await?;
        self.answer(&domain, id, position)
    }

    async fn list_schedules(
        &self,
        request: Request<pb::ListSchedulesRequest>,
    ) -> Result<Response<pb::ListSchedulesResponse>, Status> {
        let who = self.auth.authenticate(&request).await?;
        let domain = self
            .domain(&who, Op::Read, request.into_inner().domain)
            .await?;
        Ok(Response::new(self.listing(&domain)))
    }

    async fn set_deletion_grace(
        &self,
        request: Request<pb::SetDeletionGraceRequest>,
    ) -> Result<Response<pb::ListSchedulesResponse>, Status> {
        let who = self.auth.authenticate(&request).await?;
        let req = request.into_inner();
        let domain = self.domain(&who, Op::Operate, req.domain).await?;
        let grace_us = i64::try_from(req.grace_seconds)
            .ok()
            .and_then(|s| s.checked_mul(1_000_000))
            .ok_or_else(|| invalid("grace_seconds", "must be between 0 and 365 days"))?;
        let command = Command::SetDeletionGrace {
            domain: domain.clone(),
            grace_us,
        };
        self.ledger
            .execute(LedgerRequest::manual(&who.name, command))
            .await?;
        Ok(Response::new(self.listing(&domain)))
    }
}
