//! The two-step disable and delete: the first call answers a warning (what will be lost) and a
//! short-lived confirmation token bound to the principal, account, action and version; only the
//! second call, with that token, acts. Tokens live in memory.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tonic::{Request, Response, Status};

use super::auth::{Op, Principal};
use super::convert::us_to_timestamp;
use super::pb;
use super::server::LedgerService;
use crate::domain::{AccountId, AccountState, Command};
use crate::ledger::LedgerError;
use crate::store::now_us;

/// How long a disable/delete confirmation token stays valid.
pub const CONFIRMATION_TTL: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    Disable,
    Delete,
}

#[derive(Debug, Clone)]
pub(super) struct PendingConfirmation {
    account: AccountId,
    action: Action,
    principal: String,
    /// The account's version when warned: if it changed since, the warning is stale (ABORTED).
    version: u64,
    expires: Instant,
}

impl LedgerService {
    fn purge_expired(map: &mut HashMap<String, PendingConfirmation>) {
        let now = Instant::now();
        map.retain(|_, p| p.expires > now);
    }

    /// The two-step flow shared by disable and delete.
    pub(super) async fn confirmable(
        &self,
        request: Request<pb::ConfirmableRequest>,
        action: Action,
    ) -> Result<Response<pb::ConfirmableReply>, Status> {
        let who = self.auth.authenticate(&request).await?;
        let req = request.into_inner();
        let acc = self.target(&who, Op::ManageAccounts, req.account).await?;
        let command = match action {
            Action::Disable => Command::Disable { account: acc.id },
            Action::Delete => Command::Delete { account: acc.id },
        };
        // A retry of a request that already acted needs no token: the ledger replays it.
        let scoped = req
            .request_id
            .as_ref()
            .map(|id| format!("{}/{id}", who.name));
        let already_done = scoped
            .as_deref()
            .is_some_and(|id| !self.ledger.log().request_positions(id).is_empty());
        let Some(token) = req.confirmation_token.filter(|t| !t.is_empty()) else {
            if !already_done {
                return Ok(Response::new(self.warn(&who, &acc, action)?));
            }
            let done = self.run(&who, command, req.request_id, None).await?;
            return Ok(Response::new(pb::ConfirmableReply {
                outcome: Some(pb::confirmable_reply::Outcome::Done(done)),
            }));
        };
        let pending = {
            let mut map = self.confirmations.lock().unwrap_or_else(|e| e.into_inner());
            Self::purge_expired(&mut map);
            map.get(&token).cloned()
        };
        let valid = pending
            .as_ref()
            .is_some_and(|p| p.account == acc.id && p.action == action && p.principal == who.name);
        if !valid && !already_done {
            return Err(Status::failed_precondition(
                "confirmation_token is unknown, expired, or for another account or action; \
                 call again without it to get a new warning",
            ));
        }
        // Without its own expected_version the call acts only if the account is still as the
        // warning described it.
        let warned_at = pending
            .as_ref()
            .map(|p| p.version)
            .filter(|_| req.expected_version.is_none() && !already_done);
        let expected = req.expected_version.or(warned_at);
        let expected = if already_done { None } else { expected };
        let done = match self.run(&who, command, req.request_id, expected).await {
            Err(e) if e.code() == tonic::Code::Aborted && warned_at.is_some() => {
                return Err(Status::aborted(format!(
                    "account {} changed after the warning was given, so nothing was done; call \
                     again without confirmation_token to get a warning for it as it is now",
                    acc.id
                )));
            }
            done => done?,
        };
        self.confirmations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&token);
        Ok(Response::new(pb::ConfirmableReply {
            outcome: Some(pb::confirmable_reply::Outcome::Done(done)),
        }))
    }

    fn warn(
        &self,
        who: &Principal,
        acc: &AccountState,
        action: Action,
    ) -> Result<pb::ConfirmableReply, Status> {
        if acc.deleted {
            // Same refusal the core gives; no point in confirming.
            return Err(
                LedgerError::from(crate::domain::DomainError::AccountDeleted { account: acc.id })
                    .into(),
            );
        }
        let signed_in = acc.last_sign_in_us.is_some();
        let warning = match action {
            Action::Disable => format!(
                "Disabling account {} ({}) stops it from signing in and frees its license; \
                 its data is kept and it can be enabled again.",
                acc.id,
                acc.profile.login()
            ),
            Action::Delete => {
                let mut what = Vec::new();
                if acc.owns_data {
                    what.push("the classes it owns, its grades and all other data it holds");
                }
                if signed_in {
                    what.push("its sign-in history");
                }
                let what = if what.is_empty() {
                    "its profile (it has never signed in and holds no data)".to_string()
                } else {
                    format!("its profile, {}", what.join(", "))
                };
                format!(
                    "Deleting account {} ({}) destroys {what}. This cannot be undone.",
                    acc.id,
                    acc.profile.login()
                )
            }
        };
        let token = uuid::Uuid::new_v4().simple().to_string();
        let expires_at = now_us() + CONFIRMATION_TTL.as_micros() as i64;
        {
            let mut map = self.confirmations.lock().unwrap_or_else(|e| e.into_inner());
            Self::purge_expired(&mut map);
            map.insert(
                token.clone(),
                PendingConfirmation {
                    account: acc.id,
                    action,
                    principal: who.name.clone(),
                    version: acc.version,
                    expires: Instant::now() + CONFIRMATION_TTL,
                },
            );
        }
        Ok(pb::ConfirmableReply {
            outcome: Some(pb::confirmable_reply::Outcome::ConfirmationRequired(
                pb::Confirmation {
                    warning,
                    confirmation_token: token,
                    expires_at: Some(us_to_timestamp(expires_at)),
                    account: acc.id,
                    status: pb::AccountStatus::from(acc.status()) as i32,
                    owns_data: acc.owns_data,
                    signed_in,
                    last_sign_in: acc.last_sign_in_us.map(us_to_timestamp),
                    is_stub: acc.is_stub(),
                },
            )),
        })
    }
}
