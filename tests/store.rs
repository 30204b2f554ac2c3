//! The sled event log on its own: optimistic concurrency, idempotent event ids, atomic batches
//! across a kill -9, unknown format versions, foreign and damaged data dirs.

mod support;

use std::process::Command as Process;

use account_ledger::domain::Event;
use account_ledger::store::{EventLog, NewEvent, Source, StoreError, StoreOptions, open_store};
use uuid::Uuid;

fn registered(domain: &str) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        actor: "op".into(),
        source: Source::Manual,
        request_id: None,
        event: Event::DomainRegistered {
            domain: domain.into(),
            license_limit: 1,
        },
    }
}

fn limit_changed(domain: &str, limit: u32) -> NewEvent {
    NewEvent {
        event: Event::LicenseLimitChanged {
            domain: domain.into(),
            license_limit: limit,
        },
        ..registered(domain)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_get_contiguous_gap_free_positions() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).unwrap();
    let log = std::sync::Arc::new(store.log);
    let mut tasks = Vec::new();
    for t in 0..8 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..20u32 {
                let batch: Vec<_> = (0..=(i % 3))
                    .map(|_| limit_changed(&format!("d{t}"), i))
                    .collect();
                let n = batch.len();
                let a = log.append(batch).await.unwrap();
                // One batch: one contiguous range of positions.
                assert_eq!(a.positions.len(), n);
                assert!(a.positions.windows(2).all(|w| w[1] == w[0] + 1));
                got.extend(a.positions);
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    let expected: Vec<u64> = (1..=all.len() as u64).collect();
    assert_eq!(all, expected);
    assert_eq!(log.last_position(), all.len() as u64);
    // Commit order is position order, stamps never go back.
    let events = log.read_range(1, u64::MAX, usize::MAX).await.unwrap();
    assert_eq!(events.len(), all.len());
    assert!(
        events
            .windows(2)
            .all(|w| w[0].recorded_at_us <= w[1].recorded_at_us)
    );
}

#[tokio::test]
async fn appending_a_stored_event_id_again_returns_the_original_position() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).unwrap();
    let first = registered("d");
    let a = store.log.append(vec![first.clone()]).await.unwrap();
    let b = store
        .log
        .append(vec![limit_changed("d", 3), first.clone()])
        .await
        .unwrap();
    assert_eq!(a.positions, vec![1]);
    assert_eq!(b.positions, vec![2, 1]);
    assert_eq!(b.recorded.len(), 1);
    assert_eq!(store.log.last_position(), 2);
    assert_eq!(store.log.event_position(&first.event_id), Some(1));
}

#[tokio::test]
async fn positions_are_gap_free_and_stamps_never_go_back_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open_store(dir.path()).unwrap();
        let batch: Vec<_> = (0..600).map(|i| limit_changed("d", i)).collect();
        store.log.append(batch).await.unwrap();
    }
    let store = open_store(dir.path()).unwrap();
    store.log.append(vec![limit_changed("d", 1)]).await.unwrap();
    let all = store.log.read_range(1, u64::MAX, usize::MAX).await.unwrap();
    assert_eq!(all.len(), 601);
    for (i, pair) in all.windows(2).enumerate() {
        assert_eq!(pair[0].position, i as u64 + 1);
        assert_eq!(pair[1].position, pair[0].position + 1);
        assert!(pair[1].recorded_at_us >= pair[0].recorded_at_us);
        assert_eq!(pair[1].stream_version, pair[0].stream_version + 1);
    }
    // read_positions across chunk boundaries matches read_range.
    let picked = store
        .log
        .read_positions(&[1, 255, 256, 257, 600, 601])
        .await
        .unwrap();
    let want: Vec<u64> = picked.iter().map(|e| e.position).collect();
    assert_eq!(want, vec![1, 255, 256, 257, 600, 601]);
    // sled's reader takes them in any order too, repeated, or past the end (skipped): each
    // answered as read_range has it, in the order asked (the trait asks only for ascending).
    let picked = store
        .log
        .read_positions(&[601, 3, 3, 700, 2, 256, 0])
        .await
        .unwrap();
    let by_range = |p: u64| all[p as usize - 1].clone();
    assert_eq!(
        picked,
        [601, 3, 3, 2, 256].map(by_range).to_vec(),
        "positions answered in the order asked"
    );
}

