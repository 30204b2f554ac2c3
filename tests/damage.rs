//! A damaged data dir never serves as if it were fine: each damage below makes `serve` refuse
//! with exit code 1 and a message naming the damaged path; `--accept-data-loss` starts anyway
//! and logs the loss; an intact dir starts (after kill -9 too: tests/crash.rs restarts killed
//! servers and checks every acknowledged command).

mod served;
mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use account_ledger::ledger::Ledger;

const ACCOUNTS: usize = 40;

/// A data dir as `serve` uses it (`<dir>/ledger`), holding a domain and [`ACCOUNTS`] accounts.
async fn populated() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("ledger")).await.unwrap();
    support::register(&ledger, "d1", 1000).await;
    for i in 0..ACCOUNTS {
        support::create(&ledger, "d1", &format!("user{i}"), true).await;
    }
    ledger.close().await.unwrap();
    drop(ledger);
    dir
}

/// Truncate (or extend) a file, as `truncate -s` would.
fn set_len(path: &Path, len: u64) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn ledger_file(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join("ledger").join(name)
}

fn spawn(dir: &Path, extra: &[&str]) -> Child {
    served::spawn(dir, "127.0.0.1:0", extra)
}

/// Run `serve`; it must exit on its own. Returns (exit code, stderr).
fn refused(dir: &Path) -> (i32, String) {
    let mut child = spawn(dir, &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            return (status.code().unwrap_or(-1), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve started on a damaged data dir instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Run `serve` until it says it is listening; returns the child (still running) and what it
/// wrote to stderr by then.
fn started(dir: &Path, extra: &[&str]) -> (Child, String) {
    let mut child = spawn(dir, extra);
    let stdout = BufReader::new(child.stdout.take().unwrap());
    for line in stdout.lines() {
        let line = line.unwrap();
        if line.contains("listening on") {
            let stderr = child.stderr.take().unwrap();
            // Stderr up to now: the start-up log lines were written before "listening".
            let text = drain_available(stderr);
            return (child, text);
        }
    }
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    let status = child.wait();
    panic!("serve exited ({status:?}) without listening: {err}");
}

fn drain_available(stderr: std::process::ChildStderr) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut text = String::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
        text.push_str(&line);
        text.push('\n');
    }
    text
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn assert_refusal(dir: &tempfile::TempDir, names: &str, says: &str) {
    let (code, err) = refused(dir.path());
    assert_eq!(code, 1, "exit code; stderr: {err}");
    assert!(err.contains(names), "stderr names {names}: {err}");
    assert!(err.contains(says), "stderr says {says:?}: {err}");
}

#[tokio::test]
async fn an_intact_data_dir_starts() {
    let dir = populated().await;
    let (child, err) = started(dir.path(), &[]);
    assert!(!err.contains("DATA LOSS"), "{err}");
    stop(child);
}

#[tokio::test]
async fn an_emptied_log_is_refused_naming_the_log_and_the_missing_events() {
    let dir = populated().await;
    let db = ledger_file(&dir, "sled/db");
    set_len(&db, 0);
    assert_refusal(&dir, &db.display().to_string(), "events are missing");
}

#[tokio::test]
async fn a_log_cut_in_half_is_refused() {
    let dir = populated().await;
    let db = ledger_file(&dir, "sled/db");
    let len = std::fs::metadata(&db).unwrap().len();
    set_len(&db, len / 2);
    let (code, err) = refused(dir.path());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("ledger/sled"), "names the log: {err}");
}

#[tokio::test]
async fn eight_overwritten_bytes_in_the_log_are_refused() {
    let dir = populated().await;
    let db = ledger_file(&dir, "sled/db");
    let f = std::fs::File::options().write(true).open(&db).unwrap();
    f.write_all_at(&[0xA5; 8], 100).unwrap();
    f.sync_all().unwrap();
    let (code, err) = refused(dir.path());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("ledger/sled"), "names the log: {err}");
}

#[tokio::test]
async fn a_log_chunk_keyed_past_the_end_is_refused_as_a_gap_before_the_journal_is_touched() {
    // The journal holds the commits since sled's last flush: were the stray key taken for the
    // log's end, they would be dropped as already in sled and the journal reset.
    let dir = populated().await;
    let journal = ledger_file(&dir, "COMMITS");
    let before = std::fs::read(&journal).unwrap();
    {
        let db = sled::open(ledger_file(&dir, "sled")).unwrap();
        let log = db.open_tree("log").unwrap();
        let (_, chunk) = log.last().unwrap().unwrap();
        log.insert((1u64 << 40).to_be_bytes(), chunk).unwrap();
        db.flush().unwrap();
    }
    assert_refusal(&dir, "ledger/sled", "a gap in the log");
    assert!(
        std::fs::read(&journal).unwrap() == before,
        "the refused open rewrote the commit journal"
    );
}

