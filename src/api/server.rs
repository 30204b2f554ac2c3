//! The tonic service `account_ledger.v1.AccountLedger` and the server around it (health,
//! reflection, graceful shutdown); [`router`] also serves `ImportService` ([`super::import`]).
//!
//! Each handler: authenticate → convert the wire request (INVALID_ARGUMENT on bad input) →
//! resolve the account and authorize on its domain → one call into the ledger → convert back.
//! No domain rule lives here; the only state of its own is the short-lived confirmation tokens of
//! the two-step disable/delete. To serve another service next to this one, add one
//! `.add_service(..)` line in [`router`].

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_stream::{Stream, StreamExt, wrappers::ReceiverStream, wrappers::TcpListenerStream};
use tonic::{Request, Response, Status};

use super::auth::{Auth, Op, Principal, Role};
use super::convert::{
    self, event_to_wire, optional_as_of, required, timestamp_to_us, us_to_timestamp,
};
use super::pb::{self, account_ledger_server::AccountLedgerServer};
use super::status::{account_not_found, domain_not_found, invalid, missing, permission_denied};
use crate::domain::{AccountId, AccountState, Command, Profile, Status as AccountStatus};
use crate::ledger::{Ledger, LedgerError, Request as LedgerRequest};
use crate::queries::{AccountFilter, in_users_export};
use crate::store::{Source, now_us};

/// How long a disable/delete confirmation token stays valid.
pub const CONFIRMATION_TTL: Duration = Duration::from_secs(120);

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Disable,
    Delete,
}

#[derive(Debug, Clone)]
struct PendingConfirmation {
    account: AccountId,
    action: Action,
    principal: String,
    /// The account's version when warned: if it changed since, the warning is stale (ABORTED).
    version: u64,
    expires: Instant,
}

/// The AccountLedger service.
#[derive(Clone)]
pub struct LedgerService {
    ledger: Ledger,
    auth: Arc<Auth>,
    confirmations: Arc<Mutex<HashMap<String, PendingConfirmation>>>,
}

impl LedgerService {
    pub fn new(ledger: Ledger, auth: Arc<Auth>) -> LedgerService {
        LedgerService {
            ledger,
            auth,
            confirmations: Arc::default(),
        }
    }

