//! Undo of an import job (`Ledger::revert_job`): every kind of change an import makes is taken
//! back by compensating events naming the reverted job; accounts changed since are left alone;
//! a job's deletions are reported as beyond undo; a revert can itself be reverted; a revert
//! that would break the license limit writes nothing; a dry run writes nothing.

mod import_common;

use account_ledger::domain::{Command, Status};
use account_ledger::ledger::{LedgerError, Request};
use account_ledger::store::Source;
use import_common::*;
use uuid::Uuid;

const HEADER: &str = "import_id,first_name,last_name,login,email,user_type,enabled\n";

fn row(iid: &str, first: &str, enabled: u8) -> String {
    let login = iid.to_lowercase();
    format!("{iid},{first},Lee,{login},{login}@x.example,student,{enabled}\n")
}

async fn import(env: &Env, name: &str, rows: &[String]) -> Uuid {
    let r = env
        .import(&env.write(name, &format!("{HEADER}{}", rows.concat())))
        .await;
    assert!(r.row_errors.is_empty(), "{r:#?}");
    r.job_id
}

/// S1..S4 created (S3 disabled), S2 signed into (not a stub).
async fn district(env: &Env) -> Uuid {
    let job = import(
        env,
        "users.csv",
        &[
            row("S1", "Ann", 1),
            row("S2", "Bo", 1),
            row("S3", "Cy", 0),
            row("S4", "Di", 1),
        ],
    )
    .await;
    env.sign_in("S2").await;
    job
}

async fn revert(env: &Env, job: Uuid) -> account_ledger::ledger::RevertOutcome {
    env.ledger
        .revert_job(&job, "admin", false, false)
        .await
        .unwrap()
        .expect("job in the log")
}

