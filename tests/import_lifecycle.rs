//! Every row of DOMAIN.md's "How each change happens" table, driven through imports (full and
//! partial, v1 and v2) on a real ledger; plus re-imports, hand-made accounts, strict, dry run,
//! the mass-change guard, the license limit and the audit trail.

mod import_common;

use account_ledger::domain::{Event, Status};
use account_ledger::import::{ChangeKind, ImportError, ImportOptions, JobStatus, Version};
use account_ledger::store::Source;
use import_common::*;

async fn full_import_table(v: Version) {
    let env = env().await;
    let f1 = env.write(
        "users.csv",
        &users_csv(
            v,
            &[
                u("a", "ann", true),
                u("b", "bob", true),
                u("c", "cat", true),
                u("d", "dan", true),
                u("e", "eve", true),
            ],
        ),
    );
    let r = env.import(&f1).await;
    assert_eq!(r.counts.created, 5);
    assert_eq!(r.status, JobStatus::Applied);
    for id in ["a", "b", "c", "d"] {
        env.sign_in(id).await;
    }
    // disable (flag), deactivate (left out, has data), delete (stub left out)
    let f2 = env.write(
        "users.csv",
        &users_csv(
            v,
            &[
                u("a", "ann", false),
                u("b", "bob", true),
                u("d", "dan", true),
            ],
        ),
    );
    let r = env.import(&f2).await;
    assert_eq!(r.counts.disabled, 1, "{r:#?}");
    assert_eq!(r.counts.deactivated, 1);
    assert_eq!(r.counts.deleted, 1);
    assert_eq!(r.counts.unchanged, 2);
    assert_eq!(env.status("a"), Some(Status::Disabled));
    assert_eq!(env.status("c"), Some(Status::Deactivated));
    let e_id = r
        .changes
        .iter()
        .find(|c| c.import_id == "e")
        .and_then(|c| c.account)
        .expect("e in the diff");
    assert_eq!(env.status("e"), None);
    assert!(env.ledger.account(e_id).expect("tombstone").deleted);
    // enable (flag), reactivate (added back; the row's flag applies: disabled)
    let f3 = env.write(
        "users.csv",
        &users_csv(
            v,
            &[
                u("a", "ann", true),
                u("b", "bob", true),
                u("c", "cat", false),
                u("d", "dan", true),
            ],
        ),
    );
    let r = env.import(&f3).await;
    assert_eq!(r.counts.enabled, 1, "{r:#?}");
    assert_eq!(r.counts.reactivated, 1);
    assert_eq!(r.counts.disabled, 1);
    assert_eq!(env.status("a"), Some(Status::Enabled));
    assert_eq!(env.status("c"), Some(Status::Disabled));
    // re-running the same file records nothing
    let before = env.last_position();
    let r = env.import(&f3).await;
    assert_eq!(r.status, JobStatus::NoChanges);
    assert_eq!(r.counts.changes(), 0);
    assert_eq!(r.counts.unchanged, 4);
    assert_eq!(env.last_position(), before);
    // a deleted import id that comes back is a new account
    let f4 = env.write(
        "users.csv",
        &users_csv(
            v,
            &[
                u("a", "ann", true),
                u("b", "bob", true),
                u("c", "cat", false),
                u("d", "dan", true),
                u("e", "eve", true),
            ],
        ),
    );
    let r = env.import(&f4).await;
    assert_eq!(r.counts.created, 1);
    assert_ne!(env.account("e").expect("new e").id, e_id);
}

#[tokio::test]
async fn full_import_v1_drives_every_change() {
    full_import_table(Version::V1).await;
}

#[tokio::test]
async fn full_import_v2_drives_every_change() {
    full_import_table(Version::V2).await;
}

