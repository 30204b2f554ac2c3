//! Helpers shared by the ledger-core tests: a real ledger on a real sled dir in a tempdir.
#![allow(dead_code)]

use account_ledger::domain::{Command, LedgerState, Profile};
use account_ledger::ledger::{Ledger, Request};
use proptest::prelude::{TestCaseError, prop_assert, prop_assert_eq};

pub async fn open() -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = Ledger::open(dir.path()).await.expect("open ledger");
    (dir, ledger)
}

pub fn profile(login: &str) -> Profile {
    Profile {
        login: login.to_string(),
        first_name: format!("First {login}"),
        last_name: format!("Last {login}"),
        email: format!("{login}@school.example"),
    }
}

pub async fn register(ledger: &Ledger, domain: &str, limit: u32) {
    ledger
        .execute(Request::manual(
            "op",
            Command::RegisterDomain {
                domain: domain.into(),
                license_limit: limit,
            },
        ))
        .await
        .expect("register domain");
}

pub async fn create(ledger: &Ledger, domain: &str, login: &str, enabled: bool) -> u64 {
    ledger
        .execute(Request::manual(
            "admin",
            Command::CreateAccount {
                domain: domain.into(),
                account: 0,
                import_id: Some(format!("sis-{login}")),
                profile: profile(login),
                role: "student".into(),
                enabled,
            },
        ))
        .await
        .expect("create account")
        .account
        .expect("account id")
}

/// A manual CreateAccount of an enabled student whose import id is its login.
pub fn create_request(domain: &str, login: &str) -> Request {
    Request::manual(
        "admin",
        Command::CreateAccount {
            domain: domain.into(),
            account: 0,
            import_id: Some(login.into()),
            profile: profile(login),
            role: "student".into(),
            enabled: true,
        },
    )
}

/// Run a property test's async body on a two-thread runtime (proptest bodies are sync).
pub fn run<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// The license invariants of every domain: usage never above the limit, and the counter equal
/// to the accounts that take a license.
pub fn check_limits(state: &LedgerState) -> Result<(), TestCaseError> {
    for d in state.domains.values() {
        prop_assert!(
            d.licenses_used <= d.license_limit,
            "{} uses {} of {}",
            d.name,
            d.licenses_used,
            d.license_limit
        );
        let counted = state
            .accounts
            .values()
            .filter(|a| a.domain == d.name && a.takes_license())
            .count() as u32;
        prop_assert_eq!(counted, d.licenses_used);
    }
    Ok(())
}

/// Copy a directory tree (a data dir as a crash or a backup would leave it).
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
