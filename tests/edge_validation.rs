//! Strict validation at the edge, over gRPC: each hostile value that used to be stored is
//! refused as INVALID_ARGUMENT naming the field, and nothing is written.

mod common;

use account_ledger::api::pb;
use common::*;
use tonic::Code;

fn sign_in_at(id: u64, seconds: i64) -> pb::RecordSignInRequest {
    pb::RecordSignInRequest {
        account: by_id(id),
        at: Some(prost_types::Timestamp { seconds, nanos: 0 }),
        request_id: None,
        expected_version: None,
    }
}

#[tokio::test]
async fn a_domain_name_with_path_nul_or_bidi_characters_is_refused() {
    let (server, mut c) = start_with_domains(&[]).await;
    for bad in [
        "../\u{0}\u{202e}",
        "../etc",
        "a b",
        "-lead",
        "\u{1b}[31mred",
    ] {
        let r = c
            .register_domain(req(
                OPERATOR,
                pb::RegisterDomainRequest {
                    domain: bad.into(),
                    license_limit: 10,
                    request_id: None,
                    expected_version: None,
                },
            ))
            .await;
        assert_status(r, Code::InvalidArgument, &["domain"]);
    }
    assert_eq!(server.ledger.log().last_position(), 0, "nothing written");
    server.stop().await;
}

