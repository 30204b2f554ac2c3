//! OneRoster 1.1 sets: a bulk directory (full import), a delta directory (`tobedeleted` acts as
//! delete_users.csv), the same bulk set as a .zip, and a manifest with users absent; OneRoster
//! 1.2 sets (roles from roles.csv; fixtures written from the 1EdTech 1.2 CSV binding); the
//! version and required columns checked.

mod import_common;

use std::io::Write;

use account_ledger::domain::Status;
use account_ledger::import::{ImportError, ImportOptions, JobStatus};
use import_common::*;

#[tokio::test]
async fn bulk_then_delta() {
    let env = env().await;
    let r = env.import(&fixture("oneroster/bulk")).await;
    assert_eq!(r.counts.created, 4, "{r:#?}");
    assert!(r.format.contains("bulk"));
    assert_eq!(r.file, "bulk/users.csv");
    assert!(r.warnings.iter().any(|w| w.contains("file.classes")));
    let kim = env.account("or-1").expect("sourcedId is the import id");
    assert_eq!(kim.profile.login(), "kim");
    assert_eq!(
        (kim.profile.first_name(), kim.profile.last_name()),
        ("Kim", "Park")
    );
    assert_eq!(
        env.status("or-3"),
        Some(Status::Disabled),
        "enabledUser=false"
    );
    assert_eq!(env.account("or-3").expect("or-3").role, "teacher");
    env.sign_in("or-2").await;
    let r = env.import(&fixture("oneroster/delta")).await;
    assert_eq!(
        (
            r.counts.disabled,
            r.counts.deactivated,
            r.counts.deleted,
            r.counts.created
        ),
        (1, 1, 1, 1),
        "{r:#?}"
    );
    assert_eq!(env.status("or-1"), Some(Status::Disabled));
    assert_eq!(env.status("or-2"), Some(Status::Deactivated), "has data");
    assert_eq!(env.status("or-4"), None, "stub: deleted");
    assert_eq!(
        env.status("or-3"),
        Some(Status::Disabled),
        "delta: others untouched"
    );
    let again = env.import(&fixture("oneroster/delta")).await;
    assert_eq!(again.status, JobStatus::NoChanges, "{again:#?}");
}

fn zip_dir(src: &std::path::Path, dest: &std::path::Path) {
    zip_files(src, dest, &["manifest.csv", "users.csv"]);
}

fn zip_files(src: &std::path::Path, dest: &std::path::Path, names: &[&str]) {
    let file = std::fs::File::create(dest).expect("create zip");
    let mut zip = zip::ZipWriter::new(file);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for name in names {
        zip.start_file(format!("export/{name}"), opts)
            .expect("start");
        zip.write_all(&std::fs::read(src.join(name)).expect("read"))
            .expect("write");
    }
    zip.finish().expect("finish");
}

#[tokio::test]
async fn a_zip_imports_like_its_directory() {
    let env = env_with(1000, 10).await;
    let zip_path = env.files.path().join("sis.zip");
    zip_dir(&fixture("oneroster/bulk"), &zip_path);
    let r = env.import(&zip_path).await;
    assert_eq!(r.counts.created, 4, "{r:#?}");
    assert_eq!(r.file, "sis.zip/users.csv");
    // the directory carries the same set: no changes
    let r = env.import(&fixture("oneroster/bulk")).await;
    assert_eq!(r.status, JobStatus::NoChanges);
    // a broken zip is a file error
    let bad = env.files.path().join("bad.zip");
    std::fs::write(&bad, b"not a zip").expect("write");
    let err = env
        .import_with(&bad, ImportOptions::default())
        .await
        .expect_err("bad zip");
    assert!(matches!(err, ImportError::Zip { .. }), "{err}");
}

#[tokio::test]
async fn manifest_with_users_absent_changes_nothing() {
    let env = env().await;
    env.import(&fixture("oneroster/bulk")).await;
    let r = env.import(&fixture("oneroster/absent")).await;
    assert_eq!(r.status, JobStatus::NoChanges);
    assert!(r.warnings.iter().any(|w| w.contains("absent")));
    assert_eq!(env.status("or-1"), Some(Status::Enabled));
}

