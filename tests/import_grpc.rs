//! CSV imports through gRPC end to end: a real server (sled in a temp dir, tonic on loopback)
//! and a real tonic client uploading files in chunks. Every change of DOMAIN.md's "How each
//! change happens" table, re-import, dry run, the guard, file errors, permissions, job reports
//! (from the registry and, after a restart, from the log), audit, and the CLI's exit codes.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use account_ledger::api::auth::{Auth, AuthConfig, Role, TokenEntry};
use account_ledger::api::pb::{self, import_service_client::ImportServiceClient};
use account_ledger::api::server;
use account_ledger::ledger::Ledger;
use common::*;
use tonic::transport::Channel;
use tonic::{Code, Status};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(fixture(rel)).expect("fixture")
}

fn header(domain: &str, file: &str) -> pb::ImportHeader {
    pb::ImportHeader {
        domain: domain.into(),
        file_name: file.into(),
        ..Default::default()
    }
}

fn counts(j: &pb::ImportJob) -> pb::ImportCounts {
    j.counts.expect("counts")
}

fn status(j: &pb::ImportJob) -> pb::ImportJobStatus {
    pb::ImportJobStatus::try_from(j.status).expect("known status")
}

async fn account(
    c: &mut account_ledger::api::pb::account_ledger_client::AccountLedgerClient<Channel>,
    domain: &str,
    import_id: &str,
) -> Result<pb::Account, Status> {
    c.get_account(req(
        AUDITOR,
        pb::GetAccountRequest {
            account: by_import(domain, import_id),
            as_of: None,
        },
    ))
    .await
    .map(|r| r.into_inner())
}

async fn account_status(
    c: &mut account_ledger::api::pb::account_ledger_client::AccountLedgerClient<Channel>,
    id: u64,
) -> pb::AccountStatus {
    let a = c
        .get_account(req(
            AUDITOR,
            pb::GetAccountRequest {
                account: by_id(id),
                as_of: None,
            },
        ))
        .await
        .expect("account")
        .into_inner();
    pb::AccountStatus::try_from(a.status).expect("status")
}

const V1: &str = "import_id,first_name,last_name,login,password,email,user_type,enabled\n";
const V2: &str = "import_id,first_name,last_name,login,password,email,user_type,blocked\n";

/// One v1 row: `flag` is the `enabled` (v1) or `blocked` (v2) value.
fn row(id: &str, last: &str, flag: u8) -> String {
    format!("{id},First,{last},{id}login,pw,{id}@school.org,student,{flag}\n")
}

#[tokio::test]
async fn full_import_then_reimport_changes_nothing() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    register(&mut c, "d1", 100).await;
    let mut im = imports(&server).await;
    let file = read("powerschool/v1/users.csv");
    // Tiny chunks: rows and even UTF-8 sequences are split across messages.
    let job = upload_chunked(&mut im, ADMIN_D1, header("d1", "users.csv"), &file, 7)
        .await
        .expect("import");
    assert_eq!(status(&job), pb::ImportJobStatus::Applied);
    assert_eq!(counts(&job).created, 5);
    assert_eq!(counts(&job).failed, 0);
    assert_eq!(job.rows_read, 5);
    assert!(job.events_written >= 5);
    assert_eq!(job.actor, "alice");
    assert!(job.format.contains("v1"), "{}", job.format);
    let before = server.ledger.log().last_position();

    let again = upload(&mut im, ADMIN_D1, header("d1", "users.csv"), &file)
        .await
        .expect("re-import");
    assert_eq!(status(&again), pb::ImportJobStatus::NoChanges);
    assert_eq!(again.events_written, 0);
    assert_eq!(counts(&again).unchanged, 5);
    assert!(again.summary.contains("no changes"), "{}", again.summary);
    assert_eq!(job_records_since(&server, before).await, 1);
    assert_ne!(again.job_id, job.job_id);
}

