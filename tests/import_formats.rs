//! The file formats on real fixtures: PowerSchool v1 and v2 (full and partial), BOM and CRLF,
//! quoting, trailing blank lines, non-UTF-8, missing columns, duplicates, version detection, bad
//! rows, uploads as streams, and that `password` never reaches the ledger or the report.

mod import_common;

use account_ledger::domain::Status;
use account_ledger::import::{
    FileKind, ImportError, ImportInput, ImportJob, ImportOptions, JobStatus, Version, run_import,
};
use import_common::*;

async fn scenario(dir: &str) {
    let env = env().await;
    let r = env.import(&fixture(&format!("{dir}/users.csv"))).await;
    assert_eq!(r.counts.created, 5, "{r:#?}");
    assert_eq!(env.status("s3"), Some(Status::Disabled));
    assert_eq!(env.status("s1"), Some(Status::Enabled));
    env.sign_in("s2").await;
    let r = env
        .import(&fixture(&format!("{dir}/update_users.csv")))
        .await;
    assert_eq!(
        (r.counts.created, r.counts.updated, r.counts.disabled),
        (1, 1, 1),
        "{r:#?}"
    );
    let s1 = env.account("s1").expect("s1");
    assert_eq!(s1.profile.last_name(), "King");
    assert_eq!(s1.status(), Status::Disabled);
    assert_eq!(env.status("s6"), Some(Status::Enabled));
    let r = env
        .import(&fixture(&format!("{dir}/delete_users.csv")))
        .await;
    assert_eq!((r.counts.deactivated, r.counts.deleted), (1, 1), "{r:#?}");
    assert_eq!(env.status("s2"), Some(Status::Deactivated));
    assert_eq!(env.status("s4"), None);
    // the partial files, re-run, change nothing
    let r = env
        .import(&fixture(&format!("{dir}/update_users.csv")))
        .await;
    assert_eq!(r.status, JobStatus::NoChanges, "{r:#?}");
    let r = env
        .import(&fixture(&format!("{dir}/delete_users.csv")))
        .await;
    assert_eq!(r.status, JobStatus::NoChanges);
}

#[tokio::test]
async fn powerschool_v1_full_and_partial() {
    scenario("powerschool/v1").await;
}

#[tokio::test]
async fn powerschool_v2_full_and_partial() {
    scenario("powerschool/v2").await;
}

#[tokio::test]
async fn bom_crlf_and_header_names_matched_loosely() {
    let env = env().await;
    let r = env.import(&fixture("powerschool/bom_crlf/users.csv")).await;
    assert_eq!(r.counts.created, 2, "{r:#?}");
    assert!(r.format.contains("v2"), "{}", r.format);
    let b1 = env
        .account("b1")
        .expect("b1: import_id matched despite BOM");
    assert_eq!(b1.profile.login(), "marie");
    assert_eq!(b1.profile.email(), "marie@school.org");
    assert_eq!(b1.role, "teacher");
    assert_eq!(env.status("b2"), Some(Status::Disabled), "blocked=1");
    assert!(
        r.warnings.iter().any(|w| w.contains("Favourite_Colour")),
        "{:?}",
        r.warnings
    );
    let again = env.import(&fixture("powerschool/bom_crlf/users.csv")).await;
    assert_eq!(again.status, JobStatus::NoChanges);
}

#[tokio::test]
async fn quoted_fields_and_trailing_blank_lines() {
    let env = env().await;
    let r = env.import(&fixture("powerschool/quoted/users.csv")).await;
    assert_eq!(r.counts.created, 3, "{r:#?}");
    assert_eq!(r.rows_read, 3, "blank lines and empty rows are not rows");
    assert!(r.row_errors.is_empty(), "{:?}", r.row_errors);
    let q1 = env.account("q1").expect("q1");
    assert_eq!(q1.profile.first_name(), "Mary, Jane");
    assert_eq!(q1.profile.last_name(), "O'Brien \"MJ\"");
    assert_eq!(
        env.account("q2").expect("q2").profile.first_name(),
        "Two\nLines"
    );
    // row numbers are the lines rows start on, after a field spanning two lines
    let rows: Vec<u64> = r.changes.iter().map(|c| c.row).collect();
    assert_eq!(rows, vec![2, 3, 5]);
}

