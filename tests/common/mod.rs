//! Shared test helpers: a real server (real sled in a temp dir, real tonic on a free loopback
//! port) with known tokens, and an authenticated tonic client. Below those, fixtures for
//! one-behaviour tests: servers started with domains and accounts in place, and the commands
//! tests repeat (run as a given token, expected to succeed).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use account_ledger::api::auth::{Auth, AuthConfig, Role, TokenEntry};
use account_ledger::api::pb::{
    self, account_ledger_client::AccountLedgerClient, import_service_client::ImportServiceClient,
};
use account_ledger::api::server;
use account_ledger::ledger::{Clock, Ledger, SystemClock};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

pub const OPERATOR: &str = "tok-operator";
pub const ADMIN_D1: &str = "tok-admin-d1";
pub const ADMIN_D2: &str = "tok-admin-d2";
pub const LMS: &str = "tok-lms";
pub const AUDITOR: &str = "tok-auditor";

pub struct TestServer {
    pub addr: SocketAddr,
    pub ledger: Ledger,
    pub config_path: std::path::PathBuf,
    pub dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
    /// The PostgreSQL schema of a server on PostgreSQL, dropped by `stop`.
    pg_schema: Option<String>,
}

/// Which store a test server runs on: tests written once run on both (`on_both_backends!`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sled,
    /// `ACCOUNT_LEDGER_TEST_PG`, default the project machines' server; a schema per server.
    Postgres,
}

impl Backend {
    /// The store of tests written for one: sled, or PostgreSQL when
    /// `ACCOUNT_LEDGER_TEST_BACKEND=postgres` (`.ci/run` runs the gRPC suites both ways).
    pub fn from_env() -> Backend {
        match std::env::var("ACCOUNT_LEDGER_TEST_BACKEND").as_deref() {
            Ok("postgres") => Backend::Postgres,
            _ => Backend::Sled,
        }
    }
}

pub fn pg_url() -> String {
    std::env::var("ACCOUNT_LEDGER_TEST_PG")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into())
}

/// Run each named `async fn name(backend: Backend)` of the test file as two tests, one per
/// backend: `on_sled::name` and `on_postgres::name`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_sled {
            $( #[tokio::test] async fn $name() { super::$name($crate::common::Backend::Sled).await } )*
        }
        mod on_postgres {
            $( #[tokio::test] async fn $name() { super::$name($crate::common::Backend::Postgres).await } )*
        }
    };
}

fn entry(principal: &str, role: Role, domains: &[&str], token: &str) -> TokenEntry {
    TokenEntry::new(
        principal,
        role,
        domains.iter().map(|d| d.to_string()).collect(),
        token,
    )
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with_clock(Arc::new(SystemClock)).await
    }

    /// A server whose scheduled changes fire by `clock` (tests move it by hand).
    pub async fn start_with_clock(clock: Arc<dyn Clock>) -> TestServer {
        TestServer::start_on(Backend::from_env(), clock).await
    }

    /// A server on `backend`, firing scheduled changes by `clock`.
    pub async fn start_on(backend: Backend, clock: Arc<dyn Clock>) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = AuthConfig {
            tokens: vec![
                entry("ops", Role::Operator, &[], OPERATOR),
                entry("alice", Role::DomainAdmin, &["d1"], ADMIN_D1),
                entry("bob", Role::DomainAdmin, &["d2"], ADMIN_D2),
                entry("lms", Role::Lms, &[], LMS),
                entry("audit", Role::Auditor, &[], AUDITOR),
            ],
        };
        let config_path = dir.path().join("config.json");
        config.save(&config_path).expect("save config");
        let mut pg_schema = None;
        let ledger = match backend {
            Backend::Sled => {
                Ledger::open_with_clock(&dir.path().join("ledger"), Default::default(), clock)
                    .await
                    .expect("open ledger")
            }
            Backend::Postgres => {
                let schema = format!("al_grpc_{}", uuid::Uuid::new_v4().simple());
                let ledger =
                    Ledger::open_postgres(&dir.path().join("views"), &pg_url(), &schema, clock)
                        .await
                        .unwrap_or_else(|e| {
                            panic!("PostgreSQL at {:?} ({e}): these tests need it", pg_url())
                        });
                pg_schema = Some(schema);
                ledger
            }
        };
        let auth = Arc::new(Auth::new(config, Some(config_path.clone())));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let served = ledger.clone();
        let handle = tokio::spawn(async move {
            server::serve(served, auth, listener, async {
                let _ = rx.await;
            })
            .await
            .expect("server failed");
        });
        TestServer {
            addr,
            ledger,
            config_path,
            dir,
            shutdown: Some(tx),
            handle: Some(handle),
            pg_schema,
        }
    }

    pub async fn client(&self) -> AccountLedgerClient<Channel> {
        connect(self.addr).await
    }
}

