//! The log index checkpoint (`<data dir>/LOG_INDEX`): an open reads it and indexes only the log
//! after it, and then answers every index question (stream positions and versions, request ids,
//! jobs, event ids, times) exactly as an open that scans the whole log. A damaged or foreign
//! checkpoint is not used: the whole log is indexed, nothing is refused for derived data.

mod support;

use std::path::Path;

use account_ledger::domain::{Event, StreamId};
use account_ledger::store::{EventLog, NewEvent, SledEventLog, Source, open_store};
use uuid::Uuid;

const INDEX_FILE: &str = "LOG_INDEX";

/// Event `i` of the fixture: domain streams d0..d4, every third with a request id, every
/// fourth from one of two import jobs.
fn event(i: u32, jobs: &[Uuid; 2]) -> NewEvent {
    let domain = format!("d{}", i % 5);
    NewEvent {
        event_id: Uuid::new_v4(),
        actor: "op".into(),
        source: if i.is_multiple_of(4) {
            Source::Import {
                job_id: jobs[(i as usize / 4) % 2],
                file: "users.csv".into(),
                row: u64::from(i),
            }
        } else {
            Source::Manual
        },
        request_id: i.is_multiple_of(3).then(|| format!("req-{}", i % 7)),
        event: Event::LicenseLimitChanged {
            domain,
            license_limit: i,
        },
    }
}

/// Append events `from..to` in batches of 1 to 4; returns their event ids.
async fn append(log: &SledEventLog, from: u32, to: u32, jobs: &[Uuid; 2]) -> Vec<Uuid> {
    let mut ids = Vec::new();
    let mut i = from;
    while i < to {
        let n = (1 + i % 4).min(to - i);
        let batch: Vec<NewEvent> = (i..i + n).map(|k| event(k, jobs)).collect();
        ids.extend(batch.iter().map(|e| e.event_id));
        log.append(batch).await.unwrap();
        i += n;
    }
    ids
}

/// Everything the log's indexes answer about the fixture, as text to compare.
async fn answers(log: &SledEventLog, ids: &[Uuid], jobs: &[Uuid; 2]) -> String {
    let mut out = vec![format!("last {}", log.last_position())];
    for d in 0..5 {
        let s = StreamId::Domain(format!("d{d}"));
        out.push(format!(
            "{s:?} v{} {:?}",
            log.stream_version(&s),
            log.stream_positions(&s)
        ));
    }
    for r in 0..7 {
        out.push(format!(
            "req-{r} {:?}",
            log.request_positions(&format!("req-{r}"))
        ));
    }
    for j in jobs {
        out.push(format!("job {:?}", log.job_positions(j)));
    }
    for id in ids {
        out.push(format!("{:?}", log.event_position(id)));
    }
    for e in log.read_range(1, u64::MAX, usize::MAX).await.unwrap() {
        out.push(format!(
            "at {} -> {}",
            e.recorded_at_us,
            log.position_at(e.recorded_at_us)
        ));
    }
    out.join("\n")
}

fn checkpoint(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join(INDEX_FILE)).expect("a clean close writes the checkpoint")
}

/// A data dir whose checkpoint ends before the last `after` events, as a kill -9 between two
/// checkpoints leaves it; returns the dir, every event id and the jobs.
async fn checkpoint_behind_the_log(
    before: u32,
    after: u32,
) -> (tempfile::TempDir, Vec<Uuid>, [Uuid; 2]) {
    let dir = tempfile::tempdir().unwrap();
    let jobs = [Uuid::new_v4(), Uuid::new_v4()];
    let mut ids = {
        let store = open_store(dir.path()).unwrap();
        append(&store.log, 0, before, &jobs).await
    };
    let older = checkpoint(dir.path());
    {
        let store = open_store(dir.path()).unwrap();
        ids.extend(append(&store.log, before, before + after, &jobs).await);
    }
    std::fs::write(dir.path().join(INDEX_FILE), older).unwrap();
    (dir, ids, jobs)
}

/// The same dir indexed from the whole log (its checkpoint removed).
async fn answers_of_a_full_scan(dir: &Path, ids: &[Uuid], jobs: &[Uuid; 2]) -> String {
    let copy = tempfile::tempdir().unwrap();
    support::copy_dir(dir, copy.path());
    std::fs::remove_file(copy.path().join(INDEX_FILE)).unwrap();
    let store = open_store(copy.path()).unwrap();
    answers(&store.log, ids, jobs).await
}

#[tokio::test]
async fn an_open_from_a_checkpoint_answers_as_a_full_scan_does() {
    let (dir, ids, jobs) = checkpoint_behind_the_log(300, 140).await;
    let full = answers_of_a_full_scan(dir.path(), &ids, &jobs).await;
    let store = open_store(dir.path()).unwrap();
    assert_eq!(store.log.last_position(), 440);
    assert_eq!(answers(&store.log, &ids, &jobs).await, full);
    // An event id stored after the checkpoint is still known: appending it again answers
    // its first position and writes nothing.
    let again = NewEvent {
        event_id: ids[420],
        ..event(420, &jobs)
    };
    let appended = store.log.append(vec![again]).await.unwrap();
    assert_eq!(appended.positions, vec![421]);
    assert_eq!(store.log.last_position(), 440);
    // New appends continue the streams' versions.
    let next = store.log.append(vec![event(0, &jobs)]).await.unwrap();
    assert_eq!(next.positions, vec![441]);
    assert_eq!(next.recorded[0].stream_version, 89);
}

#[tokio::test]
async fn a_damaged_checkpoint_is_not_used_and_the_whole_log_is_indexed() {
    let (dir, ids, jobs) = checkpoint_behind_the_log(200, 50).await;
    let full = answers_of_a_full_scan(dir.path(), &ids, &jobs).await;
    let path = dir.path().join(INDEX_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5A;
    std::fs::write(&path, bytes).unwrap();
    let store = open_store(dir.path()).unwrap();
    assert_eq!(answers(&store.log, &ids, &jobs).await, full);
}

#[tokio::test]
async fn a_checkpoint_of_another_log_is_not_used() {
    let (dir, ids, jobs) = checkpoint_behind_the_log(120, 30).await;
    let full = answers_of_a_full_scan(dir.path(), &ids, &jobs).await;
    // Another data dir with a log just as long: its checkpoint ends at the same position with
    // another event.
    let other = tempfile::tempdir().unwrap();
    {
        let store = open_store(other.path()).unwrap();
        append(&store.log, 0, 150, &jobs).await;
    }
    std::fs::copy(other.path().join(INDEX_FILE), dir.path().join(INDEX_FILE)).unwrap();
    let store = open_store(dir.path()).unwrap();
    assert_eq!(answers(&store.log, &ids, &jobs).await, full);
}
