//! The gRPC edge: generated wire types ([`pb`]), the service ([`server`]; its handlers and
//! the two-step confirmation beside it), bearer-token
//! authorization ([`auth`]), the one error-to-status mapping ([`status`]) and wire ↔ domain
//! conversion ([`convert`]); CSV imports ([`import`]: their own service, same server).

// `tonic::Status` is large (176 bytes); it is what every handler returns anyway, and boxing it
// at every helper would only add allocations on the error path.
#![allow(clippy::result_large_err)]

pub mod auth;
pub mod codec;
mod confirm;
pub mod convert;
mod handlers;
pub mod import;
mod import_registry;
pub mod peer;
pub mod schedule;
pub mod server;
pub mod status;

/// Code generated from `proto/account_ledger/v1/*.proto` by `build.rs`.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod pb {
    tonic::include_proto!("account_ledger.v1");

    /// Encoded descriptors of every generated file, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("account_ledger_descriptor");
}