#[tokio::test]
async fn non_utf8_refuses_the_file_naming_row_and_column() {
    let env = env().await;
    let before = env.last_position();
    let err = env
        .import_with(
            &fixture("powerschool/latin1/users.csv"),
            ImportOptions::default(),
        )
        .await
        .expect_err("not UTF-8");
    match &err {
        ImportError::Encoding {
            file, row, column, ..
        } => {
            assert_eq!(file, "users.csv");
            assert_eq!(*row, 3);
            assert_eq!(column, "last_name");
        }
        other => panic!("expected an encoding error, got {other}"),
    }
    assert!(err.to_string().contains("row 3"));
    assert_eq!(
        env.last_position(),
        before,
        "row 2 was fine, but nothing applies"
    );
    assert!(env.account("l1").is_none());
}

#[tokio::test]
async fn missing_required_column_is_a_file_error() {
    let env = env().await;
    let err = env
        .import_with(
            &fixture("powerschool/missing_login/users.csv"),
            ImportOptions::default(),
        )
        .await
        .expect_err("missing login");
    assert!(
        matches!(&err, ImportError::MissingColumn { column, file } if column == "login" && file == "users.csv"),
        "{err}"
    );
    let err = env
        .import_with(
            &env.write("delete_users.csv", "login\nann\n"),
            ImportOptions::default(),
        )
        .await
        .expect_err("missing import_id");
    assert!(matches!(&err, ImportError::MissingColumn { column, .. } if column == "import_id"));
}

#[tokio::test]
async fn duplicates_within_a_file_are_row_errors_naming_both_rows() {
    let env = env().await;
    let r = env
        .import(&fixture("powerschool/duplicates/users.csv"))
        .await;
    assert_eq!(r.counts.created, 2);
    assert_eq!(r.counts.failed, 2);
    let e = &r.row_errors[0];
    assert_eq!((e.row, e.column.as_deref()), (4, Some("import_id")));
    assert!(e.reason.contains("row 2"), "{e}");
    let e = &r.row_errors[1];
    assert_eq!((e.row, e.column.as_deref()), (5, Some("login")));
    assert!(e.reason.contains("row 2"), "{e}");
    assert_eq!(
        env.account("s1").expect("s1").profile.last_name(),
        "Lovelace"
    );
}

#[tokio::test]
async fn version_comes_from_the_header_or_the_caller() {
    let env = env().await;
    for dir in ["both_versions", "no_version"] {
        let err = env
            .import_with(
                &fixture(&format!("powerschool/{dir}/users.csv")),
                ImportOptions::default(),
            )
            .await
            .expect_err(dir);
        assert!(matches!(err, ImportError::Version { .. }), "{dir}: {err}");
    }
    assert_eq!(env.last_position(), 2, "only the setup events");
    let named = |v| ImportOptions {
        version: Some(v),
        ..Default::default()
    };
    // both columns, v2 named: `blocked`=0 applies
    let r = env
        .import_checked(
            &fixture("powerschool/both_versions/users.csv"),
            named(Version::V2),
        )
        .await;
    assert_eq!(r.counts.created, 1);
    assert_eq!(env.status("v1"), Some(Status::Enabled));
    // no flag column, version named: created enabled, flags left alone afterwards
    let r = env
        .import_checked(
            &fixture("powerschool/no_version/users.csv"),
            named(Version::V1),
        )
        .await;
    assert_eq!(r.counts.created, 1);
    assert!(!r.warnings.is_empty());
    // a named version that contradicts the header is refused
    let err = env
        .import_with(&fixture("powerschool/v2/users.csv"), named(Version::V1))
        .await
        .expect_err("v1 named, v2 header");
    assert!(matches!(err, ImportError::Version { .. }));
}

#[tokio::test]
async fn bad_rows_are_reported_with_row_and_column_and_skipped() {
    let env = env().await;
    let r = env.import(&fixture("powerschool/bad_rows/users.csv")).await;
    assert_eq!(r.counts.created, 2, "{r:#?}");
    let got: Vec<(u64, Option<&str>)> = r
        .row_errors
        .iter()
        .map(|e| (e.row, e.column.as_deref()))
        .collect();
    assert_eq!(
        got,
        vec![(3, Some("enabled")), (4, Some("import_id")), (5, None)]
    );
    assert!(r.row_errors[0].reason.contains("maybe"));
    assert!(r.row_errors[2].reason.contains("fields"));
    assert!(r.has_failures());
    assert_eq!(env.status("r5"), Some(Status::Disabled));
    // a full import never removes an account whose row was bad
    env.sign_in("r1").await;
    let r = env.import(&fixture("powerschool/bad_rows/users.csv")).await;
    assert_eq!(r.counts.changes(), 0, "{r:#?}");
}

