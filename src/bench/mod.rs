//! Benchmarks (not tests: they assert nothing and print figures), in one place:
//! [`storage`] (`account-ledger bench`: the log, the ledger's write path, replay, point-in-time
//! queries, domains in parallel), [`import`] (a users.csv imported through the library) and
//! [`import_grpc`] (`account-ledger import-bench`: the same through gRPC, next to the library).

pub mod import;
pub mod import_grpc;
pub mod storage;

pub use storage::{BenchOptions, run};