async fn partial_import_table(v: Version) {
    let env = env().await;
    let rows = [
        u("a", "ann", true),
        u("b", "bob", true),
        u("c", "cat", true),
    ];
    env.import(&env.write("update_users.csv", &users_csv(v, &rows)))
        .await;
    env.sign_in("b").await;
    // disable, and create, through update_users.csv
    let r = env
        .import(&env.write(
            "update_users.csv",
            &users_csv(v, &[u("a", "ann", false), u("n", "new", true)]),
        ))
        .await;
    assert_eq!((r.counts.disabled, r.counts.created), (1, 1), "{r:#?}");
    assert_eq!(env.status("a"), Some(Status::Disabled));
    assert_eq!(
        env.status("c"),
        Some(Status::Enabled),
        "partial: others untouched"
    );
    // enable
    let r = env
        .import(&env.write("update_users.csv", &users_csv(v, &[u("a", "ann", true)])))
        .await;
    assert_eq!(r.counts.enabled, 1);
    assert_eq!(env.status("a"), Some(Status::Enabled));
    // delete_users.csv: a stub is Deleted, an account with data Deactivated
    let r = env
        .import(&env.write("delete_users.csv", &delete_csv(&["b", "c"])))
        .await;
    assert_eq!((r.counts.deactivated, r.counts.deleted), (1, 1), "{r:#?}");
    assert_eq!(env.status("b"), Some(Status::Deactivated));
    assert_eq!(env.status("c"), None);
    // re-running delete_users.csv changes nothing
    let r = env
        .import(&env.write("delete_users.csv", &delete_csv(&["b", "c"])))
        .await;
    assert_eq!(r.status, JobStatus::NoChanges);
    // reactivate: listed in update_users.csv
    let r = env
        .import(&env.write("update_users.csv", &users_csv(v, &[u("b", "bob", true)])))
        .await;
    assert_eq!(r.counts.reactivated, 1, "{r:#?}");
    assert_eq!(r.counts.enabled, 0, "the flag was already on");
    assert_eq!(env.status("b"), Some(Status::Enabled));
}

#[tokio::test]
async fn partial_import_v1_drives_every_change() {
    partial_import_table(Version::V1).await;
}

#[tokio::test]
async fn partial_import_v2_drives_every_change() {
    partial_import_table(Version::V2).await;
}

#[tokio::test]
async fn profile_changes_are_updates_and_unchanged_rows_are_not() {
    let env = env().await;
    let v = Version::V1;
    env.import(&env.write(
        "users.csv",
        &users_csv(v, &[u("a", "ann", true), u("b", "bob", true)]),
    ))
    .await;
    let mut renamed = u("a", "ann", true);
    renamed.last = "Smith";
    let r = env
        .import(&env.write("users.csv", &users_csv(v, &[renamed, u("b", "bob", true)])))
        .await;
    assert_eq!(r.counts.updated, 1);
    assert_eq!(r.counts.unchanged, 1);
    assert_eq!(env.account("a").expect("a").profile.last_name(), "Smith");
}

#[tokio::test]
async fn blank_users_csv_spares_hand_made_accounts_and_needs_confirmation() {
    // The vendor's own answer: imported users with data are deactivated, imported users
    // without data deleted, manually created users not affected.
    let env = env_with(1000, 10).await;
    env.import(&env.write(
        "users.csv",
        &users_csv(Version::V1, &[u("a", "ann", true), u("b", "bob", true)]),
    ))
    .await;
    env.sign_in("a").await;
    let by_hand = env.create_by_hand("teacher1").await;
    let blank = env.write("users.csv", &users_csv(Version::V1, &[]));
    let before = env.last_position();
    let err = env
        .import_with(&blank, ImportOptions::default())
        .await
        .expect_err("guard");
    match &err {
        ImportError::MassChange {
            affected, active, ..
        } => assert_eq!((*affected, *active), (2, 2)),
        other => panic!("expected the guard, got {other}"),
    }
    assert!(err.to_string().contains("2 of the 2"), "{err}");
    assert_eq!(env.last_position(), before, "a refusal writes nothing");
    let r = env
        .import_checked(
            &blank,
            ImportOptions {
                confirm_mass_change: true,
                ..Default::default()
            },
        )
        .await;
    assert_eq!((r.counts.deactivated, r.counts.deleted), (1, 1));
    assert_eq!(env.status("a"), Some(Status::Deactivated));
    assert_eq!(env.status("b"), None);
    assert_eq!(
        env.ledger.account(by_hand).expect("by hand").status(),
        Status::Enabled
    );
}

