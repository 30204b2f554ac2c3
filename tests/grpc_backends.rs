//! The whole API on either store: the same gRPC flows run on sled and on PostgreSQL (one body,
//! two stores) — license limits, two-step delete and erasure, point in time and history, and an
//! uploaded import job undone by RevertImportJob.

mod common;

use std::sync::Arc;

use account_ledger::api::pb;
use account_ledger::ledger::SystemClock;
use common::*;
use tonic::Code;

async fn start(backend: Backend) -> (TestServer, Client) {
    let server = TestServer::start_on(backend, Arc::new(SystemClock)).await;
    let mut c = server.client().await;
    register(&mut c, "d1", 1).await;
    (server, c)
}

async fn limits_two_step_delete_and_erasure(backend: Backend) {
    let (server, mut c) = start(backend).await;
    let ann = create_account(&mut c, ADMIN_D1, "d1", "ann", Some("S1")).await;
    assert_status(
        c.create_account(req(ADMIN_D1, create("d1", "bob", Some("S2"))))
            .await,
        Code::FailedPrecondition,
        &["1 of 1"],
    );
    delete_confirmed(&mut c, ADMIN_D1, ann).await;
    let gone = get_account(&mut c, ADMIN_D1, by_id(ann), None).await;
    assert_eq!(gone.status, pb::AccountStatus::Deleted as i32);
    assert_eq!(gone.profile.unwrap_or_default().login, "", "erased");
    // The license came back with the deletion.
    create_account(&mut c, ADMIN_D1, "d1", "bob", Some("S2")).await;
    server.stop().await;
}

async fn point_in_time_and_history(backend: Backend) {
    let (server, mut c) = start(backend).await;
    let ann = create_account(&mut c, ADMIN_D1, "d1", "ann", Some("S1")).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let before = account_ledger::api::convert::us_to_timestamp(account_ledger::store::now_us());
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    disable_confirmed(&mut c, ADMIN_D1, ann).await;
    let then = get_account(&mut c, ADMIN_D1, by_id(ann), Some(before)).await;
    assert_eq!(then.status, pb::AccountStatus::Enabled as i32);
    let now = get_account(&mut c, ADMIN_D1, by_id(ann), None).await;
    assert_eq!(now.status, pb::AccountStatus::Disabled as i32);
    let history = account_history(&mut c, AUDITOR, ann).await;
    let kinds: Vec<&str> = history.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["AccountCreated", "AccountDisabled"]);
    server.stop().await;
}

async fn an_uploaded_import_is_reverted(backend: Backend) {
    let (server, mut c) = start(backend).await;
    c.set_license_limit(req(OPERATOR, license_limit_request("d1", 10, None)))
        .await
        .unwrap();
    let mut imports = imports(&server).await;
    let header = pb::ImportHeader {
        domain: "d1".into(),
        file_name: "users.csv".into(),
        ..Default::default()
    };
    let csv = "import_id,first_name,last_name,login,email,user_type,enabled\n\
               S1,Ann,Lee,ann,ann@x.example,student,1\nS2,Bob,Ray,bob,bob@x.example,student,1\n";
    let job = upload(&mut imports, ADMIN_D1, header, csv.as_bytes())
        .await
        .unwrap();
    assert_eq!(job.events_written, 2, "{job:?}");
    // Another domain's admin and an auditor may not revert it (checked before it is read).
    for token in [ADMIN_D2, AUDITOR] {
        assert_status(
            imports
                .revert_import_job(req(
                    token,
                    pb::RevertImportJobRequest {
                        job_id: job.job_id.clone(),
                        dry_run: false,
                        confirm_mass_change: true,
                    },
                ))
                .await,
            Code::PermissionDenied,
            &[],
        );
    }
    let reverted = imports
        .revert_import_job(req(
            ADMIN_D1,
            pb::RevertImportJobRequest {
                job_id: job.job_id.clone(),
                dry_run: false,
                confirm_mass_change: true,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reverted.events_written, 2, "{reverted:?}");
    let ann = c
        .get_account(req(ADMIN_D1, get_request(by_id(1), None)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        ann.status,
        pb::AccountStatus::Deleted as i32,
        "a stub the job made"
    );
    server.stop().await;
}

on_both_backends!(
    limits_two_step_delete_and_erasure,
    point_in_time_and_history,
    an_uploaded_import_is_reverted,
);
