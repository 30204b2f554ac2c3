//! `account-ledger bench`: measures the ledger on a log it builds itself, in a temp (or given)
//! data dir, and prints figures. A benchmark, not a test: it asserts nothing.
//!
//! Measured: durable batched append (raw log, and the full ledger path with rules, encryption
//! and projections), durable single commands from 64 concurrent tasks (group commit), rebuild by
//! replay, bytes on disk per event, and point-in-time queries on the built log.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::domain::{Command, Event, Profile, Status};
use crate::ledger::{BatchMode, Ledger, Request};
use crate::store::{EventLog, NewEvent, Source, open_store};

#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Events in the log the queries run on.
    pub events: u64,
    /// Where to build it (a fresh temp dir when absent).
    pub data_dir: Option<PathBuf>,
}

const DOMAINS: usize = 10;
const BATCH: usize = 10_000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn rate(n: u64, d: Duration) -> String {
    format!("{:.0}/s", n as f64 / d.as_secs_f64().max(1e-9))
}

fn create(domain: usize, n: u64, enabled: bool) -> Command {
    Command::CreateAccount {
        domain: format!("district-{domain}"),
        account: 0,
        import_id: Some(format!("sis-{n:08}")),
        profile: Profile {
            login: format!("user{n:08}"),
            first_name: "Alexandra".into(),
            last_name: "Montgomery".into(),
            email: format!("user{n:08}@district.example"),
        },
        role: "student".into(),
        enabled,
    }
}

fn scratch(
    opts: &BenchOptions,
    name: &str,
) -> std::io::Result<(Option<tempfile::TempDir>, PathBuf)> {
    match &opts.data_dir {
        Some(d) => Ok((None, d.join(name))),
        None => {
            let t = tempfile::tempdir()?;
            let p = t.path().join(name);
            Ok((Some(t), p))
        }
    }
}

/// Sealing and opening one short profile per account key, as imports, the views' save and
/// start-up do (one AEAD call per account: its per-key setup dominates, see .cargo/config.toml).
fn profile_sealing(opts: &BenchOptions) -> Result<(), Box<dyn std::error::Error>> {
    const PROFILES: u64 = 100_000;
    let (_tmp, dir) = scratch(opts, "vault")?;
    std::fs::create_dir_all(&dir)?;
    let vault = crate::store::vault::Vault::open(&dir.join("keys.vault"), 0)?;
    let accounts: Vec<u64> = (1..=PROFILES).collect();
    vault.ensure_keys(&accounts)?;
    let plaintext = b"user0123456,First123456,Last123456,user0123456@district.example,stud";
    let started = Instant::now();
    let sealed = accounts
        .iter()
        .map(|a| vault.seal(*a, plaintext))
        .collect::<Result<Vec<_>, _>>()?;
    let sealing = started.elapsed();
    let started = Instant::now();
    let opened = accounts
        .iter()
        .zip(&sealed)
        .filter(|(a, s)| vault.open_sealed(**a, s).is_some())
        .count();
    let opening = started.elapsed();
    if opened as u64 != PROFILES {
        return Err(format!("only {opened} of {PROFILES} profiles opened").into());
    }
    let each = |d: Duration| d.as_secs_f64() * 1e6 / PROFILES as f64;
    println!(
        "profile seal / open, one key each:  {:.2} / {:.2} µs per {}-byte profile (one core)",
        each(sealing),
        each(opening),
        plaintext.len()
    );
    Ok(())
}