#[tokio::test]
async fn truncated_file_trips_the_guard_then_passes_when_confirmed() {
    let env = env_with(1000, 10).await;
    env.import(&fixture("powerschool/v1/users.csv")).await;
    let before = env.last_position();
    let truncated = fixture("powerschool/truncated/users.csv");
    let err = env
        .import_with(&truncated, ImportOptions::default())
        .await
        .expect_err("guard");
    assert!(
        matches!(
            err,
            ImportError::MassChange {
                affected: 3,
                active: 5,
                percent: 10,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(env.last_position(), before);
    // a dry run shows the diff and the guard's objection, and writes nothing
    let dry = env
        .import_checked(
            &truncated,
            ImportOptions {
                dry_run: true,
                ..Default::default()
            },
        )
        .await;
    assert_eq!(dry.counts.deleted, 3);
    assert!(dry.warnings.iter().any(|w| w.contains("3 of the 5")));
    let r = env
        .import_checked(
            &truncated,
            ImportOptions {
                confirm_mass_change: true,
                ..Default::default()
            },
        )
        .await;
    assert_eq!(r.counts.deleted, 3, "never signed in: stubs");
    assert_eq!(r.guard.removals, 3);
}

#[tokio::test]
async fn strict_refuses_the_whole_file_on_any_row_error() {
    let env = env_with(2, 100).await;
    let before = env.last_position();
    // a bad row (parse level)
    let r = env
        .import_checked(
            &fixture("powerschool/bad_rows/users.csv"),
            ImportOptions {
                strict: true,
                ..Default::default()
            },
        )
        .await;
    assert_eq!(r.status, JobStatus::RefusedStrict);
    assert_eq!(r.counts.failed, 3);
    assert_eq!(env.last_position(), before);
    // a refused row (license limit at the ledger)
    let three = env.write(
        "users.csv",
        &users_csv(
            Version::V1,
            &[
                u("a", "ann", true),
                u("b", "bob", true),
                u("c", "cat", true),
            ],
        ),
    );
    let r = env
        .import_checked(
            &three,
            ImportOptions {
                strict: true,
                ..Default::default()
            },
        )
        .await;
    assert_eq!(r.status, JobStatus::RefusedStrict);
    assert_eq!(r.row_errors.len(), 1);
    assert_eq!(r.row_errors[0].row, 4);
    assert_eq!(env.last_position(), before);
    assert!(env.account("a").is_none());
    // without strict, the good rows go on
    let r = env.import(&three).await;
    assert_eq!((r.counts.created, r.counts.failed), (2, 1));
}

#[tokio::test]
async fn license_limit_applies_row_by_row_in_file_order() {
    let env = env_with(2, 100).await;
    let f = env.write(
        "users.csv",
        &users_csv(
            Version::V2,
            &[
                u("a", "ann", true),
                u("b", "bob", false),
                u("c", "cat", true),
                u("d", "dan", true),
                u("e", "eve", false),
            ],
        ),
    );
    let r = env.import(&f).await;
    assert_eq!(r.counts.created, 4);
    assert_eq!(r.counts.failed, 1);
    let err = &r.row_errors[0];
    assert_eq!(err.row, 5);
    assert_eq!(err.import_id.as_deref(), Some("d"));
    assert_eq!(err.column.as_deref(), Some("blocked"));
    assert!(err.reason.contains("license limit"), "{err}");
    assert_eq!(env.status("c"), Some(Status::Enabled));
    assert_eq!(env.status("d"), None);
    assert_eq!(env.status("e"), Some(Status::Disabled), "rows after go on");
    // freeing a license: a full import's removals come before its rows
    let g = env.write(
        "users.csv",
        &users_csv(
            Version::V2,
            &[
                u("b", "bob", false),
                u("c", "cat", true),
                u("d", "dan", true),
                u("e", "eve", false),
            ],
        ),
    );
    let r = env.import(&g).await;
    assert_eq!(
        (r.counts.deleted, r.counts.created, r.counts.failed),
        (1, 1, 0),
        "{r:#?}"
    );
}

#[tokio::test]
async fn dry_run_writes_nothing_and_equals_the_real_diff() {
    let env = env_with(4, 100).await;
    env.import(&fixture("powerschool/v1/users.csv")).await;
    env.sign_in("s2").await;
    let next = env.write(
        "users.csv",
        &users_csv(
            Version::V1,
            &[
                u("s1", "ada", false),
                u("s3", "grace", true),
                u("s4", "edsger", true),
                u("s5", "barbara", true),
                u("s9", "new1", true),
                u("s10", "new2", true),
            ],
        ),
    );
    let before = env.last_position();
    let dry = env
        .import_checked(
            &next,
            ImportOptions {
                dry_run: true,
                ..Default::default()
            },
        )
        .await;
    assert_eq!(dry.status, JobStatus::DryRun);
    assert_eq!(env.last_position(), before);
    assert!(dry.counts.changes() > 0);
    let real = env.import(&next).await;
    assert_eq!(dry.counts, real.counts);
    assert_eq!(dry.row_errors, real.row_errors);
    let shape = |r: &account_ledger::import::ImportReport| {
        r.changes
            .iter()
            .map(|c| (c.row, c.import_id.clone(), c.changes.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(shape(&dry), shape(&real));
    assert!(
        real.counts.failed >= 1,
        "the license limit bites: {real:#?}"
    );
}

#[tokio::test]
async fn audit_shows_job_file_and_row_of_every_event() {
    let env = env().await;
    let first = env.import(&fixture("powerschool/v1/users.csv")).await;
    let r = env
        .import(&fixture("powerschool/v1/update_users.csv"))
        .await;
    assert_eq!(r.events_written, 4, "{r:#?}");
    let history = env
        .ledger
        .import_job_history(&r.job_id)
        .await
        .expect("history");
    assert_eq!(history.len() as u64, r.events_written);
    for e in &history {
        match &e.source {
            Source::Import { job_id, file, row } => {
                assert_eq!(*job_id, r.job_id);
                assert_eq!(&**file, "update_users.csv");
                assert!((2..=4).contains(row));
            }
            other => panic!("not an import source: {other:?}"),
        }
        assert_eq!(&*e.actor, ADMIN);
    }
    // one job, one batch: its events are contiguous in the log
    let positions: Vec<u64> = history.iter().map(|e| e.position).collect();
    assert_eq!(
        positions.last().unwrap() - positions[0] + 1,
        positions.len() as u64
    );
    // an account's own history names the file and row of each change
    let s1 = env.account("s1").expect("s1");
    let h = env.ledger.account_history(s1.id).await.expect("history");
    let rows: Vec<(String, u64, &str)> = h
        .iter()
        .filter_map(|e| match &e.source {
            Source::Import { file, row, .. } => Some((file.to_string(), *row, e.event.kind())),
            _ => None,
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("users.csv".to_string(), 2, "AccountCreated"),
            ("update_users.csv".to_string(), 2, "AccountDisabled"),
            ("update_users.csv".to_string(), 2, "ProfileUpdated"),
        ]
    );
    assert!(matches!(h[0].event, Event::AccountCreated { .. }));
    assert_ne!(first.job_id, r.job_id);
    assert_eq!(
        r.changes[0].changes,
        vec![ChangeKind::Disabled, ChangeKind::Updated]
    );
}
