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

/// Two domains with one account each, made by their admins (ADMIN_D1 "ann" in d1, ADMIN_D2
/// "zed" in d2), and the log's end after them.
struct TwoDomains {
    server: TestServer,
    c: Client,
    a1: u64,
    a2: u64,
    made: u64,
}

impl TwoDomains {
    async fn start() -> TwoDomains {
        let server = TestServer::start().await;
        let mut c = server.client().await;
        register(&mut c, "d1", 10).await;
        register(&mut c, "d2", 10).await;
        let a1 = create_account(&mut c, ADMIN_D1, "d1", "ann", Some("S1")).await;
        let a2 = create_account(&mut c, ADMIN_D2, "d2", "zed", Some("Z1")).await;
        let made = server.ledger.log().last_position();
        TwoDomains {
            server,
            c,
            a1,
            a2,
            made,
        }
    }

    /// Every refusal before this recorded nothing.
    async fn stop_with_nothing_recorded(self) {
        assert_eq!(
            self.server.ledger.log().last_position(),
            self.made,
            "nothing refused was recorded"
        );
        self.server.stop().await;
    }
}

fn deactivate_by_import(domain: &str, import_id: &str) -> pb::AccountCommandRequest {
    pb::AccountCommandRequest {
        account: by_import(domain, import_id),
        request_id: None,
        expected_version: None,
    }
}

fn read_log_all() -> pb::ReadLogRequest {
    pb::ReadLogRequest {
        from_position: 1,
        to_position: 0,
        limit: 0,
    }
}

#[tokio::test]
async fn the_operator_manages_domains_not_accounts() {
    let mut t = TwoDomains::start().await;
    assert_status(
        t.c.create_account(req(OPERATOR, create("d1", "x", None)))
            .await,
        Code::PermissionDenied,
        &["manage accounts"],
    );
    t.stop_with_nothing_recorded().await;
}

#[tokio::test]
async fn a_domain_admin_acts_only_in_its_own_domains() {
    let mut t = TwoDomains::start().await;
    let c = &mut t.c;
    assert_status(
        c.create_account(req(ADMIN_D1, create("d2", "x", None)))
            .await,
        Code::PermissionDenied,
        &["d2"],
    );
    assert_status(
        c.deactivate_account(req(ADMIN_D1, deactivate_by_import("d2", "Z1")))
            .await,
        Code::PermissionDenied,
        &["d2"],
    );
    // By import id in a domain outside its rights: refused the same whether it exists or not.
    for domain in ["d2", "nosuchdomain"] {
        assert_status(
            c.deactivate_account(req(ADMIN_D1, deactivate_by_import(domain, "Z1")))
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
        c.read_log(req(ADMIN_D1, read_log_all())).await,
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
    t.stop_with_nothing_recorded().await;
}

#[tokio::test]
async fn another_domains_account_answers_as_a_missing_one() {
    let mut t = TwoDomains::start().await;
    let (c, a2) = (&mut t.c, t.a2);
    // No answer tells which ids exist or where.
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
    t.stop_with_nothing_recorded().await;
}

#[tokio::test]
async fn a_domain_admin_reads_and_follows_its_own_domain() {
    let mut t = TwoDomains::start().await;
    let a1 = t.a1;
    t.c.get_account(req(
        ADMIN_D1,
        pb::GetAccountRequest {
            account: by_id(a1),
            as_of: None,
        },
    ))
    .await
    .unwrap();
    t.c.subscribe(req(
        ADMIN_D1,
        pb::SubscribeRequest {
            from_position: 0,
            domain: Some("d1".into()),
        },
    ))
    .await
    .unwrap();
    t.stop_with_nothing_recorded().await;
}

#[tokio::test]
async fn the_lms_only_checks_and_records_sign_ins() {
    let mut t = TwoDomains::start().await;
    let (c, a1, a2) = (&mut t.c, t.a1, t.a2);
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
    c.can_sign_in(req(
        LMS,
        pb::CanSignInRequest {
            domain: "d2".into(),
            login: "zed".into(),
        },
    ))
    .await
    .unwrap();
    let before = t.made;
    record_sign_in(c, a2).await;
    assert_eq!(t.server.ledger.log().last_position(), before + 1);
    t.server.stop().await;
}

#[tokio::test]
async fn the_auditor_reads_everything_and_writes_nothing() {
    let mut t = TwoDomains::start().await;
    let (c, a1, a2) = (&mut t.c, t.a1, t.a2);
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
    c.read_log(req(AUDITOR, read_log_all())).await.unwrap();
    c.get_account(req(
        AUDITOR,
        pb::GetAccountRequest {
            account: by_id(a2),
            as_of: None,
        },
    ))
    .await
    .unwrap();
    t.stop_with_nothing_recorded().await;
}

#[tokio::test]
async fn the_actor_recorded_is_the_tokens_principal() {
    let mut t = TwoDomains::start().await;
    let (c, a2) = (&mut t.c, t.a2);
    record_sign_in(c, a2).await;
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
    t.server.stop().await;
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

/// A token revoked while its Subscribe or ExportUsers stream is open: the stream ends with
/// UNAUTHENTICATED instead of reading on until the client hangs up.
#[tokio::test]
async fn a_revoked_tokens_open_streams_end_unauthenticated() {
    const ROWS: usize = 30_000;
    let server = TestServer::start().await;
    let mut c = server.client().await;
    register(&mut c, "d1", 100_000).await;
    // More rows than HTTP/2's windows and the server's buffer hold, so that the export is
    // still being produced when the token is revoked.
    let creates = (0..ROWS)
        .map(|i| {
            let profile = account_ledger::domain::Profile {
                login: format!("user{i}"),
                first_name: "A rather long first name".into(),
                last_name: "And a rather long last name".into(),
                email: format!("user{i}@a-long-district-domain.example"),
            };
            account_ledger::ledger::Request::manual(
                "alice",
                account_ledger::domain::Command::CreateAccount {
                    domain: "d1".into(),
                    account: 0,
                    import_id: None,
                    profile,
                    role: "student".into(),
                    enabled: true,
                },
            )
        })
        .collect();
    server
        .ledger
        .execute_batch(creates, account_ledger::ledger::BatchMode::Strict)
        .await
        .unwrap();
    let mut events = c
        .subscribe(req(
            ADMIN_D1,
            pb::SubscribeRequest {
                from_position: 0,
                domain: Some("d1".into()),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let mut export = c
        .export_users(req(
            ADMIN_D1,
            pb::ExportUsersRequest {
                domain: "d1".into(),
                as_of: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    events.message().await.unwrap().expect("a first event");
    export.message().await.unwrap().expect("a first row");
    let id = account_ledger::api::auth::hash_token(ADMIN_D1)[..12].to_string();
    c.revoke_token(req(OPERATOR, pb::RevokeTokenRequest { id }))
        .await
        .unwrap();
    let mut rows = 1;
    let ended = loop {
        match export.message().await {
            Ok(Some(_)) => rows += 1,
            Ok(None) => panic!("all {rows} rows exported after the token was revoked"),
            Err(status) => break status,
        }
    };
    assert_eq!(ended.code(), Code::Unauthenticated, "{ended:?}");
    assert!(rows < ROWS, "{rows}");
    let ended = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            match events.message().await {
                Ok(Some(_)) => {}
                Ok(None) => panic!("the subscription ended without an error"),
                Err(status) => break status,
            }
        }
    })
    .await
    .expect("the subscription still open 30 s after its token was revoked");
    assert_eq!(ended.code(), Code::Unauthenticated, "{ended:?}");
    server.stop().await;
}