/// A data dir whose log holds an import of 600 accounts: its chunks are in the chunk file
/// (`CHUNKS`), sled holds pointers to them. Without its log index checkpoint, so the open
/// reads every chunk (with it, damage is found when a chunk is read).
async fn populated_by_an_import() -> tempfile::TempDir {
    use account_ledger::import::{ImportInput, ImportJob, ImportOptions, run_import};
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("ledger")).await.unwrap();
    support::register(&ledger, "d1", 1000).await;
    let mut csv = String::from("import_id,login,first_name,last_name,enabled\n");
    for i in 0..600 {
        csv.push_str(&format!("sis-{i},user{i},First,Last,1\n"));
    }
    let input = ImportInput::Reader {
        name: "users.csv".into(),
        reader: Box::new(std::io::Cursor::new(csv.into_bytes())),
    };
    let report = run_import(
        &ledger,
        ImportJob::new("d1", "admin"),
        input,
        ImportOptions::default(),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(report.events_written, 600);
    ledger.close().await.unwrap();
    drop(ledger);
    let _ = std::fs::remove_file(ledger_file(&dir, "LOG_INDEX"));
    dir
}

#[tokio::test]
async fn a_flipped_byte_in_the_chunk_file_is_refused_naming_it() {
    let dir = populated_by_an_import().await;
    let chunks = ledger_file(&dir, "CHUNKS");
    let f = std::fs::File::options()
        .read(true)
        .write(true)
        .open(&chunks)
        .unwrap();
    let mut byte = [0u8; 1];
    f.read_exact_at(&mut byte, 5000).unwrap();
    f.write_all_at(&[byte[0] ^ 0x40], 5000).unwrap();
    f.sync_all().unwrap();
    assert_refusal(
        &dir,
        &chunks.display().to_string(),
        "does not match its CRC",
    );
}

#[tokio::test]
async fn a_chunk_file_cut_short_is_refused_naming_it() {
    let dir = populated_by_an_import().await;
    let chunks = ledger_file(&dir, "CHUNKS");
    let len = std::fs::metadata(&chunks).unwrap().len();
    set_len(&chunks, len - 100);
    assert_refusal(&dir, &chunks.display().to_string(), "cut short");
}

#[tokio::test]
async fn a_missing_chunk_file_is_refused_naming_it() {
    let dir = populated_by_an_import().await;
    let chunks = ledger_file(&dir, "CHUNKS");
    std::fs::remove_file(&chunks).unwrap();
    assert_refusal(
        &dir,
        &chunks.display().to_string(),
        "the chunk file is missing",
    );
}

#[tokio::test]
async fn a_damaged_commit_journal_is_refused_naming_it() {
    let dir = populated().await;
    let journal = ledger_file(&dir, "COMMITS");
    let f = std::fs::File::options().write(true).open(&journal).unwrap();
    f.write_all_at(&[0xA5; 8], 0).unwrap();
    f.sync_all().unwrap();
    assert_refusal(
        &dir,
        &journal.display().to_string(),
        "the commit journal is damaged",
    );
}

#[tokio::test]
async fn a_missing_commit_journal_is_refused_naming_it() {
    let dir = populated().await;
    let journal = ledger_file(&dir, "COMMITS");
    std::fs::remove_file(&journal).unwrap();
    assert_refusal(
        &dir,
        &journal.display().to_string(),
        "the commit journal is missing",
    );
}

#[tokio::test]
async fn a_missing_key_vault_is_refused_naming_it() {
    let dir = populated().await;
    let vault = ledger_file(&dir, "keys.vault");
    std::fs::remove_file(&vault).unwrap();
    assert_refusal(&dir, &vault.display().to_string(), "key vault is missing");
}

#[tokio::test]
async fn a_short_key_vault_is_refused_naming_it() {
    let dir = populated().await;
    let vault = ledger_file(&dir, "keys.vault");
    let len = std::fs::metadata(&vault).unwrap().len();
    set_len(&vault, len / 2);
    assert_refusal(&dir, &vault.display().to_string(), "keys were lost");
}

