//! Decides the requests of one partition's group against its state, collecting their events.
//! The one owner of request-id replay and expected-version checks.

use std::collections::HashMap;

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use uuid::Uuid;

use super::{LedgerError, Request};
use crate::domain::{self, AccountId, Command, Event, LedgerState, StreamId};
use crate::store::{EventLog, EventParts, NewEvent};

/// Event ids: consecutive numbers in the low 32 bits under a random prefix (a version 4 UUID
/// with 90 random bits), drawn again from a ChaCha20 CSPRNG seeded once from the OS (a
/// `getrandom` syscall per event showed in profiles) when the numbers run out. Consecutive ids
/// let a log chunk hold a byte or two of each instead of 16 ([`crate::store`]'s format 3);
/// two generators (partitions, servers, restarts) meet only if two 90-bit draws are equal.
pub(crate) struct EventIds {
    rng: ChaCha20Rng,
    prefix: u128,
    next: u32,
}

impl EventIds {
    pub(crate) fn new() -> EventIds {
        let mut ids = EventIds {
            rng: ChaCha20Rng::from_entropy(),
            prefix: 0,
            next: 0,
        };
        ids.draw_prefix();
        ids
    }

    fn draw_prefix(&mut self) {
        let mut bytes = [0u8; 16];
        self.rng.fill_bytes(&mut bytes);
        let random = uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .as_u128();
        self.prefix = random & !u128::from(u32::MAX);
        self.next = 0;
    }

    fn next(&mut self) -> Uuid {
        if self.next == u32::MAX {
            self.draw_prefix();
        }
        let id = self.prefix | u128::from(self.next);
        self.next += 1;
        Uuid::from_u128(id)
    }
}

/// How a decided request will be answered.
#[derive(Debug)]
pub(crate) enum Pending {
    /// New events at `events` (indexes into the group's event list; empty for a no-op).
    /// `version` is the command's stream version once they are applied.
    Decided {
        account: Option<AccountId>,
        events: std::ops::Range<usize>,
        version: u64,
    },
    /// A retry of a request already in the log: answered from its recorded events.
    Replay { positions: Vec<u64> },
}

/// The partition's rules state plus what deciding needs beside it.
pub(crate) struct Decider<'a> {
    pub(crate) log: &'a dyn EventLog,
    pub(crate) ids: &'a mut EventIds,
    /// Hands out the number of a created account.
    pub(crate) allocate: &'a mut (dyn FnMut() -> AccountId + Send),
    /// Events in the domain's own stream (its version).
    pub(crate) domain_version: &'a mut u64,
    /// Request ids decided in this group (not yet in the log's index): a retry that arrives
    /// while the first attempt is still queued gets the first attempt's answer.
    pub(crate) seen: HashMap<String, (Option<AccountId>, std::ops::Range<usize>, u64)>,
    /// Accounts created by this group.
    pub(crate) created: Vec<AccountId>,
}

/// Placeholder number while a CreateAccount is decided: the real one is allocated only when
/// the command is accepted, so refusals do not use up numbers.
const UNALLOCATED: AccountId = AccountId::MAX;

impl Decider<'_> {
    /// Decide requests in order, evolving `state` and collecting events. A refused request
    /// leaves the state as it was.
    pub(crate) fn decide_all(
        &mut self,
        state: &mut LedgerState,
        requests: Vec<Request>,
        out: &mut EventParts,
    ) -> Vec<Result<Pending, LedgerError>> {
        // Not `into_iter().map().collect()`: that collects in place into the requests'
        // buffer (288 bytes a request for 72 an answer), and a million-row job's answers
        // kept its 275 MiB through the append.
        let mut results = Vec::with_capacity(requests.len());
        for req in requests {
            results.push(self.decide_one(state, req, out));
        }
        results
    }

    fn decide_one(
        &mut self,
        state: &mut LedgerState,
        req: Request,
        out: &mut EventParts,
    ) -> Result<Pending, LedgerError> {
        if let Some(id) = &req.request_id {
            let positions = self.log.request_positions(id);
            if !positions.is_empty() {
                return Ok(Pending::Replay { positions });
            }
            if let Some((account, range, version)) = self.seen.get(id) {
                return Ok(Pending::Decided {
                    account: *account,
                    events: range.clone(),
                    version: *version,
                });
            }
        }
        let mut command = req.command;
        if let Command::CreateAccount { account, .. } = &mut command {
            *account = UNALLOCATED;
        }
        let stream = command.stream();
        if let Some(expected) = req.expected_version {
            let actual = match &stream {
                StreamId::Account(UNALLOCATED) => 0,
                StreamId::Account(account) => state.account(*account).map_or(0, |a| a.version),
                StreamId::Domain(_) => *self.domain_version,
            };
            if actual != expected {
                return Err(LedgerError::VersionMismatch {
                    stream,
                    expected,
                    actual,
                });
            }
        }
        let mut events = domain::decide(state, &command)?;
        let mut target = command.target_account();
        if matches!(command, Command::CreateAccount { .. }) && !events.is_empty() {
            let number = (self.allocate)();
            for e in &mut events {
                if let Event::AccountCreated { account, .. } = e {
                    *account = number;
                }
            }
            self.created.push(number);
            target = Some(number);
        }
        let start = out.len();
        for event in events {
            state.evolve(&event);
            if matches!(event.stream(), StreamId::Domain(_)) {
                *self.domain_version += 1;
            }
            out.push(NewEvent {
                event_id: self.ids.next(),
                actor: req.actor.clone(),
                source: req.source.clone(),
                request_id: req.request_id.clone(),
                event,
            });
        }
        let range = start..out.len();
        let version = match (&stream, target) {
            (StreamId::Domain(_), _) => *self.domain_version,
            (StreamId::Account(_), Some(account)) => {
                state.account(account).map_or(0, |a| a.version)
            }
            (StreamId::Account(_), None) => 0,
        };
        if let Some(id) = req.request_id {
            self.seen.insert(id, (target, range.clone(), version));
        }
        Ok(Pending::Decided {
            account: target,
            events: range,
            version,
        })
    }
}
