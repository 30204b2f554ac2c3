//! Pure lifecycle rules: commands in, events out (`decide`), events folded into state (`evolve`).
//! No I/O, no clock, no randomness: ids and times arrive inside the commands.

mod command;
mod decide;
mod error;
mod event;
mod guard;
pub mod import_job;
mod keys;
pub mod names;
mod packed;
pub mod schedule;
mod shared_name;
mod state;

pub use command::{Command, Profile};
pub use decide::decide;
pub use error::DomainError;
pub use event::{Event, StreamId};
pub use guard::GuardCheck;
pub use keys::KeyIndex;
pub use packed::PackedProfile;
pub use shared_name::SharedName;
pub use state::{AccountState, DomainState, LedgerState, Status};

/// Accounts are numbered by the ledger in creation order; the number never comes back.
pub type AccountId = u64;

/// Default share (percent) of a domain's active imported accounts that one full import may
/// deactivate or delete before it must be confirmed.
pub const DEFAULT_MASS_CHANGE_PERCENT: u8 = 10;
