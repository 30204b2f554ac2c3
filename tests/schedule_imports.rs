//! Scheduled changes meet imports (DOMAIN.md: a lock-out wins over imports until it ends), with
//! a clock the test moves: rows that would enable held accounts leave them disabled and are
//! reported; at the end only accounts still meant to be enabled come back; `start_at` creates
//! accounts disabled and a schedule of the job enables them then.

use std::path::PathBuf;
use std::sync::Arc;

use account_ledger::domain::schedule::{Change, ScheduleStatus, Selection, Target};
use account_ledger::domain::{Command, Status};
use account_ledger::import::{ImportInput, ImportJob, ImportOptions, ImportReport, run_import};
use account_ledger::ledger::{Ledger, ManualClock, Request};
use account_ledger::store::StoreOptions;

const HOUR: i64 = 3_600_000_000;
const T0: i64 = 1_800_000_000_000_000;
const HEADER: &str = "import_id,first_name,last_name,login,email,user_type,enabled\n";

struct Env {
    _data: tempfile::TempDir,
    files: tempfile::TempDir,
    ledger: Ledger,
    clock: Arc<ManualClock>,
}

async fn env() -> Env {
    let data = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let ledger = Ledger::open_with_clock(data.path(), StoreOptions::default(), clock.clone())
        .await
        .unwrap();
    for command in [
        Command::RegisterDomain {
            domain: "d".into(),
            license_limit: 100,
        },
        // The mass-change guard is not what these tests are about.
        Command::SetMassChangeGuard {
            domain: "d".into(),
            percent: 100,
        },
    ] {
        ledger
            .execute(Request::manual("op", command))
            .await
            .unwrap();
    }
    Env {
        _data: data,
        files: tempfile::tempdir().unwrap(),
        ledger,
        clock,
    }
}

impl Env {
    async fn import(&self, name: &str, rows: &str, start_at: Option<i64>) -> ImportReport {
        self.import_file(name, &format!("{HEADER}{rows}"), start_at)
            .await
    }

    /// Import `content` (its header included) as a file named `name`.
    async fn import_file(&self, name: &str, content: &str, start_at: Option<i64>) -> ImportReport {
        let dir = self
            .files
            .path()
            .join(format!("{}", self.ledger.log().last_position()));
        std::fs::create_dir_all(&dir).unwrap();
        let path: PathBuf = dir.join(name);
        std::fs::write(&path, content).unwrap();
        let before = self.ledger.log().last_position();
        let report = run_import(
            &self.ledger,
            ImportJob::new("d", "admin"),
            ImportInput::Path(path),
            ImportOptions {
                start_at,
                ..ImportOptions::default()
            },
            |_| {},
        )
        .await
        .unwrap();
        let written = self.ledger.log().last_position() - before;
        assert_eq!(written, report.events_written, "{report:#?}");
        report
    }

    fn status(&self, import_id: &str) -> Status {
        self.ledger
            .account_by_import_id("d", import_id)
            .unwrap_or_else(|| panic!("no account {import_id}"))
            .status()
    }

    async fn fire_at(&self, at: i64) {
        self.clock.set(at);
        self.ledger.fire_due_schedules().await.unwrap();
    }
}

