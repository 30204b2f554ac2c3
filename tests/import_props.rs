//! Property: for any domain built through the ledger (imported and hand-made accounts, some
//! disabled, deactivated, signed into), writing its users export as users.csv (v1 or v2) and
//! re-importing it as a full import records zero events.

mod import_common;

use account_ledger::domain::{Command, Profile};
use account_ledger::import::{ImportOptions, JobStatus, Version, write_users_csv};
use account_ledger::ledger::Request;
use import_common::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Acc {
    imported: bool,
    first: String,
    last: String,
    email: bool,
    role: &'static str,
    enabled: bool,
    signed_in: bool,
    deactivated: bool,
}

fn name() -> impl Strategy<Value = String> {
    // commas, quotes, newlines and non-ASCII exercise the CSV writer and reader
    "[A-Za-zé,\"' \n]{0,10}".prop_map(|s| s.trim().to_string())
}

fn acc() -> impl Strategy<Value = Acc> {
    (
        any::<bool>(),
        name(),
        name(),
        any::<bool>(),
        prop::sample::select(vec!["student", "teacher", "admin"]),
        any::<bool>(),
        any::<bool>(),
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |(imported, first, last, email, role, enabled, signed_in, deactivated)| Acc {
                imported,
                first,
                last,
                email,
                role,
                enabled,
                signed_in,
                deactivated,
            },
        )
}

async fn check(accounts: Vec<Acc>, v2: bool) -> Result<(), TestCaseError> {
    let env = env().await;
    for (i, a) in accounts.iter().enumerate() {
        let created = env
            .ledger
            .execute(Request::manual(
                ADMIN,
                Command::CreateAccount {
                    domain: DOMAIN.into(),
                    account: 0,
                    import_id: a.imported.then(|| format!("sis-{i}")),
                    profile: Profile {
                        login: format!("user{i}"),
                        first_name: a.first.clone(),
                        last_name: a.last.clone(),
                        email: if a.email {
                            format!("user{i}@school.org")
                        } else {
                            String::new()
                        },
                    },
                    role: a.role.into(),
                    enabled: a.enabled,
                },
            ))
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let id = created.account.expect("id");
        let mut follow = Vec::new();
        if a.signed_in {
            follow.push(Command::RecordSignIn {
                account: id,
                at_us: 1,
            });
        }
        if a.deactivated {
            follow.push(Command::Deactivate { account: id });
        }
        for c in follow {
            env.ledger
                .execute(Request::manual(ADMIN, c))
                .await
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
    }
    let export = env
        .ledger
        .export_users(DOMAIN)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let version = if v2 { Version::V2 } else { Version::V1 };
    let mut bytes = Vec::new();
    write_users_csv(&mut bytes, &export, version)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let path = env.write("users.csv", &String::from_utf8(bytes).expect("utf-8"));
    let before = env.last_position();
    let report = env
        .import_with(&path, ImportOptions::default())
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(env.last_position(), before, "{:#?}", report);
    prop_assert_eq!(report.status, JobStatus::NoChanges);
    prop_assert_eq!(report.counts.changes(), 0);
    prop_assert_eq!(report.counts.failed, 0);
    let imported_in_export = export.iter().filter(|a| a.import_id.is_some()).count();
    prop_assert_eq!(report.counts.unchanged, imported_in_export as u64);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn reimporting_the_users_export_records_zero_events(
        accounts in prop::collection::vec(acc(), 0..25),
        v2 in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(check(accounts, v2))?;
    }
}