#[tokio::test]
async fn control_bidi_and_bom_characters_in_profiles_are_refused_naming_the_field() {
    let (server, mut c) = start_with_domains(&[("d1", 10)]).await;
    let before = server.ledger.log().last_position();
    type Damage = fn(&mut pb::Profile);
    let cases: [(&str, Damage); 4] = [
        ("login", |p| p.login = "ann\u{0}".into()),
        ("first_name", |p| p.first_name = "\u{1b}[31mAnn".into()),
        ("last_name", |p| p.last_name = "Lee\u{feff}x".into()),
        ("email", |p| p.email = "a\u{202e}@b.org".into()),
    ];
    for (field, damage) in cases {
        let mut request = create("d1", "ann", Some("S1"));
        damage(request.profile.as_mut().unwrap());
        let r = c.create_account(req(ADMIN_D1, request)).await;
        assert_status(r, Code::InvalidArgument, &[field, "U+"]);
    }
    assert_eq!(
        server.ledger.log().last_position(),
        before,
        "nothing written"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_sign_in_outside_years_1_to_9999_is_refused_naming_at() {
    let (server, mut c) = start_with_domains(&[("d1", 10)]).await;
    let id = create_account(&mut c, ADMIN_D1, "d1", "ann", Some("S1")).await;
    let year_10000 = 253_402_300_800;
    let before_year_1 = -62_135_596_801;
    for seconds in [year_10000, before_year_1] {
        let r = c.record_sign_in(req(LMS, sign_in_at(id, seconds))).await;
        assert_status(r, Code::InvalidArgument, &["at", "9999"]);
    }
    // The edges themselves are fine.
    c.record_sign_in(req(LMS, sign_in_at(id, year_10000 - 1)))
        .await
        .expect("9999-12-31T23:59:59Z");
    server.stop().await;
}

#[tokio::test]
async fn a_license_limit_above_u32_is_refused_not_truncated() {
    let (server, mut c) = start_with_domains(&[("d1", 10)]).await;
    let r = c
        .register_domain(req(
            OPERATOR,
            pb::RegisterDomainRequest {
                domain: "d9".into(),
                license_limit: (1u64 << 40) + 5,
                request_id: None,
                expected_version: None,
            },
        ))
        .await;
    assert_status(
        r,
        Code::InvalidArgument,
        &["license_limit", "1099511627781"],
    );
    let r = c
        .set_license_limit(req(
            OPERATOR,
            pb::SetLicenseLimitRequest {
                domain: "d1".into(),
                license_limit: (1u64 << 40) + 5,
                request_id: None,
                expected_version: None,
            },
        ))
        .await;
    assert_status(r, Code::InvalidArgument, &["license_limit"]);
    server.stop().await;
}

#[tokio::test]
async fn a_list_search_or_role_longer_than_256_bytes_is_refused_naming_it() {
    let (server, mut c) = start_with_domains(&[("d1", 10)]).await;
    let long = "a ".repeat(129);
    let searched = c
        .list_accounts(req(
            AUDITOR,
            pb::ListAccountsRequest {
                search: Some(long.clone()),
                ..list_request("d1")
            },
        ))
        .await;
    assert_status(searched, Code::InvalidArgument, &["search", "258 bytes"]);
    let by_role = c
        .list_accounts(req(
            AUDITOR,
            pb::ListAccountsRequest {
                role: Some(long),
                ..list_request("d1")
            },
        ))
        .await;
    assert_status(by_role, Code::InvalidArgument, &["role"]);
    // 256 bytes is taken (and finds nothing here).
    let page = c
        .list_accounts(req(
            AUDITOR,
            pb::ListAccountsRequest {
                search: Some("a".repeat(256)),
                ..list_request("d1")
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.total, 0);
    server.stop().await;
}

#[tokio::test]
async fn a_huge_or_control_character_token_principal_is_refused() {
    let (server, mut c) = start_with_domains(&[("d1", 10)]).await;
    let size_before = std::fs::metadata(&server.config_path).unwrap().len();
    for principal in ["p".repeat(3 << 20), "ops\u{1b}]0;x".to_string()] {
        let r = c
            .create_token(req(
                OPERATOR,
                pb::CreateTokenRequest {
                    principal,
                    role: pb::Role::Auditor as i32,
                    domains: vec![],
                    expires_at: None,
                },
            ))
            .await;
        assert_status(r, Code::InvalidArgument, &["principal"]);
    }
    assert_eq!(
        std::fs::metadata(&server.config_path).unwrap().len(),
        size_before,
        "config.json unchanged"
    );
    server.stop().await;
}

#[tokio::test]
async fn nul_and_bom_inside_csv_fields_are_row_errors_naming_the_column() {
    let (server, _c) = start_with_domains(&[("d1", 10)]).await;
    let csv = "import_id,first_name,last_name,login,password,email,user_type,enabled\n\
               S1,An\u{0}n,Lee,ann,pw,ann@x.org,student,1\n\
               S2,Bo,Le\u{feff}e,bo,pw,bo@x.org,student,1\n\
               S3,Cy,Ng,cy,pw,cy@x.org,student,1\n";
    let header = pb::ImportHeader {
        domain: "d1".into(),
        file_name: "users.csv".into(),
        max_row_errors: 10,
        ..Default::default()
    };
    let job = upload(
        &mut imports(&server).await,
        ADMIN_D1,
        header,
        csv.as_bytes(),
    )
    .await
    .expect("job ran");
    let counts = job.counts.unwrap();
    assert_eq!((counts.created, counts.failed), (1, 2), "{job:?}");
    let errors: Vec<(u64, Option<String>, String)> = job
        .row_errors
        .iter()
        .map(|e| (e.row, e.column.clone(), e.reason.clone()))
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0].0, 2);
    assert!(
        errors[0].2.contains("first_name") && errors[0].2.contains("U+0000"),
        "{errors:?}"
    );
    assert_eq!(errors[1].0, 3);
    assert!(
        errors[1].2.contains("last_name") && errors[1].2.contains("U+FEFF"),
        "{errors:?}"
    );
    server.stop().await;
}

/// An uploaded file's name is recorded on every event of its job: a name over 255 bytes, or
/// one holding a control character, is refused naming the field, and nothing is written.
#[tokio::test]
async fn an_upload_named_too_long_or_with_control_characters_is_refused() {
    let (server, _c) = start_with_domains(&[("d1", 10)]).await;
    let csv = "import_id,first_name,last_name,login,email,user_type,enabled\n\
               S1,Ann,Lee,ann,ann@x.org,student,1\n";
    let before = server.ledger.log().last_position();
    for (name, needle) in [
        (format!("{}.csv", "u".repeat(300)), "more than 255"),
        ("users\n.csv".to_string(), "U+000A"),
    ] {
        let header = pb::ImportHeader {
            domain: "d1".into(),
            file_name: name,
            ..Default::default()
        };
        assert_status(
            upload(
                &mut imports(&server).await,
                ADMIN_D1,
                header,
                csv.as_bytes(),
            )
            .await,
            Code::InvalidArgument,
            &["header.file_name", needle],
        );
    }
    assert_eq!(
        server.ledger.log().last_position(),
        before,
        "nothing written"
    );
    server.stop().await;
}
