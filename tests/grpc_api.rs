//! The gRPC API end to end, one behaviour per test: every RPC, every status code, the two-step
//! disable/delete, idempotent request ids, subscriptions (catch-up then live), as-of reads and
//! import-job history. Each test starts its own server; the shared setup (domains, accounts,
//! commands run as a given token) is in `common`.

mod common;

use account_ledger::api::pb;
use common::*;
use tonic::Code;

fn status(a: &pb::Account) -> pb::AccountStatus {
    pb::AccountStatus::try_from(a.status).expect("known status")
}

// ---------------------------------------------------------------------------------------------
// Commands and queries.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn get_account_by_import_key_finds_the_account() {
    let Roster {
        server, mut c, ann, ..
    } = Roster::start().await;
    let got = get_account(&mut c, AUDITOR, by_import("d1", "S1"), None).await;
    assert_eq!(got.id, ann);
    assert_eq!(got.profile.as_ref().unwrap().login, "ann");
    assert_eq!(status(&got), pb::AccountStatus::Enabled);
    server.stop().await;
}

#[tokio::test]
async fn update_profile_at_the_expected_version_bumps_the_account_version() {
    let Roster {
        server, mut c, bob, ..
    } = Roster::start().await;
    let r = update_profile(&mut c, ADMIN_D1, bob, "robert", "teacher", Some(1)).await;
    assert_eq!(r.account_version, 2);
    server.stop().await;
}

#[tokio::test]
async fn reactivating_with_enabled_false_leaves_the_account_disabled() {
    let Roster {
        server, mut c, ann, ..
    } = Roster::start().await;
    deactivate(&mut c, ADMIN_D1, ann).await;
    let r = reactivate(&mut c, ADMIN_D1, ann, Some(false)).await;
    assert!(!r.positions.is_empty());
    let got = get_account(&mut c, ADMIN_D1, by_id(ann), None).await;
    assert_eq!(status(&got), pb::AccountStatus::Disabled);
    server.stop().await;
}

#[tokio::test]
async fn enabling_an_enabled_account_records_nothing() {
    let Roster {
        server, mut c, ann, ..
    } = Roster::start().await;
    // Disabled by a reactivation, then enabled: the second enable is a no-op.
    deactivate(&mut c, ADMIN_D1, ann).await;
    reactivate(&mut c, ADMIN_D1, ann, Some(false)).await;
    enable(&mut c, ADMIN_D1, ann).await;
    let again = enable(&mut c, ADMIN_D1, ann).await;
    assert!(again.positions.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn lms_report_of_owned_data_shows_on_the_account() {
    let Roster {
        server, mut c, bob, ..
    } = Roster::start().await;
    record_data_owned(&mut c, bob).await;
    let got = get_account(&mut c, AUDITOR, by_id(bob), None).await;
    assert!(got.owns_data);
    server.stop().await;
}

fn can(login: &str) -> pb::CanSignInRequest {
    pb::CanSignInRequest {
        domain: "d1".into(),
        login: login.into(),
    }
}

#[tokio::test]
async fn can_sign_in_allows_an_enabled_account_by_case_insensitive_login() {
    let Roster {
        server, mut c, ann, ..
    } = Roster::start().await;
    let r = c
        .can_sign_in(req(LMS, can("ANN")))
        .await
        .unwrap()
        .into_inner();
    assert!(r.allowed);
    assert_eq!(r.account, Some(ann));
    server.stop().await;
}

#[tokio::test]
async fn can_sign_in_refuses_a_disabled_account_and_names_its_status() {
    let Roster { server, mut c, .. } = Roster::start().await;
    let r = c
        .can_sign_in(req(LMS, can("tess")))
        .await
        .unwrap()
        .into_inner();
    assert!(!r.allowed);
    assert_eq!(r.status, pb::AccountStatus::Disabled as i32);
    server.stop().await;
}

#[tokio::test]
async fn can_sign_in_refuses_an_unknown_login_without_an_account() {
    let Roster { server, mut c, .. } = Roster::start().await;
    let r = c
        .can_sign_in(req(LMS, can("nobody")))
        .await
        .unwrap()
        .into_inner();
    assert!(!r.allowed && r.account.is_none());
    server.stop().await;
}

#[tokio::test]
async fn list_accounts_hides_disabled_accounts_by_default() {
    let Roster { server, mut c, .. } = Roster::start().await;
    let r = c
        .list_accounts(req(AUDITOR, list_request("d1")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.total, 2);
    server.stop().await;
}

#[tokio::test]
async fn list_accounts_includes_disabled_accounts_when_asked() {
    let Roster { server, mut c, .. } = Roster::start().await;
    let all = pb::ListAccountsRequest {
        include_disabled: true,
        ..list_request("d1")
    };
    let r = c
        .list_accounts(req(AUDITOR, all))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.total, 3);
    server.stop().await;
}

#[tokio::test]
async fn list_accounts_pages_by_offset_and_limit_and_reports_the_total() {
    let Roster {
        server, mut c, bob, ..
    } = Roster::start().await;
    let page = pb::ListAccountsRequest {
        include_disabled: true,
        offset: 1,
        limit: 1,
        ..list_request("d1")
    };
    let r = c
        .list_accounts(req(AUDITOR, page))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.total, r.accounts.len()), (3, 1));
    assert_eq!(r.accounts[0].id, bob);
    server.stop().await;
}

