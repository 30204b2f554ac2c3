//! Benchmarks (not tests: they assert nothing and print figures), in one place:
//! [`storage`] (`account-ledger bench`: the log, the ledger's write path, replay, point-in-time
//! queries, domains in parallel; [`disk`] prints the disk's sync floor beside them), [`import`]
//! (a users.csv imported through the library), [`import_grpc`] (`account-ledger import-bench`:
//! the same through gRPC, next to the library) and [`reads`] (`account-ledger reads-bench`: the
//! daily queries, timed against a running server).

pub mod disk;
pub mod import;
pub mod import_grpc;
pub mod reads;
pub mod storage;

pub use storage::{BenchOptions, run};

/// This process's peak RSS (VmHWM) in MB; 0 where /proc is not there.
pub(crate) fn peak_rss_mb() -> f64 {
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
