//! ScheduleService over real gRPC (in-process server, real tonic client) with a clock the test
//! moves: a lock-out made, listed, fired and seen in an account's history; who may do what;
//! bad requests named by field. Each test runs on sled and on PostgreSQL.

mod common;

use std::sync::Arc;

use account_ledger::api::convert::us_to_timestamp;
use account_ledger::api::pb::{self, schedule_service_client::ScheduleServiceClient};
use account_ledger::ledger::ManualClock;
use common::*;
use tonic::Code;
use tonic::transport::Channel;

const HOUR: i64 = 3_600_000_000;
const T0: i64 = 1_800_000_000_000_000;

fn lock_out(selection: pb::schedule_selection::Kind) -> pb::ScheduleChangeRequest {
    pb::ScheduleChangeRequest {
        domain: "d1".into(),
        selection: Some(pb::ScheduleSelection {
            kind: Some(selection),
        }),
        action: pb::ScheduledAction::Disable as i32,
        at: Some(us_to_timestamp(T0 + HOUR)),
        until: Some(us_to_timestamp(T0 + 2 * HOUR)),
        reason: "summer break".into(),
        request_id: None,
    }
}

async fn start(
    backend: Backend,
) -> (
    TestServer,
    Client,
    ScheduleServiceClient<Channel>,
    Arc<ManualClock>,
    u64,
    u64,
) {
    let clock = Arc::new(ManualClock::new(T0));
    let server = TestServer::start_on(backend, clock.clone()).await;
    let mut c = server.client().await;
    register(&mut c, "d1", 10).await;
    let ann = create_account(&mut c, ADMIN_D1, "d1", "ann", Some("S1")).await;
    let mut teacher = create("d1", "tess", Some("T1"));
    teacher.role = "teacher".into();
    let tess = c
        .create_account(req(ADMIN_D1, teacher))
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap();
    let s = ScheduleServiceClient::connect(format!("http://{}", server.addr))
        .await
        .unwrap();
    (server, c, s, clock, ann, tess)
}

async fn list(s: &mut ScheduleServiceClient<Channel>, token: &str) -> Vec<pb::ScheduledChange> {
    s.list_schedules(req(
        token,
        pb::ListSchedulesRequest {
            domain: "d1".into(),
        },
    ))
    .await
    .unwrap()
    .into_inner()
    .schedules
}

async fn status(c: &mut Client, id: u64) -> i32 {
    c.get_account(req(ADMIN_D1, get_request(by_id(id), None)))
        .await
        .unwrap()
        .into_inner()
        .status
}