#[tokio::test]
async fn a_running_lock_out_wins_over_an_import_and_its_end_enables_only_what_is_still_wanted() {
    let env = env().await;
    env.import(
        "users.csv",
        "S1,A,A,a,a@x.example,student,1\nS2,B,B,b,b@x.example,student,1\n",
        None,
    )
    .await;
    env.ledger
        .execute(Request::manual(
            "admin",
            Command::ScheduleChange {
                domain: "d".into(),
                target: Target::Role("student".into()),
                change: Change::Disable {
                    at_us: T0 + HOUR,
                    until_us: Some(T0 + 3 * HOUR),
                },
                reason: "summer".into(),
            },
        ))
        .await
        .unwrap();
    env.fire_at(T0 + HOUR).await;
    assert_eq!(env.status("S1"), Status::Disabled);

    // The SIS still says everyone is enabled, B is now disabled, and C and a teacher are new.
    let report = env
        .import(
            "update_users.csv",
            "S1,A,A,a,a@x.example,student,1\nS2,B,B,b,b@x.example,student,0\n\
             S3,C,C,c,c@x.example,student,1\nT1,T,T,t,t@x.example,teacher,1\n",
            None,
        )
        .await;
    assert_eq!(report.held, 3, "{report:#?}");
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("3 rows held by scheduled change 1")),
        "{:?}",
        report.warnings
    );
    assert_eq!(env.status("S1"), Status::Disabled, "held: no enable");
    assert_eq!(
        env.status("S3"),
        Status::Disabled,
        "created disabled while held"
    );
    assert_eq!(env.status("T1"), Status::Enabled, "teachers are not held");

    env.fire_at(T0 + 3 * HOUR).await;
    assert_eq!(env.status("S1"), Status::Enabled);
    assert_eq!(
        env.status("S3"),
        Status::Enabled,
        "wanted enabled during the lock-out"
    );
    assert_eq!(
        env.status("S2"),
        Status::Disabled,
        "the SIS said disabled meanwhile: it does not come back"
    );
    let verified = env.ledger.verify_projections().await.unwrap();
    assert!(verified.equal, "{}", verified.detail);
    env.ledger.close().await.unwrap();
}

#[tokio::test]
async fn start_at_creates_accounts_disabled_and_its_schedule_enables_them_on_the_day() {
    let env = env().await;
    let start = T0 + 24 * HOUR;
    let report = env
        .import(
            "users.csv",
            "S1,A,A,a,a@x.example,student,1\nS2,B,B,b,b@x.example,student,1\n\
             S3,C,C,c,c@x.example,student,0\n",
            Some(start),
        )
        .await;
    let id = report.start_schedule.expect("a start schedule");
    for iid in ["S1", "S2", "S3"] {
        assert_eq!(env.status(iid), Status::Disabled, "{iid}");
    }
    let (selection, status) = env
        .ledger
        .read_domain("d", |s| {
            let sc = &s.domains["d"].schedules[&id];
            (sc.selection.clone(), sc.status)
        })
        .unwrap();
    let ids = |iids: &[&str]| -> Vec<u64> {
        iids.iter()
            .map(|i| env.ledger.account_by_import_id("d", i).unwrap().id)
            .collect()
    };
    assert_eq!(selection, Selection::Accounts(ids(&["S1", "S2"])));
    assert_eq!(status, ScheduleStatus::Pending);

    // Before the start day, the nightly import says enabled: the pending start holds them.
    let report = env
        .import("update_users.csv", "S1,A,A,a,a@x.example,student,1\n", None)
        .await;
    assert_eq!(report.held, 1, "{report:#?}");
    assert_eq!(env.status("S1"), Status::Disabled);

    env.fire_at(start - 1).await;
    assert_eq!(env.status("S1"), Status::Disabled);
    env.fire_at(start).await;
    assert_eq!(env.status("S1"), Status::Enabled);
    assert_eq!(env.status("S2"), Status::Enabled);
    assert_eq!(env.status("S3"), Status::Disabled, "its row said disabled");
    let verified = env.ledger.verify_projections().await.unwrap();
    assert!(verified.equal, "{}", verified.detail);
    env.ledger.close().await.unwrap();
}

