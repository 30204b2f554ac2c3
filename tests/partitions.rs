//! Domains are partitions: an import in one domain and commands in another run at once,
//! rebuild and verify run while commands go on, and a retried request id answers exactly its
//! first result.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use account_ledger::domain::{Command, Status};
use account_ledger::ledger::{BatchMode, Ledger, Request};
use support::{create, create_request, open, register};

/// Run `op` until a command is acknowledged while it runs, at most 20 times: on a fast machine
/// one run can be shorter than a single command's sync. Its last result, and the commands
/// acknowledged during that run.
async fn acked_while<T, F: std::future::Future<Output = T>>(
    acked: &AtomicU64,
    mut op: impl FnMut() -> F,
) -> (T, u64) {
    let mut runs = 0;
    loop {
        let before = acked.load(Ordering::SeqCst);
        let out = op().await;
        let during = acked.load(Ordering::SeqCst) - before;
        runs += 1;
        if during > 0 || runs == 20 {
            return (out, during);
        }
    }
}

/// Manual commands in domain "b" until `stop`: create, disable, enable, each counted in
/// `acked` once acknowledged. Returns the accounts created.
async fn manual_commands(ledger: Ledger, stop: Arc<AtomicBool>, acked: Arc<AtomicU64>) -> Vec<u64> {
    let mut created = Vec::new();
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) {
        let id = ledger
            .execute(create_request("b", &format!("m{i}")))
            .await
            .expect("create in b")
            .account
            .expect("account");
        acked.fetch_add(1, Ordering::SeqCst);
        for command in [
            Command::Disable { account: id },
            Command::Enable { account: id },
        ] {
            let done = ledger
                .execute(Request::manual("admin", command))
                .await
                .expect("command in b");
            assert_eq!(done.positions.len(), 1);
            acked.fetch_add(1, Ordering::SeqCst);
        }
        created.push(id);
        i += 1;
    }
    created
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_in_one_domain_and_commands_in_another_both_finish_right() {
    let (_dir, ledger) = open().await;
    register(&ledger, "a", 1_000_000).await;
    register(&ledger, "b", 1_000_000).await;
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let manual = tokio::spawn(manual_commands(ledger.clone(), stop.clone(), acked.clone()));
    const ROWS: usize = 20_000;
    let job: Vec<Request> = (0..ROWS)
        .map(|i| create_request("a", &format!("imp{i}")))
        .collect();
    let outcome = ledger
        .execute_batch(job, BatchMode::BestEffort)
        .await
        .unwrap();
    stop.store(true, Ordering::SeqCst);
    let created_in_b = manual.await.unwrap();
    assert!(outcome.written);
    assert!(outcome.results.iter().all(|r| r.is_ok()));
    // The job is one contiguous range of positions: one atomic batch.
    let positions: Vec<u64> = outcome
        .results
        .iter()
        .flat_map(|r| r.as_ref().unwrap().positions.clone())
        .collect();
    assert_eq!(positions.len(), ROWS);
    assert!(positions.windows(2).all(|w| w[1] == w[0] + 1));
    assert_eq!(ledger.license_usage("a").unwrap().used, ROWS as u32);
    assert_eq!(
        ledger.license_usage("b").unwrap().used,
        created_in_b.len() as u32
    );
    for id in &created_in_b {
        let acc = ledger.account(*id).unwrap();
        assert_eq!((acc.domain.as_str(), acc.status()), ("b", Status::Enabled));
    }
    let v = ledger.verify_projections().await.unwrap();
    assert!(v.equal, "{}", v.detail);
    assert_eq!(v.accounts, ROWS + created_in_b.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_and_verify_run_while_commands_are_acknowledged() {
    let (_dir, ledger) = open().await;
    register(&ledger, "a", 1_000_000).await;
    register(&ledger, "b", 1_000_000).await;
    let job: Vec<Request> = (0..30_000)
        .map(|i| create_request("a", &format!("imp{i}")))
        .collect();
    ledger
        .execute_batch(job, BatchMode::BestEffort)
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let manual = tokio::spawn(manual_commands(ledger.clone(), stop.clone(), acked.clone()));
    while acked.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    let (replayed, during_rebuild) = acked_while(&acked, || ledger.rebuild_projections()).await;
    assert!(replayed.unwrap() >= 30_000);
    let (v, during_verify) = acked_while(&acked, || ledger.verify_projections()).await;
    let v = v.unwrap();
    assert!(v.equal, "{}", v.detail);
    stop.store(true, Ordering::SeqCst);
    let created_in_b = manual.await.unwrap();
    assert!(
        during_rebuild > 0 && during_verify > 0,
        "writes stopped: {during_rebuild} acknowledged during rebuild, {during_verify} during verify"
    );
    let v = ledger.verify_projections().await.unwrap();
    assert!(v.equal, "{}", v.detail);
    assert_eq!(
        ledger.license_usage("b").unwrap().used,
        created_in_b.len() as u32
    );
    // What the rebuild persisted is what a reopen loads.
    let dir = _dir;
    let state = ledger.state_snapshot();
    ledger.close().await.unwrap();
    drop(ledger);
    let reopened = Ledger::open(dir.path()).await.unwrap();
    assert_eq!(reopened.state_snapshot(), state);
    reopened.close().await.unwrap();
}

#[tokio::test]
async fn a_retry_answers_the_version_of_its_first_result() {
    let (_dir, ledger) = open().await;
    register(&ledger, "d", 10).await;
    let id = create(&ledger, "d", "a", true).await;
    let disable = Request {
        request_id: Some("r-1".into()),
        ..Request::manual("admin", Command::Disable { account: id })
    };
    let first = ledger.execute(disable.clone()).await.unwrap();
    assert_eq!(first.version, 2);
    let enabled = ledger
        .execute(Request::manual("admin", Command::Enable { account: id }))
        .await
        .unwrap();
    assert_eq!(enabled.version, 3);
    let retry = ledger.execute(disable).await.unwrap();
    assert!(retry.replayed);
    assert_eq!(
        (retry.account, retry.positions, retry.version),
        (first.account, first.positions, first.version)
    );
    assert_eq!(ledger.account(id).unwrap().version, 3);
}

#[tokio::test]
async fn expected_versions_of_domain_streams_are_checked_by_the_writer() {
    let (_dir, ledger) = open().await;
    register(&ledger, "d", 10).await;
    let set = |limit, expected| Request {
        expected_version: Some(expected),
        ..Request::manual(
            "admin",
            Command::SetLicenseLimit {
                domain: "d".into(),
                license_limit: limit,
            },
        )
    };
    // Two changes decided from version 1 in one group: only the first may pass.
    let (a, b) = tokio::join!(ledger.execute(set(20, 1)), ledger.execute(set(30, 1)));
    assert!(a.is_ok() != b.is_ok(), "{a:?} {b:?}");
    let ok = a.as_ref().or(b.as_ref()).unwrap();
    assert_eq!(ok.version, 2);
    assert!(ledger.execute(set(40, 2)).await.is_ok());
}

#[tokio::test]
async fn account_numbers_are_never_reused_across_domains_or_restarts() {
    let (dir, ledger) = open().await;
    register(&ledger, "a", 10).await;
    register(&ledger, "b", 10).await;
    let mut seen = vec![
        create(&ledger, "a", "x", true).await,
        create(&ledger, "b", "y", true).await,
        create(&ledger, "a", "z", true).await,
    ];
    ledger.close().await.unwrap();
    drop(ledger);
    let ledger = Ledger::open(dir.path()).await.unwrap();
    seen.push(create(&ledger, "b", "w", true).await);
    let mut unique = seen.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "{seen:?}");
    assert_eq!(seen[0], 1, "numbers start at 1");
}
