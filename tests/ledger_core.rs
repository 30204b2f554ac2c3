//! The ledger end to end on a real sled dir: concurrency on the last license, optimistic
//! concurrency, idempotent retries, reopen from checkpoint, subscriptions, audit.

mod support;

use std::sync::Arc;

use account_ledger::domain::{Command, DomainError, Status};
use account_ledger::ledger::{BatchMode, Ledger, LedgerError, Request};
use account_ledger::queries::AccountFilter;
use support::{create, open, register};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_enables_on_the_last_license_exactly_one_wins() {
    let (_dir, ledger) = open().await;
    register(&ledger, "d", 3).await;
    create(&ledger, "d", "a", true).await;
    create(&ledger, "d", "b", true).await;
    let mut ids = Vec::new();
    for i in 0..32 {
        ids.push(create(&ledger, "d", &format!("c{i}"), false).await);
    }
    let ledger = Arc::new(ledger);
    let tasks: Vec<_> = ids
        .into_iter()
        .map(|id| {
            let l = ledger.clone();
            tokio::spawn(async move {
                l.execute(Request::manual("admin", Command::Enable { account: id }))
                    .await
            })
        })
        .collect();
    let mut wins = 0;
    let mut refusals = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(LedgerError::Domain(DomainError::LicenseLimitReached { limit, used, .. })) => {
                assert_eq!((limit, used), (3, 3));
                refusals += 1;
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!((wins, refusals), (1, 31));
    assert_eq!(ledger.license_usage("d").unwrap().used, 3);
    assert!(ledger.verify_projections().await.unwrap().equal);
}

#[tokio::test]
async fn expected_version_mismatch_is_refused_and_writes_nothing() {
    let (_dir, ledger) = open().await;
    register(&ledger, "d", 10).await;
    let id = create(&ledger, "d", "a", true).await;
    let before = ledger.log().last_position();
    let mut req = Request::manual("admin", Command::Disable { account: id });
    req.expected_version = Some(7);
    match ledger.execute(req.clone()).await {
        Err(LedgerError::VersionMismatch {
            expected: 7,
            actual: 1,
            ..
        }) => {}
        other => panic!("expected a version mismatch, got {other:?}"),
    }
    assert_eq!(ledger.log().last_position(), before);
    req.expected_version = Some(1);
    ledger
        .execute(req)
        .await
        .expect("right version is accepted");
    assert_eq!(ledger.account(id).unwrap().status(), Status::Disabled);
}

#[tokio::test]
async fn expected_version_applies_to_domain_streams_too() {
    let (_dir, ledger) = open().await;
    register(&ledger, "d", 10).await;
    let limit = |v: u64, expected: u64| {
        let mut r = Request::manual(
            "op",
            Command::SetLicenseLimit {
                domain: "d".into(),
                license_limit: v as u32,
            },
        );
        r.expected_version = Some(expected);
        r
    };
    // Two requests for version 1 in one group: the second sees the first's pending event.
    let outcome = ledger
        .execute_batch(vec![limit(20, 1), limit(30, 1)], BatchMode::BestEffort)
        .await
        .unwrap();
    assert!(outcome.results[0].is_ok());
    assert!(matches!(
        outcome.results[1],
        Err(LedgerError::VersionMismatch {
            expected: 1,
            actual: 2,
            ..
        })
    ));
    assert_eq!(ledger.license_usage("d").unwrap().limit, 20);
    ledger.execute(limit(30, 2)).await.unwrap();
    assert_eq!(ledger.license_usage("d").unwrap().limit, 30);
}

#[tokio::test]
async fn a_retried_request_id_returns_the_first_result_and_records_nothing() {
    let (_dir, ledger) = open().await;
    register(&ledger, "d", 10).await;
    let mut req = Request::manual(
        "admin",
        Command::CreateAccount {
            domain: "d".into(),
            account: 0,
            import_id: None,
            profile: support::profile("retry"),
            role: "teacher".into(),
            enabled: true,
        },
    );
    req.request_id = Some("req-1".into());
    let first = ledger.execute(req.clone()).await.unwrap();
    let last = ledger.log().last_position();
    let again = ledger.execute(req).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.positions, first.positions);
    assert_eq!(again.account, first.account);
    assert_eq!(ledger.log().last_position(), last);
}

#[tokio::test]
async fn reopening_restores_projections_from_their_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (expected_state, last) = {
        let ledger = Ledger::open(dir.path()).await.unwrap();
        register(&ledger, "d", 5).await;
        let a = create(&ledger, "d", "a", true).await;
        create(&ledger, "d", "b", false).await;
        ledger
            .execute(Request::manual("admin", Command::Deactivate { account: a }))
            .await
            .unwrap();
        ledger.close().await.unwrap();
        (ledger.state_snapshot(), ledger.log().last_position())
    };
    let ledger = Ledger::open(dir.path()).await.unwrap();
    assert_eq!(ledger.log().last_position(), last);
    assert_eq!(ledger.state_snapshot(), expected_state);
    assert!(ledger.verify_projections().await.unwrap().equal);
    // Rebuilding from the log gives the same views.
    assert_eq!(ledger.rebuild_projections().await.unwrap(), last);
    assert_eq!(ledger.state_snapshot(), expected_state);
}

