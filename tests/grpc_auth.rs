//! Authentication and authorization over gRPC: missing/bad tokens, each role's rights, domain
//! admins confined to their own domains, the actor recorded, tokens issued by the operator.

mod common;

use account_ledger::api::pb;
use common::*;
use tonic::{Code, Request};

#[tokio::test]
async fn missing_or_bad_tokens_are_unauthenticated() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let msg = || pb::GetLicenseUsageRequest {
        domain: "d1".into(),
        as_of: None,
    };
    assert_status(
        c.get_license_usage(Request::new(msg())).await,
        Code::Unauthenticated,
        &["authorization"],
    );
    assert_status(
        c.get_license_usage(req("wrong", msg())).await,
        Code::Unauthenticated,
        &["unknown token"],
    );
    let mut basic = Request::new(msg());
    basic
        .metadata_mut()
        .insert("authorization", "Basic abc".parse().unwrap());
    assert_status(
        c.get_license_usage(basic).await,
        Code::Unauthenticated,
        &["Bearer"],
    );
    assert_status(
        c.verify_projections(Request::new(pb::VerifyProjectionsRequest {}))
            .await,
        Code::Unauthenticated,
        &[],
    );
    server.stop().await;
}

#[tokio::test]
async fn roles_and_domains_are_enforced() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    register(&mut c, "d1", 10).await;
    register(&mut c, "d2", 10).await;
    let a1 = create_account(&mut c, ADMIN_D1, "d1", "ann", Some("S1")).await;
    let a2 = create_account(&mut c, ADMIN_D2, "d2", "zed", Some("Z1")).await;
    let before = server.ledger.log().last_position();

    // Operator: domains and admin only.
    assert_status(
        c.create_account(req(OPERATOR, create("d1", "x", None)))
            .await,
        Code::PermissionDenied,
        &["manage accounts"],
    );
    // Domain admins: only their own domains, however the account is addressed.
    assert_status(
        c.create_account(req(ADMIN_D1, create("d2", "x", None)))
            .await,
        Code::PermissionDenied,
        &["d2"],
    );
    // An id in another domain answers exactly as an id that does not exist: no answer tells
    // which ids exist or where.
    let unused = a2 + 1000;
    let other = c
        .deactivate_account(req(ADMIN_D1, account_cmd(a2)))
        .await
        .unwrap_err();
    let missing = c
        .deactivate_account(req(ADMIN_D1, account_cmd(unused)))
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::NotFound);
    assert_eq!(
        other.message().replace(&a2.to_string(), "N"),
        missing.message().replace(&unused.to_string(), "N")
    );
    assert_status(
        c.deactivate_account(req(
            ADMIN_D1,
            pb::AccountCommandRequest {
                account: by_import("d2", "Z1"),
                request_id: None,
                expected_version: None,
            },
        ))
        .await,
        Code::PermissionDenied,
        &["d2"],
    );
    assert_status(
        c.delete_account(req(ADMIN_D1, confirmable(a2, None))).await,
        Code::NotFound,
        &[&a2.to_string()],
    );
    assert_status(
        c.get_account(req(
            ADMIN_D1,
            pb::GetAccountRequest {
                account: by_id(a2),
                as_of: None,
            },
        ))
        .await,
        Code::NotFound,
        &[],
    );
    // By import id in a domain outside its rights: refused the same whether it exists or not.
    for domain in ["d2", "nosuchdomain"] {
        assert_status(
            c.deactivate_account(req(
                ADMIN_D1,
                pb::AccountCommandRequest {
                    account: by_import(domain, "Z1"),
                    request_id: None,
                    expected_version: None,
                },
            ))
            .await,
            Code::PermissionDenied,
            &[domain],
        );
    }
    assert_status(
        c.register_domain(req(
            ADMIN_D1,
            pb::RegisterDomainRequest {
                domain: "d3".into(),
                license_limit: 1,
                request_id: None,
                expected_version: None,
            },
        ))
        .await,
        Code::PermissionDenied,
        &[],
    );
    assert_status(
        c.rebuild_projections(req(ADMIN_D1, pb::RebuildProjectionsRequest {}))
            .await,
        Code::PermissionDenied,
        &[],
    );
    assert_status(
        c.read_log(req(
            ADMIN_D1,
            pb::ReadLogRequest {
                from_position: 1,
                to_position: 0,
                limit: 0,
            },
        ))
        .await,
        Code::PermissionDenied,
        &[],
    );
    assert_status(
        c.subscribe(req(
            ADMIN_D1,
            pb::SubscribeRequest {
                from_position: 0,
                domain: Some("d2".into()),
            },
        ))
        .await,
        Code::PermissionDenied,
        &[],
    );
    // LMS: reports and sign-in checks only.
    assert_status(
        c.enable_account(req(LMS, account_cmd(a1))).await,
        Code::PermissionDenied,
        &[],
    );
    assert_status(
        c.list_accounts(req(
            LMS,
            pb::ListAccountsRequest {
                domain: "d1".into(),
                ..Default::default()
            },
        ))
        .await,
        Code::PermissionDenied,
        &[],
    );
    // Auditor: reads everything, writes nothing.
    assert_status(
        c.record_data_owned(req(AUDITOR, account_cmd(a1))).await,
        Code::PermissionDenied,
        &[],
    );
    assert_status(
        c.disable_account(req(AUDITOR, confirmable(a1, None))).await,
        Code::PermissionDenied,
        &[],
    );
    assert_status(
        c.verify_projections(req(AUDITOR, pb::VerifyProjectionsRequest {}))
            .await,
        Code::PermissionDenied,
        &[],
    );
    assert_eq!(
        server.ledger.log().last_position(),
        before,
        "nothing refused was recorded"
    );

    // What each role may do.
    c.record_sign_in(req(
        LMS,
        pb::RecordSignInRequest {
            account: by_id(a2),
            at: None,
            request_id: None,
            expected_version: None,
        },
    ))
    .await
    .unwrap();
    c.can_sign_in(req(
        LMS,
        pb::CanSignInRequest {
            domain: "d2".into(),
            login: "zed".into(),
        },
    ))
    .await
    .unwrap();
    c.read_log(req(
        AUDITOR,
        pb::ReadLogRequest {
            from_position: 1,
            to_position: 0,
            limit: 0,
        },
    ))
    .await
    .unwrap();
    c.get_account(req(
        AUDITOR,
        pb::GetAccountRequest {
            account: by_id(a2),
            as_of: None,
        },
    ))
    .await
    .unwrap();
    c.get_account(req(
        ADMIN_D1,
        pb::GetAccountRequest {
            account: by_id(a1),
            as_of: None,
        },
    ))
    .await
    .unwrap();
    c.subscribe(req(
        ADMIN_D1,
        pb::SubscribeRequest {
            from_position: 0,
            domain: Some("d1".into()),
        },
    ))
    .await
    .unwrap();

    // The actor recorded is the token's principal.
    let h = c
        .get_account_history(req(
            AUDITOR,
            pb::GetAccountHistoryRequest { account: by_id(a2) },
        ))
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(
        h.iter().map(|e| e.actor.as_str()).collect::<Vec<_>>(),
        vec!["bob", "lms"]
    );
    server.stop().await;
}