/// A OneRoster set in a fresh directory: its manifest says `version`, its users.csv has
/// `header` and `rows`.
fn roster_set(env: &Env, version: &str, header: &str, rows: &str) -> std::path::PathBuf {
    let manifest = env.write(
        "manifest.csv",
        &format!("propertyName,value\nmanifest.version,1.0\noneroster.version,{version}\nfile.users,bulk\n"),
    );
    let dir = manifest.parent().unwrap().to_path_buf();
    std::fs::write(dir.join("users.csv"), format!("{header}\n{rows}")).unwrap();
    dir
}

const HEADER_1_1: &str = "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,givenName,familyName,email";

#[tokio::test]
async fn a_oneroster_1_2_set_takes_roles_from_roles_csv() {
    let env = env().await;
    let r = env.import(&fixture("oneroster12/bulk")).await;
    assert!(
        r.format.contains("OneRoster 1.2") && r.format.contains("bulk"),
        "{}",
        r.format
    );
    // u-5 has no row in roles.csv: a full import cannot guess its role.
    assert_eq!(r.counts.created, 4, "{r:#?}");
    let errors = format!("{:?}", r.row_errors);
    assert!(
        errors.contains("u-5") && errors.contains("has no role in bulk/roles.csv"),
        "{errors}"
    );
    let role = |iid: &str| env.account(iid).expect(iid).role;
    assert_eq!(role("u-1"), "student");
    assert_eq!(
        role("u-2"),
        "teacher",
        "the primary role wins over a secondary one"
    );
    assert_eq!(
        role("u-4"),
        "administrator",
        "a secondary role when there is no primary"
    );
    assert_eq!(
        env.status("u-3"),
        Some(Status::Disabled),
        "enabledUser=false"
    );
    // The same set as a .zip reads the same (nothing changes).
    let zip_path = env.files.path().join("sis12.zip");
    zip_files(
        &fixture("oneroster12/bulk"),
        &zip_path,
        &["manifest.csv", "users.csv", "roles.csv"],
    );
    let again = env.import(&zip_path).await;
    assert_eq!(again.events_written, 0, "{again:#?}");

    let r = env.import(&fixture("oneroster12/delta")).await;
    assert!(r.format.contains("delta"), "{}", r.format);
    assert_eq!(role("u-1"), "teacher", "a role change in roles.csv");
    assert_eq!(role("u-6"), "teacher");
    assert_eq!(env.status("u-3"), None, "tobedeleted stub: deleted");
    assert_eq!(role("u-2"), "teacher", "delta: others untouched");
}

#[tokio::test]
async fn an_unknown_oneroster_version_is_refused() {
    let env = env().await;
    let dir = roster_set(&env, "2.0", HEADER_1_1, "");
    let err = env
        .import_with(&dir, ImportOptions::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("\"2.0\"") && err.to_string().contains("1.1 and 1.2"),
        "{err}"
    );
}

#[tokio::test]
async fn a_oneroster_users_csv_without_its_role_column_is_refused_naming_it() {
    let env = env().await;
    let dir = roster_set(
        &env,
        "1.1",
        "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,username,givenName,familyName,email",
        "t-1,active,,true,org-1,tina,Tina,Lee,tina@school.example\n",
    );
    let err = env
        .import_with(&dir, ImportOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ImportError::MissingColumn { column, .. } if column == "role"),
        "{err}"
    );
}

#[tokio::test]
async fn enabled_user_takes_true_or_false_and_says_so_for_anything_else() {
    let env = env().await;
    let dir = roster_set(
        &env,
        "1.1",
        HEADER_1_1,
        "t-1,active,,TRUE,org-1,teacher,tina,Tina,Lee,tina@school.example\n\
         t-2,active,,yes,org-1,student,sam,Sam,Roe,sam@school.example\n",
    );
    let r = env.import(&dir).await;
    assert_eq!(r.counts.created, 1, "{r:#?}");
    let errors = format!("{:?}", r.row_errors);
    assert!(
        errors.contains("true, false (any case) or blank (keep as is)"),
        "{errors}"
    );
}
