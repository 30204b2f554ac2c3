//! Import benchmark (not a test): see `account_ledger::bench::import`.
//!
//! `cargo run --release --example bench_import -- [ROWS=100000] [BASELINE_ROWS=2000]`

use account_ledger::bench::import::{ImportBenchOptions, bench_import};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let rows = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let baseline_rows = args.next().and_then(|a| a.parse().ok()).unwrap_or(2_000);
    match bench_import(ImportBenchOptions {
        rows,
        baseline_rows,
        dir: None,
    })
    .await
    {
        Ok(figures) => println!("{figures}"),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
