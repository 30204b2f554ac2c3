//! One test body, two stores: the `EventLog` contract (gap-free positions in commit order,
//! concurrent appends, event ids stored once, stream versions, request and job indexes,
//! instants, encrypted profiles, erasure, and the same answers after reopening) on sled and on
//! PostgreSQL. PostgreSQL: `ACCOUNT_LEDGER_TEST_PG` (default: the project machines' server,
//! `host=127.0.0.1 user=postgres dbname=test`); each run makes its own schema and drops it. A
//! server that does not answer fails the test, saying so; it is never skipped.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use account_ledger::domain::{Event, Profile, StreamId};
use account_ledger::store::pg_log::PgEventLog;
use account_ledger::store::{EventLog, NewEvent, Source, open_store};
use uuid::Uuid;

type Opened = Pin<Box<dyn Future<Output = Arc<dyn EventLog>>>>;

fn event(event: Event) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        actor: "op".into(),
        source: Source::Manual,
        request_id: None,
        event,
    }
}

fn limit(domain: &str, limit: u32) -> NewEvent {
    event(Event::LicenseLimitChanged {
        domain: domain.into(),
        license_limit: limit,
    })
}

fn created(account: u64, login: &str) -> NewEvent {
    event(Event::AccountCreated {
        account,
        domain: "d".into(),
        import_id: Some(format!("S{account}")),
        profile: (&Profile {
            login: login.into(),
            first_name: "Ann".into(),
            last_name: "Lee".into(),
            email: format!("{login}@x.example"),
        })
            .into(),
        role: "student".into(),
        enabled: true,
    })
}

