fn main() {
    let events = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    if let Err(e) = rt.block_on(account_ledger::bench::run(
        account_ledger::bench::BenchOptions {
            events,
            data_dir: None,
        },
    )) {
        eprintln!("{e}");
        std::process::exit(1);
    }
}

// The ledger allocates many small strings and maps; mimalloc is markedly faster at that than
// glibc's allocator (measured with `account-ledger bench`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