#[tokio::test]
async fn a_live_account_without_its_key_is_refused_naming_the_account() {
    let dir = populated().await;
    let vault = ledger_file(&dir, "keys.vault");
    // Account numbers start at 1; slots are 40 bytes after a 16-byte header.
    let f = std::fs::File::options().write(true).open(&vault).unwrap();
    f.write_all_at(&[0u8; 40], 16 + 7 * 40).unwrap();
    f.sync_all().unwrap();
    assert_refusal(&dir, &vault.display().to_string(), "account 7");
}

#[tokio::test]
async fn a_flipped_key_byte_is_refused_naming_the_account() {
    let dir = populated().await;
    let vault = ledger_file(&dir, "keys.vault");
    let f = std::fs::File::options()
        .read(true)
        .write(true)
        .open(&vault)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, 16 + 3 * 40 + 5).unwrap();
    f.write_all_at(&[b[0] ^ 0x01], 16 + 3 * 40 + 5).unwrap();
    assert_refusal(
        &dir,
        &vault.display().to_string(),
        "key of account 3 is damaged",
    );
}

#[tokio::test]
async fn a_missing_reach_record_is_refused() {
    let dir = populated().await;
    let reach = ledger_file(&dir, "REACH");
    std::fs::remove_file(&reach).unwrap();
    assert_refusal(
        &dir,
        &reach.display().to_string(),
        "reach record is missing",
    );
}

#[tokio::test]
async fn accept_data_loss_starts_logs_the_loss_and_records_the_new_reach() {
    let dir = populated().await;
    let db = ledger_file(&dir, "sled/db");
    set_len(&db, 0);
    let (child, err) = started(dir.path(), &["--accept-data-loss"]);
    assert!(err.contains("DATA LOSS accepted"), "{err}");
    stop(child);
    // The loss is now the recorded state: a plain start works and reports nothing.
    let (child, err) = started(dir.path(), &[]);
    assert!(!err.contains("DATA LOSS"), "{err}");
    stop(child);
}

#[tokio::test]
async fn a_data_dir_is_owner_only_and_wider_modes_are_narrowed_with_a_warning() {
    let dir = populated().await;
    let ledger = dir.path().join("ledger");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&ledger), 0o700);
    assert_eq!(mode(&ledger.join("keys.vault")), 0o600);
    assert_eq!(mode(&ledger.join("sled/db")), 0o600);
    std::fs::set_permissions(
        ledger.join("keys.vault"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let (child, err) = started(dir.path(), &[]);
    assert!(
        err.contains("narrowed to owner-only") && err.contains("keys.vault"),
        "{err}"
    );
    stop(child);
    assert_eq!(mode(&ledger.join("keys.vault")), 0o600);
    assert_eq!(mode(&dir.path().join("config.json")), 0o600);
}

/// An account number far past any the server hands out (only a hand-written event can hold
/// one) is refused by the store, naming why, before anything is written: its key's slot would
/// make a sparse key file of gigabytes to terabytes that the next open reads whole. The store and the ledger go on working.
#[tokio::test]
async fn an_event_for_an_account_number_near_the_top_is_refused_and_writes_nothing() {
    use account_ledger::domain::Event;
    use account_ledger::store::{EventLog, NewEvent, Source, open_store};
    let dir = tempfile::tempdir().unwrap();
    let event = |event| NewEvent {
        event_id: uuid::Uuid::new_v4(),
        actor: "op".into(),
        source: Source::Manual,
        request_id: None,
        event,
    };
    let created = |account| {
        event(Event::AccountCreated {
            account,
            domain: "d1".into(),
            import_id: None,
            profile: (&support::profile("someone")).into(),
            role: "student".into(),
            enabled: true,
        })
    };
    {
        let store = open_store(&dir.path().join("ledger")).unwrap();
        store
            .log
            .append(vec![event(Event::DomainRegistered {
                domain: "d1".into(),
                license_limit: 5,
            })])
            .await
            .unwrap();
        for far in [1u64 << 30, u64::MAX - 1] {
            let refused = store
                .log
                .append(vec![created(far)])
                .await
                .expect_err("no key slot for that number");
            assert!(
                refused.to_string().contains("past the key vault's range"),
                "{refused}"
            );
        }
        assert_eq!(store.log.last_position(), 1, "nothing was written");
        store
            .log
            .append(vec![created(1)])
            .await
            .expect("a usual number");
    }
    let ledger = Ledger::open(&dir.path().join("ledger")).await.unwrap();
    assert_eq!(ledger.account(1).expect("account 1").domain, "d1");
    ledger.close().await.unwrap();
}
