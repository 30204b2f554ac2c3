//! Shared test helpers: a real server (real sled in a temp dir, real tonic on a free loopback
//! port) with known tokens, and an authenticated tonic client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use account_ledger::api::auth::{Auth, AuthConfig, Role, TokenEntry, hash_token};
use account_ledger::api::pb::{self, account_ledger_client::AccountLedgerClient};
use account_ledger::api::server;
use account_ledger::ledger::Ledger;
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
}

fn entry(principal: &str, role: Role, domains: &[&str], token: &str) -> TokenEntry {
    TokenEntry {
        principal: principal.into(),
        role,
        domains: domains.iter().map(|d| d.to_string()).collect(),
        sha256: hash_token(token),
    }
}

impl TestServer {
    pub async fn start() -> TestServer {
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
        let ledger = Ledger::open(&dir.path().join("ledger"))
            .await
            .expect("open ledger");
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
        }
    }

    pub async fn client(&self) -> AccountLedgerClient<Channel> {
        connect(self.addr).await
    }

    /// Graceful stop: waits for the server to close the ledger.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("server task");
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
            license_limit: limit,
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
