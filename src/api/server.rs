//! The `account_ledger.v1.AccountLedger` service's shared core ([`LedgerService`]: resolving and
//! authorizing an account, running one command) and the server around it (health, reflection,
//! graceful shutdown); [`router`] also serves `ImportService` ([`super::import`]).
//!
//! The handlers are in `handlers.rs`, the two-step disable/delete in `confirm.rs`. No domain
//! rule lives in the API. To serve another service next to this one, add one
//! `.add_service(..)` line in [`router`].

use std::future::Future;
use std::sync::{Arc, RwLock};

use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

use super::auth::{Auth, Op, Principal, Role};
use super::convert::{self, event_to_wire, required};
use super::pb::{self, account_ledger_server::AccountLedgerServer};
use super::status::{account_not_found, domain_not_found, missing};
use crate::domain::{AccountId, AccountState, Command};
use crate::ledger::{Ledger, Request as LedgerRequest};
use crate::store::Source;

pub use super::confirm::CONFIRMATION_TTL;
use super::confirm::ConfirmKey;

/// The AccountLedger service.
#[derive(Clone)]
pub struct LedgerService {
    pub(super) ledger: Ledger,
    pub(super) auth: Arc<Auth>,
    /// Signs disable/delete confirmation tokens (shared by the servers of one store).
    confirm_key: Arc<RwLock<ConfirmKey>>,
}

impl LedgerService {
    pub fn new(ledger: Ledger, auth: Arc<Auth>) -> LedgerService {
        LedgerService {
            ledger,
            auth,
            confirm_key: Arc::new(RwLock::new(ConfirmKey::random())),
        }
    }

    /// Sign confirmation tokens with a key derived from the store's shared secret, so that
    /// every server of the store accepts them.
    pub(super) fn share_confirmations(&self, secret: &[u8]) {
        *self.confirm_key.write().unwrap_or_else(|e| e.into_inner()) =
            ConfirmKey::from_secret(secret);
    }