#[tokio::test]
async fn password_never_reaches_the_ledger_or_the_report() {
    let env = env().await;
    let r = env.import(&fixture("powerschool/v1/users.csv")).await;
    let quoted = env.import(&fixture("powerschool/quoted/users.csv")).await;
    for text in [format!("{r:?}"), format!("{quoted:?}")] {
        assert!(!text.contains("Secr3t"), "password in the report");
        assert!(!text.contains("pa,ss"));
    }
    env.ledger.close().await.expect("close");
    let mut stack = vec![env.data.path().to_path_buf()];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            for e in std::fs::read_dir(&p).expect("read_dir") {
                stack.push(e.expect("entry").path());
            }
        } else {
            let bytes = std::fs::read(&p).expect("read");
            assert!(
                !bytes.windows(9).any(|w| w == b"Secr3t!pw"),
                "password bytes in {}",
                p.display()
            );
        }
    }
}

#[tokio::test]
async fn uploads_stream_from_a_reader_and_kind_comes_from_name_or_caller() {
    let env = env().await;
    let data = std::fs::read(fixture("powerschool/v1/users.csv")).expect("fixture");
    let r = run_import(
        &env.ledger,
        ImportJob::new(DOMAIN, ADMIN),
        ImportInput::Reader {
            name: "users.csv".into(),
            reader: Box::new(std::io::Cursor::new(data.clone())),
        },
        ImportOptions::default(),
        |_| {},
    )
    .await
    .expect("upload");
    assert_eq!(r.counts.created, 5);
    let err = run_import(
        &env.ledger,
        ImportJob::new(DOMAIN, ADMIN),
        ImportInput::Reader {
            name: "export-2026.csv".into(),
            reader: Box::new(std::io::Cursor::new(data.clone())),
        },
        ImportOptions::default(),
        |_| {},
    )
    .await
    .expect_err("unknown kind");
    assert!(matches!(err, ImportError::UnknownFile { .. }));
    let mut seen = Vec::new();
    let (tx, rx) = std::sync::mpsc::channel();
    let r = run_import(
        &env.ledger,
        ImportJob::new(DOMAIN, ADMIN),
        ImportInput::Reader {
            name: "export-2026.csv".into(),
            reader: Box::new(std::io::Cursor::new(data)),
        },
        ImportOptions {
            kind: Some(FileKind::UpdateUsers),
            ..Default::default()
        },
        move |p| {
            let _ = tx.send(p);
        },
    )
    .await
    .expect("named kind");
    assert_eq!(r.status, JobStatus::NoChanges);
    while let Ok(p) = rx.try_recv() {
        seen.push(p);
    }
    assert!(seen.iter().any(|p| p.rows == 5 && p.bytes > 0), "{seen:?}");
    let err = run_import(
        &env.ledger,
        ImportJob::new("no-such-domain", ADMIN),
        ImportInput::Path(fixture("powerschool/v1/users.csv")),
        ImportOptions::default(),
        |_| {},
    )
    .await
    .expect_err("unknown domain");
    assert!(matches!(err, ImportError::UnknownDomain { .. }));
}

#[tokio::test]
async fn powerschool_flags_take_1_or_0_and_blank_keeps_the_flag() {
    let env = env().await;
    let r = env
        .import(&env.write(
            "users.csv",
            "import_id,first_name,last_name,login,email,user_type,enabled\n\
             S1,Ann,Lee,ann,ann@x.example,student,0\n\
             S2,Bob,Roe,bob,bob@x.example,student,1\n",
        ))
        .await;
    assert_eq!(r.counts.created, 2, "{r:#?}");
    let r = env
        .import(&env.write(
            "update_users.csv",
            "import_id,first_name,last_name,login,email,user_type,enabled\n\
             S1,Ann,Lee,ann,ann@x.example,student,\n\
             S2,Bob,Roe,bob,bob@x.example,student,yes\n\
             S3,Cy,Day,cy,cy@x.example,student,FALSE\n",
        ))
        .await;
    assert_eq!(env.status("S1"), Some(Status::Disabled), "blank keeps");
    let errors = format!("{:?}", r.row_errors);
    assert_eq!(r.row_errors.len(), 2, "{errors}");
    assert!(
        errors.contains("1 (enabled), 0 (disabled) or blank (keep as is)"),
        "{errors}"
    );
}