#[tokio::test]
async fn with_a_grace_period_left_out_stubs_are_deactivated_then_deleted_unless_they_came_back() {
    let env = env().await;
    let week = 7 * 24 * HOUR;
    env.ledger
        .execute(Request::manual(
            "op",
            Command::SetDeletionGrace {
                domain: "d".into(),
                grace_us: week,
            },
        ))
        .await
        .unwrap();
    let all = "S1,A,A,a,a@x.example,student,1\nS2,B,B,b,b@x.example,student,1\n\
               S3,C,C,c,c@x.example,student,1\n";
    env.import("users.csv", all, None).await;

    // A full import leaves S1 and S2 out: stubs, so the article would delete them at once.
    let report = env
        .import("users.csv", "S3,C,C,c,c@x.example,student,1\n", None)
        .await;
    assert_eq!(report.counts.deactivated, 2, "{report:#?}");
    assert_eq!(report.counts.deleted, 0);
    let id = report.deletion_schedule.expect("a deletion schedule");
    assert_eq!(env.status("S1"), Status::Deactivated);
    assert!(
        report.warnings.iter().any(|w| w.contains("grace period")),
        "{:?}",
        report.warnings
    );

    // S2 is back in the next file before the period ends.
    env.import(
        "users.csv",
        "S2,B,B,b,b@x.example,student,1\nS3,C,C,c,c@x.example,student,1\n",
        None,
    )
    .await;
    assert_eq!(env.status("S2"), Status::Enabled);

    env.fire_at(T0 + week - 1).await;
    assert_eq!(env.status("S1"), Status::Deactivated);
    env.fire_at(T0 + week).await;
    let s1 = env
        .ledger
        .read_domain("d", |s| {
            s.accounts
                .values()
                .find(|a| a.import_id.as_deref() == Some("S1"))
                .map(|a| a.status())
        })
        .flatten();
    assert_eq!(s1, Some(Status::Deleted));
    assert_eq!(
        env.status("S2"),
        Status::Enabled,
        "it came back: not deleted"
    );
    let done = env
        .ledger
        .read_domain("d", |s| s.domains["d"].schedules[&id].status)
        .unwrap();
    assert_eq!(done, ScheduleStatus::Done);
    let verified = env.ledger.verify_projections().await.unwrap();
    assert!(verified.equal, "{}", verified.detail);
    env.ledger.close().await.unwrap();
}

impl Env {
    async fn grace_of_a_week(&self) {
        self.ledger
            .execute(Request::manual(
                "op",
                Command::SetDeletionGrace {
                    domain: "d".into(),
                    grace_us: WEEK,
                },
            ))
            .await
            .unwrap();
    }

    /// Status of the account once imported as `import_id`, Deleted included.
    fn status_ever(&self, import_id: &str) -> Option<Status> {
        self.ledger
            .read_domain("d", |s| {
                s.accounts
                    .values()
                    .find(|a| a.import_id.as_deref() == Some(import_id))
                    .map(|a| a.status())
            })
            .flatten()
    }

    async fn verify_and_close(self) {
        let verified = self.ledger.verify_projections().await.unwrap();
        assert!(verified.equal, "{}", verified.detail);
        self.ledger.close().await.unwrap();
    }
}

const WEEK: i64 = 7 * 24 * HOUR;
const ROW_A: &str = "S1,A,A,a,a@x.example,student,1\n";
const ROW_B: &str = "S2,B,B,b,b@x.example,student,1\n";

/// A stub left out, back, then left out again has a whole grace period from the second time:
/// the first schedule does not delete it when it falls due.
#[tokio::test]
async fn a_stub_left_out_again_after_coming_back_gets_a_whole_grace_period() {
    let env = env().await;
    env.grace_of_a_week().await;
    env.import("users.csv", &format!("{ROW_A}{ROW_B}"), None)
        .await;
    let first = env.import("users.csv", ROW_B, None).await;
    let first = first.deletion_schedule.expect("a deletion schedule");
    env.clock.set(T0 + 2 * 24 * HOUR);
    env.import("users.csv", &format!("{ROW_A}{ROW_B}"), None)
        .await;
    assert_eq!(env.status("S1"), Status::Enabled, "back");
    env.clock.set(T0 + 5 * 24 * HOUR);
    let second = env.import("users.csv", ROW_B, None).await;
    let second = second
        .deletion_schedule
        .expect("a second deletion schedule");
    assert_ne!(first, second);
    env.fire_at(T0 + WEEK).await;
    assert_eq!(
        env.status("S1"),
        Status::Deactivated,
        "two days into its second grace period: not deleted by the first schedule"
    );
    env.fire_at(T0 + 5 * 24 * HOUR + WEEK).await;
    assert_eq!(
        env.status_ever("S1"),
        Some(Status::Deleted),
        "deleted at the end of its second period"
    );
    env.verify_and_close().await;
}

