//! A crash (kill -9) in the middle of a large import leaves all of it or none of it: the test
//! re-runs its own binary as a child that imports, kills it at various moments, reopens the
//! ledger and checks the account count and that replaying the log equals the live projections.

mod child;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use child::Child;

use account_ledger::domain::Command;
use account_ledger::import::{ImportInput, ImportJob, ImportOptions, run_import};
use account_ledger::ledger::{Ledger, Request};

const ROWS: usize = 10_000;
const CHILD_ENV: &str = "ACCOUNT_LEDGER_IMPORT_CRASH_CHILD";

fn write_users(path: &Path) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    writeln!(f, "import_id,login,first_name,last_name,enabled").expect("write");
    for i in 0..ROWS {
        writeln!(f, "sis-{i},user{i},First,Last,1").expect("write");
    }
}

/// The child: open, make sure the domain exists, say so, import.
async fn child(dir: &Path) {
    let ledger = Ledger::open(&dir.join("data")).await.expect("open");
    if !ledger.domain_exists("d") {
        ledger
            .execute(Request::manual(
                "t",
                Command::RegisterDomain {
                    domain: "d".into(),
                    license_limit: 1_000_000,
                },
            ))
            .await
            .expect("domain");
    }
    println!("importing");
    let _ = std::io::stdout().flush();
    let r = run_import(
        &ledger,
        ImportJob::new("d", "t"),
        ImportInput::Path(dir.join("users.csv")),
        ImportOptions::default(),
        |_| {},
    )
    .await
    .expect("import");
    println!("done {}", r.events_written);
    let _ = std::io::stdout().flush();
    std::thread::sleep(Duration::from_secs(60));
}

#[tokio::test]
async fn kill_9_mid_import_leaves_all_or_nothing() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(Path::new(&dir)).await;
        return;
    }
    let mut outcomes = Vec::new();
    // First run: kill only after the child reports the import done (all of it must be there),
    // timing it; then kill at fractions of that time, most near the end where the one batch is
    // being appended.
    let mut took_ms = 0u64;
    for fraction in [None, Some(0.0), Some(0.3), Some(0.6), Some(0.8), Some(0.95)] {
        let delay_ms = fraction.map(|f: f64| (took_ms as f64 * f) as u64);
        let tmp = tempfile::tempdir().expect("tempdir");
        write_users(&tmp.path().join("users.csv"));
        let child = Child::spawn(
            "kill_9_mid_import_leaves_all_or_nothing",
            CHILD_ENV,
            tmp.path(),
        );
        child.wait_for("importing");
        let started = std::time::Instant::now();
        match delay_ms {
            Some(ms) => std::thread::sleep(Duration::from_millis(ms)),
            None => {
                child.wait_for("done");
                took_ms = started.elapsed().as_millis() as u64;
            }
        }
        child.kill();
        let ledger = Ledger::open(&tmp.path().join("data"))
            .await
            .expect("reopen");
        let accounts = ledger.state_snapshot().accounts.len();
        assert!(
            accounts == 0 || accounts == ROWS,
            "after kill at {delay_ms:?} ms: {accounts} of {ROWS} accounts"
        );
        let v = ledger.verify_projections().await.expect("verify");
        assert!(v.equal, "{}", v.detail);
        outcomes.push(accounts);
        ledger.close().await.expect("close");
    }
    eprintln!("import took {took_ms} ms; accounts after each kill: {outcomes:?}");
    assert_eq!(outcomes[0], ROWS, "a finished import survives kill -9");
    assert_eq!(
        outcomes[1], 0,
        "a kill before anything was appended leaves nothing"
    );
}