/// The contract, on a fresh log; `reopen` opens the same store again.
async fn contract(log: Arc<dyn EventLog>, reopen: impl Fn() -> Opened) {
    assert_eq!(log.last_position(), 0);
    let first = log
        .append(vec![
            event(Event::DomainRegistered {
                domain: "d".into(),
                license_limit: 5,
            }),
            created(1, "ann"),
        ])
        .await
        .unwrap();
    assert_eq!(first.positions, vec![1, 2]);

    // Concurrent appends: each batch one contiguous range, all of them gap-free.
    let mut tasks = Vec::new();
    for t in 0..4u32 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..10u32 {
                let batch: Vec<_> = (0..=(i % 3)).map(|_| limit(&format!("c{t}"), i)).collect();
                let a = log.append(batch).await.unwrap();
                assert!(a.positions.windows(2).all(|w| w[1] == w[0] + 1));
                got.extend(a.positions);
            }
            got
        }));
    }
    let mut all = vec![1, 2];
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    let last = all.len() as u64;
    assert_eq!(all, (1..=last).collect::<Vec<_>>());
    assert_eq!(log.last_position(), last);

    // An event id is stored once; a retry answers its first position.
    let mut again = limit("d", 7);
    again.request_id = Some("req-1".into());
    again.source = Source::Import {
        job_id: Uuid::from_u128(9),
        file: "users.csv".into(),
        row: 2,
    };
    let stored = log.append(vec![again.clone()]).await.unwrap();
    let retried = log.append(vec![again.clone()]).await.unwrap();
    assert_eq!(retried.positions, stored.positions);
    assert!(retried.recorded.is_empty());
    let p = stored.positions[0];
    assert_eq!(log.request_positions("req-1"), vec![p]);
    assert_eq!(log.job_positions(&Uuid::from_u128(9)), vec![p]);
    assert_eq!(log.event_position(&again.event_id), Some(p));
    assert_eq!(log.stream_version(&StreamId::Domain("d".into())), 2);
    assert_eq!(
        log.stream_positions(&StreamId::Domain("d".into())),
        vec![1, p]
    );
    assert_eq!(log.stream_positions(&StreamId::Account(1)), vec![2]);

    // Reads: ranges, positions, profiles opened with the account's key.
    let read = log.read_range(1, u64::MAX, 3).await.unwrap();
    assert_eq!(
        read.iter().map(|e| e.position).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let ann = log.read_positions(&[2]).await.unwrap();
    let Event::AccountCreated { profile, .. } = &ann[0].event else {
        panic!("{ann:?}")
    };
    assert_eq!(profile.login(), "ann");
    assert!(ann[0].stream_version == 1 && &*ann[0].actor == "op");
    let stamp = read[2].recorded_at_us;
    assert!(log.position_at(stamp) >= 3);
    assert_eq!(log.position_at(read[0].recorded_at_us - 1), 0);
    let stamps: Vec<i64> = log
        .read_range(1, u64::MAX, usize::MAX)
        .await
        .unwrap()
        .iter()
        .map(|e| e.recorded_at_us)
        .collect();
    assert!(
        stamps.windows(2).all(|w| w[0] <= w[1]),
        "stamps never go back"
    );

    // Deleting destroys the key: the profile reads erased from then on.
    log.append(vec![event(Event::AccountDeleted { account: 1 })])
        .await
        .unwrap();
    let erased = log.read_positions(&[2]).await.unwrap();
    let Event::AccountCreated { profile, .. } = &erased[0].event else {
        panic!()
    };
    assert!(profile.is_erased(), "{profile:?}");
    log.sync().await.unwrap();
    assert!(log.size_on_disk().unwrap() > 0);

    // The same answers from a reopened store.
    let end = log.last_position();
    let everything = log.read_range(1, end, usize::MAX).await.unwrap();
    drop(log);
    let log = reopen().await;
    assert_eq!(log.last_position(), end);
    assert_eq!(
        log.read_range(1, end, usize::MAX).await.unwrap(),
        everything
    );
    assert_eq!(log.request_positions("req-1"), vec![p]);
    assert_eq!(log.stream_version(&StreamId::Domain("d".into())), 2);
    assert_eq!(
        log.position_at(stamp),
        everything
            .iter()
            .filter(|e| e.recorded_at_us <= stamp)
            .count() as u64
    );
    let next = log.append(vec![limit("d", 9)]).await.unwrap();
    assert_eq!(next.positions, vec![end + 1]);
    assert_eq!(next.recorded[0].stream_version, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_contract_holds_on_sled() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let log: Arc<dyn EventLog> = Arc::new(open_store(&path).unwrap().log);
    contract(log, move || {
        let path = path.clone();
        Box::pin(async move {
            // sled releases its lock from background threads shortly after the last handle.
            let log: Arc<dyn EventLog> = Arc::new(open_store(&path).unwrap().log);
            log
        })
    })
    .await;
}

fn pg_url() -> String {
    std::env::var("ACCOUNT_LEDGER_TEST_PG")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into())
}

/// A schema of its own for this run, dropped at the end.
struct Schema {
    name: String,
    client: tokio_postgres::Client,
}