/// Running a file again during the period (a nightly full import, or the same
/// delete_users.csv) makes no new schedule for the stubs already waiting: their deletion is not
/// postponed night after night.
#[tokio::test]
async fn running_a_file_again_does_not_postpone_a_grace_deletion() {
    let env = env().await;
    env.grace_of_a_week().await;
    env.import("users.csv", &format!("{ROW_A}{ROW_B}"), None)
        .await;
    let first = env.import("users.csv", ROW_B, None).await;
    assert!(first.deletion_schedule.is_some(), "{first:#?}");
    for day in 1..7 {
        env.clock.set(T0 + day * 24 * HOUR);
        for again in [
            env.import("users.csv", ROW_B, None).await,
            env.import_file("delete_users.csv", "import_id\nS1\n", None)
                .await,
        ] {
            assert_eq!(again.deletion_schedule, None, "day {day}: {again:#?}");
            assert_eq!(again.counts.deactivated, 0, "day {day}: {again:#?}");
        }
    }
    env.fire_at(T0 + WEEK).await;
    assert_eq!(env.status_ever("S1"), Some(Status::Deleted));
    assert_eq!(env.status("S2"), Status::Enabled);
    env.verify_and_close().await;
}

/// Undoing the file that brought a stub back puts it back under its first schedule: deleted
/// when that period ends, as if the file had never run.
#[tokio::test]
async fn a_comeback_undone_by_a_revert_is_deleted_when_the_first_period_ends() {
    let env = env().await;
    env.grace_of_a_week().await;
    env.import("users.csv", &format!("{ROW_A}{ROW_B}"), None)
        .await;
    env.import("users.csv", ROW_B, None).await;
    env.clock.set(T0 + 2 * 24 * HOUR);
    let back = env
        .import("users.csv", &format!("{ROW_A}{ROW_B}"), None)
        .await;
    assert_eq!(env.status("S1"), Status::Enabled);
    env.ledger
        .revert_job(&back.job_id, "admin", false, false)
        .await
        .unwrap()
        .expect("the job is in the log");
    assert_eq!(env.status("S1"), Status::Deactivated, "the comeback undone");
    env.fire_at(T0 + WEEK).await;
    assert_eq!(env.status_ever("S1"), Some(Status::Deleted));
    env.verify_and_close().await;
}

/// A grace deletion that falls due while the file bringing the stub back is being written is
/// planned on the state before that file; decided after it, it must not delete the account
/// the file just brought back (the firing carries the versions it was planned on).
#[tokio::test]
async fn a_deletion_planned_before_a_comeback_is_written_does_not_delete_it() {
    let env = env().await;
    env.grace_of_a_week().await;
    env.ledger
        .execute(Request::manual(
            "op",
            Command::SetLicenseLimit {
                domain: "d".into(),
                license_limit: 100_000,
            },
        ))
        .await
        .unwrap();
    env.import("users.csv", &format!("{ROW_A}{ROW_B}"), None)
        .await;
    env.import("users.csv", ROW_B, None).await;
    // The comeback file creates many accounts too, so that its batch takes a while to write.
    let mut comeback = format!("{HEADER}{ROW_A}{ROW_B}");
    for i in 0..30_000 {
        comeback.push_str(&format!("N{i},N,N,n{i},n{i}@x.example,student,1\n"));
    }
    let dir = env.files.path().join("comeback");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("users.csv");
    std::fs::write(&path, comeback).unwrap();
    let (applying, mut is_applying) = tokio::sync::mpsc::unbounded_channel();
    let clock = env.clock.clone();
    let import = run_import(
        &env.ledger,
        ImportJob::new("d", "admin"),
        ImportInput::Path(path),
        ImportOptions::default(),
        move |p| {
            if p.phase == account_ledger::import::Phase::Applying {
                // The deletion falls due just as the file's batch goes to the ledger.
                clock.set(T0 + WEEK);
                let _ = applying.send(());
            }
        },
    );
    let fire = async {
        is_applying.recv().await;
        env.ledger.fire_due_schedules().await.unwrap();
    };
    let (report, ()) = tokio::join!(import, fire);
    let report = report.unwrap();
    env.ledger.fire_due_schedules().await.unwrap();
    if report.counts.reactivated == 1 {
        assert_eq!(
            env.status_ever("S1"),
            Some(Status::Enabled),
            "brought back by the file, then deleted by a plan made before it"
        );
    } else {
        // The deletion was decided first: the file's row for S1 found it deleted.
        assert_eq!(env.status_ever("S1"), Some(Status::Deleted), "{report:#?}");
    }
    env.verify_and_close().await;
}

