//! Scheduled changes on a real ledger with a clock the test moves (nothing sleeps until a
//! schedule is due): lock-out and its end, delayed start, license limit at firing, exactly
//! once (two firers, restart), cancel, and replay equal to the live views.

mod support;

use std::sync::Arc;

use account_ledger::domain::schedule::{Change, ScheduleStatus, Selection, Target};
use account_ledger::domain::{Command, DomainError, Event, Status};
use account_ledger::ledger::{Ledger, LedgerError, ManualClock, Request};
use account_ledger::store::{RecordedEvent, Source, StoreOptions};
use support::{create, profile, register};

const HOUR: i64 = 3_600_000_000;
const T0: i64 = 1_800_000_000_000_000;

async fn open_at(dir: &std::path::Path, clock: &Arc<ManualClock>) -> Ledger {
    Ledger::open_with_clock(dir, StoreOptions::default(), clock.clone())
        .await
        .expect("open ledger")
}

async fn schedule(ledger: &Ledger, target: Target, change: Change) -> Result<u32, LedgerError> {
    ledger
        .execute(Request::manual(
            "admin",
            Command::ScheduleChange {
                domain: "d".into(),
                target,
                change,
                reason: "summer".into(),
            },
        ))
        .await?;
    Ok(ledger
        .read_domain("d", |s| *s.domains["d"].schedules.keys().last().unwrap())
        .unwrap())
}

async fn teacher(ledger: &Ledger, login: &str) -> u64 {
    ledger
        .execute(Request::manual(
            "admin",
            Command::CreateAccount {
                domain: "d".into(),
                account: 0,
                import_id: Some(format!("sis-{login}")),
                profile: profile(login),
                role: "teacher".into(),
                enabled: true,
            },
        ))
        .await
        .unwrap()
        .account
        .unwrap()
}

fn status(ledger: &Ledger, id: u64) -> Status {
    ledger.account(id).unwrap().status()
}

fn schedule_status(ledger: &Ledger, id: u32) -> ScheduleStatus {
    ledger
        .read_domain("d", |s| s.domains["d"].schedules[&id].status)
        .unwrap()
}

async fn all_events(ledger: &Ledger) -> Vec<RecordedEvent> {
    let last = ledger.log().last_position();
    ledger.log().read_range(1, last, 1 << 20).await.unwrap()
}

#[tokio::test]
async fn a_lock_out_disables_at_its_start_and_enables_only_what_it_disabled_at_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let ledger = open_at(dir.path(), &clock).await;
    register(&ledger, "d", 10).await;
    let a = create(&ledger, "d", "a", true).await;
    let b = create(&ledger, "d", "b", true).await;
    let off = create(&ledger, "d", "off", false).await;
    let t = teacher(&ledger, "t").await;
    let id = schedule(
        &ledger,
        Target::Role("student".into()),
        Change::Disable {
            at_us: T0 + HOUR,
            until_us: Some(T0 + 3 * HOUR),
        },
    )
    .await
    .unwrap();
    assert_eq!(id, 1);

    assert!(ledger.fire_due_schedules().await.unwrap().is_empty());
    assert_eq!(status(&ledger, a), Status::Enabled);

    clock.set(T0 + HOUR);
    ledger.fire_due_schedules().await.unwrap();
    assert_eq!(status(&ledger, a), Status::Disabled);
    assert_eq!(status(&ledger, b), Status::Disabled);
    assert_eq!(
        status(&ledger, t),
        Status::Enabled,
        "teachers are not selected"
    );
    assert_eq!(schedule_status(&ledger, id), ScheduleStatus::Started);
    let usage = ledger.read_domain("d", |s| s.domains["d"].licenses_used);
    assert_eq!(usage, Some(1));

    clock.set(T0 + 2 * HOUR);
    assert!(ledger.fire_due_schedules().await.unwrap().is_empty());

    clock.set(T0 + 3 * HOUR);
    ledger.fire_due_schedules().await.unwrap();
    assert_eq!(status(&ledger, a), Status::Enabled);
    assert_eq!(status(&ledger, b), Status::Enabled);
    assert_eq!(
        status(&ledger, off),
        Status::Disabled,
        "an account disabled before the lock-out stays disabled"
    );
    assert_eq!(schedule_status(&ledger, id), ScheduleStatus::Done);

    // The history says why: the lifecycle events carry the schedule as their source.
    let events = all_events(&ledger).await;
    let by_schedule: Vec<_> = events
        .iter()
        .filter(|e| matches!(e.source, Source::Schedule { schedule: 1, .. }))
        .map(|e| e.event.kind())
        .collect();
    assert_eq!(
        by_schedule,
        [
            "ScheduleFired",
            "AccountDisabled",
            "AccountDisabled",
            "ScheduleFired",
            "AccountEnabled",
            "AccountEnabled"
        ]
    );
    let verified = ledger.verify_projections().await.unwrap();
    assert!(verified.equal, "{}", verified.detail);
    ledger.close().await.unwrap();
}