/// Drop a test server's PostgreSQL schema (from `Drop`, so on its own thread and runtime).
fn drop_schema_now(schema: String) {
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            if let Ok((client, connection)) =
                tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls).await
            {
                tokio::spawn(connection);
                let _ = client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .await;
            }
        });
    })
    .join();
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // A test that ends without `stop` leaves no schema behind either.
        if let Some(schema) = self.pg_schema.take() {
            drop_schema_now(schema);
        }
    }
}

impl TestServer {
    /// Graceful stop: waits for the server to close the ledger.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("server task");
        }
        if let Some(schema) = self.pg_schema.take() {
            let (client, connection) = tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls)
                .await
                .expect("PostgreSQL");
            tokio::spawn(connection);
            client
                .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
                .await
                .expect("drop schema");
        }
    }
}

pub async fn connect(addr: SocketAddr) -> AccountLedgerClient<Channel> {
    let url = format!("http://{addr}");
    for _ in 0..100 {
        if let Ok(c) = AccountLedgerClient::connect(url.clone()).await {
            return c;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("server at {url} did not come up");
}

/// A request carrying `Bearer <token>`.
pub fn req<T>(token: &str, msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii token"),
    );
    r
}

pub fn by_id(id: u64) -> Option<pb::AccountRef> {
    Some(pb::AccountRef {
        r#ref: Some(pb::account_ref::Ref::Id(id)),
    })
}

pub fn by_import(domain: &str, import_id: &str) -> Option<pb::AccountRef> {
    Some(pb::AccountRef {
        r#ref: Some(pb::account_ref::Ref::Import(pb::ImportKey {
            domain: domain.into(),
            import_id: import_id.into(),
        })),
    })
}

pub fn profile(login: &str) -> Option<pb::Profile> {
    Some(pb::Profile {
        login: login.into(),
        first_name: format!("First {login}"),
        last_name: format!("Last {login}"),
        email: format!("{login}@school.example"),
    })
}

pub fn create(domain: &str, login: &str, import_id: Option<&str>) -> pb::CreateAccountRequest {
    pb::CreateAccountRequest {
        domain: domain.into(),
        import_id: import_id.map(str::to_string),
        profile: profile(login),
        role: "student".into(),
        enabled: None,
        request_id: None,
        expected_version: None,
    }
}

pub fn account_cmd(id: u64) -> pb::AccountCommandRequest {
    pb::AccountCommandRequest {
        account: by_id(id),
        request_id: None,
        expected_version: None,
    }
}

pub fn confirmable(id: u64, token: Option<String>) -> pb::ConfirmableRequest {
    pb::ConfirmableRequest {
        account: by_id(id),
        confirmation_token: token,
        request_id: None,
        expected_version: None,
    }
}

pub async fn register(c: &mut AccountLedgerClient<Channel>, domain: &str, limit: u32) {
    c.register_domain(req(
        OPERATOR,
        pb::RegisterDomainRequest {
            domain: domain.into(),
            license_limit: u64::from(limit),
            request_id: None,
            expected_version: None,
        },
    ))
    .await
    .expect("register domain");
}

/// Create an account as the d1/d2 admin; returns its id.
pub async fn create_account(
    c: &mut AccountLedgerClient<Channel>,
    token: &str,
    domain: &str,
    login: &str,
    import_id: Option<&str>,
) -> u64 {
    c.create_account(req(token, create(domain, login, import_id)))
        .await
        .expect("create account")
        .into_inner()
        .account
        .expect("account id")
}

