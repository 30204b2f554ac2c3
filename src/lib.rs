//! account-ledger: the lifecycle of school-LMS accounts as an event-sourced ledger.
//!
//! One path for every change:
//! gRPC / CLI / CSV import → [`ledger::Ledger::execute`] (the writer task of the command's
//! domain; domains decide in parallel) → [`domain::decide`] (pure rules) →
//! [`store::EventLog::append`] (one sled batch, one flush + fsync shared by every domain
//! appending at once) → [`projections`] (the domain's live read model, the same fold as
//! replay) → queries, now or as of an instant.
//!
//! Personal data is encrypted with a per-account key ([`store::vault`]); deleting an account
//! destroys its key, so the log stays append-only and the person becomes unrecoverable.

pub mod api;
pub mod bench;
pub mod cli;
pub mod domain;
pub mod import;
pub mod ledger;
pub mod memory;
pub mod metrics;
pub mod projections;
pub mod queries;
pub mod store;
pub mod threads;
