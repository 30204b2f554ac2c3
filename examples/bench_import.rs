//! Import benchmark (not a test): a users.csv of N new accounts imported end to end at the
//! library level, the same file re-imported (no changes), and the naive baseline of one durable
//! `Ledger::execute` per row (on a sample of rows, extrapolated).
//!
//! `cargo run --release --example bench_import -- [ROWS=100000] [BASELINE_ROWS=2000]`

use std::io::Write;
use std::time::Instant;

use account_ledger::domain::{Command, Profile};
use account_ledger::import::{ImportInput, ImportJob, ImportOptions, run_import};
use account_ledger::ledger::{Ledger, Request};

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn ledger_with_domain(dir: &std::path::Path, limit: u32) -> Ledger {
    let ledger = Ledger::open(dir).await.expect("open");
    ledger
        .execute(Request::manual(
            "bench",
            Command::RegisterDomain {
                domain: "d".into(),
                license_limit: limit,
            },
        ))
        .await
        .expect("domain");
    ledger
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let rows: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let baseline_rows: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2_000);
    let tmp = tempfile::tempdir().expect("tempdir");
    let csv = tmp.path().join("users.csv");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&csv).expect("csv"));
        writeln!(
            f,
            "import_id,first_name,last_name,login,password,email,user_type,enabled"
        )
        .expect("write");
        for i in 0..rows {
            writeln!(
                f,
                "sis-{i},First{i},Last{i},user{i},secret,user{i}@school.org,student,1"
            )
            .expect("write");
        }
    }
    let size = std::fs::metadata(&csv).map(|m| m.len()).unwrap_or(0);
    println!("users.csv: {rows} rows, {:.1} MB", size as f64 / 1e6);

    let ledger = ledger_with_domain(&tmp.path().join("data"), rows + 1).await;
    let t = Instant::now();
    let r = run_import(
        &ledger,
        ImportJob::new("d", "bench"),
        ImportInput::Path(csv.clone()),
        ImportOptions::default(),
        |_| {},
    )
    .await
    .expect("import");
    let first = t.elapsed();
    println!(
        "import of new accounts: {:.3} s ({} events, {:.0} rows/s), peak RSS {:.0} MB",
        first.as_secs_f64(),
        r.events_written,
        f64::from(rows) / first.as_secs_f64(),
        peak_rss_mb()
    );
    let t = Instant::now();
    let r = run_import(
        &ledger,
        ImportJob::new("d", "bench"),
        ImportInput::Path(csv.clone()),
        ImportOptions::default(),
        |_| {},
    )
    .await
    .expect("re-import");
    let again = t.elapsed();
    println!(
        "re-import, no changes: {:.3} s ({} events), peak RSS {:.0} MB",
        again.as_secs_f64(),
        r.events_written,
        peak_rss_mb()
    );
    ledger.close().await.expect("close");

    let base = ledger_with_domain(&tmp.path().join("baseline"), rows + 1).await;
    let t = Instant::now();
    for i in 0..baseline_rows {
        base.execute(Request::manual(
            "bench",
            Command::CreateAccount {
                domain: "d".into(),
                account: 0,
                import_id: Some(format!("sis-{i}")),
                profile: Profile {
                    login: format!("user{i}"),
                    first_name: format!("First{i}"),
                    last_name: format!("Last{i}"),
                    email: format!("user{i}@school.org"),
                },
                role: "student".into(),
                enabled: true,
            },
        ))
        .await
        .expect("execute");
    }
    let per_row = t.elapsed().as_secs_f64() / f64::from(baseline_rows.max(1));
    println!(
        "naive baseline, one durable execute per row: {:.2} ms/row over {baseline_rows} rows => {:.1} s for {rows} rows",
        per_row * 1e3,
        per_row * f64::from(rows)
    );
    base.close().await.expect("close");
}