#[tokio::test]
async fn a_phase_fires_once_with_two_firers_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let ledger = open_at(dir.path(), &clock).await;
    register(&ledger, "d", 10).await;
    let a = create(&ledger, "d", "a", true).await;
    schedule(
        &ledger,
        Target::Accounts(vec![a]),
        Change::Disable {
            at_us: T0 + HOUR,
            until_us: None,
        },
    )
    .await
    .unwrap();
    clock.set(T0 + HOUR);
    let (x, y) = tokio::join!(ledger.fire_due_schedules(), ledger.fire_due_schedules());
    let fired = x.unwrap().len() + y.unwrap().len();
    assert!(fired <= 1, "fired {fired} times");
    ledger.fire_due_schedules().await.unwrap();
    let events = all_events(&ledger).await;
    let count = |kind: &str| events.iter().filter(|e| e.event.kind() == kind).count();
    assert_eq!(count("ScheduleFired"), 1);
    assert_eq!(count("AccountDisabled"), 1);
    ledger.close().await.unwrap();
}

#[tokio::test]
async fn a_phase_due_while_the_server_was_down_fires_once_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let ledger = open_at(dir.path(), &clock).await;
    register(&ledger, "d", 10).await;
    let a = create(&ledger, "d", "a", false).await;
    let id = schedule(
        &ledger,
        Target::ImportIds {
            ids: vec!["sis-a".into()],
            skip_unknown: false,
        },
        Change::Enable { at_us: T0 + HOUR },
    )
    .await
    .unwrap();
    ledger.close().await.unwrap();
    drop(ledger);

    clock.set(T0 + 5 * HOUR);
    let ledger = open_at(dir.path(), &clock).await;
    // The firer task fires it at start; calling it here as well must not fire it twice.
    ledger.fire_due_schedules().await.unwrap();
    assert_eq!(status(&ledger, a), Status::Enabled);
    assert_eq!(schedule_status(&ledger, id), ScheduleStatus::Done);
    ledger.close().await.unwrap();
    drop(ledger);

    let ledger = open_at(dir.path(), &clock).await;
    ledger.fire_due_schedules().await.unwrap();
    let fired = all_events(&ledger)
        .await
        .iter()
        .filter(|e| matches!(e.event, Event::ScheduleFired { .. }))
        .count();
    assert_eq!(fired, 1);
    ledger.close().await.unwrap();
}

#[tokio::test]
async fn a_delayed_start_enables_what_licenses_allow_and_reports_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let ledger = open_at(dir.path(), &clock).await;
    register(&ledger, "d", 2).await;
    let ids = [
        create(&ledger, "d", "a", false).await,
        create(&ledger, "d", "b", false).await,
        create(&ledger, "d", "c", false).await,
    ];
    let id = schedule(
        &ledger,
        Target::Everyone,
        Change::Enable { at_us: T0 + HOUR },
    )
    .await
    .unwrap();
    clock.set(T0 + HOUR);
    let fired = ledger.fire_due_schedules().await.unwrap();
    assert_eq!(fired.len(), 1);
    assert_eq!((fired[0].changed, fired[0].not_enabled), (2, 1));
    assert_eq!(status(&ledger, ids[0]), Status::Enabled);
    assert_eq!(status(&ledger, ids[1]), Status::Enabled);
    assert_eq!(status(&ledger, ids[2]), Status::Disabled);
    let not_enabled = ledger
        .read_domain("d", |s| s.domains["d"].schedules[&id].not_enabled.clone())
        .unwrap();
    assert_eq!(not_enabled, vec![ids[2]]);
    let used = ledger.read_domain("d", |s| s.domains["d"].licenses_used);
    assert_eq!(used, Some(2), "the license limit holds at firing");
    ledger.close().await.unwrap();
}

