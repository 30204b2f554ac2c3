//! Import benchmark (not a test; asserts nothing): a users.csv of N new accounts imported end to
//! end at the library level, the same file re-imported (no changes), and the naive baseline of
//! one durable `Ledger::execute` per row (on a sample, extrapolated). For `account-ledger bench`
//! or `cargo run --release --example bench_import -- ROWS BASELINE_ROWS`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::domain::{Command, Profile};
use crate::import::{ImportError, ImportInput, ImportJob, ImportOptions, Phase, run_import};
use crate::ledger::{Ledger, Request};

#[derive(Debug, Clone)]
pub struct ImportBenchOptions {
    /// Rows of the generated users.csv (all new accounts).
    pub rows: u32,
    /// Rows for the one-execute-per-row baseline (extrapolated to `rows`).
    pub baseline_rows: u32,
    /// Where to work (a fresh temp dir when absent).
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct ImportBenchFigures {
    pub rows: u32,
    pub csv_bytes: u64,
    /// New accounts: read + plan, then the one batch, then the total.
    pub import_read_plan: Duration,
    pub import_total: Duration,
    pub import_events: u64,
    /// The same file again: no changes.
    pub reimport_total: Duration,
    pub reimport_read_plan: Duration,
    pub reimport_events: u64,
    pub baseline_rows: u32,
    pub baseline_per_row: Duration,
    /// Peak resident memory of the process after the imports (VmHWM), MB.
    pub peak_rss_mb: f64,
}

impl std::fmt::Display for ImportBenchFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = |d: Duration| d.as_secs_f64();
        writeln!(
            f,
            "users.csv: {} rows, {:.1} MB",
            self.rows,
            self.csv_bytes as f64 / 1e6
        )?;
        writeln!(
            f,
            "import, new accounts: {:.3} s total ({:.3} s read+plan), {} events, {:.0} rows/s",
            s(self.import_total),
            s(self.import_read_plan),
            self.import_events,
            f64::from(self.rows) / s(self.import_total)
        )?;
        writeln!(
            f,
            "re-import, no changes: {:.3} s ({:.3} s read+plan), {} events",
            s(self.reimport_total),
            s(self.reimport_read_plan),
            self.reimport_events
        )?;
        writeln!(
            f,
            "naive baseline (one durable execute per row, {} rows): {:.3} ms/row => {:.1} s for {} rows",
            self.baseline_rows,
            s(self.baseline_per_row) * 1e3,
            s(self.baseline_per_row) * f64::from(self.rows),
            self.rows
        )?;
        write!(f, "peak RSS: {:.0} MB", self.peak_rss_mb)
    }
}

fn io(file: &Path) -> impl Fn(std::io::Error) -> ImportError + '_ {
    move |source| ImportError::Io {
        file: file.display().to_string(),
        source,
    }
}

fn ledger_err(file: &str) -> impl Fn(crate::ledger::LedgerError) -> ImportError + '_ {
    move |source| ImportError::Ledger {
        file: file.to_string(),
        source,
    }
}

async fn ledger_with_domain(dir: &Path, limit: u32) -> Result<Ledger, ImportError> {
    let err = ledger_err("bench");
    let ledger = Ledger::open(dir).await.map_err(&err)?;
    ledger
        .execute(Request::manual(
            "bench",
            Command::RegisterDomain {
                domain: "d".into(),
                license_limit: limit,
            },
        ))
        .await
        .map_err(&err)?;
    Ok(ledger)
}

/// Write a users.csv (v1) of `rows` new accounts.
pub fn write_bench_users_csv(path: &Path, rows: u32) -> Result<(), ImportError> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).map_err(io(path))?);
    writeln!(
        f,
        "import_id,first_name,last_name,login,password,email,user_type,enabled"
    )
    .map_err(io(path))?;
    for i in 0..rows {
        writeln!(
            f,
            "sis-{i},First{i},Last{i},user{i},secret,user{i}@school.org,student,1"
        )
        .map_err(io(path))?;
    }
    f.flush().map_err(io(path))
}

async fn timed_import(
    ledger: &Ledger,
    csv: &Path,
) -> Result<(Duration, Duration, u64), ImportError> {
    let planned_at = Arc::new(Mutex::new(None));
    let mark = planned_at.clone();
    let t = Instant::now();
    let report = run_import(
        ledger,
        ImportJob::new("d", "bench"),
        ImportInput::Path(csv.to_path_buf()),
        ImportOptions::default(),
        move |p| {
            if p.phase == Phase::Applying
                && let Ok(mut m) = mark.lock()
            {
                m.get_or_insert_with(Instant::now);
            }
        },
    )
    .await?;
    let total = t.elapsed();
    let planned = planned_at
        .lock()
        .ok()
        .and_then(|m| *m)
        .map_or(total, |at| at - t);
    Ok((planned, total, report.events_written))
}

pub async fn bench_import(opts: ImportBenchOptions) -> Result<ImportBenchFigures, ImportError> {
    let tmp;
    let dir = match &opts.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir().map_err(io(Path::new("temp dir")))?;
            tmp.path().to_path_buf()
        }
    };
    let csv = dir.join("users.csv");
    write_bench_users_csv(&csv, opts.rows)?;
    let csv_bytes = std::fs::metadata(&csv).map(|m| m.len()).unwrap_or(0);
    let limit = opts
        .rows
        .saturating_add(opts.baseline_rows)
        .saturating_add(1);

    let ledger = ledger_with_domain(&dir.join("data"), limit).await?;
    let (import_read_plan, import_total, import_events) = timed_import(&ledger, &csv).await?;
    // Let the writer's periodic projection save (once a second, after a large batch: sealing
    // every new profile) finish, so the re-import is measured on a settled ledger.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (reimport_read_plan, reimport_total, reimport_events) = timed_import(&ledger, &csv).await?;
    let peak = super::peak_rss_mb();
    ledger.close().await.map_err(ledger_err("bench"))?;

    let base = ledger_with_domain(&dir.join("baseline"), limit).await?;
    let t = Instant::now();
    for i in 0..opts.baseline_rows {
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
        .map_err(ledger_err("baseline"))?;
    }
    let baseline_per_row = t.elapsed() / opts.baseline_rows.max(1);
    base.close().await.map_err(ledger_err("baseline"))?;
    Ok(ImportBenchFigures {
        rows: opts.rows,
        csv_bytes,
        import_read_plan,
        import_total,
        import_events,
        reimport_total,
        reimport_read_plan,
        reimport_events,
        baseline_rows: opts.baseline_rows,
        baseline_per_row,
        peak_rss_mb: peak,
    })
}