    pub(super) fn confirm_key(&self) -> ConfirmKey {
        self.confirm_key
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The account a reference names, as `who` may see it. Deleted accounts are found by id
    /// only (their import id is released). What `who` may not see answers exactly as what does
    /// not exist, so no answer tells which ids exist or where: an id in another domain is
    /// NOT_FOUND like an unused id; an import id in a domain outside `who`'s rights is
    /// PERMISSION_DENIED whether that domain exists or not.
    pub(super) async fn resolve(
        &self,
        who: &Principal,
        op: Op,
        r: Option<pb::AccountRef>,
    ) -> Result<AccountState, Status> {
        let r = r.and_then(|r| r.r#ref).ok_or_else(|| missing("account"))?;
        match r {
            pb::account_ref::Ref::Id(id) => self
                .ledger
                .fresh(|l| l.account(id))
                .await
                .filter(|a| who.may_see(&a.domain))
                .ok_or_else(|| account_not_found(id)),
            pb::account_ref::Ref::Import(key) => {
                let domain = required("account.import.domain", key.domain)?;
                let import_id = required("account.import.import_id", key.import_id)?;
                who.require_in(op, &domain)?;
                if !self.ledger.domain_exists_fresh(&domain).await {
                    return Err(domain_not_found(&domain));
                }
                self.ledger
                    .fresh(|l| l.account_by_import_id(&domain, &import_id))
                    .await
                    .ok_or_else(|| {
                        account_not_found(format!("with import id {import_id:?} in {domain:?}"))
                    })
            }
        }
    }

    /// Resolve and authorize in one step.
    pub(super) async fn target(
        &self,
        who: &Principal,
        op: Op,
        r: Option<pb::AccountRef>,
    ) -> Result<AccountState, Status> {
        who.require(op)?;
        self.resolve(who, op, r).await
    }

    /// Run one command through the ledger and describe what it did.
    pub(super) async fn run(
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
                actor: who.name.as_str().into(),
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
    pub(super) async fn account_command(
        &self,
        request: Request<pb::AccountCommandRequest>,
        op: Op,
        make: fn(AccountId) -> Command,
    ) -> Result<Response<pb::CommandReply>, Status> {
        let who = self.auth.authenticate(&request).await?;
        let req = request.into_inner();
        let acc = self.target(&who, op, req.account).await?;
        Ok(Response::new(
            self.run(&who, make(acc.id), req.request_id, req.expected_version)
                .await?,
        ))
    }

    pub(super) fn domain_of_event(&self, e: &crate::store::RecordedEvent) -> Option<String> {
        self.ledger.event_domain(&e.event)
    }

    pub(super) fn events_for(
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

    pub(super) async fn readable_domain(
        &self,
        who: &Principal,
        domain: String,
    ) -> Result<String, Status> {
        let domain = required("domain", domain)?;
        who.require_in(Op::Read, &domain)?;
        if !self.ledger.domain_exists_fresh(&domain).await {
            return Err(domain_not_found(&domain));
        }
        Ok(domain)
    }
}

/// Every service of the server: health, reflection (v1 and v1alpha) and the ledger. Add another
/// service with one more `.add_service(..)` line.
pub async fn router(
    ledger: Ledger,
    auth: Arc<Auth>,
    tls: Option<tonic::transport::ServerTlsConfig>,
) -> Result<tonic::transport::server::Router, Box<dyn std::error::Error + Send + Sync>> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<AccountLedgerServer<LedgerService>>()
        .await;
    spawn_health_watch(&ledger, health);
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    // Several servers over one store: forward to, and take forwarded batches from, the others.
    let service = LedgerService::new(ledger.clone(), auth.clone());
    let peer = match ledger.peer_secret().await? {
        Some(secret) => {
            ledger.set_forwarder(super::peer::GrpcForwarder::new(&secret));
            service.share_confirmations(&secret);
            Some(super::peer::PeerService::server(ledger.clone(), &secret))
        }
        None => None,
    };
    let imports = super::import::ImportService::new(ledger.clone(), auth.clone());
    let schedules = super::schedule::ScheduleService::new(ledger, auth);
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
    }
    Ok(builder
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(AccountLedgerServer::new(service))
        .add_service(pb::import_service_server::ImportServiceServer::new(imports))
        .add_service(pb::schedule_service_server::ScheduleServiceServer::new(
            schedules,
        ))
        .add_optional_service(peer))
}

/// Health turns NOT_SERVING (the server and the ledger service) once a domain's writer stops
/// on a panic: its commands are refused until a restart, which is what an orchestrator
/// watching health does.
pub(crate) fn spawn_health_watch(ledger: &Ledger, health: tonic_health::server::HealthReporter) {
    let mut stopped = ledger.stopped_writers();
    tokio::spawn(async move {
        if stopped.wait_for(|n| *n > 0).await.is_ok() {
            health
                .set_not_serving::<AccountLedgerServer<LedgerService>>()
                .await;
            health
                .set_service_status("", tonic_health::ServingStatus::NotServing)
                .await;
        }
    });
}

/// Serve on `listener` until `shutdown` resolves: then stop accepting, finish in-flight calls,
/// and close the ledger (persist projections, flush).
pub async fn serve(
    ledger: Ledger,
    auth: Arc<Auth>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    serve_with(ledger, auth, listener, shutdown, None).await
}

/// [`serve`], over TLS when `tls` is given.
pub async fn serve_with(
    ledger: Ledger,
    auth: Arc<Auth>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    tls: Option<tonic::transport::ServerTlsConfig>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let router = router(ledger.clone(), auth, tls.clone()).await?;
    if let Ok(local) = listener.local_addr() {
        // Unless told otherwise (`serve --advertise`), peers reach this server where it listens.
        let scheme = if tls.is_some() { "https" } else { "http" };
        ledger
            .announce_default(&format!("{scheme}://{local}"))
            .await?;
    }
    // Replies go out at once: with Nagle's algorithm on, a reply larger than one segment
    // (a page of 100 accounts) waited ~40 ms for the client's delayed ACK.
    let incoming = TcpListenerStream::new(listener).map(|conn| {
        if let Ok(c) = &conn {
            let _ = c.set_nodelay(true);
        }
        conn
    });
    let served = router
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
    let closed = ledger.close().await;
    served?;
    closed?;
    Ok(())
}