impl Schema {
    async fn new() -> Schema {
        let (client, connection) = tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL does not answer at {:?} ({e}): the PostgreSQL tests need it \
                     (set ACCOUNT_LEDGER_TEST_PG to another server)",
                    pg_url()
                )
            });
        tokio::spawn(connection);
        let name = format!("al_test_{}", Uuid::new_v4().simple());
        Schema { name, client }
    }

    async fn drop_it(self) {
        self.client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_contract_holds_on_postgres() {
    let schema = Schema::new().await;
    let name = schema.name.clone();
    let open = move || {
        let name = name.clone();
        Box::pin(async move {
            let log: Arc<dyn EventLog> =
                Arc::new(PgEventLog::open(&pg_url(), &name).await.unwrap());
            log
        }) as Opened
    };
    let log = open().await;
    contract(log, open).await;
    // Keys live in the database, in the transactions of their events: the deleted account's
    // key row is gone, the others are there.
    let keys: Vec<i64> = schema
        .client
        .query(
            &format!("SELECT account FROM {}.account_keys", schema.name),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(keys.is_empty(), "account 1 was deleted: {keys:?}");
    schema.drop_it().await;
}

#[tokio::test]
async fn a_database_migrated_by_a_newer_binary_is_refused() {
    let schema = Schema::new().await;
    PgEventLog::open(&pg_url(), &schema.name).await.unwrap();
    schema
        .client
        .execute(
            &format!(
                "INSERT INTO {}.ledger_migrations (version) VALUES (99)",
                schema.name
            ),
            &[],
        )
        .await
        .unwrap();
    let err = PgEventLog::open(&pg_url(), &schema.name)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("newer than this binary"), "{err}");
    assert!(PgEventLog::open(&pg_url(), "Bad-Name").await.is_err());
    schema.drop_it().await;
}

#[tokio::test]
async fn an_append_fenced_by_a_lease_that_moved_is_refused_and_writes_nothing() {
    use account_ledger::store::StoreError;
    use account_ledger::store::pg_cluster::{Claim, Fence, PgCluster};
    let schema = Schema::new().await;
    let log = PgEventLog::open(&pg_url(), &schema.name).await.unwrap();
    let a = PgCluster::open(&pg_url(), &schema.name, Uuid::new_v4())
        .await
        .unwrap();
    let b = PgCluster::open(&pg_url(), &schema.name, Uuid::new_v4())
        .await
        .unwrap();
    let Claim::Won { epoch } = a.claim("d").await.unwrap() else {
        panic!("a free domain is won");
    };
    let fence = Fence {
        domain: "d".into(),
        owner: a.server(),
        epoch,
    };
    log.append_fenced(vec![limit("d", 1)], Some(&fence))
        .await
        .expect("the holder appends");
    assert!(
        matches!(b.claim("d").await.unwrap(), Claim::Held { owner, .. } if owner == a.server()),
        "a live lease is not taken"
    );
    // A's lease runs out (as if A stopped renewing); B takes the domain over.
    schema
        .client
        .batch_execute(&format!(
            "UPDATE {}.leases SET expires_at = now() - interval '1 s'",
            schema.name
        ))
        .await
        .unwrap();
    let Claim::Won { epoch: taken } = b.claim("d").await.unwrap() else {
        panic!("an expired lease is taken over");
    };
    assert_eq!(taken, epoch + 1);
    let end = log.last_position();
    let refused = log.append_fenced(vec![limit("d", 2)], Some(&fence)).await;
    assert!(
        matches!(refused, Err(StoreError::LeaseLost { ref domain }) if domain == "d"),
        "{refused:?}"
    );
    assert_eq!(log.refresh().await.unwrap(), end, "nothing was written");
    let fence_b = Fence {
        domain: "d".into(),
        owner: b.server(),
        epoch: taken,
    };
    log.append_fenced(vec![limit("d", 3)], Some(&fence_b))
        .await
        .expect("the new holder appends");
    drop(log);
    schema.drop_it().await;
}

/// A lock someone else holds on the log (an administrator's `LOCK TABLE`) makes an append fail
/// after the session's lock timeout instead of waiting for ever; nothing of it is written, and
/// the next append after the lock is gone works. The URL's own `lock_timeout` (1 s here) wins
/// over the server's default (a minute).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_behind_a_lock_held_elsewhere_fails_in_bounded_time_and_writes_nothing() {
    let schema = Schema::new().await;
    let url = with_lock_timeout_1s(&pg_url());
    let log = PgEventLog::open(&url, &schema.name).await.unwrap();
    log.append(vec![limit("d", 1)]).await.unwrap();
    let mut holder = another_session().await;
    let tx = holder.transaction().await.unwrap();
    tx.batch_execute(&format!(
        "LOCK TABLE {}.events IN ACCESS EXCLUSIVE MODE",
        schema.name
    ))
    .await
    .unwrap();
    let refused = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        log.append(vec![limit("d", 2)]),
    )
    .await
    .expect("the append waited for the lock past the URL's lock timeout");
    let error = refused.expect_err("an append behind a held lock fails");
    assert!(error.to_string().contains("lock timeout"), "{error}");
    tx.rollback().await.unwrap();
    log.append(vec![limit("d", 3)]).await.unwrap();
    let limits: Vec<u32> = log
        .read_range(1, u64::MAX, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| match &e.event {
            Event::LicenseLimitChanged { license_limit, .. } => *license_limit,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(limits, [1, 3], "the refused append wrote nothing");
    drop(log);
    schema.drop_it().await;
}

/// A session of the test's own beside the log's (to hold a lock the log then meets).
async fn another_session() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// The test database's URL with the session's `lock_timeout` set to 1 s by the URL itself.
fn with_lock_timeout_1s(url: &str) -> String {
    if url.contains("://") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}options=-c%20lock_timeout%3D1s")
    } else {
        format!("{url} options='-c lock_timeout=1s'")
    }
}

