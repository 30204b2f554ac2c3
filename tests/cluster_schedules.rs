//! Scheduled changes on two servers over one PostgreSQL schema, in process, with clocks the
//! test moves: the server deciding a domain fires its schedules (planned on the read model its
//! own writer keeps), the other leaves them to it, and takes them over when it leaves.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use account_ledger::domain::schedule::{Change, ScheduleStatus, Target};
use account_ledger::domain::{Command, Status};
use account_ledger::ledger::{Ledger, ManualClock, Request};
use support::{create, register};

const HOUR: i64 = 3_600_000_000;
const T0: i64 = 1_800_000_000_000_000;

fn pg_url() -> String {
    std::env::var("ACCOUNT_LEDGER_TEST_PG")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into())
}

/// A server (ledger) over `schema`, its views in `dir`.
async fn server(dir: &std::path::Path, schema: &str, clock: &Arc<ManualClock>) -> Ledger {
    Ledger::open_postgres(dir, &pg_url(), schema, clock.clone())
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {:?} ({e}): this test needs it", pg_url()))
}

fn drop_schema(schema: &str) {
    let _ = std::process::Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-qc"])
        .arg(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .output();
}

/// Wait (up to 5 s) until `ledger` reads schedule 1 of domain `d` as `want`.
async fn until_schedule(ledger: &Ledger, want: ScheduleStatus) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let seen = ledger
            .fresh(|l| {
                l.read_domain("d", |s| {
                    s.domains.get("d")?.schedules.get(&1).map(|s| s.status)
                })
                .flatten()
                .filter(|s| *s == want)
            })
            .await;
        if seen.is_some() {
            return;
        }
        assert!(Instant::now() < deadline, "schedule 1 never {want:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deciding_server_fires_a_domains_schedules_and_another_takes_them_over_when_it_leaves()
{
    let schema = format!("al_sched_{}", uuid::Uuid::new_v4().simple());
    let dirs = tempfile::tempdir().unwrap();
    let clock_a = Arc::new(ManualClock::new(T0));
    let clock_b = Arc::new(ManualClock::new(T0));
    let a = server(&dirs.path().join("a"), &schema, &clock_a).await;
    let b = server(&dirs.path().join("b"), &schema, &clock_b).await;
    // A decides d (it registered it).
    register(&a, "d", 10).await;
    let student = create(&a, "d", "ann", true).await;
    a.execute(Request::manual(
        "admin",
        Command::ScheduleChange {
            domain: "d".into(),
            target: Target::Role("student".into()),
            change: Change::Disable {
                at_us: T0 + HOUR,
                until_us: Some(T0 + 3 * HOUR),
            },
            reason: "summer".into(),
        },
    ))
    .await
    .expect("schedule");
    until_schedule(&b, ScheduleStatus::Pending).await;

    // Due on both clocks: B leaves the phase to A, which fires it.
    clock_b.set(T0 + HOUR);
    assert!(
        b.fire_due_schedules()
            .await
            .expect("B fires nothing")
            .is_empty(),
        "a server that does not decide d fires none of its schedules"
    );
    assert_eq!(
        b.read_domain("d", |s| s.domains["d"].schedules[&1].status),
        Some(ScheduleStatus::Pending)
    );
    clock_a.set(T0 + HOUR);
    a.fire_due_schedules().await.expect("A fires");
    until_schedule(&a, ScheduleStatus::Started).await;
    until_schedule(&b, ScheduleStatus::Started).await;
    assert_eq!(b.account(student).unwrap().status(), Status::Disabled);

    // A leaves (its leases go with it): B takes d and fires the end of the lock-out.
    a.close().await.expect("close A");
    clock_b.set(T0 + 3 * HOUR);
    b.fire_due_schedules().await.expect("B fires once A left");
    until_schedule(&b, ScheduleStatus::Done).await;
    assert_eq!(b.account(student).unwrap().status(), Status::Enabled);
    b.close().await.expect("close B");
    drop_schema(&schema);
}