#[tokio::test]
async fn a_batch_is_all_or_nothing_in_strict_mode_and_row_by_row_otherwise() {
    let (_dir, ledger) = open().await;
    register(&ledger, "d", 1).await;
    let mk = |login: &str| {
        Request::manual(
            "admin",
            Command::CreateAccount {
                domain: "d".into(),
                account: 0,
                import_id: Some(login.into()),
                profile: support::profile(login),
                role: "student".into(),
                enabled: true,
            },
        )
    };
    let before = ledger.log().last_position();
    let strict = ledger
        .execute_batch(vec![mk("x"), mk("y")], BatchMode::Strict)
        .await
        .unwrap();
    assert!(!strict.written);
    assert!(strict.results[1].is_err());
    assert_eq!(ledger.log().last_position(), before);
    let dry = ledger
        .execute_batch(vec![mk("x"), mk("y")], BatchMode::DryRun)
        .await
        .unwrap();
    assert!(!dry.written && dry.results[0].is_ok() && dry.results[1].is_err());
    assert_eq!(ledger.log().last_position(), before);
    let best = ledger
        .execute_batch(vec![mk("x"), mk("y")], BatchMode::BestEffort)
        .await
        .unwrap();
    assert!(best.written && best.results[0].is_ok() && best.results[1].is_err());
    assert_eq!(ledger.log().last_position(), before + 1);
}

#[tokio::test]
async fn deleted_is_terminal_and_frees_the_import_id() {
    let (_dir, ledger) = open().await;
    register(&ledger, "d", 5).await;
    let id = create(&ledger, "d", "gone", true).await;
    ledger
        .execute(Request::manual("admin", Command::Delete { account: id }))
        .await
        .unwrap();
    let err = ledger
        .execute(Request::manual("admin", Command::Enable { account: id }))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        LedgerError::Domain(DomainError::AccountDeleted { .. })
    ));
    assert_eq!(ledger.license_usage("d").unwrap().used, 0);
    // The same import id coming back is a new account.
    let again = create(&ledger, "d", "gone", true).await;
    assert_ne!(again, id);
    let page = ledger
        .list_accounts(
            "d",
            &AccountFilter {
                include_disabled: true,
                include_deactivated: true,
                ..Default::default()
            },
            Default::default(),
            10,
        )
        .await
        .unwrap();
    assert_eq!(page.total, 1);
    assert_eq!(page.accounts[0].id, again);
}

#[tokio::test]
async fn subscription_sees_catch_up_then_live_events() {
    let (_dir, ledger) = open().await;
    register(&ledger, "d", 5).await;
    register(&ledger, "other", 5).await;
    let a = create(&ledger, "d", "a", true).await;
    create(&ledger, "other", "o", true).await;
    let mut sub = ledger.subscribe(1, Some("d".into()));
    let mut seen = Vec::new();
    for _ in 0..2 {
        seen.push(sub.recv().await.unwrap().unwrap().event.kind());
    }
    assert_eq!(seen, ["DomainRegistered", "AccountCreated"]);
    ledger
        .execute(Request::manual("admin", Command::Disable { account: a }))
        .await
        .unwrap();
    let live = tokio::time::timeout(std::time::Duration::from_secs(5), sub.recv())
        .await
        .expect("live event in time")
        .unwrap()
        .unwrap();
    assert_eq!(live.event.kind(), "AccountDisabled");
    assert_eq!(&*live.actor, "admin");
}

#[tokio::test]
async fn history_shows_actor_time_and_source() {
    let (_dir, ledger) = open().await;
    register(&ledger, "d", 5).await;
    let id = create(&ledger, "d", "h", true).await;
    ledger
        .execute(Request::manual("alice", Command::Disable { account: id }))
        .await
        .unwrap();
    let history = ledger.account_history(id).await.unwrap();
    let kinds: Vec<_> = history.iter().map(|e| e.event.kind()).collect();
    assert_eq!(kinds, ["AccountCreated", "AccountDisabled"]);
    assert_eq!(&*history[1].actor, "alice");
    assert!(history[1].recorded_at_us >= history[0].recorded_at_us);
    assert_eq!(history[1].stream_version, 2);
}

/// Reopened, a ledger takes commands at once while the list index of its loaded rows is
/// still being built; lists wait for that index and show the loaded rows with the changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_right_after_reopening_show_in_lists_and_searches() {
    let dir = tempfile::tempdir().unwrap();
    let loaded: Vec<u64> = {
        let ledger = Ledger::open(dir.path()).await.unwrap();
        register(&ledger, "d", 10_000).await;
        // Enough rows that building their index takes a while after the reopen.
        let rows = (0..3000)
            .map(|i| support::create_request("d", &format!("user{i:04}")))
            .collect();
        let results = ledger.execute_batch(rows, BatchMode::Strict).await.unwrap();
        ledger.close().await.unwrap();
        results
            .results
            .into_iter()
            .map(|r| r.unwrap().account.unwrap())
            .collect()
    };
    let ledger = Ledger::open(dir.path()).await.unwrap();
    let fresh = create(&ledger, "d", "newcomer", true).await;
    ledger
        .execute(Request::manual(
            "admin",
            Command::Disable { account: loaded[0] },
        ))
        .await
        .unwrap();
    let all = |search: Option<&str>| AccountFilter {
        search: search.map(str::to_string),
        ..Default::default()
    };
    let page = ledger
        .list_accounts("d", &all(None), Default::default(), 10_000)
        .await
        .unwrap();
    assert_eq!(page.total as usize, loaded.len(), "one disabled, one new");
    assert!(page.accounts.iter().any(|a| a.id == fresh));
    assert!(page.accounts.iter().all(|a| a.id != loaded[0]));
    for (word, want) in [("newcomer", fresh), ("user2999", loaded[2999])] {
        let found = ledger
            .list_accounts("d", &all(Some(word)), Default::default(), 10)
            .await
            .unwrap();
        let ids: Vec<u64> = found.accounts.iter().map(|a| a.id).collect();
        assert_eq!(ids, vec![want], "search {word:?}");
    }
}