#[tokio::test]
async fn reverting_an_update_undoes_profiles_flags_and_creations() {
    let env = env().await;
    district(&env).await;
    let update = import(
        &env,
        "update_users.csv",
        &[
            row("S1", "Annie", 1),
            row("S3", "Cy", 1),
            row("S4", "Di", 0),
            row("S5", "Ed", 1),
        ],
    )
    .await;
    assert_eq!(env.status("S3"), Some(Status::Enabled));

    let before = env.last_position();
    let dry = env
        .ledger
        .revert_job(&update, "admin", true, false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(env.last_position(), before, "a dry run writes nothing");
    assert_eq!(dry.plan.steps.len(), 4, "{:#?}", dry.plan);

    let done = revert(&env, update).await;
    assert_eq!(done.events_written, env.last_position() - before);
    assert_eq!(env.account("S1").unwrap().profile.first_name(), "Ann");
    assert_eq!(env.status("S3"), Some(Status::Disabled));
    assert_eq!(env.status("S4"), Some(Status::Enabled));
    assert_eq!(
        env.status("S5"),
        None,
        "created by the job, a stub: deleted"
    );
    // The compensating events name the job they undo.
    let history = env
        .ledger
        .account_history(env.account("S1").unwrap().id)
        .await
        .unwrap();
    let last = history.last().unwrap();
    assert!(
        matches!(last.source, Source::Revert { reverted, job_id } if reverted == update && Some(job_id) == done.job_id),
        "{:?}",
        last.source
    );
    assert_eq!(&*last.actor, "admin");
}

#[tokio::test]
async fn reverting_a_delete_file_reactivates_and_lists_what_cannot_come_back() {
    let env = env().await;
    district(&env).await;
    // S2 holds data: deactivated; S4 is a stub: deleted.
    let delete = import(
        &env,
        "delete_users.csv",
        &[row("S2", "Bo", 1), row("S4", "Di", 1)],
    )
    .await;
    assert_eq!(env.status("S2"), Some(Status::Deactivated));
    let done = revert(&env, delete).await;
    assert_eq!(env.status("S2"), Some(Status::Enabled));
    assert_eq!(done.plan.deleted_by_job.len(), 1, "{:#?}", done.plan);
    assert_eq!(env.status("S4"), None);
}

#[tokio::test]
async fn accounts_changed_after_the_job_are_left_alone_and_listed() {
    let env = env().await;
    let create = district(&env).await;
    let s1 = env.account("S1").unwrap().id;
    env.ledger
        .execute(Request::manual("admin", Command::Disable { account: s1 }))
        .await
        .unwrap();
    let done = revert(&env, create).await;
    assert!(
        done.plan.changed_since.iter().any(|(a, _)| *a == s1),
        "{:#?}",
        done.plan
    );
    assert_eq!(env.status("S1"), Some(Status::Disabled), "left alone");
    // S2 was signed into after the job too; S3 and S4 were not: created stubs, deleted.
    assert_eq!((env.status("S3"), env.status("S4")), (None, None));
}

#[tokio::test]
async fn an_account_changed_after_the_plan_was_made_is_left_alone() {
    let env = env().await;
    let create = district(&env).await;
    let plan = env.ledger.plan_revert(&create).await.unwrap().unwrap();
    let s4 = env.account("S4").unwrap().id;
    assert!(plan.steps.iter().any(|s| s.account == s4), "{plan:#?}");
    // Between the plan and its run (a request made through a lagging server, or a command
    // that got there first), S4 is disabled by hand.
    env.ledger
        .execute(Request::manual("admin", Command::Disable { account: s4 }))
        .await
        .unwrap();
    let done = env
        .ledger
        .run_revert(plan, "admin", false, false)
        .await
        .expect("planned again on the new state");
    assert!(
        done.plan.changed_since.iter().any(|(a, _)| *a == s4),
        "{:#?}",
        done.plan
    );
    assert_eq!(env.status("S4"), Some(Status::Disabled), "left alone");
    assert_eq!(env.status("S3"), None, "the rest reverted");
}

#[tokio::test]
async fn a_revert_can_be_reverted() {
    let env = env().await;
    district(&env).await;
    let update = import(
        &env,
        "update_users.csv",
        &[row("S1", "Annie", 1), row("S4", "Di", 0)],
    )
    .await;
    let undo = revert(&env, update).await;
    assert_eq!(env.status("S4"), Some(Status::Enabled));
    let redo = revert(&env, undo.job_id.unwrap()).await;
    assert!(redo.events_written > 0);
    assert_eq!(env.account("S1").unwrap().profile.first_name(), "Annie");
    assert_eq!(env.status("S4"), Some(Status::Disabled));
}

#[tokio::test]
async fn a_revert_that_would_pass_the_license_limit_writes_nothing() {
    let env = env_with(3, 100).await;
    district(&env).await; // S1, S2, S4 enabled: 3 of 3
    let update = import(&env, "update_users.csv", &[row("S4", "Di", 0)]).await;
    // The freed license is taken by S3 by hand; undoing the job would need a fourth.
    let s3 = env.account("S3").unwrap().id;
    env.ledger
        .execute(Request::manual("admin", Command::Enable { account: s3 }))
        .await
        .unwrap();
    let before = env.last_position();
    let err = env
        .ledger
        .revert_job(&update, "admin", false, false)
        .await
        .unwrap_err();
    assert!(matches!(err, LedgerError::Domain(_)), "{err}");
    assert!(err.to_string().contains("license"), "{err}");
    assert_eq!(env.last_position(), before);
    assert_eq!(env.status("S4"), Some(Status::Disabled));
}

#[tokio::test]
async fn an_unknown_job_has_nothing_to_revert() {
    let env = env().await;
    let none = env
        .ledger
        .revert_job(&Uuid::new_v4(), "admin", true, false)
        .await
        .unwrap();
    assert!(none.is_none());
}

#[tokio::test]
async fn a_revert_removing_more_than_the_guard_share_needs_confirmation() {
    let env = env_with(1000, 10).await;
    let create = district(&env).await;
    let before = env.last_position();
    // Undoing the creation deletes S1, S3 and S4 (stubs) of 4 active imported accounts.
    let err = env
        .ledger
        .revert_job(&create, "admin", false, false)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            LedgerError::MassRevert {
                affected: 3,
                active: 4,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(env.last_position(), before);
    let done = env
        .ledger
        .revert_job(&create, "admin", false, true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.plan.guard.removals, 3);
    assert_eq!(env.status("S1"), None);
}
