//! The handlers of `account_ledger.v1.AccountLedger`: authenticate → convert the wire request
//! (INVALID_ARGUMENT on bad input) → resolve the account and authorize on its domain → one call
//! into the ledger → convert back. No domain rule lives here.

use std::pin::Pin;

use tokio_stream::{Stream, StreamExt, wrappers::ReceiverStream};
use tonic::{Request, Response, Status};

use super::auth::{Op, Role};
use super::confirm::Action;
use super::convert::{
    self, event_to_wire, list_filter, optional_as_of, page_token, page_token_after, required,
    timestamp_to_us,
};
use super::pb;
use super::server::LedgerService;
use super::status::{domain_not_found, invalid};
use crate::domain::{Command, Profile, Status as AccountStatus};
use crate::queries::{AccountFilter, PageStart};
use crate::store::now_us;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

fn profile_checked(p: Option<pb::Profile>) -> Result<Profile, Status> {
    Profile::try_from(p)
}

#[tonic::async_trait]
impl pb::account_ledger_server::AccountLedger for LedgerService {
    async fn register_domain(
        &self,
        request: Request<pb::RegisterDomainRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        let who = self.auth.authenticate(&request).await?;
        who.require(Op::Operate)?;
        let req = request.into_inner();
        let domain = required("domain", req.domain)?;
        let command = Command::RegisterDomain {
            domain,
            license_limit: license_limit(req.license_limit)?,
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
        let who = self.auth.authenticate(&request).await?;
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
        let who = self.auth.authenticate(&request).await?;
        who.require(Op::Operate)?;
        let req = request.into_inner();
        let domain = required("domain", req.domain)?;
        let command = Command::SetLicenseLimit {
            domain,
            license_limit: license_limit(req.license_limit)?,
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
        let who = self.auth.authenticate(&request).await?;
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
        validate_principal(&principal)?;
        if req.domains.len() > MAX_TOKEN_DOMAINS {
            return Err(invalid(
                "domains",
                format!("{} domains; at most {MAX_TOKEN_DOMAINS}", req.domains.len()),
            ));
        }
        for d in &req.domains {
            crate::domain::names::validate_domain_name(d)
                .map_err(|e| super::status::from_domain(&e))?;
        }
        let expires_at_us = match &req.expires_at {
            Some(t) => {
                let at = convert::timestamp_to_us(t, "expires_at")?;
                if at <= crate::store::now_us() {
                    return Err(invalid("expires_at", "is not in the future"));
                }
                Some(at)
            }
            None => None,
        };
        // A domain may be registered after its admin's token is made; say so, not refuse.
        let mut warnings = Vec::new();
        for d in &req.domains {
            if !self.ledger.domain_exists_fresh(d).await {
                warnings.push(format!(
                    "domain {d:?} is not registered: the token acts there once it is (check the \
                     spelling)"
                ));
            }
        }
        let (token, id) = self
            .auth
            .add_token(&principal, role, req.domains, expires_at_us)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        tracing::info!(by = %who.name, id, principal, "token created");
        Ok(Response::new(pb::CreateTokenResponse {
            token,
            id,
            warnings,
        }))
    }

    async fn list_tokens(
        &self,
        request: Request<pb::ListTokensRequest>,
    ) -> Result<Response<pb::ListTokensResponse>, Status> {
        let who = self.auth.authenticate(&request).await?;
        who.require(Op::Operate)?;
        let tokens = self
            .auth
            .list()
            .iter()
            .map(convert::token_to_wire)
            .collect();
        Ok(Response::new(pb::ListTokensResponse { tokens }))
    }

    async fn revoke_token(
        &self,
        request: Request<pb::RevokeTokenRequest>,
    ) -> Result<Response<pb::TokenInfo>, Status> {
        let who = self.auth.authenticate(&request).await?;
        who.require(Op::Operate)?;
        let id = required("id", request.into_inner().id)?;
        let revoked = self
            .auth
            .revoke(&id)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?
            .ok_or_else(|| Status::not_found(format!("no token with id {id:?}")))?;
        tracing::info!(by = %who.name, id, principal = %revoked.principal, "token revoked");
        Ok(Response::new(convert::token_to_wire(&revoked)))
    }

    async fn create_account(
        &self,
        request: Request<pb::CreateAccountRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        let who = self.auth.authenticate(&request).await?;
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
        let who = self.auth.authenticate(&request).await?;
        let req = request.into_inner();
        let acc = self.target(&who, Op::ManageAccounts, req.account).await?;
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
        let who = self.auth.authenticate(&request).await?;
        let req = request.into_inner();
        let acc = self.target(&who, Op::ManageAccounts, req.account).await?;
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
        let who = self.auth.authenticate(&request).await?;
        let req = request.into_inner();
        let acc = self.target(&who, Op::ReportActivity, req.account).await?;
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
        let who = self.auth.authenticate(&request).await?;
        let req = request.into_inner();
        let domain = required("domain", req.domain)?;
        let login = required("login", req.login)?;
        who.require_in(Op::CanSignIn, &domain)?;
        let found = self.ledger.can_sign_in(&domain, &login);
        if found.is_none() && !self.ledger.domain_exists_fresh(&domain).await {
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
        let who = self.auth.authenticate(&request).await?;
        let req = request.into_inner();
        let as_of = optional_as_of(req.as_of.as_ref())?;
        let acc = self.target(&who, Op::Read, req.account).await?;
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
        let who = self.auth.authenticate(&request).await?;
        let req = request.into_inner();
        let domain = self.readable_domain(&who, req.domain).await?;
        let as_of = optional_as_of(req.as_of.as_ref())?;
        let limit = match req.limit {
            0 => 100,
            n if n > 1000 => return Err(invalid("limit", format!("{n} is more than 1000"))),
            n => n as usize,
        };
        let filter = AccountFilter {
            include_disabled: req.include_disabled,
            include_deactivated: req.include_deactivated,
            search: list_filter("search", req.search)?,
            role: list_filter("role", req.role)?,
        };
        let start = PageStart {
            after: page_token_after(&req.page_token)?,
            skip: req.offset as usize,
        };
        let page = match as_of {
            None => {
                self.ledger
                    .list_accounts(&domain, &filter, start, limit)
                    .await?
            }
            Some(at) => {
                self.ledger
                    .list_accounts_as_of(&domain, &filter, at, start, limit)
                    .await?
            }
        };
        Ok(Response::new(pb::ListAccountsResponse {
            accounts: page.accounts.iter().map(pb::Account::from).collect(),
            total: page.total,
            next_page_token: page.next_after.map(page_token).unwrap_or_default(),
        }))
    }

    async fn get_license_usage(
        &self,
        request: Request<pb::GetLicenseUsageRequest>,
    ) -> Result<Response<pb::LicenseUsage>, Status> {
        let who = self.auth.authenticate(&request).await?;
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
        let who = self.auth.authenticate(&request).await?;
        let req = request.into_inner();
        let domain = self.readable_domain(&who, req.domain).await?;
        // Rows are converted as the client reads them (a bounded channel), from a snapshot of
        // the domain (as of an instant: its past view); nothing copies the whole export.
        let snapshot = match optional_as_of(req.as_of.as_ref())? {
            Some(at) => self.ledger.export_snapshot_as_of(&domain, at).await?,
            None => self.ledger.export_snapshot(&domain)?,
        };
        let (tx, rx) = tokio::sync::mpsc::channel(EXPORT_BUFFER);
        let auth = self.auth.clone();
        // A task, not a blocking thread: a client that stops reading parks a future, not one
        // of the blocking pool's threads, and is given up after EXPORT_STALL.
        tokio::spawn(async move {
            for (i, a) in snapshot.rows().enumerate() {
                let row = match i % EXPORT_BUFFER {
                    0 => auth.still_valid(&who).map(|()| pb::Account::from(a)),
                    _ => Ok(pb::Account::from(a)),
                };
                let refused = row.is_err();
                let sent = tokio::time::timeout(EXPORT_STALL, tx.send(row)).await;
                if !matches!(sent, Ok(Ok(()))) || refused {
                    return; // the client went away or stalled, or may no longer read
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn get_account_history(
        &self,
        request: Request<pb::GetAccountHistoryRequest>,
    ) -> Result<Response<pb::EventList>, Status> {
        let who = self.auth.authenticate(&request).await?;
        let req = request.into_inner();
        let acc = self.target(&who, Op::Read, req.account).await?;
        let events = self.ledger.account_history(acc.id).await?;
        let domain = Some(acc.domain.to_string());
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
        let who = self.auth.authenticate(&request).await?;
        who.require(Op::Read)?;
        let req = request.into_inner();
        let job = uuid::Uuid::parse_str(req.job_id.trim())
            .map_err(|e| invalid("job_id", format!("not a UUID: {e}")))?;
        let limit = convert::page_limit(req.limit)?;
        // Rights first: a job may have a million events.
        let Some(domain) = self.ledger.import_job_domain(&job).await? else {
            return Err(Status::not_found(format!(
                "import job {job} recorded no events"
            )));
        };
        who.require_in(Op::Read, &domain)?;
        let events = self
            .ledger
            .import_job_history_page(&job, req.after_position, limit)
            .await?;
        // Past the job's last event: an empty page, the end.
        let visible = self.events_for(&who, events);
        Ok(Response::new(pb::EventList { events: visible }))
    }

    async fn read_log(
        &self,
        request: Request<pb::ReadLogRequest>,
    ) -> Result<Response<pb::EventList>, Status> {
        let who = self.auth.authenticate(&request).await?;
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
        let limit = convert::page_limit(req.limit)?;
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
        let who = self.auth.authenticate(&request).await?;
        let req = request.into_inner();
        let domain = req.domain.filter(|d| !d.is_empty());
        match &domain {
            Some(d) => who.require_in(Op::Read, d)?,
            None => who.require(Op::ReadAll)?,
        }
        let rx = self.ledger.subscribe(req.from_position, domain);
        let this = self.clone();
        // Counted while the stream lives (the guard moves into the stream's closure).
        let open = SubscriptionGauge::open();
        let stream = ReceiverStream::new(rx).map(move |item| {
            let _open = &open;
            // A revoked token's stream ends with UNAUTHENTICATED (tonic sends an error
            // as the stream's last message).
            this.auth.still_valid(&who)?;
            match item {
                Ok(e) => Ok(event_to_wire(&e, this.domain_of_event(&e))),
                Err(e) => Err(Status::from(e)),
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn rebuild_projections(
        &self,
        request: Request<pb::RebuildProjectionsRequest>,
    ) -> Result<Response<pb::RebuildProjectionsResponse>, Status> {
        let who = self.auth.authenticate(&request).await?;
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
        let who = self.auth.authenticate(&request).await?;
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

/// A license limit from the wire: refused, not truncated, above `u32::MAX`.
fn license_limit(wire: u64) -> Result<u32, Status> {
    u32::try_from(wire).map_err(|_| {
        invalid(
            "license_limit",
            format!("{wire} is more than the largest limit, {}", u32::MAX),
        )
    })
}

/// Domains one token may name.
const MAX_TOKEN_DOMAINS: usize = 1000;
/// Bytes of a token's principal (it is recorded as the actor of every event it causes).
const MAX_PRINCIPAL_BYTES: usize = 128;

fn validate_principal(principal: &str) -> Result<(), Status> {
    if principal.len() > MAX_PRINCIPAL_BYTES {
        return Err(invalid(
            "principal",
            format!("{} bytes; at most {MAX_PRINCIPAL_BYTES}", principal.len()),
        ));
    }
    crate::domain::names::validate_text("principal", principal)
        .map_err(|e| super::status::from_domain(&e))
}

/// Export rows converted ahead of the client.
const EXPORT_BUFFER: usize = 256;
/// An export whose client reads nothing for this long is ended (its snapshot is let go).
const EXPORT_STALL: std::time::Duration = std::time::Duration::from_secs(300);

/// One open Subscribe stream in the `subscriptions` gauge, for as long as it lives.
struct SubscriptionGauge;

impl SubscriptionGauge {
    fn open() -> SubscriptionGauge {
        crate::metrics::METRICS.subscriptions.inc();
        SubscriptionGauge
    }
}

impl Drop for SubscriptionGauge {
    fn drop(&mut self) {
        crate::metrics::METRICS.subscriptions.dec();
    }
}