async fn a_lock_out_is_listed_fires_on_time_and_names_itself_in_the_history(backend: Backend) {
    let (server, mut c, mut s, clock, ann, tess) = start(backend).await;
    let made = s
        .schedule_change(req(
            ADMIN_D1,
            lock_out(pb::schedule_selection::Kind::Role("student".into())),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((made.schedule, made.status.as_str()), (1, "pending"));
    assert!(made.position > 0);
    let listed = list(&mut s, AUDITOR).await;
    assert_eq!(
        listed,
        vec![pb::ScheduledChange {
            position: listed[0].position,
            ..made.clone()
        }]
    );

    clock.set(T0 + HOUR);
    server.ledger.fire_due_schedules().await.unwrap();
    assert_eq!(
        status(&mut c, ann).await,
        pb::AccountStatus::Disabled as i32
    );
    assert_eq!(
        status(&mut c, tess).await,
        pb::AccountStatus::Enabled as i32
    );
    let history = account_history(&mut c, ADMIN_D1, ann).await;
    let last = history.last().unwrap();
    assert_eq!(last.kind, "AccountDisabled");
    assert_eq!(last.actor, account_ledger::ledger::SCHEDULER);
    assert_eq!(
        last.source.as_ref().and_then(|s| s.kind.clone()),
        Some(pb::event_source::Kind::Schedule(pb::ScheduleFiring {
            schedule: 1,
            phase: "start".into()
        }))
    );
    let running = list(&mut s, ADMIN_D1).await;
    assert_eq!(
        (
            running[0].status.as_str(),
            running[0].changed,
            running[0].held
        ),
        ("started", 1, 1)
    );

    clock.set(T0 + 2 * HOUR);
    server.ledger.fire_due_schedules().await.unwrap();
    assert_eq!(status(&mut c, ann).await, pb::AccountStatus::Enabled as i32);
    server.stop().await;
}

async fn only_admins_of_the_domain_schedule_and_auditors_only_list(backend: Backend) {
    let (server, _c, mut s, _clock, _, _) = start(backend).await;
    let everyone = || lock_out(pb::schedule_selection::Kind::Everyone(true));
    assert_status(
        s.schedule_change(req(ADMIN_D2, everyone())).await,
        Code::PermissionDenied,
        &["d1"],
    );
    assert_status(
        s.schedule_change(req(AUDITOR, everyone())).await,
        Code::PermissionDenied,
        &[],
    );
    assert_status(
        s.list_schedules(req(
            ADMIN_D2,
            pb::ListSchedulesRequest {
                domain: "d1".into(),
            },
        ))
        .await,
        Code::PermissionDenied,
        &[],
    );
    let made = s
        .schedule_change(req(ADMIN_D1, everyone()))
        .await
        .unwrap()
        .into_inner();
    assert_status(
        s.cancel_schedule(req(
            AUDITOR,
            pb::CancelScheduleRequest {
                domain: "d1".into(),
                schedule: made.schedule,
                reason: "no".into(),
            },
        ))
        .await,
        Code::PermissionDenied,
        &[],
    );
    let cancelled = s
        .cancel_schedule(req(
            ADMIN_D1,
            pb::CancelScheduleRequest {
                domain: "d1".into(),
                schedule: made.schedule,
                reason: "plans changed".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.status, "cancelled");
    assert_status(
        s.cancel_schedule(req(
            ADMIN_D1,
            pb::CancelScheduleRequest {
                domain: "d1".into(),
                schedule: made.schedule,
                reason: "again".into(),
            },
        ))
        .await,
        Code::FailedPrecondition,
        &["cancelled"],
    );
    assert_status(
        s.cancel_schedule(req(
            ADMIN_D1,
            pb::CancelScheduleRequest {
                domain: "d1".into(),
                schedule: 42,
                reason: "x".into(),
            },
        ))
        .await,
        Code::NotFound,
        &["42"],
    );
    server.stop().await;
}

async fn bad_schedule_requests_name_their_field(backend: Backend) {
    let (server, _c, mut s, _clock, _, _) = start(backend).await;
    let base = || lock_out(pb::schedule_selection::Kind::Everyone(true));
    let cases: Vec<(pb::ScheduleChangeRequest, Code, &str)> = vec![
        (
            pb::ScheduleChangeRequest {
                at: Some(us_to_timestamp(T0 - HOUR)),
                ..base()
            },
            Code::InvalidArgument,
            "at",
        ),
        (
            pb::ScheduleChangeRequest { at: None, ..base() },
            Code::InvalidArgument,
            "at",
        ),
        (
            pb::ScheduleChangeRequest {
                selection: None,
                ..base()
            },
            Code::InvalidArgument,
            "selection",
        ),
        (
            pb::ScheduleChangeRequest {
                action: 0,
                ..base()
            },
            Code::InvalidArgument,
            "action",
        ),
        (
            pb::ScheduleChangeRequest {
                action: pb::ScheduledAction::Enable as i32,
                ..base()
            },
            Code::InvalidArgument,
            "until",
        ),
        (
            pb::ScheduleChangeRequest {
                until: Some(us_to_timestamp(T0)),
                ..base()
            },
            Code::InvalidArgument,
            "until",
        ),
        (
            pb::ScheduleChangeRequest {
                reason: " ".into(),
                ..base()
            },
            Code::InvalidArgument,
            "reason",
        ),
        (
            lock_out(pb::schedule_selection::Kind::ImportIds(pb::ImportIds {
                ids: vec!["nobody".into()],
            })),
            Code::InvalidArgument,
            "nobody",
        ),
        (
            lock_out(pb::schedule_selection::Kind::Accounts(pb::AccountIds {
                ids: vec![999],
            })),
            Code::NotFound,
            "999",
        ),
        (
            pb::ScheduleChangeRequest {
                domain: "nope".into(),
                ..base()
            },
            Code::PermissionDenied,
            "nope",
        ),
    ];
    for (request, code, needle) in cases {
        assert_status(
            s.schedule_change(req(ADMIN_D1, request)).await,
            code,
            &[needle],
        );
    }
    let listed = list(&mut s, ADMIN_D1).await;
    assert!(listed.is_empty(), "{listed:?}");
    server.stop().await;
}

/// A schedule retried with its request id answers the first schedule; a request id first
/// used by an account command is refused naming the field (not an internal error).
async fn a_schedules_request_id_answers_its_first_schedule_only(backend: Backend) {
    let (server, mut c, mut s, _clock, _, _) = start(backend).await;
    let with_id = |id: &str| pb::ScheduleChangeRequest {
        request_id: Some(id.into()),
        ..lock_out(pb::schedule_selection::Kind::Everyone(true))
    };
    let first = s
        .schedule_change(req(ADMIN_D1, with_id("summer-1")))
        .await
        .unwrap()
        .into_inner();
    let again = s
        .schedule_change(req(ADMIN_D1, with_id("summer-1")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.schedule, first.schedule);
    assert_eq!(list(&mut s, ADMIN_D1).await.len(), 1, "made once");
    c.create_account(req(
        ADMIN_D1,
        pb::CreateAccountRequest {
            request_id: Some("used-by-create".into()),
            ..create("d1", "cleo", Some("S9"))
        },
    ))
    .await
    .unwrap();
    assert_status(
        s.schedule_change(req(ADMIN_D1, with_id("used-by-create")))
            .await,
        Code::FailedPrecondition,
        &["request_id"],
    );
    assert_eq!(list(&mut s, ADMIN_D1).await.len(), 1, "nothing made");
    server.stop().await;
}

on_both_backends!(
    a_schedules_request_id_answers_its_first_schedule_only,
    a_lock_out_is_listed_fires_on_time_and_names_itself_in_the_history,
    only_admins_of_the_domain_schedule_and_auditors_only_list,
    bad_schedule_requests_name_their_field
);
