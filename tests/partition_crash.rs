//! kill -9 while one domain imports and then rebuilds, and another domain takes manual
//! commands: after restart every acknowledged command is there, the import is all or
//! nothing, and replaying the log equals the live views. The test re-runs its own binary as
//! the child that writes.

mod child;
mod support;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use child::Child;

use account_ledger::domain::Command;
use account_ledger::ledger::{BatchMode, Ledger, Request};
use support::create_request;

/// Larger than one sled batch of the log (16k events: the job is written in parts behind
/// the torn-commit marker) and than one part of a views save (512 buckets of 128 accounts:
/// each rebuild's save is written in parts behind the layout key).
const ROWS: usize = 70_000;
const CHILD_ENV: &str = "ACCOUNT_LEDGER_PARTITION_CRASH_CHILD";

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The child: domain "b" takes single creates (each acknowledged one is printed), domain "a"
/// takes one import job and then rebuilds the views over and over.
async fn child(dir: &Path) {
    let ledger = Ledger::open(dir).await.expect("open");
    for d in ["a", "b"] {
        if !ledger.domain_exists(d) {
            ledger
                .execute(Request::manual(
                    "t",
                    Command::RegisterDomain {
                        domain: d.into(),
                        license_limit: 1_000_000,
                    },
                ))
                .await
                .expect("domain");
        }
    }
    let manual = ledger.clone();
    tokio::spawn(async move {
        for i in 0.. {
            let done = manual
                .execute(create_request("b", &format!("m{i}")))
                .await
                .expect("create in b");
            say(&format!("ack {}", done.account.expect("account")));
        }
    });
    say("started");
    let job = (0..ROWS)
        .map(|i| create_request("a", &format!("imp{i}")))
        .collect();
    ledger
        .execute_batch(job, BatchMode::BestEffort)
        .await
        .expect("import");
    say("imported");
    loop {
        ledger.rebuild_projections().await.expect("rebuild");
        say("rebuilt");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_import_and_rebuild_with_another_domain_writing() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(Path::new(&dir)).await;
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let mut acked: Vec<u64> = Vec::new();
    let mut saw_rebuild = false;
    let mut kills_in_import = 0;
    // Early kills land in the import, later ones in rebuilds; each round restarts on the
    // data the previous round left.
    for delay_ms in [30u64, 120, 400, 900, 1500] {
        let child = Child::spawn(
            "kill_9_during_import_and_rebuild_with_another_domain_writing",
            CHILD_ENV,
            &data,
        );
        child.wait_for("started");
        std::thread::sleep(Duration::from_millis(delay_ms));
        // Every line printed before the kill is an acknowledged command.
        let lines = child.kill();
        kills_in_import += usize::from(!lines.iter().any(|l| l == "imported"));
        for line in lines {
            if let Some((_, id)) = line.split_once("ack ") {
                acked.push(id.parse().expect("account number"));
            }
            saw_rebuild |= line == "rebuilt";
        }
        let ledger = Ledger::open(&data).await.expect("reopen");
        for id in &acked {
            let acc = ledger.account(*id);
            assert!(
                acc.as_ref().is_some_and(|a| a.domain == "b"),
                "acknowledged account {id} lost after kill at {delay_ms} ms"
            );
        }
        let in_a = ledger
            .read_domain("a", |s| s.accounts.len())
            .expect("domain a");
        assert!(
            in_a % ROWS == 0,
            "after kill at {delay_ms} ms: {in_a} accounts in a (whole jobs only)"
        );
        let v = ledger.verify_projections().await.expect("verify");
        assert!(v.equal, "after kill at {delay_ms} ms: {}", v.detail);
        ledger.close().await.expect("close");
    }
    assert!(!acked.is_empty(), "the other domain never wrote");
    eprintln!(
        "{} acknowledged commands kept; kills before the import was acknowledged: \
         {kills_in_import}; a rebuild was under way at a kill: {saw_rebuild}",
        acked.len()
    );
}
