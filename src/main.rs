//! The `account-ledger` binary: parse flags, hand over to the library.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    account_ledger::cli::run(account_ledger::cli::Cli::parse()).await
}

// The ledger allocates many small strings and maps; mimalloc is markedly faster at that than
// glibc's allocator (measured with `account-ledger bench`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