#[tokio::test]
async fn every_change_of_the_table_through_grpc() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    register(&mut c, "d1", 100).await;
    let manual = create_account(&mut c, ADMIN_D1, "d1", "byhand", None).await;
    let mut im = imports(&server).await;
    let full = |rows: &[String]| format!("{V1}{}", rows.concat()).into_bytes();

    // Full import v1: create (enabled and disabled).
    let j = upload(
        &mut im,
        ADMIN_D1,
        header("d1", "users.csv"),
        &full(&[
            row("a1", "One", 1),
            row("a2", "Two", 0),
            row("a3", "Stub", 1),
            row("a4", "Data", 1),
        ]),
    )
    .await
    .unwrap();
    assert_eq!(counts(&j).created, 4);
    let a1 = account(&mut c, "d1", "a1").await.unwrap();
    let a4 = account(&mut c, "d1", "a4").await.unwrap().id;
    assert_eq!(
        account_status(&mut c, a1.id).await,
        pb::AccountStatus::Enabled
    );
    let a2 = account(&mut c, "d1", "a2").await.unwrap().id;
    assert_eq!(
        account_status(&mut c, a2).await,
        pb::AccountStatus::Disabled
    );
    let a3 = account(&mut c, "d1", "a3").await.unwrap().id;
    // a4 owns data (reported by the LMS), so it is no stub.
    c.record_data_owned(req(LMS, account_cmd(a4)))
        .await
        .unwrap();

    // Full v1: disable (enabled=0) and enable (enabled=1).
    let j = upload(
        &mut im,
        ADMIN_D1,
        header("d1", "users.csv"),
        &full(&[
            row("a1", "One", 0),
            row("a2", "Two", 1),
            row("a3", "Stub", 1),
            row("a4", "Data", 1),
        ]),
    )
    .await
    .unwrap();
    assert_eq!((counts(&j).disabled, counts(&j).enabled), (1, 1));
    assert_eq!(
        account_status(&mut c, a1.id).await,
        pb::AccountStatus::Disabled
    );
    assert_eq!(account_status(&mut c, a2).await, pb::AccountStatus::Enabled);

    // Full v2: blocked=0 enables, blocked=1 disables.
    let v2 = format!(
        "{V2}{}{}{}{}",
        row("a1", "One", 0),
        row("a2", "Two", 1),
        row("a3", "Stub", 0),
        row("a4", "Data", 0)
    );
    let j = upload(&mut im, ADMIN_D1, header("d1", "users.csv"), v2.as_bytes())
        .await
        .unwrap();
    assert_eq!((counts(&j).disabled, counts(&j).enabled), (1, 1));
    assert!(j.format.contains("v2"), "{}", j.format);
    assert_eq!(
        account_status(&mut c, a1.id).await,
        pb::AccountStatus::Enabled
    );
    assert_eq!(
        account_status(&mut c, a2).await,
        pb::AccountStatus::Disabled
    );

    // Left out of a full import: the stub is deleted, the account with data deactivated, the
    // account made by hand untouched (2 of 4 active imported: confirmed past the guard).
    let mut h = header("d1", "users.csv");
    h.confirm_mass_change = true;
    let j = upload(
        &mut im,
        ADMIN_D1,
        h,
        &full(&[row("a1", "One", 1), row("a2", "Two", 0)]),
    )
    .await
    .unwrap();
    assert_eq!((counts(&j).deleted, counts(&j).deactivated), (1, 1));
    assert_eq!(account_status(&mut c, a3).await, pb::AccountStatus::Deleted);
    assert_eq!(
        account_status(&mut c, a4).await,
        pb::AccountStatus::Deactivated
    );
    assert_eq!(
        account_status(&mut c, manual).await,
        pb::AccountStatus::Enabled
    );

    // Added back to users.csv: reactivated.
    let j = upload(
        &mut im,
        ADMIN_D1,
        header("d1", "users.csv"),
        &full(&[
            row("a1", "One", 1),
            row("a2", "Two", 0),
            row("a4", "Data", 1),
        ]),
    )
    .await
    .unwrap();
    assert_eq!(counts(&j).reactivated, 1);
    assert_eq!(account_status(&mut c, a4).await, pb::AccountStatus::Enabled);

    // Partial v1: update_users.csv updates a profile, disables, creates.
    let upd = format!("{V1}{}{}", row("a1", "Renamed", 0), row("a5", "New", 1));
    let j = upload(
        &mut im,
        ADMIN_D1,
        header("d1", "update_users.csv"),
        upd.as_bytes(),
    )
    .await
    .unwrap();
    let k = counts(&j);
    assert_eq!((k.updated, k.disabled, k.created), (1, 1, 1), "{k:?}");
    let now = account(&mut c, "d1", "a1").await.unwrap();
    assert_eq!(now.profile.unwrap().last_name, "Renamed");
    assert_eq!(
        account_status(&mut c, a1.id).await,
        pb::AccountStatus::Disabled
    );
    let a5 = account(&mut c, "d1", "a5").await.unwrap().id;

    // Partial v2: blocked=0 enables.
    let upd = format!("{V2}{}", row("a1", "Renamed", 0));
    let j = upload(
        &mut im,
        ADMIN_D1,
        header("d1", "update_users.csv"),
        upd.as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(counts(&j).enabled, 1);
    assert_eq!(
        account_status(&mut c, a1.id).await,
        pb::AccountStatus::Enabled
    );

    // delete_users.csv: a stub is deleted, an account with data deactivated.
    let j = upload(
        &mut im,
        ADMIN_D1,
        header("d1", "delete_users.csv"),
        b"import_id\na5\na4\n",
    )
    .await
    .unwrap();
    assert_eq!((counts(&j).deleted, counts(&j).deactivated), (1, 1));
    assert_eq!(account_status(&mut c, a5).await, pb::AccountStatus::Deleted);
    assert_eq!(
        account_status(&mut c, a4).await,
        pb::AccountStatus::Deactivated
    );

    // Listed in update_users.csv: reactivated.
    let upd = format!("{V1}{}", row("a4", "Data", 1));
    let j = upload(
        &mut im,
        ADMIN_D1,
        header("d1", "update_users.csv"),
        upd.as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(counts(&j).reactivated, 1);
    assert_eq!(account_status(&mut c, a4).await, pb::AccountStatus::Enabled);
    assert_eq!(
        account_status(&mut c, manual).await,
        pb::AccountStatus::Enabled
    );
}

#[tokio::test]
async fn dry_run_writes_nothing_and_streams_the_exact_diff() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    register(&mut c, "d1", 100).await;
    let mut im = imports(&server).await;
    let before = server.ledger.log().last_position();
    let mut h = header("d1", "users.csv");
    h.dry_run = true;
    let j = upload(&mut im, ADMIN_D1, h, &read("powerschool/v1/users.csv"))
        .await
        .unwrap();
    assert_eq!(status(&j), pb::ImportJobStatus::DryRun);
    assert_eq!(counts(&j).created, 5);
    assert_eq!(j.events_written, 0);
    assert_eq!(j.changed_rows, 5);
    assert_eq!(server.ledger.log().last_position(), before);
    assert!(account(&mut c, "d1", "s1").await.is_err());

    let mut changes = im
        .stream_import_changes(req(
            ADMIN_D1,
            pb::GetImportJobRequest {
                job_id: j.job_id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let mut rows = Vec::new();
    while let Some(ch) = changes.message().await.unwrap() {
        assert_eq!(ch.changes.first().map(String::as_str), Some("created"));
        rows.push((ch.row, ch.import_id));
    }
    assert_eq!(
        rows,
        (1..=5)
            .map(|i| (i + 1, format!("s{i}")))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn guard_refuses_with_the_count_then_confirmed_applies() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    register(&mut c, "d1", 100).await;
    let mut im = imports(&server).await;
    upload(
        &mut im,
        ADMIN_D1,
        header("d1", "users.csv"),
        &read("powerschool/v1/users.csv"),
    )
    .await
    .unwrap();
    let before = server.ledger.log().last_position();
    let truncated = read("powerschool/truncated/users.csv");
    let refused = upload(&mut im, ADMIN_D1, header("d1", "users.csv"), &truncated).await;
    assert_status(
        refused,
        Code::FailedPrecondition,
        &["users.csv", "3 of the 5", "confirm"],
    );
    assert_eq!(server.ledger.log().last_position(), before);

    let mut h = header("d1", "users.csv");
    h.confirm_mass_change = true;
    let j = upload(&mut im, ADMIN_D1, h, &truncated).await.unwrap();
    assert_eq!(status(&j), pb::ImportJobStatus::Applied);
    assert_eq!(counts(&j).deactivated + counts(&j).deleted, 3);
    let g = j.guard.unwrap();
    assert_eq!((g.removals, g.active_imported, g.exceeded), (3, 5, true));
}

#[tokio::test]
async fn file_errors_are_invalid_argument_naming_file_row_and_column() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    register(&mut c, "d1", 100).await;
    let mut im = imports(&server).await;
    let before = server.ledger.log().last_position();
    let r = upload(
        &mut im,
        ADMIN_D1,
        header("d1", "users.csv"),
        &read("powerschool/missing_login/users.csv"),
    )
    .await;
    assert_status(r, Code::InvalidArgument, &["users.csv", "\"login\""]);
    let r = upload(
        &mut im,
        ADMIN_D1,
        header("d1", "users.csv"),
        &read("powerschool/latin1/users.csv"),
    )
    .await;
    assert_status(
        r,
        Code::InvalidArgument,
        &["users.csv", "row 3", "last_name", "UTF-8"],
    );
    let r = upload(
        &mut im,
        ADMIN_D1,
        header("d1", "users.csv"),
        &read("powerschool/both_versions/users.csv"),
    )
    .await;
    assert_status(r, Code::InvalidArgument, &["users.csv"]);
    let r = upload(&mut im, ADMIN_D1, header("d1", "roster.txt"), b"a,b\n").await;
    assert_status(r, Code::InvalidArgument, &["roster.txt"]);
    let r = upload(&mut im, ADMIN_D1, header("d1", "roster.zip"), b"not a zip").await;
    assert_status(r, Code::InvalidArgument, &["roster.zip", "zip"]);
    // bob administers d2, which is not registered.
    let r = upload(&mut im, ADMIN_D2, header("d2", "users.csv"), b"x").await;
    assert_status(r, Code::NotFound, &["d2"]);

    // The first message must be the header.
    let msgs = vec![pb::UploadImportRequest {
        part: Some(pb::upload_import_request::Part::Chunk(
            b"import_id\n".to_vec(),
        )),
    }];
    let r = im
        .upload_import(req(ADMIN_D1, tokio_stream::iter(msgs)))
        .await;
    assert_status(r, Code::InvalidArgument, &["header"]);
    // A second header is refused, nothing applied.
    let mut file = read("powerschool/v1/users.csv");
    let msgs = vec![
        pb::UploadImportRequest {
            part: Some(pb::upload_import_request::Part::Header(header(
                "d1",
                "users.csv",
            ))),
        },
        pb::UploadImportRequest {
            part: Some(pb::upload_import_request::Part::Chunk(file.split_off(40))),
        },
        pb::UploadImportRequest {
            part: Some(pb::upload_import_request::Part::Header(header(
                "d1",
                "users.csv",
            ))),
        },
        pb::UploadImportRequest {
            part: Some(pb::upload_import_request::Part::Chunk(file)),
        },
    ];
    let r = im
        .upload_import(req(ADMIN_D1, tokio_stream::iter(msgs)))
        .await;
    assert_status(r, Code::InvalidArgument, &["header", "twice"]);
    assert_eq!(server.ledger.log().last_position(), before);
}

#[tokio::test]
async fn only_the_domains_admins_import_and_read_jobs() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    register(&mut c, "d1", 100).await;
    register(&mut c, "d2", 100).await;
    let mut im = imports(&server).await;
    let file = read("powerschool/v1/users.csv");
    for token in [ADMIN_D2, LMS, AUDITOR, OPERATOR] {
        let r = upload(&mut im, token, header("d1", "users.csv"), &file).await;
        assert_status(r, Code::PermissionDenied, &[]);
    }
    let r = upload(&mut im, "nope", header("d1", "users.csv"), &file).await;
    assert_status(r, Code::Unauthenticated, &[]);
    assert!(account(&mut c, "d1", "s1").await.is_err());

    let j = upload(&mut im, ADMIN_D1, header("d1", "users.csv"), &file)
        .await
        .unwrap();
    let get = |token: &'static str| {
        let mut im = im.clone();
        let job_id = j.job_id.clone();
        async move {
            im.get_import_job(req(token, pb::GetImportJobRequest { job_id }))
                .await
                .map(|r| r.into_inner())
        }
    };
    assert_status(get(ADMIN_D2).await, Code::PermissionDenied, &["d1"]);
    assert_eq!(get(AUDITOR).await.unwrap().job_id, j.job_id);
    let r = im
        .list_import_jobs(req(
            ADMIN_D2,
            pb::ListImportJobsRequest {
                domain: "d1".into(),
            },
        ))
        .await;
    assert_status(r, Code::PermissionDenied, &[]);
}

#[tokio::test]
async fn job_report_row_errors_streamed_and_audit_names_job_file_row() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    register(&mut c, "d1", 100).await;
    let mut im = imports(&server).await;
    let mut h = header("d1", "users.csv");
    h.max_row_errors = 1;
    let j = upload(
        &mut im,
        ADMIN_D1,
        h,
        &read("powerschool/bad_rows/users.csv"),
    )
    .await
    .unwrap();
    assert_eq!(status(&j), pb::ImportJobStatus::Applied);
    assert_eq!(counts(&j).created, 2);
    assert_eq!(j.row_errors_total, 3);
    assert_eq!(j.row_errors.len(), 1, "only the first inline");
    assert_eq!(j.row_errors[0].row, 3);
    assert_eq!(j.row_errors[0].column.as_deref(), Some("enabled"));

    let mut errs = im
        .stream_import_row_errors(req(
            ADMIN_D1,
            pb::GetImportJobRequest {
                job_id: j.job_id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let mut rows = Vec::new();
    while let Some(e) = errs.message().await.unwrap() {
        assert_eq!(e.file, "users.csv");
        assert!(!e.reason.is_empty());
        rows.push(e.row);
    }
    assert_eq!(rows, vec![3, 4, 5]);

    let got = im
        .get_import_job(req(
            ADMIN_D1,
            pb::GetImportJobRequest {
                job_id: j.job_id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!got.from_log);
    assert_eq!((got.row_errors_total, counts(&got)), (3, counts(&j)));
    let listed = im
        .list_import_jobs(req(
            AUDITOR,
            pb::ListImportJobsRequest {
                domain: "d1".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.jobs.len(), 1);
    assert_eq!(listed.jobs[0].job_id, j.job_id);

    // Audit: the account's history names the job, the file and the row.
    let hist = c
        .get_account_history(req(
            AUDITOR,
            pb::GetAccountHistoryRequest {
                account: by_import("d1", "r5"),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let created = hist
        .events
        .iter()
        .find(|e| e.kind == "AccountCreated")
        .expect("created event");
    assert_eq!(created.actor, "alice");
    match created.source.as_ref().and_then(|s| s.kind.as_ref()) {
        Some(pb::event_source::Kind::Import(i)) => {
            assert_eq!(i.job_id, j.job_id);
            assert_eq!(i.file, "users.csv");
            assert_eq!(i.row, 6);
        }
        other => panic!("expected an import source, got {other:?}"),
    }
}

/// A server on `dir` (kept across restarts), with the tokens of `common`.
async fn serve_at(
    dir: &Path,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let entry = |principal: &str, role, domains: &[&str], token: &str| {
        TokenEntry::new(
            principal,
            role,
            domains.iter().map(|d| d.to_string()).collect(),
            token,
        )
    };
    let config = AuthConfig {
        tokens: vec![
            entry("ops", Role::Operator, &[], OPERATOR),
            entry("alice", Role::DomainAdmin, &["d1"], ADMIN_D1),
            entry("bob", Role::DomainAdmin, &["d2"], ADMIN_D2),
            entry("audit", Role::Auditor, &[], AUDITOR),
        ],
    };
    let ledger = Ledger::open(&dir.join("ledger")).await.expect("ledger");
    let auth = Arc::new(Auth::new(config, None));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        server::serve(ledger, auth, listener, async {
            let _ = rx.await;
        })
        .await
        .expect("server");
    });
    (addr, tx, handle)
}

#[tokio::test]
async fn after_a_restart_get_import_job_answers_from_the_log() {
    let data = tempfile::tempdir().unwrap();
    let (addr, tx, handle) = serve_at(data.path()).await;
    let mut c = connect(addr).await;
    register(&mut c, "d1", 100).await;
    let mut im = ImportServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let j = upload(
        &mut im,
        ADMIN_D1,
        header("d1", "users.csv"),
        &read("powerschool/v1/users.csv"),
    )
    .await
    .unwrap();
    drop((c, im));
    let _ = tx.send(());
    handle.await.unwrap();

    let (addr, tx, handle) = serve_at(data.path()).await;
    let im = ImportServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let get = |token: &'static str, job_id: String| {
        let mut im = im.clone();
        async move {
            im.get_import_job(req(token, pb::GetImportJobRequest { job_id }))
                .await
                .map(|r| r.into_inner())
        }
    };
    let got = get(AUDITOR, j.job_id.clone()).await.unwrap();
    assert!(got.from_log);
    assert_eq!(got.file, "users.csv");
    assert_eq!(got.actor, "alice");
    assert_eq!(got.domain, "d1");
    assert_eq!(counts(&got).created, 5);
    assert_eq!(got.events_written, j.events_written);
    assert_eq!(got.job_id, j.job_id);
    assert_status(
        get(ADMIN_D2, j.job_id.clone()).await,
        Code::PermissionDenied,
        &[],
    );
    assert_status(
        get(AUDITOR, uuid::Uuid::new_v4().to_string()).await,
        Code::NotFound,
        &[],
    );
    assert_status(
        get(AUDITOR, "not-a-uuid".into()).await,
        Code::InvalidArgument,
        &["job_id"],
    );
    // Row errors answer from the log too (this file has none); an unknown job is not found.
    let row_errors = |job_id: String| {
        let mut im = im.clone();
        async move {
            let mut stream = im
                .stream_import_row_errors(req(AUDITOR, pb::GetImportJobRequest { job_id }))
                .await?
                .into_inner();
            let mut n = 0;
            while stream.message().await?.is_some() {
                n += 1;
            }
            Ok::<u64, tonic::Status>(n)
        }
    };
    assert_eq!(
        row_errors(j.job_id.clone()).await.unwrap(),
        j.row_errors_total
    );
    assert_status(
        row_errors(uuid::Uuid::new_v4().to_string()).await,
        Code::NotFound,
        &["not held"],
    );
    let _ = tx.send(());
    handle.await.unwrap();
}

/// How many events were written since `before`, each of them a job's own record (its
/// summary or its row errors), never an account's change.
async fn job_records_since(server: &TestServer, before: u64) -> usize {
    let events = server
        .ledger
        .read_log(before + 1, u64::MAX, 100)
        .await
        .unwrap();
    for e in &events {
        assert!(
            matches!(
                e.event.kind(),
                "ImportJobRecorded" | "ImportRowErrorsRecorded"
            ),
            "{e:?}"
        );
    }
    events.len()
}

/// Run the built binary's `import` against `server`; (exit code, stdout, stderr).
async fn cli_import(server: &TestServer, args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_account-ledger"))
        .arg("import")
        .args(["--server", &format!("http://{}", server.addr)])
        .args(["--token", ADMIN_D1])
        .args(args)
        .output()
        .await
        .expect("run the binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn cli_import_json_and_exit_codes() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    register(&mut c, "d1", 100).await;
    let users = fixture("powerschool/v1/users.csv");
    let bad = fixture("powerschool/bad_rows/users.csv");
    let users = users.to_str().unwrap();
    let bad = bad.to_str().unwrap();

    let (code, out, err) = cli_import(&server, &["--domain", "d1", "--json", users]).await;
    assert_eq!(code, 0, "stderr: {err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(v["status"], "applied");
    assert_eq!(v["counts"]["created"], 5);
    assert_eq!(v["file"], "users.csv");
    assert!(
        err.is_empty(),
        "no progress bar when not a terminal: {err:?}"
    );

    // Leaving s1..s5 out trips the guard: refused, exit 1, nothing written.
    let before = server.ledger.log().last_position();
    let (code, _, err) = cli_import(&server, &["--domain", "d1", "--json", bad]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("refused") && err.contains("5 of the 5"),
        "{err}"
    );
    // Strict: a row fails, so nothing is applied, exit 1.
    let (code, out, _) = cli_import(
        &server,
        &[
            "--domain",
            "d1",
            "--json",
            "--strict",
            "--confirm-mass-change",
            bad,
        ],
    )
    .await;
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["status"], "refused_strict");
    // The refusal and its row errors are recorded; no account changed.
    assert_eq!(job_records_since(&server, before).await, 2);

    // Confirmed: the good rows apply, three rows fail, exit 2, every row error in the JSON.
    let (code, out, err) = cli_import(
        &server,
        &["--domain", "d1", "--json", "--confirm-mass-change", bad],
    )
    .await;
    assert_eq!(code, 2, "stderr: {err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["status"], "applied");
    assert_eq!(v["counts"]["failed"], 3);
    assert_eq!(v["counts"]["created"], 2);
    let rows: Vec<u64> = v["row_errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["row"].as_u64().unwrap())
        .collect();
    assert_eq!(rows, vec![3, 4, 5]);

    // The table output, and a OneRoster directory (zipped by the CLI) as a dry run.
    let dir = fixture("oneroster/bulk");
    let (code, out, err) = cli_import(
        &server,
        &["--domain", "d1", "--dry-run", dir.to_str().unwrap()],
    )
    .await;
    assert_eq!(code, 0, "stderr: {err}");
    assert!(out.contains("bulk.zip/users.csv"), "{out}");
    assert!(out.contains("CHANGE") && out.contains("dry run"), "{out}");
}

#[tokio::test]
async fn oneroster_zip_upload_applies_bulk_then_delta() {
    use std::io::Write;
    let server = TestServer::start().await;
    let mut c = server.client().await;
    register(&mut c, "d1", 100).await;
    let mut im = imports(&server).await;
    let zip_of = |set: &str| {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for name in ["manifest.csv", "users.csv"] {
            w.start_file(name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(&read(&format!("oneroster/{set}/{name}")))
                .unwrap();
        }
        w.finish().unwrap().into_inner()
    };
    let j = upload_chunked(
        &mut im,
        ADMIN_D1,
        header("d1", "roster.zip"),
        &zip_of("bulk"),
        100,
    )
    .await
    .unwrap();
    assert_eq!(status(&j), pb::ImportJobStatus::Applied);
    assert!(counts(&j).created > 0);
    assert_eq!(j.file, "roster.zip/users.csv");
    assert!(account(&mut c, "d1", "or-1").await.is_ok());
    // Named without .zip: the kind says it.
    let mut h = header("d1", "delta-upload");
    h.kind = pb::ImportFileKind::OnerosterZip as i32;
    let j = upload(&mut im, ADMIN_D1, h, &zip_of("delta"))
        .await
        .unwrap();
    assert!(j.format.contains("delta"), "{}", j.format);
    assert_eq!(counts(&j).failed, 0);
    assert!(j.events_written > 0);
}

#[tokio::test]
async fn an_upload_cut_off_mid_file_applies_nothing() {
    use pb::upload_import_request::Part;
    let server = TestServer::start().await;
    let mut c = server.client().await;
    register(&mut c, "d1", 100_000).await;
    let mut file = String::from(V1);
    for i in 0..5000 {
        file.push_str(&row(&format!("u{i}"), "Cut", 1));
    }
    let before = server.ledger.log().last_position();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut im = imports(&server).await;
    let call = tokio::spawn(async move {
        im.upload_import(req(
            ADMIN_D1,
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
        .await
    });
    tx.send(pb::UploadImportRequest {
        part: Some(Part::Header(header("d1", "users.csv"))),
    })
    .await
    .unwrap();
    let half = file.len() / 2;
    for chunk in file.as_bytes()[..half].chunks(4096) {
        tx.send(pb::UploadImportRequest {
            part: Some(Part::Chunk(chunk.to_vec())),
        })
        .await
        .unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // The client goes away mid-file (the call is dropped: the stream is reset, not ended). The
    // server drops the job (its handler is cancelled, or the reader sees the broken stream):
    // a cut-off file must never be imported as if it were whole.
    call.abort();
    assert!(call.await.unwrap_err().is_cancelled());
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(server.ledger.log().last_position(), before);
    assert!(account(&mut c, "d1", "u0").await.is_err());

    // The server is fine: the whole file imports.
    let mut im = imports(&server).await;
    let j = upload(
        &mut im,
        ADMIN_D1,
        header("d1", "users.csv"),
        file.as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(counts(&j).created, 5000);
    let listed = im
        .list_import_jobs(req(
            ADMIN_D1,
            pb::ListImportJobsRequest {
                domain: "d1".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.jobs.len(), 1, "the cut-off upload is no job");
}