    /// The account a reference names, and its domain. Deleted accounts are found by id only
    /// (their import id is released).
    fn resolve(&self, r: Option<pb::AccountRef>) -> Result<AccountState, Status> {
        let r = r.and_then(|r| r.r#ref).ok_or_else(|| missing("account"))?;
        match r {
            pb::account_ref::Ref::Id(id) => {
                self.ledger.account(id).ok_or_else(|| account_not_found(id))
            }
            pb::account_ref::Ref::Import(key) => {
                let domain = required("account.import.domain", key.domain)?;
                let import_id = required("account.import.import_id", key.import_id)?;
                if !self.ledger.domain_exists(&domain) {
                    return Err(domain_not_found(&domain));
                }
                self.ledger
                    .account_by_import_id(&domain, &import_id)
                    .ok_or_else(|| {
                        account_not_found(format!("with import id {import_id:?} in {domain:?}"))
                    })
            }
        }
    }

    /// Resolve and authorize in one step.
    fn target(
        &self,
        who: &Principal,
        op: Op,
        r: Option<pb::AccountRef>,
    ) -> Result<AccountState, Status> {
        who.require(op)?;
        let acc = self.resolve(r)?;
        who.require_in(op, &acc.domain)?;
        Ok(acc)
    }

    /// Run one command through the ledger and describe what it did.
    async fn run(
        &self,
        who: &Principal,
        command: Command,
        request_id: Option<String>,
        expected_version: Option<u64>,
    ) -> Result<pb::CommandReply, Status> {
        let source = match (who.role, &command) {
            (Role::Lms, _) => Source::LmsReport,
            _ => Source::Manual,
        };
        // Request ids are scoped per principal, so two clients never replay each other.
        let request_id = convert::request_id(request_id)?.map(|id| format!("{}/{id}", who.name));
        let done = self
            .ledger
            .execute(LedgerRequest {
                command,
                actor: who.name.clone(),
                source,
                request_id,
                expected_version,
            })
            .await?;
        Ok(pb::CommandReply {
            account: done.account,
            positions: done.positions,
            replayed: done.replayed,
            account_version: done.version,
        })
    }

    /// The shape shared by the commands that take only an account: authenticate, resolve the
    /// account within the caller's domains, run.
    async fn account_command(
        &self,
        request: Request<pb::AccountCommandRequest>,
        op: Op,
        make: fn(AccountId) -> Command,
    ) -> Result<Response<pb::CommandReply>, Status> {
        let who = self.auth.authenticate(&request)?;
        let req = request.into_inner();
        let acc = self.target(&who, op, req.account)?;
        Ok(Response::new(
            self.run(&who, make(acc.id), req.request_id, req.expected_version)
                .await?,
        ))
    }

    fn purge_expired(map: &mut HashMap<String, PendingConfirmation>) {
        let now = Instant::now();
        map.retain(|_, p| p.expires > now);
    }

    /// The two-step flow shared by disable and delete.
    async fn confirmable(
        &self,
        request: Request<pb::ConfirmableRequest>,
        action: Action,
    ) -> Result<Response<pb::ConfirmableReply>, Status> {
        let who = self.auth.authenticate(&request)?;
        let req = request.into_inner();
        let acc = self.target(&who, Op::ManageAccounts, req.account)?;
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
        let expected = req.expected_version.or(pending.as_ref().map(|p| p.version));
        let expected = if already_done { None } else { expected };
        let done = self.run(&who, command, req.request_id, expected).await?;
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
                acc.id, acc.profile.login
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
                    acc.id, acc.profile.login
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

    fn domain_of_event(&self, e: &crate::store::RecordedEvent) -> Option<String> {
        self.ledger.event_domain(&e.event)
    }

    fn events_for(
        &self,
        who: &Principal,
        events: Vec<crate::store::RecordedEvent>,
    ) -> Vec<pb::LedgerEvent> {
        events
            .iter()
            .filter_map(|e| {
                let domain = self.domain_of_event(e);
                let visible =
                    who.all_domains() || domain.as_deref().is_some_and(|d| who.may_see(d));
                visible.then(|| event_to_wire(e, domain))
            })
            .collect()
    }

    fn readable_domain(&self, who: &Principal, domain: String) -> Result<String, Status> {
        let domain = required("domain", domain)?;
        who.require_in(Op::Read, &domain)?;
        if !self.ledger.domain_exists(&domain) {
            return Err(domain_not_found(&domain));
        }
        Ok(domain)
    }

    /// The domain's accounts matching `filter`, now or as of an instant.
    async fn accounts(
        &self,
        domain: &str,
        as_of: Option<i64>,
        keep: impl Fn(&AccountState) -> bool,
    ) -> Result<Vec<AccountState>, Status> {
        match as_of {
            Some(at) => Ok(self
                .ledger
                .accounts_as_of(domain, at)
                .await?
                .into_iter()
                .filter(|a| keep(a))
                .collect()),
            None => Ok(self.ledger.read_domain_or_empty(domain, |s| {
                s.domain_accounts
                    .get(domain)
                    .into_iter()
                    .flatten()
                    .filter_map(|id| s.accounts.get(id))
                    .filter(|a| keep(a))
                    .cloned()
                    .collect()
            })),
        }
    }
}

fn profile_checked(p: Option<pb::Profile>) -> Result<Profile, Status> {
    Profile::try_from(p)
}

#[tonic::async_trait]
impl pb::account_ledger_server::AccountLedger for LedgerService {
    async fn register_domain(
        &self,
        request: Request<pb::RegisterDomainRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        let who = self.auth.authenticate(&request)?;
        who.require(Op::Operate)?;
        let req = request.into_inner();
        let domain = required("domain", req.domain)?;
        let command = Command::RegisterDomain {
            domain,
            license_limit: req.license_limit,
        };
        Ok(Response::new(
            self.run(&who, command, req.request_id, req.expected_version)
                .await?,
        ))
    }

    async fn set_mass_change_guard(
        &self,
        request: Request<pb::SetMassChangeGuardRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        let who = self.auth.authenticate(&request)?;
        who.require(Op::Operate)?;
        let req = request.into_inner();
        let domain = required("domain", req.domain)?;
        let percent = u8::try_from(req.percent)
            .ok()
            .filter(|p| *p <= 100)
            .ok_or_else(|| invalid("percent", format!("{} is not in 0..=100", req.percent)))?;
        let command = Command::SetMassChangeGuard { domain, percent };
        Ok(Response::new(
            self.run(&who, command, req.request_id, req.expected_version)
                .await?,
        ))
    }

    async fn set_license_limit(
        &self,
        request: Request<pb::SetLicenseLimitRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        let who = self.auth.authenticate(&request)?;
        who.require(Op::Operate)?;
        let req = request.into_inner();
        let domain = required("domain", req.domain)?;
        let command = Command::SetLicenseLimit {
            domain,
            license_limit: req.license_limit,
        };
        Ok(Response::new(
            self.run(&who, command, req.request_id, req.expected_version)
                .await?,
        ))
    }

    async fn create_token(
        &self,
        request: Request<pb::CreateTokenRequest>,
    ) -> Result<Response<pb::CreateTokenResponse>, Status> {
        let who = self.auth.authenticate(&request)?;
        who.require(Op::Operate)?;
        let req = request.into_inner();
        let principal = required("principal", req.principal)?;
        let role = convert::role_from_wire(req.role)?;
        if role == Role::DomainAdmin && req.domains.is_empty() {
            return Err(invalid(
                "domains",
                "a domain admin needs at least one domain",
            ));
        }
        if let Some(blank) = req.domains.iter().find(|d| d.trim().is_empty()) {
            return Err(invalid("domains", format!("blank domain {blank:?}")));
        }
        let token = self
            .auth
            .add_token(&principal, role, req.domains)
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(pb::CreateTokenResponse { token }))
    }

    async fn create_account(
        &self,
        request: Request<pb::CreateAccountRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        let who = self.auth.authenticate(&request)?;
        let req = request.into_inner();
        let domain = required("domain", req.domain)?;
        who.require_in(Op::ManageAccounts, &domain)?;
        let command = Command::CreateAccount {
            domain,
            account: 0,
            import_id: req.import_id,
            profile: profile_checked(req.profile)?,
            role: required("role", req.role)?,
            enabled: req.enabled.unwrap_or(true),
        };
        Ok(Response::new(
            self.run(&who, command, req.request_id, req.expected_version)
                .await?,
        ))
    }

    async fn update_profile(
        &self,
        request: Request<pb::UpdateProfileRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        let who = self.auth.authenticate(&request)?;
        let req = request.into_inner();
        let acc = self.target(&who, Op::ManageAccounts, req.account)?;
        let command = Command::UpdateProfile {
            account: acc.id,
            profile: profile_checked(req.profile)?,
            role: required("role", req.role)?,
        };
        Ok(Response::new(
            self.run(&who, command, req.request_id, req.expected_version)
                .await?,
        ))
    }

    async fn disable_account(
        &self,
        request: Request<pb::ConfirmableRequest>,
    ) -> Result<Response<pb::ConfirmableReply>, Status> {
        self.confirmable(request, Action::Disable).await
    }

    async fn enable_account(
        &self,
        request: Request<pb::AccountCommandRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        self.account_command(request, Op::ManageAccounts, |account| Command::Enable {
            account,
        })
        .await
    }

    async fn deactivate_account(
        &self,
        request: Request<pb::AccountCommandRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        self.account_command(request, Op::ManageAccounts, |account| Command::Deactivate {
            account,
        })
        .await
    }

    async fn reactivate_account(
        &self,
        request: Request<pb::ReactivateAccountRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        let who = self.auth.authenticate(&request)?;
        let req = request.into_inner();
        let acc = self.target(&who, Op::ManageAccounts, req.account)?;
        let command = Command::Reactivate {
            account: acc.id,
            enabled: req.enabled.unwrap_or(true),
        };
        Ok(Response::new(
            self.run(&who, command, req.request_id, req.expected_version)
                .await?,
        ))
    }

    async fn delete_account(
        &self,
        request: Request<pb::ConfirmableRequest>,
    ) -> Result<Response<pb::ConfirmableReply>, Status> {
        self.confirmable(request, Action::Delete).await
    }

    async fn record_sign_in(
        &self,
        request: Request<pb::RecordSignInRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        let who = self.auth.authenticate(&request)?;
        let req = request.into_inner();
        let acc = self.target(&who, Op::ReportActivity, req.account)?;
        let at_us = match &req.at {
            Some(t) => timestamp_to_us(t, "at")?,
            None => now_us(),
        };
        let command = Command::RecordSignIn {
            account: acc.id,
            at_us,
        };
        Ok(Response::new(
            self.run(&who, command, req.request_id, req.expected_version)
                .await?,
        ))
    }

    async fn record_data_owned(
        &self,
        request: Request<pb::AccountCommandRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        self.account_command(request, Op::ReportActivity, |account| {
            Command::RecordDataOwned { account }
        })
        .await
    }

    async fn can_sign_in(
        &self,
        request: Request<pb::CanSignInRequest>,
    ) -> Result<Response<pb::CanSignInResponse>, Status> {
        let who = self.auth.authenticate(&request)?;
        let req = request.into_inner();
        let domain = required("domain", req.domain)?;
        let login = required("login", req.login)?;
        who.require_in(Op::CanSignIn, &domain)?;
        let found = self.ledger.can_sign_in(&domain, &login);
        if found.is_none() && !self.ledger.domain_exists(&domain) {
            return Err(domain_not_found(&domain));
        }
        Ok(Response::new(match found {
            Some((id, status)) => pb::CanSignInResponse {
                allowed: status == AccountStatus::Enabled,
                account: Some(id),
                status: pb::AccountStatus::from(status) as i32,
            },
            None => pb::CanSignInResponse {
                allowed: false,
                account: None,
                status: pb::AccountStatus::Unspecified as i32,
            },
        }))
    }

    async fn get_account(
        &self,
        request: Request<pb::GetAccountRequest>,
    ) -> Result<Response<pb::Account>, Status> {
        let who = self.auth.authenticate(&request)?;
        let req = request.into_inner();
        let as_of = optional_as_of(req.as_of.as_ref())?;
        let acc = self.target(&who, Op::Read, req.account)?;
        let acc = match as_of {
            None => acc,
            Some(at) => self
                .ledger
                .account_as_of(acc.id, at)
                .await?
                .ok_or_else(|| {
                    Status::not_found(format!("account {} did not exist at that instant", acc.id))
                })?,
        };
        Ok(Response::new((&acc).into()))
    }

    async fn list_accounts(
        &self,
        request: Request<pb::ListAccountsRequest>,
    ) -> Result<Response<pb::ListAccountsResponse>, Status> {
        let who = self.auth.authenticate(&request)?;
        let req = request.into_inner();
        let domain = self.readable_domain(&who, req.domain)?;
        let as_of = optional_as_of(req.as_of.as_ref())?;
        let limit = match req.limit {
            0 => 100,
            n if n > 1000 => return Err(invalid("limit", format!("{n} is more than 1000"))),
            n => n as usize,
        };
        let filter = AccountFilter {
            include_disabled: req.include_disabled,
            include_deactivated: req.include_deactivated,
            search: req.search.filter(|s| !s.is_empty()),
            role: req.role.filter(|s| !s.is_empty()),
        };
        let (accounts, total) = match as_of {
            None => self
                .ledger
                .list_accounts(&domain, &filter, req.offset as usize, limit)?,
            Some(_) => {
                let all = self.accounts(&domain, as_of, |a| filter.matches(a)).await?;
                let total = all.len();
                let page = all
                    .into_iter()
                    .skip(req.offset as usize)
                    .take(limit)
                    .collect();
                (page, total)
            }
        };
        Ok(Response::new(pb::ListAccountsResponse {
            accounts: accounts.iter().map(pb::Account::from).collect(),
            total: total as u64,
        }))
    }

    async fn get_license_usage(
        &self,
        request: Request<pb::GetLicenseUsageRequest>,
    ) -> Result<Response<pb::LicenseUsage>, Status> {
        let who = self.auth.authenticate(&request)?;
        let req = request.into_inner();
        let domain = required("domain", req.domain)?;
        who.require_in(Op::ReadLicense, &domain)?;
        let usage = match optional_as_of(req.as_of.as_ref())? {
            None => self.ledger.license_usage(&domain)?,
            Some(at) => self.ledger.license_usage_as_of(&domain, at).await?,
        };
        Ok(Response::new(pb::LicenseUsage {
            domain: usage.domain,
            used: usage.used,
            limit: usage.limit,
        }))
    }

    type ExportUsersStream = BoxStream<pb::Account>;

    async fn export_users(
        &self,
        request: Request<pb::ExportUsersRequest>,
    ) -> Result<Response<Self::ExportUsersStream>, Status> {
        let who = self.auth.authenticate(&request)?;
        let req = request.into_inner();
        let domain = self.readable_domain(&who, req.domain)?;
        let as_of = optional_as_of(req.as_of.as_ref())?;
        let accounts = match as_of {
            None => self.ledger.export_users(&domain)?,
            Some(_) => self.accounts(&domain, as_of, in_users_export).await?,
        };
        let stream = tokio_stream::iter(accounts).map(|a| Ok(pb::Account::from(&a)));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_account_history(
        &self,
        request: Request<pb::GetAccountHistoryRequest>,
    ) -> Result<Response<pb::EventList>, Status> {
        let who = self.auth.authenticate(&request)?;
        let req = request.into_inner();
        let acc = self.target(&who, Op::Read, req.account)?;
        let events = self.ledger.account_history(acc.id).await?;
        let domain = Some(acc.domain.clone());
        Ok(Response::new(pb::EventList {
            events: events
                .iter()
                .map(|e| event_to_wire(e, domain.clone()))
                .collect(),
        }))
    }

    async fn get_import_job_history(
        &self,
        request: Request<pb::GetImportJobHistoryRequest>,
    ) -> Result<Response<pb::EventList>, Status> {
        let who = self.auth.authenticate(&request)?;
        who.require(Op::Read)?;
        let req = request.into_inner();
        let job = uuid::Uuid::parse_str(req.job_id.trim())
            .map_err(|e| invalid("job_id", format!("not a UUID: {e}")))?;
        let events = self.ledger.import_job_history(&job).await?;
        if events.is_empty() {
            return Err(Status::not_found(format!(
                "import job {job} recorded no events"
            )));
        }
        let visible = self.events_for(&who, events);
        if visible.is_empty() {
            return Err(permission_denied(format!(
                "{} has no rights in the domains of import job {job}",
                who.name
            )));
        }
        Ok(Response::new(pb::EventList { events: visible }))
    }

    async fn read_log(
        &self,
        request: Request<pb::ReadLogRequest>,
    ) -> Result<Response<pb::EventList>, Status> {
        let who = self.auth.authenticate(&request)?;
        who.require(Op::ReadAll)?;
        let req = request.into_inner();
        let from = req.from_position.max(1);
        let to = match req.to_position {
            0 => self.ledger.log().last_position(),
            n => n,
        };
        if req.to_position != 0 && to < from {
            return Err(invalid(
                "to_position",
                format!("{to} is before from_position {from}"),
            ));
        }
        let limit = match req.limit {
            0 => 1000,
            n if n > 10_000 => return Err(invalid("limit", format!("{n} is more than 10000"))),
            n => n as usize,
        };
        let events = self.ledger.read_log(from, to, limit).await?;
        Ok(Response::new(pb::EventList {
            events: self.events_for(&who, events),
        }))
    }

    type SubscribeStream = BoxStream<pb::LedgerEvent>;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let who = self.auth.authenticate(&request)?;
        let req = request.into_inner();
        let domain = req.domain.filter(|d| !d.is_empty());
        match &domain {
            Some(d) => who.require_in(Op::Read, d)?,
            None => who.require(Op::ReadAll)?,
        }
        let rx = self.ledger.subscribe(req.from_position, domain);
        let this = self.clone();
        let stream = ReceiverStream::new(rx).map(move |item| match item {
            Ok(e) => Ok(event_to_wire(&e, this.domain_of_event(&e))),
            Err(e) => Err(Status::from(e)),
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn rebuild_projections(
        &self,
        request: Request<pb::RebuildProjectionsRequest>,
    ) -> Result<Response<pb::RebuildProjectionsResponse>, Status> {
        let who = self.auth.authenticate(&request)?;
        who.require(Op::Operate)?;
        let events_replayed = self.ledger.rebuild_projections().await?;
        Ok(Response::new(pb::RebuildProjectionsResponse {
            events_replayed,
        }))
    }

    async fn verify_projections(
        &self,
        request: Request<pb::VerifyProjectionsRequest>,
    ) -> Result<Response<pb::VerifyProjectionsResponse>, Status> {
        let who = self.auth.authenticate(&request)?;
        who.require(Op::Operate)?;
        let v = self.ledger.verify_projections().await?;
        Ok(Response::new(pb::VerifyProjectionsResponse {
            equal: v.equal,
            events_replayed: v.events_replayed,
            accounts: v.accounts as u64,
            detail: v.detail,
        }))
    }
}

/// Every service of the server: health, reflection (v1 and v1alpha) and the ledger. Add another
/// service with one more `.add_service(..)` line.
pub async fn router(
    ledger: Ledger,
    auth: Arc<Auth>,
) -> Result<tonic::transport::server::Router, Box<dyn std::error::Error + Send + Sync>> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<AccountLedgerServer<LedgerService>>()
        .await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let imports = super::import::ImportService::new(ledger.clone(), auth.clone());
    let service = LedgerService::new(ledger, auth);
    Ok(tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(AccountLedgerServer::new(service))
        .add_service(pb::import_service_server::ImportServiceServer::new(imports)))
}

/// Serve on `listener` until `shutdown` resolves: then stop accepting, finish in-flight calls,
/// and close the ledger (persist projections, flush).
pub async fn serve(
    ledger: Ledger,
    auth: Arc<Auth>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let router = router(ledger.clone(), auth).await?;
    let incoming = TcpListenerStream::new(listener);
    let served = router
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
    let closed = ledger.close().await;
    served?;
    closed?;
    Ok(())
}