#[tokio::test]
async fn a_cancelled_schedule_never_fires_and_a_done_one_cannot_be_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let ledger = open_at(dir.path(), &clock).await;
    register(&ledger, "d", 10).await;
    let a = create(&ledger, "d", "a", true).await;
    let change = Change::Disable {
        at_us: T0 + HOUR,
        until_us: None,
    };
    let first = schedule(&ledger, Target::Everyone, change).await.unwrap();
    let cancel = |schedule| {
        Request::manual(
            "admin",
            Command::CancelSchedule {
                domain: "d".into(),
                schedule,
                reason: "plans changed".into(),
            },
        )
    };
    ledger.execute(cancel(first)).await.unwrap();
    clock.set(T0 + HOUR);
    assert!(ledger.fire_due_schedules().await.unwrap().is_empty());
    assert_eq!(status(&ledger, a), Status::Enabled);
    assert_eq!(schedule_status(&ledger, first), ScheduleStatus::Cancelled);

    let second = schedule(
        &ledger,
        Target::Everyone,
        Change::Disable {
            at_us: T0 + HOUR,
            until_us: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(second, 2);
    ledger.fire_due_schedules().await.unwrap();
    assert_eq!(status(&ledger, a), Status::Disabled);
    let err = ledger.execute(cancel(second)).await.unwrap_err();
    assert!(
        matches!(
            err,
            LedgerError::Domain(DomainError::ScheduleNotOpen { status: "done", .. })
        ),
        "{err}"
    );
    let err = ledger.execute(cancel(9)).await.unwrap_err();
    assert!(matches!(
        err,
        LedgerError::Domain(DomainError::UnknownSchedule { schedule: 9, .. })
    ));
    ledger.close().await.unwrap();
}

#[tokio::test]
async fn schedules_are_refused_for_bad_selections_and_instants() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let ledger = open_at(dir.path(), &clock).await;
    register(&ledger, "d", 10).await;
    register(&ledger, "other", 10).await;
    let elsewhere = create(&ledger, "other", "x", true).await;
    let lock = Change::Disable {
        at_us: T0 + 2 * HOUR,
        until_us: Some(T0 + HOUR),
    };
    let err = schedule(&ledger, Target::Everyone, lock).await.unwrap_err();
    assert!(err.to_string().contains("until"), "{err}");
    let later = Change::Enable { at_us: T0 + HOUR };
    let err = schedule(&ledger, Target::Accounts(vec![elsewhere]), later)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        LedgerError::Domain(DomainError::UnknownAccount { .. })
    ));
    // Deleted in its own domain: still only unknown here (not "deleted", which would tell
    // this domain's admin something of another district).
    for command in [
        Command::Deactivate { account: elsewhere },
        Command::Delete { account: elsewhere },
    ] {
        ledger
            .execute(Request::manual("admin", command))
            .await
            .unwrap();
    }
    let err = schedule(&ledger, Target::Accounts(vec![elsewhere]), later)
        .await
        .unwrap_err();
    assert!(
        matches!(err, LedgerError::Domain(DomainError::UnknownAccount { .. })),
        "{err}"
    );
    let err = schedule(
        &ledger,
        Target::ImportIds {
            ids: vec!["nobody".into()],
            skip_unknown: false,
        },
        later,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("nobody"), "{err}");
    let err = schedule(&ledger, Target::Accounts(vec![]), later)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no account selected"), "{err}");
    let stored = ledger
        .read_domain("d", |s| s.domains["d"].schedules.len())
        .unwrap();
    assert_eq!(stored, 0);
    // A stored selection never holds import ids: they are resolved to account numbers.
    let a = create(&ledger, "d", "a", true).await;
    let id = schedule(
        &ledger,
        Target::ImportIds {
            ids: vec!["sis-a".into(), "sis-a".into()],
            skip_unknown: false,
        },
        later,
    )
    .await
    .unwrap();
    let selection = ledger
        .read_domain("d", |s| s.domains["d"].schedules[&id].selection.clone())
        .unwrap();
    assert_eq!(selection, Selection::Accounts(vec![a]));
    ledger.close().await.unwrap();
}
