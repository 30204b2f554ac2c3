//! Shared helpers for the import tests: a real ledger on sled in a temp dir, a registered
//! domain, files written to a temp dir, and small readers of the ledger's state.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use account_ledger::domain::{AccountState, Command, Profile, Status};
use account_ledger::import::{
    ImportError, ImportInput, ImportJob, ImportOptions, ImportReport, Version, run_import,
};
use account_ledger::ledger::{Ledger, Request};
use tempfile::TempDir;

pub const DOMAIN: &str = "district";
pub const ADMIN: &str = "admin@district";

pub struct Env {
    pub data: TempDir,
    pub files: TempDir,
    pub ledger: Ledger,
}

/// A ledger with one domain of `limit` licenses and the mass-change guard at `guard` percent.
pub async fn env_with(limit: u32, guard: u8) -> Env {
    let data = tempfile::tempdir().expect("tempdir");
    let files = tempfile::tempdir().expect("tempdir");
    let ledger = Ledger::open(data.path()).await.expect("open ledger");
    for command in [
        Command::RegisterDomain {
            domain: DOMAIN.into(),
            license_limit: limit,
        },
        Command::SetMassChangeGuard {
            domain: DOMAIN.into(),
            percent: guard,
        },
    ] {
        ledger
            .execute(Request::manual(ADMIN, command))
            .await
            .expect("setup");
    }
    Env {
        data,
        files,
        ledger,
    }
}

/// Plenty of licenses; the guard off (100%) for tests that are not about it.
pub async fn env() -> Env {
    env_with(1000, 100).await
}

pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

impl Env {
    /// Write `content` as `name` in a fresh subdirectory (so a name can repeat).
    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = self.files.path().join(format!("f{n}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join(name);
        std::fs::write(&path, content).expect("write");
        path
    }

    pub fn last_position(&self) -> u64 {
        self.ledger.log().last_position()
    }

    pub async fn import_with(
        &self,
        path: &Path,
        opts: ImportOptions,
    ) -> Result<ImportReport, ImportError> {
        run_import(
            &self.ledger,
            ImportJob::new(DOMAIN, ADMIN),
            ImportInput::Path(path.to_path_buf()),
            opts,
            |_| {},
        )
        .await
    }

    /// Import and check the report's bookkeeping: what it says it wrote is what the log got.
    pub async fn import(&self, path: &Path) -> ImportReport {
        self.import_checked(path, ImportOptions::default()).await
    }

    pub async fn import_checked(&self, path: &Path, opts: ImportOptions) -> ImportReport {
        let before = self.last_position();
        let report = self
            .import_with(path, opts)
            .await
            .unwrap_or_else(|e| panic!("import of {} failed: {e}", path.display()));
        let written = self.last_position() - before;
        assert_eq!(written, report.events_written, "{report:#?}");
        if !opts.dry_run && !opts.strict {
            assert_eq!(report.counts.changes(), written, "{report:#?}");
        }
        report
    }

    pub fn account(&self, import_id: &str) -> Option<AccountState> {
        self.ledger.account_by_import_id(DOMAIN, import_id)
    }

    pub fn status(&self, import_id: &str) -> Option<Status> {
        self.account(import_id).map(|a| a.status())
    }

    /// The LMS reports a sign-in: the account is no longer a stub.
    pub async fn sign_in(&self, import_id: &str) {
        let id = self.account(import_id).expect("account").id;
        self.ledger
            .execute(Request {
                source: account_ledger::store::Source::LmsReport,
                ..Request::manual(
                    "lms",
                    Command::RecordSignIn {
                        account: id,
                        at_us: 1,
                    },
                )
            })
            .await
            .expect("sign-in");
    }

    /// An account created by hand (no import id).
    pub async fn create_by_hand(&self, login: &str) -> u64 {
        self.ledger
            .execute(Request::manual(
                ADMIN,
                Command::CreateAccount {
                    domain: DOMAIN.into(),
                    account: 0,
                    import_id: None,
                    profile: Profile {
                        login: login.into(),
                        ..Profile::default()
                    },
                    role: "teacher".into(),
                    enabled: true,
                },
            ))
            .await
            .expect("create by hand")
            .account
            .expect("account id")
    }
}

/// One user row for [`users_csv`].
#[derive(Clone, Copy)]
pub struct U<'a> {
    pub id: &'a str,
    pub login: &'a str,
    pub last: &'a str,
    pub enabled: bool,
}

pub fn u<'a>(id: &'a str, login: &'a str, enabled: bool) -> U<'a> {
    U {
        id,
        login,
        last: "Doe",
        enabled,
    }
}

/// A PowerSchool users/update_users file in the vendor's column order, v1 or v2.
pub fn users_csv(version: Version, rows: &[U]) -> String {
    let flag = match version {
        Version::V1 => "enabled",
        Version::V2 => "blocked",
    };
    let mut s = format!(
        "import_id,first_name,middle_init,last_name,suffix,nickname,login,password,email,user_type,organization_id,{flag},display_id,google_email_address\n"
    );
    for r in rows {
        let on = match version {
            Version::V1 => r.enabled,
            Version::V2 => !r.enabled,
        };
        s.push_str(&format!(
            "{},First,,{},,,{},pw,{}@school.org,student,org1,{},,\n",
            r.id,
            r.last,
            r.login,
            r.login,
            if on { 1 } else { 0 }
        ));
    }
    s
}

pub fn delete_csv(ids: &[&str]) -> String {
    let mut s = "import_id\n".to_string();
    for id in ids {
        s.push_str(id);
        s.push('\n');
    }
    s
}