#[test]
fn an_unknown_record_version_is_a_clear_error_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    {
        let store = open_store(dir.path()).unwrap();
        rt.block_on(store.log.append(vec![registered("d")]))
            .unwrap();
    }
    {
        // Rewrite the stored chunk as if a future format had written it. sled's background
        // thread releases the file lock shortly after the store is dropped: wait for it, as
        // the store's own open does.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        let db = loop {
            match sled::open(dir.path().join("sled")) {
                Ok(db) => break db,
                Err(e) if std::time::Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("reopening sled: {e}"),
            }
        };
        let log = db.open_tree("log").unwrap();
        let (k, v) = log.iter().next().unwrap().unwrap();
        let mut bytes = v.to_vec();
        bytes[0] = 42;
        log.insert(k, bytes).unwrap();
        db.flush().unwrap();
    }
    let err = open_store(dir.path()).err().expect("open must fail");
    let text = err.to_string();
    assert!(text.contains("unknown format version 42"), "{text}");
    assert!(text.contains(&dir.path().display().to_string()), "{text}");
}

#[test]
fn a_foreign_or_damaged_data_dir_is_refused_with_its_path() {
    let foreign = tempfile::tempdir().unwrap();
    std::fs::write(foreign.path().join("notes.txt"), "not ours").unwrap();
    let err = open_store(foreign.path())
        .err()
        .expect("foreign dir refused");
    assert!(
        err.to_string()
            .contains("not an account-ledger data directory")
    );
    assert!(
        err.to_string()
            .contains(&foreign.path().display().to_string())
    );

    let damaged = tempfile::tempdir().unwrap();
    drop(open_store(damaged.path()).unwrap());
    let db_file = damaged.path().join("sled").join("conf");
    std::fs::write(&db_file, b"\xff\xfe garbage that is not a sled config").unwrap();
    let err = open_store(damaged.path())
        .err()
        .expect("damaged dir refused");
    assert!(
        err.to_string()
            .contains(&damaged.path().display().to_string())
    );
}

const CHILD_ENV: &str = "ACCOUNT_LEDGER_TEST_CHILD_DIR";
const CHILD_BATCH_ENV: &str = "ACCOUNT_LEDGER_TEST_CHILD_BATCH";

/// In a child process: append batches of `CHILD_BATCH_ENV` events forever (until killed).
#[test]
fn child_appends_batches_until_killed() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // only does something when started by the crash tests below
    };
    let batch: u32 = std::env::var(CHILD_BATCH_ENV).unwrap().parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = open_store(std::path::Path::new(&dir)).unwrap();
    if store.log.last_position() == 0 {
        rt.block_on(store.log.append(vec![registered("d")]))
            .unwrap();
    }
    loop {
        let events: Vec<_> = (0..batch).map(|i| limit_changed("d", i)).collect();
        rt.block_on(store.log.append(events)).unwrap();
    }
}

/// Kill -9 a child appending batches of `batch` events, three times: each reopen finds whole
/// batches only.
fn killed_batches_are_whole(batch: u64, first_kill_ms: u64) {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..3 {
        let mut child = Process::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_appends_batches_until_killed",
                "--nocapture",
            ])
            .env(CHILD_ENV, dir.path())
            .env(CHILD_BATCH_ENV, batch.to_string())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(
            first_kill_ms + 150 * round,
        ));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let store = open_store(dir.path()).unwrap();
        let n = store.log.last_position();
        assert!(n >= 1, "the first, acknowledged event survives");
        assert_eq!(
            (n - 1) % batch,
            0,
            "round {round}: {n} events is not whole batches"
        );
    }
}