#[tokio::test]
async fn list_accounts_pages_by_token_to_the_end() {
    let Roster { server, mut c, .. } = Roster::start().await;
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = pb::ListAccountsRequest {
            include_disabled: true,
            limit: 2,
            page_token: token.clone(),
            ..list_request("d1")
        };
        let r = c
            .list_accounts(req(AUDITOR, page))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.total, 3);
        seen.extend(r.accounts.iter().map(|a| a.id));
        if r.next_page_token.is_empty() {
            break;
        }
        token = r.next_page_token;
    }
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!((seen.len(), seen), (3, sorted));
    server.stop().await;
}

#[tokio::test]
async fn list_accounts_refuses_a_page_token_it_did_not_give_out() {
    let Roster { server, mut c, .. } = Roster::start().await;
    let page = pb::ListAccountsRequest {
        page_token: "page-2".into(),
        ..list_request("d1")
    };
    assert_status(
        c.list_accounts(req(AUDITOR, page)).await,
        Code::InvalidArgument,
        &["page_token", "page-2"],
    );
    server.stop().await;
}

#[tokio::test]
async fn list_accounts_search_finds_name_words_by_prefix_in_any_case() {
    let Roster {
        server,
        mut c,
        tess,
        ..
    } = Roster::start().await;
    let name = c
        .get_account(req(AUDITOR, get_request(by_id(tess), None)))
        .await
        .unwrap()
        .into_inner()
        .profile
        .unwrap()
        .last_name;
    let search = pb::ListAccountsRequest {
        include_disabled: true,
        search: Some(name[..2].to_uppercase()),
        ..list_request("d1")
    };
    let r = c
        .list_accounts(req(AUDITOR, search))
        .await
        .unwrap()
        .into_inner();
    assert!(r.accounts.iter().any(|a| a.id == tess), "{name}");
    server.stop().await;
}

#[tokio::test]
async fn list_accounts_search_matches_the_import_id() {
    let Roster {
        server,
        mut c,
        tess,
        ..
    } = Roster::start().await;
    let search = pb::ListAccountsRequest {
        include_disabled: true,
        search: Some("T1".into()),
        ..list_request("d1")
    };
    let r = c
        .list_accounts(req(AUDITOR, search))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.accounts.iter().map(|a| a.id).collect::<Vec<_>>(),
        vec![tess]
    );
    server.stop().await;
}

#[tokio::test]
async fn list_accounts_filters_by_role() {
    let Roster {
        server, mut c, bob, ..
    } = Roster::start().await;
    // Teachers: tess, and bob once his role is changed.
    update_profile(&mut c, ADMIN_D1, bob, "robert", "teacher", Some(1)).await;
    let teachers = pb::ListAccountsRequest {
        include_disabled: true,
        role: Some("teacher".into()),
        ..list_request("d1")
    };
    let r = c
        .list_accounts(req(AUDITOR, teachers))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.total, 2);
    server.stop().await;
}

