//! The gRPC API end to end: every RPC, every status code, the two-step disable/delete,
//! idempotent request ids, subscriptions (catch-up then live) and as-of reads.

mod common;

use std::time::Duration;

use account_ledger::api::pb;
use account_ledger::domain::Command;
use account_ledger::ledger::Request as LedgerRequest;
use account_ledger::store::Source;
use common::*;
use tonic::Code;

fn status(a: &pb::Account) -> pb::AccountStatus {
    pb::AccountStatus::try_from(a.status).expect("known status")
}

#[tokio::test]
async fn commands_and_queries_round_trip() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    register(&mut c, "d1", 10).await;
    let ann = create_account(&mut c, ADMIN_D1, "d1", "ann", Some("S1")).await;
    let bob = create_account(&mut c, ADMIN_D1, "d1", "bob", None).await;
    let mut teacher = create("d1", "tess", Some("T1"));
    teacher.role = "teacher".into();
    teacher.enabled = Some(false);
    let tess = c
        .create_account(req(ADMIN_D1, teacher))
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap();

    // Addressed by id and by (domain, import id).
    let got = c
        .get_account(req(
            AUDITOR,
            pb::GetAccountRequest {
                account: by_import("d1", "S1"),
                as_of: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.id, ann);
    assert_eq!(got.profile.as_ref().unwrap().login, "ann");
    assert_eq!(status(&got), pb::AccountStatus::Enabled);

    // UpdateProfile.
    let r = c
        .update_profile(req(
            ADMIN_D1,
            pb::UpdateProfileRequest {
                account: by_id(bob),
                profile: profile("robert"),
                role: "teacher".into(),
                request_id: None,
                expected_version: Some(1),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.account_version, 2);

    // Deactivate, reactivate (disabled), enable.
    c.deactivate_account(req(ADMIN_D1, account_cmd(ann)))
        .await
        .unwrap();
    let r = c
        .reactivate_account(req(
            ADMIN_D1,
            pb::ReactivateAccountRequest {
                account: by_id(ann),
                enabled: Some(false),
                request_id: None,
                expected_version: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!r.positions.is_empty());
    let got = c
        .get_account(req(
            ADMIN_D1,
            pb::GetAccountRequest {
                account: by_id(ann),
                as_of: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status(&got), pb::AccountStatus::Disabled);
    c.enable_account(req(ADMIN_D1, account_cmd(ann)))
        .await
        .unwrap();
    // Enabling an enabled account is a no-op: nothing recorded.
    let again = c
        .enable_account(req(ADMIN_D1, account_cmd(ann)))
        .await
        .unwrap()
        .into_inner();
    assert!(again.positions.is_empty());

    // LMS reports.
    c.record_sign_in(req(
        LMS,
        pb::RecordSignInRequest {
            account: by_id(ann),
            at: None,
            request_id: None,
            expected_version: None,
        },
    ))
    .await
    .unwrap();
    c.record_data_owned(req(LMS, account_cmd(bob)))
        .await
        .unwrap();
    let got = c
        .get_account(req(
            AUDITOR,
            pb::GetAccountRequest {
                account: by_id(bob),
                as_of: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(got.owns_data);

    // CanSignIn.
    let can = |login: &str| pb::CanSignInRequest {
        domain: "d1".into(),
        login: login.into(),
    };
    let r = c
        .can_sign_in(req(LMS, can("ANN")))
        .await
        .unwrap()
        .into_inner();
    assert!(r.allowed);
    assert_eq!(r.account, Some(ann));
    let r = c
        .can_sign_in(req(LMS, can("tess")))
        .await
        .unwrap()
        .into_inner();
    assert!(!r.allowed);
    assert_eq!(r.status, pb::AccountStatus::Disabled as i32);
    let r = c
        .can_sign_in(req(LMS, can("nobody")))
        .await
        .unwrap()
        .into_inner();
    assert!(!r.allowed && r.account.is_none());

    // ListAccounts: default view hides disabled; filters; paging.
    let list = |include_disabled: bool,
                search: Option<&str>,
                role: Option<&str>,
                offset: u32,
                limit: u32| {
        pb::ListAccountsRequest {
            domain: "d1".into(),
            include_disabled,
            include_deactivated: false,
            search: search.map(str::to_string),
            role: role.map(str::to_string),
            offset,
            limit,
            as_of: None,
        }
    };
    let r = c
        .list_accounts(req(AUDITOR, list(false, None, None, 0, 0)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.total, 2);
    let r = c
        .list_accounts(req(AUDITOR, list(true, None, None, 0, 0)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.total, 3);
    let r = c
        .list_accounts(req(AUDITOR, list(true, None, None, 1, 1)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.total, r.accounts.len()), (3, 1));
    assert_eq!(r.accounts[0].id, bob);
    let r = c
        .list_accounts(req(AUDITOR, list(true, Some("T1"), None, 0, 0)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.accounts.iter().map(|a| a.id).collect::<Vec<_>>(),
        vec![tess]
    );
    let r = c
        .list_accounts(req(AUDITOR, list(true, None, Some("teacher"), 0, 0)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.total, 2);

    // SetLicenseLimit, with the domain stream's expected version.
    let r = c
        .set_license_limit(req(
            OPERATOR,
            pb::SetLicenseLimitRequest {
                domain: "d1".into(),
                license_limit: 10,
                request_id: None,
                expected_version: Some(1),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(r.positions.is_empty(), "same limit: nothing to change");
    let r = c
        .set_license_limit(req(
            OPERATOR,
            pb::SetLicenseLimitRequest {
                domain: "d1".into(),
                license_limit: 12,
                request_id: None,
                expected_version: Some(1),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.positions.len(), 1);
    c.set_license_limit(req(
        OPERATOR,
        pb::SetLicenseLimitRequest {
            domain: "d1".into(),
            license_limit: 10,
            request_id: None,
            expected_version: Some(2),
        },
    ))
    .await
    .unwrap();

    // The mass-change guard share, per domain; out of range is named.
    let guard = |percent: u32| {
        req(
            OPERATOR,
            pb::SetMassChangeGuardRequest {
                domain: "d1".into(),
                percent,
                request_id: None,
                expected_version: None,
            },
        )
    };
    let r = c
        .set_mass_change_guard(guard(25))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.positions.len(), 1);
    let err = c.set_mass_change_guard(guard(101)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("percent"), "{}", err.message());

    // License usage and the export (enabled + disabled, not deactivated).
    let u = c
        .get_license_usage(req(
            OPERATOR,
            pb::GetLicenseUsageRequest {
                domain: "d1".into(),
                as_of: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((u.used, u.limit), (2, 10));
    c.deactivate_account(req(ADMIN_D1, account_cmd(bob)))
        .await
        .unwrap();
    let mut stream = c
        .export_users(req(
            AUDITOR,
            pb::ExportUsersRequest {
                domain: "d1".into(),
                as_of: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let mut exported = Vec::new();
    while let Some(a) = stream.message().await.unwrap() {
        exported.push(a.id);
    }
    assert_eq!(exported, vec![ann, tess]);

    // History: who, when, what.
    let h = c
        .get_account_history(req(
            AUDITOR,
            pb::GetAccountHistoryRequest {
                account: by_id(ann),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .events;
    let kinds: Vec<&str> = h.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "AccountCreated",
            "AccountDeactivated",
            "AccountReactivated",
            "AccountDisabled",
            "AccountEnabled",
            "SignInRecorded"
        ]
    );
    assert_eq!(h[0].actor, "alice");
    assert_eq!(h.last().unwrap().actor, "lms");
    assert!(matches!(
        h.last().unwrap().source.as_ref().unwrap().kind,
        Some(pb::event_source::Kind::LmsReport(_))
    ));
    assert_eq!(h[0].domain, "d1");

    // ReadLog by position range.
    let log = c
        .read_log(req(
            AUDITOR,
            pb::ReadLogRequest {
                from_position: 2,
                to_position: 3,
                limit: 0,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(
        log.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert_eq!(log[0].kind, "AccountCreated");

    // Admin.
    let v = c
        .verify_projections(req(OPERATOR, pb::VerifyProjectionsRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert!(v.equal, "{}", v.detail);
    let total = server.ledger.log().last_position();
    let r = c
        .rebuild_projections(req(OPERATOR, pb::RebuildProjectionsRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.events_replayed, total);
    let v = c
        .verify_projections(req(OPERATOR, pb::VerifyProjectionsRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert!(v.equal, "{}", v.detail);
    server.stop().await;
}

#[tokio::test]
async fn every_status_code() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    register(&mut c, "d1", 2).await;
    let a = create_account(&mut c, ADMIN_D1, "d1", "ann", Some("S1")).await;
    let _b = create_account(&mut c, ADMIN_D1, "d1", "bob", None).await;

    // INVALID_ARGUMENT names the field.
    let mut no_profile = create("d1", "x", None);
    no_profile.profile = None;
    assert_status(
        c.create_account(req(ADMIN_D1, no_profile)).await,
        Code::InvalidArgument,
        &["profile"],
    );
    assert_status(
        c.create_account(req(ADMIN_D1, create("d1", "  ", None)))
            .await,
        Code::InvalidArgument,
        &["profile.login"],
    );
    assert_status(
        c.get_account(req(
            AUDITOR,
            pb::GetAccountRequest {
                account: None,
                as_of: None,
            },
        ))
        .await,
        Code::InvalidArgument,
        &["account"],
    );
    assert_status(
        c.get_account(req(
            AUDITOR,
            pb::GetAccountRequest {
                account: by_id(a),
                as_of: Some(prost_types::Timestamp {
                    seconds: 1,
                    nanos: -3,
                }),
            },
        ))
        .await,
        Code::InvalidArgument,
        &["as_of"],
    );
    assert_status(
        c.get_import_job_history(req(
            AUDITOR,
            pb::GetImportJobHistoryRequest {
                job_id: "nope".into(),
            },
        ))
        .await,
        Code::InvalidArgument,
        &["job_id"],
    );
    assert_status(
        c.read_log(req(
            AUDITOR,
            pb::ReadLogRequest {
                from_position: 5,
                to_position: 2,
                limit: 0,
            },
        ))
        .await,
        Code::InvalidArgument,
        &["to_position"],
    );
    let mut bad_rid = create("d1", "y", None);
    bad_rid.request_id = Some(String::new());
    assert_status(
        c.create_account(req(ADMIN_D1, bad_rid)).await,
        Code::InvalidArgument,
        &["request_id"],
    );

    // NOT_FOUND.
    assert_status(
        c.get_account(req(
            AUDITOR,
            pb::GetAccountRequest {
                account: by_id(999),
                as_of: None,
            },
        ))
        .await,
        Code::NotFound,
        &["999"],
    );
    assert_status(
        c.get_account(req(
            AUDITOR,
            pb::GetAccountRequest {
                account: by_import("d1", "nope"),
                as_of: None,
            },
        ))
        .await,
        Code::NotFound,
        &["nope"],
    );
    assert_status(
        c.get_license_usage(req(
            AUDITOR,
            pb::GetLicenseUsageRequest {
                domain: "zz".into(),
                as_of: None,
            },
        ))
        .await,
        Code::NotFound,
        &["zz"],
    );
    assert_status(
        c.set_license_limit(req(
            OPERATOR,
            pb::SetLicenseLimitRequest {
                domain: "zz".into(),
                license_limit: 1,
                request_id: None,
                expected_version: None,
            },
        ))
        .await,
        Code::NotFound,
        &["zz"],
    );
    assert_status(
        c.get_import_job_history(req(
            AUDITOR,
            pb::GetImportJobHistoryRequest {
                job_id: uuid::Uuid::new_v4().to_string(),
            },
        ))
        .await,
        Code::NotFound,
        &["import job"],
    );

    // ALREADY_EXISTS.
    assert_status(
        c.register_domain(req(
            OPERATOR,
            pb::RegisterDomainRequest {
                domain: "d1".into(),
                license_limit: 5,
                request_id: None,
                expected_version: None,
            },
        ))
        .await,
        Code::AlreadyExists,
        &["d1"],
    );
    let mut dup = create("d1", "other", Some("S1"));
    dup.enabled = Some(false);
    assert_status(
        c.create_account(req(ADMIN_D1, dup)).await,
        Code::AlreadyExists,
        &["S1"],
    );

    // FAILED_PRECONDITION: the license limit, naming limit and count.
    assert_status(
        c.create_account(req(ADMIN_D1, create("d1", "cy", None)))
            .await,
        Code::FailedPrecondition,
        &["license limit", "2 of 2"],
    );
    assert_status(
        c.set_license_limit(req(
            OPERATOR,
            pb::SetLicenseLimitRequest {
                domain: "d1".into(),
                license_limit: 1,
                request_id: None,
                expected_version: None,
            },
        ))
        .await,
        Code::FailedPrecondition,
        &["2 licenses in use", "1"],
    );

    // ABORTED: expected version mismatch (account and domain streams).
    let mut cmd = account_cmd(a);
    cmd.expected_version = Some(7);
    assert_status(
        c.deactivate_account(req(ADMIN_D1, cmd)).await,
        Code::Aborted,
        &["expected 7"],
    );
    assert_status(
        c.set_license_limit(req(
            OPERATOR,
            pb::SetLicenseLimitRequest {
                domain: "d1".into(),
                license_limit: 3,
                request_id: None,
                expected_version: Some(9),
            },
        ))
        .await,
        Code::Aborted,
        &["expected 9"],
    );

    // FAILED_PRECONDITION: Deleted is terminal.
    let warn = c
        .delete_account(req(ADMIN_D1, confirmable(a, None)))
        .await
        .unwrap()
        .into_inner();
    let Some(pb::confirmable_reply::Outcome::ConfirmationRequired(conf)) = warn.outcome else {
        panic!("expected a warning");
    };
    c.delete_account(req(ADMIN_D1, confirmable(a, Some(conf.confirmation_token))))
        .await
        .unwrap();
    assert_status(
        c.enable_account(req(ADMIN_D1, account_cmd(a))).await,
        Code::FailedPrecondition,
        &["deleted"],
    );
    assert_status(
        c.delete_account(req(ADMIN_D1, confirmable(a, None))).await,
        Code::FailedPrecondition,
        &["deleted"],
    );

    // UNAUTHENTICATED and PERMISSION_DENIED are covered in grpc_auth.rs.
    server.stop().await;
}

async fn next(s: &mut tonic::Streaming<pb::LedgerEvent>) -> pb::LedgerEvent {
    tokio::time::timeout(Duration::from_secs(10), s.message())
        .await
        .expect("event in time")
        .expect("stream ok")
        .expect("stream open")
}

fn token_of(reply: pb::ConfirmableReply) -> pb::Confirmation {
    match reply.outcome {
        Some(pb::confirmable_reply::Outcome::ConfirmationRequired(c)) => c,
        other => panic!("expected a warning, got {other:?}"),
    }
}

fn done_of(reply: pb::ConfirmableReply) -> pb::CommandReply {
    match reply.outcome {
        Some(pb::confirmable_reply::Outcome::Done(d)) => d,
        other => panic!("expected a result, got {other:?}"),
    }
}

#[tokio::test]
async fn disable_and_delete_take_two_steps() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    register(&mut c, "d1", 10).await;
    let a = create_account(&mut c, ADMIN_D1, "d1", "ann", None).await;
    let b = create_account(&mut c, ADMIN_D1, "d1", "bob", None).await;
    let last = server.ledger.log().last_position();

    // First call: a warning and a token; nothing recorded.
    let conf = token_of(
        c.disable_account(req(ADMIN_D1, confirmable(a, None)))
            .await
            .unwrap()
            .into_inner(),
    );
    assert!(conf.warning.contains("Disabling"), "{}", conf.warning);
    assert!(!conf.confirmation_token.is_empty());
    assert!(conf.expires_at.is_some());
    assert_eq!(server.ledger.log().last_position(), last);

    // A wrong token, or the token for another account or action, is refused.
    assert_status(
        c.disable_account(req(ADMIN_D1, confirmable(a, Some("bogus".into()))))
            .await,
        Code::FailedPrecondition,
        &["confirmation_token"],
    );
    assert_status(
        c.disable_account(req(
            ADMIN_D1,
            confirmable(b, Some(conf.confirmation_token.clone())),
        ))
        .await,
        Code::FailedPrecondition,
        &["confirmation_token"],
    );
    assert_status(
        c.delete_account(req(
            ADMIN_D1,
            confirmable(a, Some(conf.confirmation_token.clone())),
        ))
        .await,
        Code::FailedPrecondition,
        &["confirmation_token"],
    );
    assert_eq!(server.ledger.log().last_position(), last);

    // Second call with the token acts.
    let done = done_of(
        c.disable_account(req(ADMIN_D1, confirmable(a, Some(conf.confirmation_token))))
            .await
            .unwrap()
            .into_inner(),
    );
    assert_eq!(done.account, Some(a));
    assert_eq!(done.positions.len(), 1);
    assert!(!server.ledger.account(a).unwrap().enabled);

    // Delete: the warning says what is destroyed.
    c.record_sign_in(req(
        LMS,
        pb::RecordSignInRequest {
            account: by_id(b),
            at: None,
            request_id: None,
            expected_version: None,
        },
    ))
    .await
    .unwrap();
    c.record_data_owned(req(LMS, account_cmd(b))).await.unwrap();
    let conf = token_of(
        c.delete_account(req(ADMIN_D1, confirmable(b, None)))
            .await
            .unwrap()
            .into_inner(),
    );
    assert!(conf.owns_data && conf.signed_in && !conf.is_stub);
    assert!(conf.last_sign_in.is_some());
    assert!(conf.warning.contains("classes it owns"), "{}", conf.warning);
    assert!(
        conf.warning.contains("cannot be undone"),
        "{}",
        conf.warning
    );
    let stub = token_of(
        c.delete_account(req(ADMIN_D1, confirmable(a, None)))
            .await
            .unwrap()
            .into_inner(),
    );
    assert!(stub.is_stub && !stub.owns_data && !stub.signed_in);

    // A warning goes stale when the account changes before confirmation: ABORTED.
    c.enable_account(req(ADMIN_D1, account_cmd(a)))
        .await
        .unwrap();
    assert_status(
        c.delete_account(req(ADMIN_D1, confirmable(a, Some(stub.confirmation_token))))
            .await,
        Code::Aborted,
        &[],
    );

    // Confirmed delete.
    let done = done_of(
        c.delete_account(req(ADMIN_D1, confirmable(b, Some(conf.confirmation_token))))
            .await
            .unwrap()
            .into_inner(),
    );
    assert_eq!(done.account, Some(b));
    let got = c
        .get_account(req(
            AUDITOR,
            pb::GetAccountRequest {
                account: by_id(b),
                as_of: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status(&got), pb::AccountStatus::Deleted);
    assert_eq!(got.profile.unwrap().login, "", "personal data is erased");
    server.stop().await;
}

#[tokio::test]
async fn request_ids_make_retries_idempotent() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    register(&mut c, "d1", 10).await;
    let mut first = create("d1", "ann", Some("S1"));
    first.request_id = Some("create-ann".into());
    let r1 = c
        .create_account(req(ADMIN_D1, first.clone()))
        .await
        .unwrap()
        .into_inner();
    let last = server.ledger.log().last_position();
    let r2 = c
        .create_account(req(ADMIN_D1, first.clone()))
        .await
        .unwrap()
        .into_inner();
    assert!(!r1.replayed && r2.replayed);
    assert_eq!(r1.account, r2.account);
    assert_eq!(r1.positions, r2.positions);
    assert_eq!(
        server.ledger.log().last_position(),
        last,
        "a retry records nothing"
    );

    // A retried command on an account.
    let a = r1.account.unwrap();
    let mut cmd = account_cmd(a);
    cmd.request_id = Some("deact-1".into());
    let d1 = c
        .deactivate_account(req(ADMIN_D1, cmd.clone()))
        .await
        .unwrap()
        .into_inner();
    c.enable_account(req(ADMIN_D1, account_cmd(a)))
        .await
        .unwrap();
    let d2 = c
        .deactivate_account(req(ADMIN_D1, cmd))
        .await
        .unwrap()
        .into_inner();
    assert!(d2.replayed);
    assert_eq!(d1.positions, d2.positions);
    assert!(
        server.ledger.account(a).unwrap().active,
        "the retry did not deactivate again"
    );

    // A confirmed delete retried after the token is used up replays without a token.
    let warn = token_of(
        c.delete_account(req(ADMIN_D1, confirmable(a, None)))
            .await
            .unwrap()
            .into_inner(),
    );
    let mut del = confirmable(a, Some(warn.confirmation_token));
    del.request_id = Some("del-ann".into());
    let x = done_of(
        c.delete_account(req(ADMIN_D1, del.clone()))
            .await
            .unwrap()
            .into_inner(),
    );
    del.confirmation_token = None;
    let y = done_of(
        c.delete_account(req(ADMIN_D1, del))
            .await
            .unwrap()
            .into_inner(),
    );
    assert!(y.replayed);
    assert_eq!(x.positions, y.positions);
    server.stop().await;
}

#[tokio::test]
async fn subscription_sees_catch_up_then_live_events() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    register(&mut c, "d1", 10).await;
    register(&mut c, "d2", 10).await;
    let a = create_account(&mut c, ADMIN_D1, "d1", "ann", None).await;
    create_account(&mut c, ADMIN_D2, "d2", "zed", None).await;

    let mut stream = c
        .subscribe(req(
            AUDITOR,
            pb::SubscribeRequest {
                from_position: 0,
                domain: Some("d1".into()),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    // Catch-up: only d1's events, in order.
    let e1 = next(&mut stream).await;
    assert_eq!(
        (e1.kind.as_str(), e1.domain.as_str(), e1.position),
        ("DomainRegistered", "d1", 1)
    );
    let e2 = next(&mut stream).await;
    assert_eq!((e2.kind.as_str(), e2.account), ("AccountCreated", Some(a)));

    // Live: a d2 change is filtered out, a d1 change arrives.
    create_account(&mut c, ADMIN_D2, "d2", "zoe", None).await;
    c.deactivate_account(req(ADMIN_D1, account_cmd(a)))
        .await
        .unwrap();
    let e3 = next(&mut stream).await;
    assert_eq!(
        (e3.kind.as_str(), e3.account, e3.domain.as_str()),
        ("AccountDeactivated", Some(a), "d1")
    );
    assert!(e3.position > e2.position + 1, "d2's events were skipped");
    assert_eq!(e3.actor, "alice");
    drop(stream);
    server.stop().await;
}

#[tokio::test]
async fn as_of_reads_see_the_past() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    register(&mut c, "d1", 10).await;
    let a = create_account(&mut c, ADMIN_D1, "d1", "ann", None).await;
    let b = create_account(&mut c, ADMIN_D1, "d1", "bob", None).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let then = account_ledger::api::convert::us_to_timestamp(account_ledger::store::now_us());
    tokio::time::sleep(Duration::from_millis(20)).await;
    let conf = token_of(
        c.disable_account(req(ADMIN_D1, confirmable(a, None)))
            .await
            .unwrap()
            .into_inner(),
    );
    c.disable_account(req(ADMIN_D1, confirmable(a, Some(conf.confirmation_token))))
        .await
        .unwrap();
    c.deactivate_account(req(ADMIN_D1, account_cmd(b)))
        .await
        .unwrap();
    create_account(&mut c, ADMIN_D1, "d1", "cy", None).await;

    // Now.
    let now = c
        .get_account(req(
            AUDITOR,
            pb::GetAccountRequest {
                account: by_id(a),
                as_of: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status(&now), pb::AccountStatus::Disabled);
    // Then.
    let past = c
        .get_account(req(
            AUDITOR,
            pb::GetAccountRequest {
                account: by_id(a),
                as_of: Some(then),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status(&past), pb::AccountStatus::Enabled);
    assert_eq!(past.version, 1);
    let u = c
        .get_license_usage(req(
            AUDITOR,
            pb::GetLicenseUsageRequest {
                domain: "d1".into(),
                as_of: Some(then),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(u.used, 2);
    let u = c
        .get_license_usage(req(
            AUDITOR,
            pb::GetLicenseUsageRequest {
                domain: "d1".into(),
                as_of: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(u.used, 1);
    let list = c
        .list_accounts(req(
            AUDITOR,
            pb::ListAccountsRequest {
                domain: "d1".into(),
                include_disabled: false,
                include_deactivated: false,
                search: None,
                role: None,
                offset: 0,
                limit: 0,
                as_of: Some(then),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        list.accounts.iter().map(|x| x.id).collect::<Vec<_>>(),
        vec![a, b]
    );
    let mut s = c
        .export_users(req(
            AUDITOR,
            pb::ExportUsersRequest {
                domain: "d1".into(),
                as_of: Some(then),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let mut ids = Vec::new();
    while let Some(x) = s.message().await.unwrap() {
        ids.push(x.id);
    }
    assert_eq!(
        ids,
        vec![a, b],
        "cy did not exist then; bob was still active"
    );
    // Before the account existed: NOT_FOUND.
    let before = prost_types::Timestamp {
        seconds: 1,
        nanos: 0,
    };
    assert_status(
        c.get_account(req(
            AUDITOR,
            pb::GetAccountRequest {
                account: by_id(a),
                as_of: Some(before),
            },
        ))
        .await,
        Code::NotFound,
        &["did not exist"],
    );
    server.stop().await;
}

#[tokio::test]
async fn import_job_history_lists_a_jobs_events() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    register(&mut c, "d1", 10).await;
    register(&mut c, "d2", 10).await;
    // An import job's rows, written through the ledger as the import path does.
    let job = uuid::Uuid::new_v4();
    for (row, login) in [(2, "ann"), (3, "bob")] {
        server
            .ledger
            .execute(LedgerRequest {
                command: Command::CreateAccount {
                    domain: "d1".into(),
                    account: 0,
                    import_id: Some(format!("S{row}")),
                    profile: account_ledger::domain::Profile {
                        login: login.into(),
                        ..Default::default()
                    },
                    role: "student".into(),
                    enabled: true,
                },
                actor: "alice".into(),
                source: Source::Import {
                    job_id: job,
                    file: "users.csv".into(),
                    row,
                },
                request_id: None,
                expected_version: None,
            })
            .await
            .unwrap();
    }
    let events = c
        .get_import_job_history(req(
            ADMIN_D1,
            pb::GetImportJobHistoryRequest {
                job_id: job.to_string(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(events.len(), 2);
    match events[1].source.as_ref().and_then(|s| s.kind.clone()) {
        Some(pb::event_source::Kind::Import(i)) => {
            assert_eq!(
                (i.file.as_str(), i.row, i.job_id),
                ("users.csv", 3, job.to_string())
            );
        }
        other => panic!("expected an import source, got {other:?}"),
    }
    // Another domain's admin may not see it.
    assert_status(
        c.get_import_job_history(req(
            ADMIN_D2,
            pb::GetImportJobHistoryRequest {
                job_id: job.to_string(),
            },
        ))
        .await,
        Code::PermissionDenied,
        &[],
    );
    server.stop().await;
}