#[test]
fn a_batch_interrupted_by_kill_9_is_all_there_or_not_at_all() {
    // 40 chunks in the chunk file, their pointers one sled batch.
    killed_batches_are_whole(5000, 400);
}

#[test]
fn a_batch_written_in_several_parts_and_killed_is_all_there_or_not_at_all() {
    // 235 chunks: written to the chunk file, their pointers to sled in one batch.
    killed_batches_are_whole(60_000, 600);
}

/// A crash after a large commit's last part but before its marker was removed (so before it
/// was acknowledged), as builds before the chunk file wrote one: the open discards the whole
/// commit and the log goes on from before it.
#[tokio::test]
async fn a_large_commit_whose_marker_survived_a_crash_is_discarded_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let journal_before;
    let vault_len = {
        let store = open_store(dir.path()).unwrap();
        store.log.append(vec![registered("d")]).await.unwrap();
        journal_before = std::fs::read(dir.path().join("COMMITS")).unwrap();
        let big: Vec<_> = (0..20_000).map(|i| limit_changed("d", i)).collect();
        let a = store.log.append(big).await.unwrap();
        assert_eq!(a.positions.first(), Some(&2));
        assert_eq!(store.log.last_position(), 20_001);
        // Read back whole: every part of the commit is there.
        let back = store.log.read_range(1, 20_001, 30_000).await.unwrap();
        assert_eq!(back.len(), 20_001);
        assert!(
            back.iter()
                .enumerate()
                .all(|(i, e)| e.position == i as u64 + 1)
        );
        drop(store);
        account_ledger::store::reach::read(dir.path())
            .unwrap()
            .unwrap()
            .vault_len
    };
    // What a crash between the last part and the marker's removal leaves: the marker, a
    // reach record that never covered the commit, and a commit journal whose lap began before
    // it (the clean close above began one after it).
    std::fs::write(dir.path().join("COMMITS"), journal_before).unwrap();
    wait_for_unlock(|| {
        let db = sled::Config::new().path(dir.path().join("sled")).open()?;
        db.open_tree("torn")?
            .insert(b"commit", &2u64.to_be_bytes())?;
        db.flush()?;
        Ok(())
    });
    let reach = account_ledger::store::reach::Reach {
        log_position: 1,
        vault_len,
    };
    account_ledger::store::reach::write(dir.path(), reach).unwrap();

    let store = open_store(dir.path()).unwrap();
    assert_eq!(store.log.last_position(), 1);
    let all = store.log.read_range(1, u64::MAX, 100).await.unwrap();
    assert_eq!(all.len(), 1);
    let next = store.log.append(vec![limit_changed("d", 7)]).await.unwrap();
    assert_eq!(next.positions, vec![2]);
    drop(store);
    // The marker is gone: the next open keeps what was appended since.
    let store = open_store(dir.path()).unwrap();
    assert_eq!(store.log.last_position(), 2);
}

/// A data dir as a crash leaves it when sled had written its file through position 1 only,
/// while positions 2 to 4 (three single commits, each acknowledged) were durable in the commit
/// journal alone; and the log's limits in order.
async fn crashed_before_sled_wrote_the_last_three() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let crashed = tempfile::tempdir().unwrap();
    {
        let store = open_store(dir.path()).unwrap();
        store.log.append(vec![registered("d")]).await.unwrap();
    }
    support::copy_dir(dir.path(), crashed.path());
    let store = open_store(dir.path()).unwrap();
    for limit in 2..5 {
        let a = store
            .log
            .append(vec![limit_changed("d", limit)])
            .await
            .unwrap();
        assert_eq!(a.positions, vec![limit as u64]);
    }
    std::fs::copy(dir.path().join("COMMITS"), crashed.path().join("COMMITS")).unwrap();
    crashed
}