#[tokio::test]
async fn operator_issues_tokens_stored_hashed() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    register(&mut c, "d9", 5).await;
    assert_status(
        c.create_token(req(
            OPERATOR,
            pb::CreateTokenRequest {
                principal: "carol".into(),
                role: pb::Role::DomainAdmin as i32,
                domains: vec![],
                expires_at: None,
            },
        ))
        .await,
        Code::InvalidArgument,
        &["domains"],
    );
    assert_status(
        c.create_token(req(
            OPERATOR,
            pb::CreateTokenRequest {
                principal: "carol".into(),
                role: 0,
                domains: vec![],
                expires_at: None,
            },
        ))
        .await,
        Code::InvalidArgument,
        &["role"],
    );
    assert_status(
        c.create_token(req(
            ADMIN_D1,
            pb::CreateTokenRequest {
                principal: "me".into(),
                role: pb::Role::Operator as i32,
                domains: vec![],
                expires_at: None,
            },
        ))
        .await,
        Code::PermissionDenied,
        &[],
    );
    let token = c
        .create_token(req(
            OPERATOR,
            pb::CreateTokenRequest {
                principal: "carol".into(),
                role: pb::Role::DomainAdmin as i32,
                domains: vec!["d9".into()],
                expires_at: None,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .token;
    let id = create_account(&mut c, &token, "d9", "kim", None).await;
    let h = c
        .get_account_history(req(
            AUDITOR,
            pb::GetAccountHistoryRequest { account: by_id(id) },
        ))
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(h[0].actor, "carol");
    let file = std::fs::read_to_string(&server.config_path).unwrap();
    assert!(!file.contains(&token), "the plain token is never stored");
    assert!(file.contains(&account_ledger::api::auth::hash_token(&token)));
    assert!(file.contains("carol"));
    server.stop().await;
}