/// Assert a call failed with `code` and its message contains every `needle`.
pub fn assert_status<T: std::fmt::Debug>(r: Result<T, Status>, code: Code, needles: &[&str]) {
    let e = r.expect_err("expected an error status");
    assert_eq!(e.code(), code, "wrong code; message: {}", e.message());
    for n in needles {
        assert!(
            e.message().contains(n),
            "message {:?} should mention {n:?}",
            e.message()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures for one-behaviour tests: the setup that many tests repeat (start a server, register
// domains, create accounts, run a command as a given token), with no checks of their own beyond
// "this setup step succeeded".
// ---------------------------------------------------------------------------------------------

pub type Client = AccountLedgerClient<Channel>;

/// A started server and a client, with each `(domain, license limit)` registered by the operator.
pub async fn start_with_domains(domains: &[(&str, u32)]) -> (TestServer, Client) {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    for (domain, limit) in domains {
        register(&mut c, domain, *limit).await;
    }
    (server, c)
}

/// Domain d1 (10 licenses) holding three accounts, all created by alice (`ADMIN_D1`):
/// ann (import id S1, student, enabled), bob (no import id, student, enabled) and
/// tess (import id T1, teacher, created disabled). Log positions: 1 = d1 registered,
/// 2 = ann, 3 = bob, 4 = tess.
pub struct Roster {
    pub server: TestServer,
    pub c: Client,
    pub ann: u64,
    pub bob: u64,
    pub tess: u64,
}

impl Roster {
    pub async fn start() -> Roster {
        let (server, mut c) = start_with_domains(&[("d1", 10)]).await;
        let ann = create_account(&mut c, ADMIN_D1, "d1", "ann", Some("S1")).await;
        let bob = create_account(&mut c, ADMIN_D1, "d1", "bob", None).await;
        let mut teacher = create("d1", "tess", Some("T1"));
        teacher.role = "teacher".into();
        teacher.enabled = Some(false);
        let tess = c
            .create_account(req(ADMIN_D1, teacher))
            .await
            .expect("create tess")
            .into_inner()
            .account
            .expect("account id");
        Roster {
            server,
            c,
            ann,
            bob,
            tess,
        }
    }

    /// Run one of each kind of change against the roster, as an operator, alice and the LMS
    /// would: bob's profile and role (teacher) updated; ann deactivated, reactivated disabled,
    /// enabled (twice); ann signs in; bob owns data; d1's license limit set to 10 (no change),
    /// 12, then back to 10; d1's mass-change guard set to 25%; bob deactivated.
    pub async fn make_one_of_each_change(&mut self) {
        let (c, ann, bob) = (&mut self.c, self.ann, self.bob);
        update_profile(c, ADMIN_D1, bob, "robert", "teacher", Some(1)).await;
        deactivate(c, ADMIN_D1, ann).await;
        reactivate(c, ADMIN_D1, ann, Some(false)).await;
        enable(c, ADMIN_D1, ann).await;
        enable(c, ADMIN_D1, ann).await;
        record_sign_in(c, ann).await;
        record_data_owned(c, bob).await;
        for (limit, expected_version) in [(10, 1), (12, 1), (10, 2)] {
            c.set_license_limit(req(
                OPERATOR,
                license_limit_request("d1", limit, Some(expected_version)),
            ))
            .await
            .expect("set license limit");
        }
        c.set_mass_change_guard(req(
            OPERATOR,
            pb::SetMassChangeGuardRequest {
                domain: "d1".into(),
                percent: 25,
                request_id: None,
                expected_version: None,
            },
        ))
        .await
        .expect("set mass-change guard");
        deactivate(c, ADMIN_D1, bob).await;
    }
}

/// Domain d1 with a license limit of 2, both in use: ann (import id S1) and bob, created by
/// alice. Returns ann's id.
pub async fn start_with_d1_full() -> (TestServer, Client, u64) {
    let (server, mut c) = start_with_domains(&[("d1", 2)]).await;
    let ann = create_account(&mut c, ADMIN_D1, "d1", "ann", Some("S1")).await;
    create_account(&mut c, ADMIN_D1, "d1", "bob", None).await;
    (server, c, ann)
}

/// A ledger with a moment `then` between two sets of changes in d1 (10 licenses). Before
/// `then`: ann and bob created (enabled). After: ann disabled (confirmed), bob deactivated,
/// cy created.
pub struct PastAndPresent {
    pub server: TestServer,
    pub c: Client,
    pub ann: u64,
    pub bob: u64,
    pub then: prost_types::Timestamp,
}

impl PastAndPresent {
    pub async fn start() -> PastAndPresent {
        let (server, mut c) = start_with_domains(&[("d1", 10)]).await;
        let ann = create_account(&mut c, ADMIN_D1, "d1", "ann", None).await;
        let bob = create_account(&mut c, ADMIN_D1, "d1", "bob", None).await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let then = account_ledger::api::convert::us_to_timestamp(account_ledger::store::now_us());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        disable_confirmed(&mut c, ADMIN_D1, ann).await;
        deactivate(&mut c, ADMIN_D1, bob).await;
        create_account(&mut c, ADMIN_D1, "d1", "cy", None).await;
        PastAndPresent {
            server,
            c,
            ann,
            bob,
            then,
        }
    }
}

/// Subscribe from `from_position`, optionally to one domain's events.
pub async fn subscribe(
    c: &mut Client,
    token: &str,
    from_position: u64,
    domain: Option<&str>,
) -> tonic::Streaming<pb::LedgerEvent> {
    c.subscribe(req(
        token,
        pb::SubscribeRequest {
            from_position,
            domain: domain.map(str::to_string),
        },
    ))
    .await
    .expect("subscribe")
    .into_inner()
}

/// d1 (10 licenses) with two accounts, ann and bob; returns their ids.
pub async fn start_with_two_d1_accounts() -> (TestServer, Client, u64, u64) {
    let (server, mut c) = start_with_domains(&[("d1", 10)]).await;
    let a = create_account(&mut c, ADMIN_D1, "d1", "ann", None).await;
    let b = create_account(&mut c, ADMIN_D1, "d1", "bob", None).await;
    (server, c, a, b)
}

/// d1 and d2 registered (positions 1, 2), ann created in d1 (3) and zed in d2 (4); returns
/// ann's id and an auditor's subscription to d1 from the start.
pub async fn start_subscribed_to_d1() -> (TestServer, Client, u64, tonic::Streaming<pb::LedgerEvent>)
{
    let (server, mut c) = start_with_domains(&[("d1", 10), ("d2", 10)]).await;
    let a = create_account(&mut c, ADMIN_D1, "d1", "ann", None).await;
    create_account(&mut c, ADMIN_D2, "d2", "zed", None).await;
    let stream = subscribe(&mut c, AUDITOR, 0, Some("d1")).await;
    (server, c, a, stream)
}

/// d1 and d2 registered; an import job's rows 2 (ann) and 3 (bob) of users.csv written into d1
/// as alice. Returns the job id.
pub async fn start_with_an_import_job() -> (TestServer, Client, uuid::Uuid) {
    let (server, c) = start_with_domains(&[("d1", 10), ("d2", 10)]).await;
    let job = uuid::Uuid::new_v4();
    write_import_rows(
        &server.ledger,
        job,
        "d1",
        "users.csv",
        "alice",
        &[(2, "ann"), (3, "bob")],
    )
    .await;
    (server, c, job)
}

pub fn get_request(
    account: Option<pb::AccountRef>,
    as_of: Option<prost_types::Timestamp>,
) -> pb::GetAccountRequest {
    pb::GetAccountRequest { account, as_of }
}

/// An account's history (GetAccountHistory) that must succeed.
pub async fn account_history(c: &mut Client, token: &str, id: u64) -> Vec<pb::LedgerEvent> {
    c.get_account_history(req(
        token,
        pb::GetAccountHistoryRequest { account: by_id(id) },
    ))
    .await
    .expect("account history")
    .into_inner()
    .events
}

/// GetAccount that must succeed.
pub async fn get_account(
    c: &mut Client,
    token: &str,
    account: Option<pb::AccountRef>,
    as_of: Option<prost_types::Timestamp>,
) -> pb::Account {
    c.get_account(req(token, get_request(account, as_of)))
        .await
        .expect("get account")
        .into_inner()
}

/// ListAccounts of `domain` with the default view: no disabled, no deactivated, no filter,
/// no paging, now. Override fields with struct update syntax.
pub fn list_request(domain: &str) -> pb::ListAccountsRequest {
    pb::ListAccountsRequest {
        domain: domain.into(),
        include_disabled: false,
        include_deactivated: false,
        search: None,
        role: None,
        offset: 0,
        limit: 0,
        as_of: None,
        page_token: String::new(),
    }
}

pub fn license_limit_request(
    domain: &str,
    license_limit: u32,
    expected_version: Option<u64>,
) -> pb::SetLicenseLimitRequest {
    pb::SetLicenseLimitRequest {
        domain: domain.into(),
        license_limit: u64::from(license_limit),
        request_id: None,
        expected_version,
    }
}

pub fn usage_request(
    domain: &str,
    as_of: Option<prost_types::Timestamp>,
) -> pb::GetLicenseUsageRequest {
    pb::GetLicenseUsageRequest {
        domain: domain.into(),
        as_of,
    }
}

/// GetLicenseUsage that must succeed.
pub async fn license_usage(
    c: &mut Client,
    token: &str,
    domain: &str,
    as_of: Option<prost_types::Timestamp>,
) -> pb::LicenseUsage {
    c.get_license_usage(req(token, usage_request(domain, as_of)))
        .await
        .expect("get license usage")
        .into_inner()
}

/// The ids ExportUsers streams for `domain`, in order.
pub async fn export_ids(
    c: &mut Client,
    token: &str,
    domain: &str,
    as_of: Option<prost_types::Timestamp>,
) -> Vec<u64> {
    let mut stream = c
        .export_users(req(
            token,
            pb::ExportUsersRequest {
                domain: domain.into(),
                as_of,
            },
        ))
        .await
        .expect("export users")
        .into_inner();
    let mut ids = Vec::new();
    while let Some(a) = stream.message().await.expect("export stream") {
        ids.push(a.id);
    }
    ids
}

pub async fn update_profile(
    c: &mut Client,
    token: &str,
    id: u64,
    login: &str,
    role: &str,
    expected_version: Option<u64>,
) -> pb::CommandReply {
    c.update_profile(req(
        token,
        pb::UpdateProfileRequest {
            account: by_id(id),
            profile: profile(login),
            role: role.into(),
            request_id: None,
            expected_version,
        },
    ))
    .await
    .expect("update profile")
    .into_inner()
}

pub async fn deactivate(c: &mut Client, token: &str, id: u64) -> pb::CommandReply {
    c.deactivate_account(req(token, account_cmd(id)))
        .await
        .expect("deactivate account")
        .into_inner()
}

pub async fn reactivate(
    c: &mut Client,
    token: &str,
    id: u64,
    enabled: Option<bool>,
) -> pb::CommandReply {
    c.reactivate_account(req(
        token,
        pb::ReactivateAccountRequest {
            account: by_id(id),
            enabled,
            request_id: None,
            expected_version: None,
        },
    ))
    .await
    .expect("reactivate account")
    .into_inner()
}

pub async fn enable(c: &mut Client, token: &str, id: u64) -> pb::CommandReply {
    c.enable_account(req(token, account_cmd(id)))
        .await
        .expect("enable account")
        .into_inner()
}

/// The LMS reports a sign-in (now).
pub async fn record_sign_in(c: &mut Client, id: u64) -> pb::CommandReply {
    c.record_sign_in(req(
        LMS,
        pb::RecordSignInRequest {
            account: by_id(id),
            at: None,
            request_id: None,
            expected_version: None,
        },
    ))
    .await
    .expect("record sign-in")
    .into_inner()
}

/// The LMS reports that the account owns data.
pub async fn record_data_owned(c: &mut Client, id: u64) -> pb::CommandReply {
    c.record_data_owned(req(LMS, account_cmd(id)))
        .await
        .expect("record data owned")
        .into_inner()
}

/// The warning of a first (token-less) disable/delete call.
pub fn confirmation_of(reply: pb::ConfirmableReply) -> pb::Confirmation {
    match reply.outcome {
        Some(pb::confirmable_reply::Outcome::ConfirmationRequired(c)) => c,
        other => panic!("expected a warning, got {other:?}"),
    }
}

/// The result of a confirmed disable/delete call.
pub fn done_of(reply: pb::ConfirmableReply) -> pb::CommandReply {
    match reply.outcome {
        Some(pb::confirmable_reply::Outcome::Done(d)) => d,
        other => panic!("expected a result, got {other:?}"),
    }
}

/// First step of a disable: the warning and its confirmation token.
pub async fn ask_to_disable(c: &mut Client, token: &str, id: u64) -> pb::Confirmation {
    confirmation_of(
        c.disable_account(req(token, confirmable(id, None)))
            .await
            .expect("disable, first step")
            .into_inner(),
    )
}

/// First step of a delete: the warning and its confirmation token.
pub async fn ask_to_delete(c: &mut Client, token: &str, id: u64) -> pb::Confirmation {
    confirmation_of(
        c.delete_account(req(token, confirmable(id, None)))
            .await
            .expect("delete, first step")
            .into_inner(),
    )
}

/// Both steps of a disable.
pub async fn disable_confirmed(c: &mut Client, token: &str, id: u64) -> pb::CommandReply {
    let conf = ask_to_disable(c, token, id).await;
    done_of(
        c.disable_account(req(token, confirmable(id, Some(conf.confirmation_token))))
            .await
            .expect("disable, confirmed")
            .into_inner(),
    )
}

/// Both steps of a delete.
pub async fn delete_confirmed(c: &mut Client, token: &str, id: u64) -> pb::CommandReply {
    let conf = ask_to_delete(c, token, id).await;
    done_of(
        c.delete_account(req(token, confirmable(id, Some(conf.confirmation_token))))
            .await
            .expect("delete, confirmed")
            .into_inner(),
    )
}

/// The next event of a subscription, within 10 s.
pub async fn next_event(s: &mut tonic::Streaming<pb::LedgerEvent>) -> pb::LedgerEvent {
    tokio::time::timeout(std::time::Duration::from_secs(10), s.message())
        .await
        .expect("event in time")
        .expect("stream ok")
        .expect("stream open")
}

/// Write import-job rows straight through the ledger, as the import path does: one
/// CreateAccount (student, enabled) per `(row, login)`, import id `S<row>`, sourced to
/// `file` row `row` of `job`, acting as `actor`.
pub async fn write_import_rows(
    ledger: &Ledger,
    job: uuid::Uuid,
    domain: &str,
    file: &str,
    actor: &str,
    rows: &[(u64, &str)],
) {
    use account_ledger::domain::{Command, Profile};
    use account_ledger::ledger::Request as LedgerRequest;
    use account_ledger::store::Source;
    for &(row, login) in rows {
        ledger
            .execute(LedgerRequest {
                command: Command::CreateAccount {
                    domain: domain.into(),
                    account: 0,
                    import_id: Some(format!("S{row}")),
                    profile: Profile {
                        login: login.into(),
                        ..Default::default()
                    },
                    role: "student".into(),
                    enabled: true,
                },
                actor: actor.into(),
                source: Source::Import {
                    job_id: job,
                    file: file.into(),
                    row,
                },
                request_id: None,
                expected_version: None,
            })
            .await
            .expect("write import row");
    }
}

// ---------------------------------------------------------------------------------------------
// Imports over gRPC
// ---------------------------------------------------------------------------------------------

pub type Imports = ImportServiceClient<Channel>;

/// A client of the import service of `server`.
pub async fn imports(server: &TestServer) -> Imports {
    ImportServiceClient::connect(format!("http://{}", server.addr))
        .await
        .expect("connect import service")
}

/// Upload `bytes` after `header`, in chunks of `chunk` bytes.
pub async fn upload_chunked(
    c: &mut Imports,
    token: &str,
    header: pb::ImportHeader,
    bytes: &[u8],
    chunk: usize,
) -> Result<pb::ImportJob, Status> {
    use pb::upload_import_request::Part;
    let mut msgs = vec![pb::UploadImportRequest {
        part: Some(Part::Header(header)),
    }];
    msgs.extend(bytes.chunks(chunk).map(|b| pb::UploadImportRequest {
        part: Some(Part::Chunk(b.to_vec())),
    }));
    c.upload_import(req(token, tokio_stream::iter(msgs)))
        .await
        .map(|r| r.into_inner())
}

pub async fn upload(
    c: &mut Imports,
    token: &str,
    header: pb::ImportHeader,
    bytes: &[u8],
) -> Result<pb::ImportJob, Status> {
    upload_chunked(c, token, header, bytes, 64 * 1024).await
}
