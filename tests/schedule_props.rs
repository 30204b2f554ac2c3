//! Property test: random commands, schedules, cancellations and clock moves over two domains
//! on a real ledger. Whatever the order: no license limit is ever passed (firing included),
//! Deleted stays terminal, each phase fires at most once, nothing is due and unfired once the
//! clock has passed it, and replaying the log equals the live views (also after reopening).

mod support;

use std::collections::HashMap;
use std::sync::Arc;

use account_ledger::domain::schedule::{Change, Phase, Target};
use account_ledger::domain::{Command, Event};
use account_ledger::ledger::{Ledger, LedgerError, ManualClock, Request};
use account_ledger::store::StoreOptions;
use proptest::prelude::*;

const DOMAINS: [&str; 2] = ["north", "south"];
const HOUR: i64 = 3_600_000_000;
const T0: i64 = 1_800_000_000_000_000;

#[derive(Debug, Clone)]
enum Op {
    Create {
        domain: usize,
        enabled: bool,
        teacher: bool,
    },
    Enable(usize),
    Disable(usize),
    Deactivate(usize),
    Delete(usize),
    SetLimit(usize, u32),
    Schedule {
        domain: usize,
        kind: u8,
        everyone: bool,
        at: i64,
        len: i64,
    },
    Cancel {
        domain: usize,
        schedule: u32,
    },
    Tick(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..2usize, any::<bool>(), any::<bool>())
            .prop_map(|(domain, enabled, teacher)| Op::Create { domain, enabled, teacher }),
        2 => any::<usize>().prop_map(Op::Enable),
        1 => any::<usize>().prop_map(Op::Disable),
        1 => any::<usize>().prop_map(Op::Deactivate),
        1 => any::<usize>().prop_map(Op::Delete),
        1 => (0..2usize, 0..5u32).prop_map(|(d, l)| Op::SetLimit(d, l)),
        2 => (0..2usize, 0..3u8, any::<bool>(), 0..4i64, 1..4i64)
            .prop_map(|(domain, kind, everyone, at, len)| Op::Schedule { domain, kind, everyone, at, len }),
        1 => (0..2usize, 1..4u32).prop_map(|(domain, schedule)| Op::Cancel { domain, schedule }),
        2 => (1..3i64).prop_map(Op::Tick),
    ]
}

async fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let ledger = Ledger::open_with_clock(dir.path(), StoreOptions::default(), clock.clone())
        .await
        .unwrap();
    for d in DOMAINS {
        support::register(&ledger, d, 3).await;
    }
    let mut now = T0;
    let mut created: Vec<u64> = Vec::new();
    for (n, op) in ops.iter().enumerate() {
        let pick = |i: &usize| created.get(i % created.len().max(1)).copied();
        let command = match op {
            Op::Create {
                domain,
                enabled,
                teacher,
            } => Some(Command::CreateAccount {
                domain: DOMAINS[*domain].into(),
                account: 0,
                import_id: Some(format!("i{n}")),
                profile: support::profile(&format!("user{n}")),
                role: if *teacher { "teacher" } else { "student" }.into(),
                enabled: *enabled,
            }),
            Op::Enable(i) => pick(i).map(|account| Command::Enable { account }),
            Op::Disable(i) => pick(i).map(|account| Command::Disable { account }),
            Op::Deactivate(i) => pick(i).map(|account| Command::Deactivate { account }),
            Op::Delete(i) => pick(i).map(|account| Command::Delete { account }),
            Op::SetLimit(d, l) => Some(Command::SetLicenseLimit {
                domain: DOMAINS[*d].into(),
                license_limit: *l,
            }),
            Op::Schedule {
                domain,
                kind,
                everyone,
                at,
                len,
            } => {
                let at_us = now + at * HOUR;
                Some(Command::ScheduleChange {
                    domain: DOMAINS[*domain].into(),
                    target: if *everyone {
                        Target::Everyone
                    } else {
                        Target::Role("student".into())
                    },
                    change: match kind {
                        0 => Change::Disable {
                            at_us,
                            until_us: Some(at_us + len * HOUR),
                        },
                        1 => Change::Enable { at_us },
                        _ => Change::Delete { at_us },
                    },
                    reason: "prop".into(),
                })
            }
            Op::Cancel { domain, schedule } => Some(Command::CancelSchedule {
                domain: DOMAINS[*domain].into(),
                schedule: *schedule,
                reason: "prop".into(),
            }),
            Op::Tick(hours) => {
                now += hours * HOUR;
                clock.set(now);
                ledger.fire_due_schedules().await.unwrap();
                None
            }
        };
        if let Some(command) = command {
            let before_deleted = command
                .target_account()
                .and_then(|a| ledger.account(a))
                .is_some_and(|a| a.deleted);
            match ledger.execute(Request::manual("admin", command)).await {
                Ok(done) => {
                    prop_assert!(
                        !before_deleted,
                        "a command on a deleted account was accepted"
                    );
                    if matches!(op, Op::Create { .. }) {
                        created.push(done.account.unwrap());
                    }
                }
                Err(LedgerError::Domain(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }
        support::check_limits(&ledger.state_snapshot())?;
    }
    // Nothing the clock has passed is left unfired.
    ledger.fire_due_schedules().await.unwrap();
    for d in DOMAINS {
        let due = ledger
            .read_domain(d, |s| account_ledger::domain::schedule::due(s, d, now))
            .unwrap();
        prop_assert!(due.is_empty(), "{d}: {due:?} still due");
    }
    let all = ledger.read_log(1, u64::MAX, usize::MAX).await.unwrap();
    let mut fired: HashMap<(String, u32, Phase), usize> = HashMap::new();
    for e in &all {
        if let Event::ScheduleFired {
            domain,
            schedule,
            phase,
            ..
        } = &e.event
        {
            *fired
                .entry((domain.clone(), *schedule, *phase))
                .or_default() += 1;
        }
    }
    prop_assert!(fired.values().all(|n| *n == 1), "{fired:?}");
    let v = ledger.verify_projections().await.unwrap();
    prop_assert!(v.equal, "{}", v.detail);
    let live = ledger.state_snapshot();
    ledger.close().await.unwrap();
    drop(ledger);
    let reopened = Ledger::open_with_clock(dir.path(), StoreOptions::default(), clock)
        .await
        .unwrap();
    prop_assert_eq!(reopened.state_snapshot(), live);
    reopened.close().await.unwrap();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn schedules_keep_the_invariants(ops in prop::collection::vec(op(), 1..50)) {
        support::run(run(&ops))?;
    }
}
