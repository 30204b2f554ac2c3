//! Crash safety of the real binary: acknowledged commands survive `kill -9`, and after a
//! restart on the same data dir a replay of the log equals the live projections. Also: SIGTERM
//! shuts down gracefully with exit code 0. The same body on sled and on PostgreSQL.

mod common;
mod served;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use account_ledger::api::pb;
use common::*;
use served::Served;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_commands_survive_kill_9() {
    survive_kill_9(&[]).await;
}

/// The log index is checkpointed every 40 events while the writers run: the restart after
/// kill -9 reads the newest checkpoint and indexes only the log after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_commands_survive_kill_9_between_index_checkpoints() {
    // Checkpoints are looked at once a second: the writers run long enough for some.
    let restarted = survive_kill_9_with(
        &[],
        &[("ACCOUNT_LEDGER_INDEX_CHECKPOINT_EVERY", "40")],
        Duration::from_millis(2500),
    )
    .await;
    let indexed = restarted
        .iter()
        .find(|l| l.contains("log indexed in"))
        .expect("the restart logs how it indexed the log");
    assert!(
        !indexed.contains("checkpoint=0 "),
        "the restart used a checkpoint: {indexed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_commands_survive_kill_9_on_postgres() {
    let schema = format!("al_crash_{}", uuid::Uuid::new_v4().simple());
    let url = pg_url();
    survive_kill_9(&["--store", &url, "--store-schema", &schema]).await;
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

async fn survive_kill_9(store: &[&str]) {
    survive_kill_9_with(store, &[], Duration::from_millis(700)).await;
}

/// Returns the server's stderr of the first restart after the kill.
async fn survive_kill_9_with(
    store: &[&str],
    env: &[(&str, &str)],
    writing: Duration,
) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    // Start `account-ledger serve` on a free port; returns once it listens.
    let start = |data_dir: &Path| Served::start_with_env(data_dir, "127.0.0.1:0", store, env);
    let mut server = start(dir.path());
    let operator = server
        .token
        .clone()
        .expect("first start prints an operator token");
    let mut c = connect(server.addr).await;
    register_as(&mut c, &operator, "d1").await;
    let admin = c
        .create_token(req(
            &operator,
            pb::CreateTokenRequest {
                principal: "alice".into(),
                role: pb::Role::DomainAdmin as i32,
                domains: vec!["d1".into()],
                expires_at: None,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .token;

    // 16 concurrent writers keep sending; the server is killed while they do.
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..16 {
        let mut c = c.clone();
        let admin = admin.clone();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let iid = format!("w{w}-{i}");
                match c
                    .create_account(req(&admin, create("d1", &iid, Some(&iid))))
                    .await
                {
                    Ok(r) => acked.push((iid, r.into_inner().account.unwrap())),
                    Err(_) => break,
                }
            }
            acked
        }));
    }
    tokio::time::sleep(writing).await;
    server.child.kill().expect("kill -9");
    let _ = server.child.wait();
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    assert!(
        acked.len() > 10,
        "only {} commands were acknowledged",
        acked.len()
    );

    // Restart on the same data dir: no new token, every acknowledged command is there.
    let mut server = start(dir.path());
    assert!(server.token.is_none(), "the config is kept; no new token");
    let mut c = connect(server.addr).await;
    for (iid, id) in &acked {
        let got = c
            .get_account(req(
                &admin,
                pb::GetAccountRequest {
                    account: by_import("d1", iid),
                    as_of: None,
                },
            ))
            .await
            .unwrap_or_else(|e| panic!("acknowledged account {iid} lost: {e}"))
            .into_inner();
        assert_eq!(got.id, *id);
    }
    let v = c
        .verify_projections(req(&operator, pb::VerifyProjectionsRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert!(v.equal, "{}", v.detail);
    assert!(v.accounts as usize >= acked.len());
    let restarted = server.stderr_lines(Duration::from_millis(200));

    // Graceful stop: SIGTERM → exit 0.
    let pid = server.child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "graceful shutdown exit: {exit:?}");

    // And after a clean stop everything is still there.
    let mut server = start(dir.path());
    let mut c = connect(server.addr).await;
    let v = c
        .verify_projections(req(&operator, pb::VerifyProjectionsRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert!(v.equal, "{}", v.detail);
    let list = c
        .list_accounts(req(
            &admin,
            pb::ListAccountsRequest {
                domain: "d1".into(),
                limit: 1000,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(list.total as usize >= acked.len());
    server.child.kill().unwrap();
    let _ = server.child.wait();
    restarted
}

async fn register_as(
    c: &mut pb::account_ledger_client::AccountLedgerClient<tonic::transport::Channel>,
    token: &str,
    domain: &str,
) {
    c.register_domain(req(
        token,
        pb::RegisterDomainRequest {
            domain: domain.into(),
            license_limit: 1_000_000,
            request_id: None,
            expected_version: None,
        },
    ))
    .await
    .unwrap();
}
