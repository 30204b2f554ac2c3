//! kill -9 while a revert chain runs (revert of an import job, then of that revert, ...): after
//! restart each revert is all or nothing (the domain's enabled count is 0 or all) and replaying
//! the log equals the live views. The test re-runs its own binary as the child that writes.

mod child;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use child::Child;

use account_ledger::domain::Command;
use account_ledger::import::{ImportInput, ImportJob, ImportOptions, run_import};
use account_ledger::ledger::{Ledger, Request};

const ROWS: usize = 5_000;
const CHILD_ENV: &str = "ACCOUNT_LEDGER_REVERT_CRASH_CHILD";

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn import(ledger: &Ledger, dir: &Path, name: &str, enabled: u8) -> uuid::Uuid {
    let sub = dir.join(format!("in-{name}-{enabled}"));
    std::fs::create_dir_all(&sub).expect("mkdir");
    let path = sub.join(name);
    let mut csv = String::from("import_id,first_name,last_name,login,email,user_type,enabled\n");
    for i in 0..ROWS {
        csv.push_str(&format!(
            "S{i},F{i},L{i},u{i},u{i}@x.example,student,{enabled}\n"
        ));
    }
    std::fs::write(&path, csv).expect("write");
    run_import(
        ledger,
        ImportJob::new("a", "admin"),
        ImportInput::Path(path),
        ImportOptions::default(),
        |_| {},
    )
    .await
    .expect("import")
    .job_id
}

/// The child: 5k accounts created, all disabled by an update job, then that job reverted, the
/// revert reverted, and so on (each revert flips all 5k accounts in one batch).
async fn child(dir: &Path) {
    let ledger = Ledger::open(&dir.join("data")).await.expect("open");
    ledger
        .execute(Request::manual(
            "op",
            Command::RegisterDomain {
                domain: "a".into(),
                license_limit: 1_000_000,
            },
        ))
        .await
        .expect("domain");
    import(&ledger, dir, "users.csv", 1).await;
    let mut job = import(&ledger, dir, "update_users.csv", 0).await;
    say("started");
    loop {
        let done = ledger
            .revert_job(&job, "admin", false, false)
            .await
            .expect("revert")
            .expect("job in the log");
        job = done.job_id.expect("a revert that wrote");
        say("reverted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_reverts_leaves_whole_reverts_only() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(Path::new(&dir)).await;
        return;
    }
    let mut reverts_seen = 0;
    // None: kill right after a revert is reported done (one is then surely whole), whatever
    // the machine's speed; then at fixed delays, mid-revert or between reverts.
    for delay_ms in [None, Some(10u64), Some(60), Some(200), Some(500)] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let child = Child::spawn(
            "kill_9_during_reverts_leaves_whole_reverts_only",
            CHILD_ENV,
            tmp.path(),
        );
        child.wait_for("started");
        match delay_ms {
            Some(ms) => std::thread::sleep(Duration::from_millis(ms)),
            None => {
                child.wait_for("reverted");
                reverts_seen += 1;
            }
        }
        reverts_seen += child.kill().iter().filter(|l| *l == "reverted").count();
        let ledger = Ledger::open(&tmp.path().join("data"))
            .await
            .expect("reopen");
        let enabled = ledger
            .read_domain("a", |s| s.accounts.values().filter(|a| a.enabled).count())
            .expect("domain a");
        assert!(
            enabled == 0 || enabled == ROWS,
            "after kill at {delay_ms:?} ms: {enabled} of {ROWS} enabled (a revert cut in half)"
        );
        let v = ledger.verify_projections().await.expect("verify");
        assert!(v.equal, "after kill at {delay_ms:?} ms: {}", v.detail);
        ledger.close().await.expect("close");
    }
    assert!(reverts_seen > 0, "no revert finished before any kill");
}