fn limits(events: &[account_ledger::store::RecordedEvent]) -> Vec<u32> {
    events
        .iter()
        .map(|e| match &e.event {
            Event::DomainRegistered { license_limit, .. }
            | Event::LicenseLimitChanged { license_limit, .. } => *license_limit,
            other => panic!("unexpected event {other:?}"),
        })
        .collect()
}

/// sled writes small commits to its file in its own time; until then they are durable in the
/// commit journal, and an open puts them back into the log, in order, before indexing it.
#[tokio::test]
async fn acknowledged_commits_sled_had_not_written_are_replayed_from_the_journal() {
    let crashed = crashed_before_sled_wrote_the_last_three().await;
    {
        let store = open_store(crashed.path()).unwrap();
        assert_eq!(store.log.last_position(), 4);
        let all = store.log.read_range(1, 10, 10).await.unwrap();
        assert_eq!(limits(&all), vec![1, 2, 3, 4]);
        assert_eq!(
            store
                .log
                .stream_positions(&account_ledger::domain::StreamId::Domain("d".into())),
            vec![1, 2, 3, 4]
        );
        let next = store.log.append(vec![limit_changed("d", 5)]).await.unwrap();
        assert_eq!(next.positions, vec![5]);
    }
    // Once replayed and closed, nothing is replayed twice.
    let store = open_store(crashed.path()).unwrap();
    let all = store.log.read_range(1, 10, 10).await.unwrap();
    assert_eq!(limits(&all), vec![1, 2, 3, 4, 5]);
}

/// A log that ends before what sled had made durable when the journal's lap began lost data
/// the journal does not hold: damage, refused naming sled's file, unless the loss is accepted.
#[tokio::test]
async fn a_log_shorter_than_the_journal_began_with_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let older = tempfile::tempdir().unwrap();
    {
        let store = open_store(dir.path()).unwrap();
        store.log.append(vec![registered("d")]).await.unwrap();
    }
    support::copy_dir(dir.path(), older.path());
    {
        let store = open_store(dir.path()).unwrap();
        store.log.append(vec![limit_changed("d", 2)]).await.unwrap();
    }
    // sled's file from before position 2, beside a journal from after it.
    std::fs::copy(dir.path().join("COMMITS"), older.path().join("COMMITS")).unwrap();
    match open_store(older.path()) {
        Err(StoreError::DataLoss { path, what }) => {
            assert!(path.ends_with("sled/db"), "{}", path.display());
            assert!(what.contains("1 events are missing"), "{what}");
        }
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("opened a log that lost an acknowledged commit"),
    }
    let accepted = StoreOptions {
        accept_data_loss: true,
    };
    let store = account_ledger::store::open_store_with(older.path(), accepted).unwrap();
    store.log.index_log().unwrap();
    assert_eq!(store.log.last_position(), 1);
}

/// A data dir of layout 2 (before the commit journal) opens, gets its journal and is marked
/// layout 4, which older binaries refuse.
#[tokio::test]
async fn a_layout_2_data_dir_gets_a_commit_journal() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open_store(dir.path()).unwrap();
        store.log.append(vec![registered("d")]).await.unwrap();
    }
    let marker = dir.path().join("ACCOUNT_LEDGER_DATA");
    std::fs::remove_file(dir.path().join("COMMITS")).unwrap();
    std::fs::write(&marker, "account-ledger data directory, layout 2\n").unwrap();
    {
        let store = open_store(dir.path()).unwrap();
        assert_eq!(store.log.last_position(), 1);
        store.log.append(vec![limit_changed("d", 2)]).await.unwrap();
    }
    assert!(dir.path().join("COMMITS").exists());
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        "account-ledger data directory, layout 4\n"
    );
    assert_eq!(open_store(dir.path()).unwrap().log.last_position(), 2);
}

/// sled releases its file lock from background threads shortly after the last handle drops.
fn wait_for_unlock(f: impl Fn() -> sled::Result<()>) {
    for _ in 0..150 {
        match f() {
            Ok(()) => return,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
    f().unwrap();
}