pub async fn run(opts: BenchOptions) -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("RUST_LOG").is_some() {
        // The ledger's own phase lines (views rebuilt in ..., log index checkpoint ...).
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    println!(
        "account-ledger bench: {} events, batches of {BATCH}",
        opts.events
    );

    profile_sealing(&opts)?;

    // 1. Raw durable batched append on the log (no rules, no projections).
    {
        let (_tmp, dir) = scratch(&opts, "raw")?;
        let store = open_store(&dir)?;
        let total = opts.events.min(1_000_000);
        let started = Instant::now();
        let mut written = 0;
        while written < total {
            let batch: Vec<NewEvent> = (0..BATCH as u64)
                .map(|i| NewEvent {
                    event_id: Uuid::new_v4(),
                    actor: "bench".into(),
                    source: Source::Manual,
                    request_id: None,
                    event: Event::AccountDisabled {
                        account: (written + i) % 100_000,
                    },
                })
                .collect();
            store.log.append(batch).await?;
            written += BATCH as u64;
        }
        let took = started.elapsed();
        println!(
            "log append, durable batches:        {} events in {:.2?} = {}  ({:.0} bytes/event on disk)",
            written,
            took,
            rate(written, took),
            store.log.size_on_disk()? as f64 / written as f64
        );
    }

    // 2. The full ledger path: build the query log.
    let (_tmp, dir) = scratch(&opts, "ledger")?;
    let ledger = Ledger::open(&dir).await?;
    register_districts(&ledger, DOMAINS).await?;
    let accounts = (opts.events / 4).max(1000);
    let started = Instant::now();
    let mut n = 0;
    while n < accounts {
        let reqs = (n..(n + BATCH as u64).min(accounts))
            .map(|i| Request::manual("bench", create(i as usize % DOMAINS, i, i % 3 != 0)))
            .collect::<Vec<_>>();
        n += reqs.len() as u64;
        ledger.execute_batch(reqs, BatchMode::BestEffort).await?;
    }
    let created = started.elapsed();
    println!(
        "ledger batches, CreateAccount:      {} events in {:.2?} = {}",
        accounts,
        created,
        rate(accounts, created)
    );
    let started = Instant::now();
    let mut changes = 0u64;
    let mut round = 0u64;
    while accounts + changes < opts.events {
        let reqs: Vec<_> = (0..BATCH as u64)
            .map(|i| {
                // Account numbers start at 1. Each command changes the account's status (a
                // fixed rotation can fall into no-ops for some account counts).
                let account = 1 + (round * BATCH as u64 + i * 7919) % accounts;
                let status = ledger.account(account).map(|a| a.status());
                let command = match status {
                    Some(Status::Enabled) if (round + i).is_multiple_of(2) => {
                        Command::Disable { account }
                    }
                    Some(Status::Enabled) => Command::Deactivate { account },
                    Some(Status::Disabled) => Command::Enable { account },
                    _ => Command::Reactivate {
                        account,
                        enabled: true,
                    },
                };
                Request::manual("bench", command)
            })
            .collect();
        let before = ledger.log().last_position();
        ledger.execute_batch(reqs, BatchMode::BestEffort).await?;
        let written = ledger.log().last_position() - before;
        if written == 0 {
            break;
        }
        changes += written;
        round += 1;
    }
    let took = started.elapsed();
    println!(
        "ledger batches, status changes:     {} events in {:.2?} = {}",
        changes,
        took,
        rate(changes, took)
    );
    let total = ledger.log().last_position();
    ledger.close().await?;
    drop(ledger);
    let ledger = Ledger::open(&dir).await?;
    println!(
        "bytes on disk per event:            {:.0} (log, views, keys, log index checkpoint; {} events)",
        ledger.log().size_on_disk()? as f64 / total as f64,
        total
    );

    // 3. Rebuild by replay (replay, then persist every view), and replay alone (verify).
    let started = Instant::now();
    let replayed = ledger.rebuild_projections().await?;
    let took = started.elapsed();
    println!(
        "rebuild by replay:                  {} events in {:.2?} = {}",
        replayed,
        took,
        rate(replayed, took)
    );

    let started = Instant::now();
    let verified = ledger.verify_projections().await?;
    let took = started.elapsed();
    println!(
        "replay into scratch + compare:      {} events in {:.2?} = {}  (equal: {})",
        verified.events_replayed,
        took,
        rate(verified.events_replayed, took),
        verified.equal
    );

    // 4. Point-in-time queries on the built log.
    let first = ledger.read_log(1, 1, 1).await?;
    let t0 = first.first().map_or(0, |e| e.recorded_at_us);
    let t1 = crate::store::now_us();
    let mut account_lat = Vec::new();
    let mut license_lat = Vec::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..2000 {
        let at = t0 + (next() % (t1 - t0).max(1) as u64) as i64;
        let account = 1 + next() % accounts;
        let s = Instant::now();
        ledger.account_as_of(account, at).await?;
        account_lat.push(s.elapsed());
        let s = Instant::now();
        let _ = ledger
            .license_usage_as_of(&format!("district-{}", next() % DOMAINS as u64), at)
            .await;
        license_lat.push(s.elapsed());
    }
    account_lat.sort();
    license_lat.sort();
    println!(
        "account status as of T:             p50 {:.2?}  p99 {:.2?}",
        percentile(&account_lat, 0.5),
        percentile(&account_lat, 0.99)
    );
    println!(
        "license usage as of T:              p50 {:.2?}  p99 {:.2?}",
        percentile(&license_lat, 0.5),
        percentile(&license_lat, 0.99)
    );
    let s = Instant::now();
    let listed = ledger
        .accounts_as_of("district-0", t0 + (t1 - t0) / 2)
        .await?;
    println!(
        "domain account list as of T:        {} accounts in {:.2?}",
        listed.len(),
        s.elapsed()
    );

    // 5. Durable single commands: 64 concurrent tasks (group commit), then one task, one
    // command at a time (one append and one sync each), next to the disk's own floor.
    let ledger = Arc::new(ledger);
    single_commands(&ledger, 64, accounts).await?;
    single_commands(&ledger, 1, accounts).await?;
    super::disk::sync_floor(&scratch(&opts, "disk")?.1)?;
    ledger.close().await?;
    cross_domain(&opts).await?;
    Ok(())
}