#[tokio::test]
async fn setting_the_same_license_limit_records_nothing_and_keeps_the_domain_version() {
    let Roster { server, mut c, .. } = Roster::start().await;
    let r = c
        .set_license_limit(req(OPERATOR, license_limit_request("d1", 10, Some(1))))
        .await
        .unwrap()
        .into_inner();
    assert!(r.positions.is_empty(), "same limit: nothing to change");
    // The domain stream is still at version 1.
    c.set_license_limit(req(OPERATOR, license_limit_request("d1", 12, Some(1))))
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn changing_the_license_limit_records_one_event_and_bumps_the_domain_version() {
    let Roster { server, mut c, .. } = Roster::start().await;
    let r = c
        .set_license_limit(req(OPERATOR, license_limit_request("d1", 12, Some(1))))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.positions.len(), 1);
    c.set_license_limit(req(OPERATOR, license_limit_request("d1", 10, Some(2))))
        .await
        .unwrap();
    server.stop().await;
}

fn guard(percent: u32) -> tonic::Request<pb::SetMassChangeGuardRequest> {
    req(
        OPERATOR,
        pb::SetMassChangeGuardRequest {
            domain: "d1".into(),
            percent,
            request_id: None,
            expected_version: None,
        },
    )
}

#[tokio::test]
async fn set_mass_change_guard_records_the_domains_share() {
    let Roster { server, mut c, .. } = Roster::start().await;
    let r = c
        .set_mass_change_guard(guard(25))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.positions.len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_mass_change_guard_over_100_percent_is_invalid_argument_naming_percent() {
    let Roster { server, mut c, .. } = Roster::start().await;
    let err = c.set_mass_change_guard(guard(101)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("percent"), "{}", err.message());
    server.stop().await;
}

#[tokio::test]
async fn license_usage_counts_enabled_accounts_against_the_limit() {
    let Roster { server, mut c, .. } = Roster::start().await;
    let u = license_usage(&mut c, OPERATOR, "d1", None).await;
    assert_eq!((u.used, u.limit), (2, 10));
    server.stop().await;
}

#[tokio::test]
async fn export_users_streams_enabled_and_disabled_but_not_deactivated_accounts() {
    let Roster {
        server,
        mut c,
        ann,
        bob,
        tess,
    } = Roster::start().await;
    deactivate(&mut c, ADMIN_D1, bob).await;
    let exported = export_ids(&mut c, AUDITOR, "d1", None).await;
    assert_eq!(exported, vec![ann, tess]);
    server.stop().await;
}

#[tokio::test]
async fn account_history_says_what_happened_who_did_it_and_from_where() {
    let Roster {
        server, mut c, ann, ..
    } = Roster::start().await;
    deactivate(&mut c, ADMIN_D1, ann).await;
    reactivate(&mut c, ADMIN_D1, ann, Some(false)).await;
    enable(&mut c, ADMIN_D1, ann).await;
    record_sign_in(&mut c, ann).await;
    let h = account_history(&mut c, AUDITOR, ann).await;
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
    server.stop().await;
}

#[tokio::test]
async fn read_log_returns_the_events_of_a_position_range() {
    let Roster { server, mut c, .. } = Roster::start().await;
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
    server.stop().await;
}

#[tokio::test]
async fn verify_projections_finds_the_live_projections_equal_to_a_replay() {
    let mut roster = Roster::start().await;
    roster.make_one_of_each_change().await;
    let Roster { server, mut c, .. } = roster;
    let v = c
        .verify_projections(req(OPERATOR, pb::VerifyProjectionsRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert!(v.equal, "{}", v.detail);
    server.stop().await;
}

#[tokio::test]
async fn rebuild_projections_replays_the_whole_log_and_still_verifies_equal() {
    let mut roster = Roster::start().await;
    roster.make_one_of_each_change().await;
    let Roster { server, mut c, .. } = roster;
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

// ---------------------------------------------------------------------------------------------
// Status codes, against d1 at its license limit (2 of 2: ann with import id S1, and bob).
// UNAUTHENTICATED and PERMISSION_DENIED are covered in grpc_auth.rs.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn create_account_without_a_profile_is_invalid_argument_naming_profile() {
    let (server, mut c, _) = start_with_d1_full().await;
    let mut no_profile = create("d1", "x", None);
    no_profile.profile = None;
    assert_status(
        c.create_account(req(ADMIN_D1, no_profile)).await,
        Code::InvalidArgument,
        &["profile"],
    );
    server.stop().await;
}

#[tokio::test]
async fn create_account_with_a_blank_login_is_invalid_argument_naming_profile_login() {
    let (server, mut c, _) = start_with_d1_full().await;
    assert_status(
        c.create_account(req(ADMIN_D1, create("d1", "  ", None)))
            .await,
        Code::InvalidArgument,
        &["profile.login"],
    );
    server.stop().await;
}

#[tokio::test]
async fn get_account_without_an_account_is_invalid_argument_naming_account() {
    let (server, mut c, _) = start_with_d1_full().await;
    assert_status(
        c.get_account(req(AUDITOR, get_request(None, None))).await,
        Code::InvalidArgument,
        &["account"],
    );
    server.stop().await;
}

#[tokio::test]
async fn get_account_with_a_malformed_as_of_is_invalid_argument_naming_as_of() {
    let (server, mut c, a) = start_with_d1_full().await;
    let bad = prost_types::Timestamp {
        seconds: 1,
        nanos: -3,
    };
    assert_status(
        c.get_account(req(AUDITOR, get_request(by_id(a), Some(bad))))
            .await,
        Code::InvalidArgument,
        &["as_of"],
    );
    server.stop().await;
}

#[tokio::test]
async fn import_job_history_with_a_malformed_job_id_is_invalid_argument_naming_job_id() {
    let (server, mut c, _) = start_with_d1_full().await;
    assert_status(
        c.get_import_job_history(req(
            AUDITOR,
            pb::GetImportJobHistoryRequest {
                job_id: "nope".into(),
                ..Default::default()
            },
        ))
        .await,
        Code::InvalidArgument,
        &["job_id"],
    );
    server.stop().await;
}

#[tokio::test]
async fn read_log_ending_before_it_starts_is_invalid_argument_naming_to_position() {
    let (server, mut c, _) = start_with_d1_full().await;
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
    server.stop().await;
}

#[tokio::test]
async fn an_empty_request_id_is_invalid_argument_naming_request_id() {
    let (server, mut c, _) = start_with_d1_full().await;
    let mut bad_rid = create("d1", "y", None);
    bad_rid.request_id = Some(String::new());
    assert_status(
        c.create_account(req(ADMIN_D1, bad_rid)).await,
        Code::InvalidArgument,
        &["request_id"],
    );
    server.stop().await;
}

#[tokio::test]
async fn get_account_of_an_unknown_id_is_not_found_naming_the_id() {
    let (server, mut c, _) = start_with_d1_full().await;
    assert_status(
        c.get_account(req(AUDITOR, get_request(by_id(999), None)))
            .await,
        Code::NotFound,
        &["999"],
    );
    server.stop().await;
}

#[tokio::test]
async fn get_account_of_an_unknown_import_id_is_not_found_naming_the_import_id() {
    let (server, mut c, _) = start_with_d1_full().await;
    assert_status(
        c.get_account(req(AUDITOR, get_request(by_import("d1", "nope"), None)))
            .await,
        Code::NotFound,
        &["nope"],
    );
    server.stop().await;
}

#[tokio::test]
async fn license_usage_of_an_unknown_domain_is_not_found_naming_the_domain() {
    let (server, mut c, _) = start_with_d1_full().await;
    assert_status(
        c.get_license_usage(req(AUDITOR, usage_request("zz", None)))
            .await,
        Code::NotFound,
        &["zz"],
    );
    server.stop().await;
}

#[tokio::test]
async fn set_license_limit_of_an_unknown_domain_is_not_found_naming_the_domain() {
    let (server, mut c, _) = start_with_d1_full().await;
    assert_status(
        c.set_license_limit(req(OPERATOR, license_limit_request("zz", 1, None)))
            .await,
        Code::NotFound,
        &["zz"],
    );
    server.stop().await;
}

#[tokio::test]
async fn history_of_an_unknown_import_job_is_not_found() {
    let (server, mut c, _) = start_with_d1_full().await;
    assert_status(
        c.get_import_job_history(req(
            AUDITOR,
            pb::GetImportJobHistoryRequest {
                job_id: uuid::Uuid::new_v4().to_string(),
                ..Default::default()
            },
        ))
        .await,
        Code::NotFound,
        &["import job"],
    );
    server.stop().await;
}

#[tokio::test]
async fn registering_an_existing_domain_is_already_exists() {
    let (server, mut c, _) = start_with_d1_full().await;
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
    server.stop().await;
}

#[tokio::test]
async fn creating_an_account_with_a_taken_import_id_is_already_exists() {
    let (server, mut c, _) = start_with_d1_full().await;
    let mut dup = create("d1", "other", Some("S1"));
    dup.enabled = Some(false);
    assert_status(
        c.create_account(req(ADMIN_D1, dup)).await,
        Code::AlreadyExists,
        &["S1"],
    );
    server.stop().await;
}

#[tokio::test]
async fn creating_beyond_the_license_limit_is_failed_precondition_naming_limit_and_count() {
    let (server, mut c, _) = start_with_d1_full().await;
    assert_status(
        c.create_account(req(ADMIN_D1, create("d1", "cy", None)))
            .await,
        Code::FailedPrecondition,
        &["license limit", "2 of 2"],
    );
    server.stop().await;
}

#[tokio::test]
async fn lowering_the_license_limit_below_usage_is_failed_precondition() {
    let (server, mut c, _) = start_with_d1_full().await;
    assert_status(
        c.set_license_limit(req(OPERATOR, license_limit_request("d1", 1, None)))
            .await,
        Code::FailedPrecondition,
        &["2 licenses in use", "1"],
    );
    server.stop().await;
}

#[tokio::test]
async fn a_wrong_expected_version_of_an_account_is_aborted() {
    let (server, mut c, a) = start_with_d1_full().await;
    let mut cmd = account_cmd(a);
    cmd.expected_version = Some(7);
    assert_status(
        c.deactivate_account(req(ADMIN_D1, cmd)).await,
        Code::Aborted,
        &["expected 7"],
    );
    server.stop().await;
}

#[tokio::test]
async fn a_wrong_expected_version_of_a_domain_is_aborted() {
    let (server, mut c, _) = start_with_d1_full().await;
    assert_status(
        c.set_license_limit(req(OPERATOR, license_limit_request("d1", 3, Some(9))))
            .await,
        Code::Aborted,
        &["expected 9"],
    );
    server.stop().await;
}

#[tokio::test]
async fn a_deleted_account_cannot_be_enabled() {
    let (server, mut c, a) = start_with_d1_full().await;
    delete_confirmed(&mut c, ADMIN_D1, a).await;
    assert_status(
        c.enable_account(req(ADMIN_D1, account_cmd(a))).await,
        Code::FailedPrecondition,
        &["deleted"],
    );
    server.stop().await;
}

#[tokio::test]
async fn a_deleted_account_cannot_be_deleted_again() {
    let (server, mut c, a) = start_with_d1_full().await;
    delete_confirmed(&mut c, ADMIN_D1, a).await;
    assert_status(
        c.delete_account(req(ADMIN_D1, confirmable(a, None))).await,
        Code::FailedPrecondition,
        &["deleted"],
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Disable and delete take two steps: a warning with a confirmation token, then the act.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn disable_without_a_token_warns_and_records_nothing() {
    let (server, mut c, a, _) = start_with_two_d1_accounts().await;
    let last = server.ledger.log().last_position();
    let conf = ask_to_disable(&mut c, ADMIN_D1, a).await;
    assert!(conf.warning.contains("Disabling"), "{}", conf.warning);
    assert!(!conf.confirmation_token.is_empty());
    assert!(conf.expires_at.is_some());
    assert_eq!(server.ledger.log().last_position(), last);
    server.stop().await;
}

#[tokio::test]
async fn disable_refuses_a_bogus_confirmation_token() {
    let (server, mut c, a, _) = start_with_two_d1_accounts().await;
    ask_to_disable(&mut c, ADMIN_D1, a).await;
    let last = server.ledger.log().last_position();
    assert_status(
        c.disable_account(req(ADMIN_D1, confirmable(a, Some("bogus".into()))))
            .await,
        Code::FailedPrecondition,
        &["confirmation_token"],
    );
    assert_eq!(server.ledger.log().last_position(), last);
    server.stop().await;
}

#[tokio::test]
async fn a_confirmation_token_is_bound_to_its_account() {
    let (server, mut c, a, b) = start_with_two_d1_accounts().await;
    let conf = ask_to_disable(&mut c, ADMIN_D1, a).await;
    let last = server.ledger.log().last_position();
    assert_status(
        c.disable_account(req(
            ADMIN_D1,
            confirmable(b, Some(conf.confirmation_token.clone())),
        ))
        .await,
        Code::FailedPrecondition,
        &["confirmation_token"],
    );
    assert_eq!(server.ledger.log().last_position(), last);
    server.stop().await;
}

#[tokio::test]
async fn a_confirmation_token_is_bound_to_its_action() {
    let (server, mut c, a, _) = start_with_two_d1_accounts().await;
    let conf = ask_to_disable(&mut c, ADMIN_D1, a).await;
    let last = server.ledger.log().last_position();
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
    server.stop().await;
}

#[tokio::test]
async fn disable_with_its_confirmation_token_disables_the_account() {
    let (server, mut c, a, _) = start_with_two_d1_accounts().await;
    let conf = ask_to_disable(&mut c, ADMIN_D1, a).await;
    let done = done_of(
        c.disable_account(req(ADMIN_D1, confirmable(a, Some(conf.confirmation_token))))
            .await
            .unwrap()
            .into_inner(),
    );
    assert_eq!(done.account, Some(a));
    assert_eq!(done.positions.len(), 1);
    assert!(!server.ledger.account(a).unwrap().enabled);
    server.stop().await;
}

#[tokio::test]
async fn delete_warning_says_what_is_destroyed() {
    let (server, mut c, _, b) = start_with_two_d1_accounts().await;
    record_sign_in(&mut c, b).await;
    record_data_owned(&mut c, b).await;
    let conf = ask_to_delete(&mut c, ADMIN_D1, b).await;
    assert!(conf.owns_data && conf.signed_in && !conf.is_stub);
    assert!(conf.last_sign_in.is_some());
    assert!(conf.warning.contains("classes it owns"), "{}", conf.warning);
    assert!(
        conf.warning.contains("cannot be undone"),
        "{}",
        conf.warning
    );
    server.stop().await;
}

#[tokio::test]
async fn delete_warning_marks_a_never_used_account_as_a_stub() {
    let (server, mut c, a, _) = start_with_two_d1_accounts().await;
    disable_confirmed(&mut c, ADMIN_D1, a).await;
    let stub = ask_to_delete(&mut c, ADMIN_D1, a).await;
    assert!(stub.is_stub && !stub.owns_data && !stub.signed_in);
    server.stop().await;
}

#[tokio::test]
async fn a_confirmation_goes_stale_when_the_account_changes_before_it_is_used() {
    let (server, mut c, a, _) = start_with_two_d1_accounts().await;
    disable_confirmed(&mut c, ADMIN_D1, a).await;
    let stub = ask_to_delete(&mut c, ADMIN_D1, a).await;
    enable(&mut c, ADMIN_D1, a).await;
    assert_status(
        c.delete_account(req(ADMIN_D1, confirmable(a, Some(stub.confirmation_token))))
            .await,
        Code::Aborted,
        &[
            &format!("account {a} changed after the warning"),
            "without confirmation_token",
        ],
    );
    server.stop().await;
}

#[tokio::test]
async fn a_confirmed_delete_marks_the_account_deleted_and_erases_personal_data() {
    let (server, mut c, _, b) = start_with_two_d1_accounts().await;
    record_sign_in(&mut c, b).await;
    record_data_owned(&mut c, b).await;
    let conf = ask_to_delete(&mut c, ADMIN_D1, b).await;
    let done = done_of(
        c.delete_account(req(ADMIN_D1, confirmable(b, Some(conf.confirmation_token))))
            .await
            .unwrap()
            .into_inner(),
    );
    assert_eq!(done.account, Some(b));
    let got = get_account(&mut c, AUDITOR, by_id(b), None).await;
    assert_eq!(status(&got), pb::AccountStatus::Deleted);
    assert_eq!(got.profile.unwrap().login, "", "personal data is erased");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Request ids make retries idempotent.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_retried_create_with_the_same_request_id_is_replayed_and_records_nothing() {
    let (server, mut c) = start_with_domains(&[("d1", 10)]).await;
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
    server.stop().await;
}

#[tokio::test]
async fn a_retried_account_command_is_replayed_not_applied_again() {
    let (server, mut c) = start_with_domains(&[("d1", 10)]).await;
    let a = create_account(&mut c, ADMIN_D1, "d1", "ann", Some("S1")).await;
    let mut cmd = account_cmd(a);
    cmd.request_id = Some("deact-1".into());
    let d1 = c
        .deactivate_account(req(ADMIN_D1, cmd.clone()))
        .await
        .unwrap()
        .into_inner();
    enable(&mut c, ADMIN_D1, a).await;
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
    server.stop().await;
}

#[tokio::test]
async fn a_retried_confirmed_delete_is_replayed_without_a_token() {
    let (server, mut c) = start_with_domains(&[("d1", 10)]).await;
    let a = create_account(&mut c, ADMIN_D1, "d1", "ann", Some("S1")).await;
    let warn = ask_to_delete(&mut c, ADMIN_D1, a).await;
    let mut del = confirmable(a, Some(warn.confirmation_token));
    del.request_id = Some("del-ann".into());
    let x = done_of(
        c.delete_account(req(ADMIN_D1, del.clone()))
            .await
            .unwrap()
            .into_inner(),
    );
    // The token is used up; the retry carries none.
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

// ---------------------------------------------------------------------------------------------
// Subscriptions: catch-up then live, filtered to one domain.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_subscription_first_catches_up_on_its_domains_events_in_order() {
    let (server, _c, a, mut stream) = start_subscribed_to_d1().await;
    let e1 = next_event(&mut stream).await;
    assert_eq!(
        (e1.kind.as_str(), e1.domain.as_str(), e1.position),
        ("DomainRegistered", "d1", 1)
    );
    let e2 = next_event(&mut stream).await;
    assert_eq!((e2.kind.as_str(), e2.account), ("AccountCreated", Some(a)));
    drop(stream);
    server.stop().await;
}

#[tokio::test]
async fn a_subscription_then_streams_live_events_of_its_domain_only() {
    let (server, mut c, a, mut stream) = start_subscribed_to_d1().await;
    // The catch-up: d1 registered, ann created.
    next_event(&mut stream).await;
    let e2 = next_event(&mut stream).await;
    // Live: a d2 change is filtered out, a d1 change arrives.
    create_account(&mut c, ADMIN_D2, "d2", "zoe", None).await;
    deactivate(&mut c, ADMIN_D1, a).await;
    let e3 = next_event(&mut stream).await;
    assert_eq!(
        (e3.kind.as_str(), e3.account, e3.domain.as_str()),
        ("AccountDeactivated", Some(a), "d1")
    );
    assert!(e3.position > e2.position + 1, "d2's events were skipped");
    assert_eq!(e3.actor, "alice");
    drop(stream);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// As-of reads see the past: `then` is before ann was disabled, bob deactivated and cy created.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn get_account_as_of_a_past_time_sees_the_account_as_it_was() {
    let PastAndPresent {
        server,
        mut c,
        ann,
        then,
        ..
    } = PastAndPresent::start().await;
    let now = get_account(&mut c, AUDITOR, by_id(ann), None).await;
    assert_eq!(status(&now), pb::AccountStatus::Disabled);
    let past = get_account(&mut c, AUDITOR, by_id(ann), Some(then)).await;
    assert_eq!(status(&past), pb::AccountStatus::Enabled);
    assert_eq!(past.version, 1);
    server.stop().await;
}

#[tokio::test]
async fn license_usage_as_of_a_past_time_counts_the_licenses_used_then() {
    let PastAndPresent {
        server,
        mut c,
        then,
        ..
    } = PastAndPresent::start().await;
    let u = license_usage(&mut c, AUDITOR, "d1", Some(then)).await;
    assert_eq!(u.used, 2);
    let u = license_usage(&mut c, AUDITOR, "d1", None).await;
    assert_eq!(u.used, 1);
    // As of a moment after the last change (not yet saved with the views): as now.
    let just_now = account_ledger::api::convert::us_to_timestamp(account_ledger::store::now_us());
    let u = license_usage(&mut c, AUDITOR, "d1", Some(just_now)).await;
    assert_eq!(u.used, 1);
    server.stop().await;
}

#[tokio::test]
async fn list_accounts_as_of_a_past_time_lists_the_accounts_of_then() {
    let PastAndPresent {
        server,
        mut c,
        ann,
        bob,
        then,
    } = PastAndPresent::start().await;
    let list = c
        .list_accounts(req(
            AUDITOR,
            pb::ListAccountsRequest {
                as_of: Some(then),
                ..list_request("d1")
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        list.accounts.iter().map(|x| x.id).collect::<Vec<_>>(),
        vec![ann, bob]
    );
    server.stop().await;
}

#[tokio::test]
async fn export_users_as_of_a_past_time_exports_the_users_of_then() {
    let PastAndPresent {
        server,
        mut c,
        ann,
        bob,
        then,
    } = PastAndPresent::start().await;
    let ids = export_ids(&mut c, AUDITOR, "d1", Some(then)).await;
    assert_eq!(
        ids,
        vec![ann, bob],
        "cy did not exist then; bob was still active"
    );
    server.stop().await;
}

#[tokio::test]
async fn get_account_as_of_before_it_existed_is_not_found() {
    let PastAndPresent {
        server, mut c, ann, ..
    } = PastAndPresent::start().await;
    let before = prost_types::Timestamp {
        seconds: 1,
        nanos: 0,
    };
    assert_status(
        c.get_account(req(AUDITOR, get_request(by_id(ann), Some(before))))
            .await,
        Code::NotFound,
        &["did not exist"],
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Import-job history.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn import_job_history_lists_the_jobs_events_with_file_and_row() {
    let (server, mut c, job) = start_with_an_import_job().await;
    let events = c
        .get_import_job_history(req(
            ADMIN_D1,
            pb::GetImportJobHistoryRequest {
                job_id: job.to_string(),
                ..Default::default()
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
    server.stop().await;
}

/// A job's history comes in pages: `limit` events after `after_position`, then an empty
/// page at the end; a limit over 10000 is refused naming it.
#[tokio::test]
async fn import_job_history_pages_by_position() {
    let (server, mut c, job) = start_with_an_import_job().await;
    let page = |after_position: u64, limit: u32| pb::GetImportJobHistoryRequest {
        job_id: job.to_string(),
        after_position,
        limit,
    };
    let all = c
        .get_import_job_history(req(ADMIN_D1, page(0, 0)))
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(all.len(), 2);
    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let events = c
            .get_import_job_history(req(ADMIN_D1, page(after, 1)))
            .await
            .unwrap()
            .into_inner()
            .events;
        let Some(last) = events.last() else { break };
        assert_eq!(events.len(), 1);
        after = last.position;
        paged.extend(events);
    }
    assert_eq!(paged, all);
    assert_status(
        c.get_import_job_history(req(ADMIN_D1, page(0, 10_001)))
            .await,
        Code::InvalidArgument,
        &["limit"],
    );
    server.stop().await;
}

#[tokio::test]
async fn import_job_history_is_hidden_from_another_domains_admin() {
    let (server, mut c, job) = start_with_an_import_job().await;
    assert_status(
        c.get_import_job_history(req(
            ADMIN_D2,
            pb::GetImportJobHistoryRequest {
                job_id: job.to_string(),
                ..Default::default()
            },
        ))
        .await,
        Code::PermissionDenied,
        &[],
    );
    server.stop().await;
}

#[tokio::test]
async fn export_users_streams_the_domain_as_it_was_when_the_export_started() {
    let (server, mut c) = start_with_domains(&[("d1", 1000)]).await;
    for i in 0..600 {
        create_account(&mut c, ADMIN_D1, "d1", &format!("u{i}"), None).await;
    }
    let mut stream = c
        .export_users(req(
            ADMIN_D1,
            pb::ExportUsersRequest {
                domain: "d1".into(),
                as_of: None,
            },
        ))
        .await
        .expect("export")
        .into_inner();
    let first = stream.message().await.unwrap().expect("a first row");
    // Accounts created while the export streams are not in it.
    for i in 0..50 {
        create_account(&mut c, ADMIN_D1, "d1", &format!("late{i}"), None).await;
    }
    let mut logins = vec![first.profile.unwrap().login];
    while let Some(a) = stream.message().await.unwrap() {
        logins.push(a.profile.unwrap().login);
    }
    assert_eq!(logins.len(), 600);
    assert!(logins.iter().all(|l| l.starts_with('u')), "{logins:?}");
    server.stop().await;
}

#[tokio::test]
async fn before_a_domain_existed_its_list_and_license_usage_are_both_not_found() {
    let PastAndPresent { server, mut c, .. } = PastAndPresent::start().await;
    let before = prost_types::Timestamp {
        seconds: 946_684_800, // 2000-01-01
        nanos: 0,
    };
    assert_status(
        c.list_accounts(req(
            AUDITOR,
            pb::ListAccountsRequest {
                as_of: Some(before),
                ..list_request("d1")
            },
        ))
        .await,
        Code::NotFound,
        &["d1"],
    );
    assert_status(
        c.get_license_usage(req(
            AUDITOR,
            pb::GetLicenseUsageRequest {
                domain: "d1".into(),
                as_of: Some(before),
            },
        ))
        .await,
        Code::NotFound,
        &["d1"],
    );
    server.stop().await;
}