impl Env {
    /// A lock-out of every account from `from` to `until` hours after T0, made by an admin.
    async fn lock_out(&self, from: i64, until: i64) {
        self.ledger
            .execute(Request::manual(
                "admin",
                Command::ScheduleChange {
                    domain: "d".into(),
                    target: Target::Everyone,
                    change: Change::Disable {
                        at_us: T0 + from * HOUR,
                        until_us: Some(T0 + until * HOUR),
                    },
                    reason: format!("{from}h to {until}h"),
                },
            ))
            .await
            .unwrap();
    }
}

/// Two lock-outs that overlap: the first to end does not enable what the other still holds;
/// the last end enables it.
#[tokio::test]
async fn overlapping_lock_outs_enable_only_when_the_last_one_ends() {
    let env = env().await;
    env.import("users.csv", &format!("{ROW_A}{ROW_B}"), None)
        .await;
    env.lock_out(1, 3).await;
    env.lock_out(2, 5).await;
    env.fire_at(T0 + HOUR).await;
    env.fire_at(T0 + 2 * HOUR).await;
    assert_eq!(env.status("S1"), Status::Disabled);
    env.fire_at(T0 + 3 * HOUR).await;
    assert_eq!(
        env.status("S1"),
        Status::Disabled,
        "the second still holds it"
    );
    assert_eq!(
        env.status("S2"),
        Status::Disabled,
        "the second still holds it"
    );
    env.fire_at(T0 + 5 * HOUR).await;
    assert_eq!(env.status("S1"), Status::Enabled, "the last lock-out ended");
    assert_eq!(env.status("S2"), Status::Enabled, "the last lock-out ended");
    env.verify_and_close().await;
}

/// A row asking for an account disabled while two lock-outs hold it is remembered by both:
/// neither end enables it, whichever of them disabled it.
#[tokio::test]
async fn a_row_disabling_during_overlapping_lock_outs_is_kept_by_both() {
    let env = env().await;
    env.import("users.csv", &format!("{ROW_A}{ROW_B}"), None)
        .await;
    // Made first, starts second: the one that disables the accounts is the later made.
    env.lock_out(2, 3).await;
    env.lock_out(1, 5).await;
    env.fire_at(T0 + HOUR).await;
    env.fire_at(T0 + 2 * HOUR).await;
    let report = env
        .import(
            "users.csv",
            "S1,A,A,a,a@x.example,student,0\nS2,B,B,b,b@x.example,student,1\n",
            None,
        )
        .await;
    assert_eq!(report.held, 2, "{report:#?}");
    env.fire_at(T0 + 3 * HOUR).await;
    env.fire_at(T0 + 5 * HOUR).await;
    assert_eq!(
        env.status("S1"),
        Status::Disabled,
        "the file wanted it disabled"
    );
    assert_eq!(env.status("S2"), Status::Enabled);
    env.verify_and_close().await;
}

/// A blank `enabled` cell keeps the account's flag: a deactivated account that was enabled
/// comes back during a lock-out disabled (held), and is enabled when the lock-out ends.
#[tokio::test]
async fn a_blank_enabled_cell_does_not_enable_an_account_during_a_lock_out() {
    let env = env().await;
    env.import("users.csv", &format!("{ROW_A}{ROW_B}"), None)
        .await;
    let s1 = env.ledger.account_by_import_id("d", "S1").unwrap().id;
    env.ledger
        .execute(Request::manual(
            "admin",
            Command::Deactivate { account: s1 },
        ))
        .await
        .unwrap();
    env.lock_out(1, 3).await;
    env.fire_at(T0 + HOUR).await;
    let report = env
        .import(
            "users.csv",
            "S1,A,A,a,a@x.example,student,\nS2,B,B,b,b@x.example,student,1\n",
            None,
        )
        .await;
    assert_eq!(report.counts.reactivated, 1, "{report:#?}");
    assert_eq!(env.status("S1"), Status::Disabled, "held by the lock-out");
    env.fire_at(T0 + 3 * HOUR).await;
    assert_eq!(env.status("S1"), Status::Enabled);
    env.verify_and_close().await;
}