/// Durable single commands (enable/disable) from `tasks` concurrent tasks for 3 s.
async fn single_commands(
    ledger: &Arc<Ledger>,
    tasks: u64,
    accounts: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let running: Vec<_> = (0..tasks)
        .map(|t| {
            let l = ledger.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(3);
                let mut i = 0u64;
                while Instant::now() < deadline {
                    let account = 1 + (t * 1_000_003 + i * 64) % accounts;
                    let command = if i.is_multiple_of(2) {
                        Command::Disable { account }
                    } else {
                        Command::Enable { account }
                    };
                    let s = Instant::now();
                    let _ = l.execute(Request::manual("bench", command)).await;
                    lat.push(s.elapsed());
                    i += 1;
                }
                lat
            })
        })
        .collect();
    let mut lat = Vec::new();
    for t in running {
        lat.extend(t.await?);
    }
    let took = started.elapsed();
    lat.sort();
    let label = format!(
        "single commands, {tasks} task{}:",
        if tasks == 1 { "" } else { "s" }
    );
    println!(
        "{label:<36}{} in {:.2?} = {}  p50 {:.2?}  p99 {:.2?}",
        lat.len(),
        took,
        rate(lat.len() as u64, took),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
    Ok(())
}

/// Districts in parallel: single creates in one domain while a 100k-account job is written
/// to another, next to the same job alone.
async fn cross_domain(opts: &BenchOptions) -> Result<(), Box<dyn std::error::Error>> {
    const JOB: u64 = 100_000;
    let job = |base: u64| -> Vec<Request> {
        (0..JOB)
            .map(|n| Request::manual("bench", create(0, base + n, true)))
            .collect()
    };
    let (_t, dir) = scratch(opts, "cross-domain")?;
    let ledger = Ledger::open(&dir).await?;
    register_districts(&ledger, 2).await?;
    let started = Instant::now();
    ledger.execute_batch(job(0), BatchMode::BestEffort).await?;
    let alone = started.elapsed();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let other = {
        let (ledger, stop) = (ledger.clone(), stop.clone());
        tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let t = Instant::now();
                let r = ledger
                    .execute(Request::manual("bench", create(1, n, true)))
                    .await;
                lat.push(t.elapsed());
                r.map_err(|e| e.to_string())?;
                n += 1;
            }
            Ok::<_, String>(lat)
        })
    };
    let started = Instant::now();
    ledger
        .execute_batch(job(JOB), BatchMode::BestEffort)
        .await?;
    let beside = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut lat = other.await??;
    lat.sort();
    println!(
        "100k-account job alone:             {alone:.2?}; beside another domain's commands {beside:.2?}"
    );
    println!(
        "other domain's single creates meanwhile: {}  p50 {:.2?}  p99 {:.2?}  max {:.2?}",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or_default()
    );
    ledger.close().await?;
    Ok(())
}

/// Domains `district-0` .. `district-{n-1}`, without a license limit to speak of.
async fn register_districts(ledger: &Ledger, n: usize) -> Result<(), crate::ledger::LedgerError> {
    for d in 0..n {
        ledger
            .execute(Request::manual(
                "bench",
                Command::RegisterDomain {
                    domain: format!("district-{d}"),
                    license_limit: u32::MAX,
                },
            ))
            .await?;
    }
    Ok(())
}
