//! The two-step disable and delete: the first call answers a warning (what will be lost) and a
//! short-lived confirmation token bound to the principal, account, action and version; only the
//! second call, with that token, acts.
//!
//! A token carries what it was given for (account, action, the account's version, expiry) and
//! an HMAC-SHA256 of that and the principal, so any server holding the key can check it: on a
//! store several servers share, the key derives from the store's peer secret, and the
//! confirming call may reach another server than the warning. A token cannot be used twice
//! to act: it binds the account's version, which the first use changes.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

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

/// What a valid token was given for.
#[derive(Debug, Clone)]
struct PendingConfirmation {
    account: AccountId,
    action: Action,
    /// The account's version when warned: if it changed since, the warning is stale (ABORTED).
    version: u64,
}

/// The key confirmation tokens are signed with.
#[derive(Clone)]
pub(super) struct ConfirmKey([u8; 32]);

impl ConfirmKey {
    /// A key of this process only (one server: tokens end with it, as they are short-lived).
    pub(super) fn random() -> ConfirmKey {
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        ConfirmKey(key)
    }

    /// The key every server of one store derives from its shared secret.
    pub(super) fn from_secret(secret: &[u8]) -> ConfirmKey {
        use sha2::Digest;
        ConfirmKey(Sha256::digest([b"confirmation tokens\0".as_slice(), secret].concat()).into())
    }

    fn mac(&self, principal: &str, payload: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("any key length");
        mac.update(principal.as_bytes());
        mac.update(b"\0");
        mac.update(payload.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// `account.action.version.expires_us.mac`
    fn issue(&self, principal: &str, p: &PendingConfirmation, expires_us: i64) -> String {
        let payload = format!(
            "{}.{}.{}.{expires_us}",
            p.account,
            action_code(p.action),
            p.version
        );
        let mac = self.mac(principal, &payload);
        format!("{payload}.{mac}")
    }

    /// The confirmation a token stands for, if `principal` was given it and it has not expired.
    fn check(&self, principal: &str, token: &str) -> Option<PendingConfirmation> {
        let (payload, mac) = token.rsplit_once('.')?;
        let expected = self.mac(principal, payload);
        if !super::auth::constant_time_eq(expected.as_bytes(), mac.as_bytes()) {
            return None;
        }
        let mut parts = payload.split('.');
        let account = parts.next()?.parse().ok()?;
        let action = match parts.next()? {
            "disable" => Action::Disable,
            "delete" => Action::Delete,
            _ => return None,
        };
        let version = parts.next()?.parse().ok()?;
        let expires_us: i64 = parts.next()?.parse().ok()?;
        (expires_us > now_us()).then_some(PendingConfirmation {
            account,
            action,
            version,
        })
    }
}

fn action_code(action: Action) -> &'static str {
    match action {
        Action::Disable => "disable",
        Action::Delete => "delete",
    }
}

impl LedgerService {
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
        let pending = self.confirm_key().check(&who.name, &token);
        let valid = pending
            .as_ref()
            .is_some_and(|p| p.account == acc.id && p.action == action);
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
                // Exactly what goes and what stays: the ledger erases the personal data (the
                // account's key is destroyed); the log keeps the account's events without it.
                let lms = if acc.owns_data {
                    " In the LMS, the classes it owns, its grades and all other data it holds \
                     are destroyed with it."
                } else {
                    " It holds no data in the LMS."
                };
                let signed = if signed_in { "when it signed in, " } else { "" };
                format!(
                    "Deleting account {} ({}) erases its login, name and email for good and \
                     frees its import id.{lms} The log keeps, without them, that the account \
                     existed, {signed}and every change of its status. This cannot be undone.",
                    acc.id,
                    acc.profile.login()
                )
            }
        };
        let expires_at = now_us() + CONFIRMATION_TTL.as_micros() as i64;
        let token = self.confirm_key().issue(
            &who.name,
            &PendingConfirmation {
                account: acc.id,
                action,
                version: acc.version,
            },
            expires_at,
        );
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