/// A server that opens while another holds the append lock (an import longer than the
/// session's lock timeout) opens: a schema already migrated is not locked to be checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_opens_while_another_holds_the_append_lock() {
    let schema = Schema::new().await;
    let url = with_lock_timeout_1s(&pg_url());
    let first = PgEventLog::open(&url, &schema.name).await.unwrap();
    first.append(vec![limit("d", 1)]).await.unwrap();
    let holder = another_session().await;
    let key = account_ledger::store::pg_log::append_lock(&schema.name);
    holder
        .execute("SELECT pg_advisory_lock($1)", &[&key])
        .await
        .unwrap();
    let second = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        PgEventLog::open(&url, &schema.name),
    )
    .await
    .expect("the open waited for the append lock")
    .expect("a server opens while the append lock is held elsewhere");
    assert_eq!(second.last_position(), 1);
    holder
        .execute("SELECT pg_advisory_unlock($1)", &[&key])
        .await
        .unwrap();
    second.append(vec![limit("d", 2)]).await.unwrap();
    drop((first, second));
    schema.drop_it().await;
}

/// Two servers on one schema, the second not having looked since the first appended: its
/// append lands after the first's rows and indexes them, and an event id the first recorded
/// (a retry sent to both) is answered with the first's position, not written twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_has_not_looked_appends_after_the_others_and_answers_their_event_ids() {
    let schema = Schema::new().await;
    let a = PgEventLog::open(&pg_url(), &schema.name).await.unwrap();
    let b = PgEventLog::open(&pg_url(), &schema.name).await.unwrap();
    let retried = limit("d", 7);
    let by_a = a
        .append(vec![limit("d", 1), retried.clone(), limit("d", 2)])
        .await
        .unwrap();
    assert_eq!(by_a.positions, vec![1, 2, 3]);
    assert_eq!(b.last_position(), 0, "b has not looked yet");
    let by_b = b
        .append(vec![limit("e", 1), retried.clone(), limit("e", 2)])
        .await
        .unwrap();
    assert_eq!(
        by_b.positions,
        vec![4, 2, 5],
        "the retried event keeps a's position"
    );
    assert_eq!(
        by_b.recorded.iter().map(|r| r.position).collect::<Vec<_>>(),
        vec![4, 5]
    );
    assert_eq!(b.last_position(), 5);
    assert_eq!(b.event_position(&retried.event_id), Some(2));
    assert_eq!(
        b.stream_positions(&StreamId::Domain("d".into())),
        vec![1, 2, 3],
        "a's rows are in b's index"
    );
    // Every row once, in order, with stamps that never go back.
    let all = b.read_range(1, 5, 10).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert!(
        all.windows(2)
            .all(|w| w[0].recorded_at_us <= w[1].recorded_at_us)
    );
    assert_eq!(by_b.recorded[0].recorded_at_us, all[3].recorded_at_us);
    assert_eq!(a.refresh().await.unwrap(), 5);
    drop((a, b));
    schema.drop_it().await;
}