/// A hold recorded by an import on a lock-out that ended after the import was planned is
/// refused (recorded there, it would keep the accounts disabled for good, unseen); the
/// import reports it as a warning and what to do.
#[tokio::test]
async fn a_hold_on_an_ended_lock_out_is_refused() {
    let env = env().await;
    env.import("users.csv", &format!("{ROW_A}{ROW_B}"), None)
        .await;
    env.lock_out(1, 3).await;
    env.fire_at(T0 + HOUR).await;
    let hold = || {
        Request::manual(
            "admin",
            Command::HoldImport {
                domain: "d".into(),
                schedule: 1,
                enable: vec!["S1".into()],
                keep_disabled: vec![],
            },
        )
    };
    env.ledger
        .execute(hold())
        .await
        .expect("held while it runs");
    env.fire_at(T0 + 3 * HOUR).await;
    let err = env.ledger.execute(hold()).await.unwrap_err();
    assert!(err.to_string().contains("done"), "{err}");
    env.verify_and_close().await;
}

/// A delayed start that falls due while a lock-out holds its accounts leaves them to the
/// lock-out, whose end enables them (whichever of the two was made first).
#[tokio::test]
async fn a_delayed_start_due_during_a_lock_out_is_enabled_at_its_end() {
    let env = env().await;
    let start = env
        .import("users.csv", ROW_A, Some(T0 + 2 * HOUR))
        .await
        .start_schedule
        .expect("a start schedule");
    env.lock_out(1, 3).await;
    env.fire_at(T0 + HOUR).await;
    env.fire_at(T0 + 2 * HOUR).await;
    let done = env
        .ledger
        .read_domain("d", |s| s.domains["d"].schedules[&start].status)
        .unwrap();
    assert_eq!(done, ScheduleStatus::Done);
    assert_eq!(env.status("S1"), Status::Disabled, "the lock-out holds it");
    env.fire_at(T0 + 3 * HOUR).await;
    assert_eq!(
        env.status("S1"),
        Status::Enabled,
        "handed to the lock-out's end"
    );
    env.verify_and_close().await;
}

/// The later of two deletions of a stub decides when it is deleted (the stub left out again
/// case is above); cancelled before the earlier one is due, the earlier one applies again.
#[tokio::test]
async fn a_cancelled_later_deletion_gives_the_stub_back_to_the_earlier_one() {
    let env = env().await;
    env.grace_of_a_week().await;
    env.import("users.csv", &format!("{ROW_A}{ROW_B}"), None)
        .await;
    env.import("users.csv", ROW_B, None).await;
    let s1 = env.ledger.account_by_import_id("d", "S1").unwrap().id;
    let made = env
        .ledger
        .execute(Request::manual(
            "admin",
            Command::ScheduleChange {
                domain: "d".into(),
                target: Target::Accounts(vec![s1]),
                change: Change::Delete {
                    at_us: T0 + 2 * WEEK,
                },
                reason: "later".into(),
            },
        ))
        .await
        .unwrap();
    let later = env.ledger.schedules_made(&made.positions).await.unwrap()[0].0;
    env.fire_at(T0 + WEEK - 1).await;
    env.ledger
        .execute(Request::manual(
            "admin",
            Command::CancelSchedule {
                domain: "d".into(),
                schedule: later,
                reason: "changed my mind".into(),
            },
        ))
        .await
        .unwrap();
    env.fire_at(T0 + WEEK).await;
    assert_eq!(
        env.status_ever("S1"),
        Some(Status::Deleted),
        "the first applies again"
    );
    env.verify_and_close().await;
}

#[tokio::test]
async fn a_grace_period_is_at_most_a_year() {
    let env = env().await;
    let err = env
        .ledger
        .execute(Request::manual(
            "op",
            Command::SetDeletionGrace {
                domain: "d".into(),
                grace_us: 366 * 24 * HOUR,
            },
        ))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("365 days"), "{err}");
    env.ledger.close().await.unwrap();
}
