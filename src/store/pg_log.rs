//! [`EventLog`] on PostgreSQL. One row per event (`events`: position, stream, stream version,
//! event id, commit stamp, and the event as a one-event codec chunk with its profile sealed),
//! in a schema of the operator's choice. The schema is created and migrated by the server
//! (`ledger_migrations`); a database migrated by a newer binary is refused.
//!
//! Gap-free commit order: a sequence is not enough (a later transaction can commit a smaller
//! value first, and a rolled-back one leaves a hole), so every append takes a transaction-level
//! advisory lock and commits; the lock is released by the commit. Appends are therefore
//! serialized in commit order, and a reader that sees position N sees every position before it.
//! The positions and the commit stamp are computed by the INSERT itself from the last row
//! (under the lock), and the whole append is one pipelined round trip: the lock is held for the
//! statements and the commit, never for a round trip to a client or for its work.
//!
//! Flushes are shared: the append's transaction commits without waiting for the WAL flush
//! (`SET LOCAL synchronous_commit TO off`), so the lock is free for the next server's append
//! at once, and the same round trip then runs a durability barrier ([`BARRIER_SQL`]: a
//! one-record transaction committed synchronously, which returns once the WAL is flushed past
//! it, and so past the append's commit before it). Appends of several servers thus overlap
//! their flushes, which PostgreSQL groups. An append is acknowledged only after its barrier.
//! Committed rows are visible before they are durable, so a reader runs the same barrier
//! after reading rows and before indexing them ([`PgEventLog::catch_up_through`]): nothing a
//! server serves can vanish in a crash of the database. `UNIQUE (stream, stream_version)` and
//! `UNIQUE (event_id)` hold in the table whatever a writer does. The stamp in an event's body
//! is its server's clock; the row's `recorded_at_us` (never below the row before it) is the
//! one read back.
//!
//! The in-memory indexes are the sled backend's ([`LogIndex`]), built by one scan at open and
//! caught up with each append (the rows other servers wrote since this one last looked come
//! back in the same round trip).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use tokio_postgres::{Client, NoTls};
use uuid::Uuid;

mod append;
mod listen;
mod migrate;

use super::pg_conn::{PgConn, session};
use append::Writer;
use listen::spawn_listener;

use super::codec;
use super::log_index::{self, LogIndex};
use super::pg_cluster::Fence;
use super::vault::{Key, Vault};
use super::{Appended, EventLog, NewEvent, RecordedEvent, StoreError};
use crate::domain::{AccountId, StreamId};

/// The advisory lock appends (and migrations) of one schema serialize on: "AL" and a CRC-32 of
/// the schema name, so deployments in other schemas of the same database do not wait for it.
/// Public so that an operator (or a test) can find its holder in `pg_locks`.
pub fn append_lock(schema: &str) -> i64 {
    (0x414C_i64 << 32) | i64::from(crc32fast::hash(schema.as_bytes()))
}

/// How soon after a deletion the keys table is rewritten (VACUUM FULL), so that no file of it
/// holds the destroyed key any more.
const SHRED_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// The durability barrier: a transaction with one WAL record of its own (a transactional
/// logical-decoding message, which any role may write at any `wal_level` and which no table
/// keeps), committed with the session's `synchronous_commit` (on by default). It returns once
/// the WAL is flushed past its commit: past every commit that was visible before it started.
/// (A transaction that only takes an xid writes nothing but its commit record, and does not
/// wait for that to be flushed.)
const BARRIER_SQL: &str = "SELECT pg_logical_emit_message(true, 'account-ledger', '')";

/// Why appends are refused after a commit whose durability could not be confirmed.
const UNCONFIRMED: &str = "a commit could not be confirmed durable (the database connection \
     failed after COMMIT): appends are refused until the database confirms it (retried at each \
     append, on a new connection if the old one is lost); then what it holds is read back";

/// Rows read per query while scanning.
const PAGE: i64 = 10_000;

pub(super) fn pg(e: tokio_postgres::Error) -> StoreError {
    StoreError::Io(format!("postgres: {}", pg_text(&e)))
}

/// Column `i` of a row the server's own statements read: a column of another type (a schema
/// changed by hand) is damage, refused with its column named, not a panic of the task reading.
pub(super) fn col<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a tokio_postgres::Row,
    i: usize,
) -> Result<T, StoreError> {
    row.try_get(i).map_err(|e| StoreError::Corrupt {
        at: format!(
            "postgres column {:?}",
            row.columns().get(i).map_or("?", |c| c.name())
        ),
        reason: e.to_string(),
    })
}

/// What went wrong, in words: the error's own text is "db error" for everything the server
/// said, so say what it said (and its SQLSTATE).
pub(super) fn pg_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// The notification channel of a schema's appends (short: channel names stop at 63 bytes).
fn appends_channel(schema: &str) -> String {
    format!("ledger_appends_{:08x}", crc32fast::hash(schema.as_bytes()))
}

/// The rows from `$1` through `$2`, at most `$3` of them: every read of a range of the log
/// (catch-up, the append's look at what others wrote, `read_range`).
fn range_sql(schema: &str) -> String {
    format!(
        "SELECT position, recorded_at_us, body FROM {schema}.events
         WHERE position BETWEEN $1 AND $2 ORDER BY position LIMIT $3"
    )
}

pub struct PgEventLog {
    url: String,
    /// Appends: one at a time in this process (the advisory lock orders them across servers);
    /// made again at the next append when its connection was lost.
    writer: tokio::sync::Mutex<Writer>,
    reader: PgConn,
    /// Durability barriers after reads run here, so that reads never queue behind a flush.
    flusher: PgConn,
    schema: String,
    vault: Arc<Vault>,
    index: RwLock<LogIndex>,
    /// The end of the log as committed by this process or seen by it.
    durable: AtomicU64,
    /// Bytes of the events and keys tables (refreshed by `sync`).
    size: AtomicU64,
    /// Held while rows read from the table are indexed ([`PgEventLog::index_rows`]).
    indexing: tokio::sync::Mutex<()>,
    /// Set when a commit could not be confirmed durable ([`UNCONFIRMED`]).
    unconfirmed: std::sync::atomic::AtomicBool,
    /// Set when keys were deleted: the shredder rewrites the keys table.
    shred: Arc<std::sync::atomic::AtomicBool>,
    /// Notified when a server commits an append to this schema (LISTEN on a connection of its
    /// own, made again when lost, until the log is dropped: [`spawn_listener`]).
    appended: Arc<tokio::sync::Notify>,
    /// This process's id in notifications (its own commits do not wake it).
    me: String,
}

pub(super) async fn connect(url: &str) -> Result<Client, StoreError> {
    let (client, connection) = config(url)?
        .connect(NoTls)
        .await
        .map_err(|e| StoreError::Io(format!("cannot connect to PostgreSQL ({})", pg_text(&e))))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::error!("PostgreSQL connection closed: {e}");
        }
    });
    Ok(client)
}

/// How long a connection attempt may take, unless the URL says (`connect_timeout`).
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// TCP keepalives, unless the URL sets any of them (`keepalives_idle`, `keepalives_interval`,
/// `keepalives_retries`, `tcp_user_timeout`): a connection to a database that vanished (a
/// failover, a cut network) is found closed in about 30 s, idle or with data unacknowledged,
/// not after the system's defaults (two hours, then 75 s probes nine times).
const KEEPALIVES_IDLE: std::time::Duration = std::time::Duration::from_secs(10);
const KEEPALIVES_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);
const KEEPALIVES_RETRIES: u32 = 4;
const TCP_USER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The connection settings of `url`, with this server's defaults where it says nothing.
fn config(url: &str) -> Result<tokio_postgres::Config, StoreError> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| StoreError::Io(format!("the PostgreSQL URL: {e}")))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if !url.contains("keepalives") && !url.contains("tcp_user_timeout") {
        config
            .keepalives_idle(KEEPALIVES_IDLE)
            .keepalives_interval(KEEPALIVES_INTERVAL)
            .keepalives_retries(KEEPALIVES_RETRIES)
            .tcp_user_timeout(TCP_USER_TIMEOUT);
    }
    Ok(config)
}

/// Session settings this server sets where nobody else did (the setting's source is still
/// `default`: not the URL's `options`, `ALTER ROLE`/`ALTER DATABASE` or the server's
/// configuration). A lock wait is bounded, so a command stuck behind a lock someone holds (an
/// administrator's `LOCK TABLE`) fails UNAVAILABLE for its client to retry instead of hanging
/// with every command of its domain queued behind it; a minute, because an import holds the
/// append lock for its whole transaction and others wait for it meanwhile. A session of ours
/// left idle inside a transaction (its server frozen or its host gone mid-append, which the
/// database would notice only at its own TCP keepalive, hours by default) is ended by the
/// database, releasing the append lock every server's appends wait for.
const SESSION_DEFAULTS: &str =
    "VALUES ('lock_timeout', '1min'), ('idle_in_transaction_session_timeout', '30s')";

/// Apply [`SESSION_DEFAULTS`] to a new session, in one round trip.
pub(super) async fn bound_waits(client: &Client) -> Result<(), StoreError> {
    client
        .query(
            &format!(
                "SELECT set_config(s.name, d.value, false)
                 FROM pg_settings s JOIN ({SESSION_DEFAULTS}) AS d(name, value) USING (name)
                 WHERE s.source = 'default'"
            ),
            &[],
        )
        .await
        .map_err(pg)?;
    Ok(())
}

/// The barrier, like every commit the servers acknowledge, is only as durable as the session's
/// `synchronous_commit`: a database or role set to `off` is overridden for this connection
/// (any other setting, e.g. one that waits for standbys, is kept).
pub(super) async fn commit_durably(client: &Client) -> Result<(), StoreError> {
    let row = client
        .query_one("SELECT current_setting('synchronous_commit')", &[])
        .await
        .map_err(pg)?;
    let setting: String = col(&row, 0)?;
    if setting == "off" {
        tracing::warn!(
            "synchronous_commit is off for this role or database: set to on for the log"
        );
        client
            .batch_execute("SET synchronous_commit TO on")
            .await
            .map_err(pg)?;
    }
    Ok(())
}

/// A schema name we put into SQL text: lowercase letters, digits and `_`, not first a digit.
pub(super) fn checked_schema(schema: &str) -> Result<&str, StoreError> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !schema.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(schema)
    } else {
        Err(StoreError::Io(format!(
            "schema name {schema:?}: use 1-63 lowercase letters, digits and _"
        )))
    }
}

impl PgEventLog {
    /// Connect, create or migrate `schema`, load the account keys, and index the log.
    pub async fn open(url: &str, schema: &str) -> Result<PgEventLog, StoreError> {
        let schema = checked_schema(schema)?.to_string();
        let mut client = session(url).await?;
        migrate::migrate(&mut client, &schema).await?;
        let writer = Writer::on(client, &schema).await?;
        let appended = Arc::new(tokio::sync::Notify::new());
        let me = Uuid::new_v4().simple().to_string();
        spawn_listener(url, &appends_channel(&schema), &me, &appended);
        let reader = PgConn::open(url).await?;
        let flusher = PgConn::open(url).await?;
        // Nothing is acknowledged without the barrier: a role that may not run it is refused
        // here, not at its first append.
        flusher
            .get()
            .await?
            .batch_execute(BARRIER_SQL)
            .await
            .map_err(|e| {
                StoreError::Io(format!(
                    "postgres: the durability barrier ({BARRIER_SQL}) cannot run for this role: {e}"
                ))
            })?;
        let mut keys = std::collections::HashMap::new();
        for row in reader
            .get()
            .await?
            .query(
                &format!("SELECT account, key FROM {schema}.account_keys"),
                &[],
            )
            .await
            .map_err(pg)?
        {
            let (account, key) = key_row(&schema, &row)?;
            keys.insert(account, key);
        }
        let log = PgEventLog {
            url: url.to_string(),
            writer: tokio::sync::Mutex::new(writer),
            reader,
            flusher,
            schema,
            vault: Arc::new(Vault::in_memory(keys)?),
            index: RwLock::new(LogIndex::default()),
            durable: AtomicU64::new(0),
            size: AtomicU64::new(0),
            indexing: Default::default(),
            unconfirmed: Default::default(),
            shred: Arc::default(),
            appended,
            me,
        };
        log.catch_up(&*log.reader.get().await?).await?;
        log.refresh_size().await?;
        spawn_shredder(url.to_string(), log.schema.clone(), log.shred.clone());
        Ok(log)
    }

    /// The account keys (held in memory, persisted in the `account_keys` table).
    pub fn vault(&self) -> Arc<Vault> {
        self.vault.clone()
    }

    /// This store's identity, made once with its schema.
    pub async fn identity(&self) -> Result<Uuid, StoreError> {
        let row = self
            .reader
            .get()
            .await?
            .query_one(
                &format!("SELECT id FROM {}.store_identity", self.schema),
                &[],
            )
            .await
            .map_err(pg)?;
        col(&row, 0)
    }

    /// The flusher's session, for a barrier after a commit or a read that comes after this
    /// call. Taken before it, never made again after it: a session that outlived the commit or
    /// the read ran on the same database instance, so its barrier's flush covers them; one made
    /// after a restart or failover would vouch for rows the crash may have taken.
    pub(super) async fn flusher_before(&self) -> Result<Arc<Client>, StoreError> {
        self.flusher.get().await
    }

    /// Make the appending session usable: a new one if its connection was lost, and no append
    /// while a commit is unconfirmed ([`UNCONFIRMED`]) unless the database now confirms it.
    async fn writer_ready(&self, writer: &mut Writer) -> Result<(), StoreError> {
        if writer.client.is_closed() {
            *writer = self.reconnect_writer().await?;
        } else if self.unconfirmed.load(Ordering::Acquire)
            && writer.client.batch_execute(BARRIER_SQL).await.is_ok()
        {
            // The database answers again: what the unconfirmed commit wrote is durable now.
            self.unconfirmed.store(false, Ordering::Release);
        }
        match self.unconfirmed.load(Ordering::Acquire) {
            true => Err(StoreError::Io(UNCONFIRMED.into())),
            false => Ok(()),
        }
    }

    /// A new appending session after the last one's connection was lost. Its barrier makes
    /// whatever the lost connection committed durable (or it is gone): a commit left
    /// unconfirmed then is no reason to refuse appends any more; the followers read back what
    /// is there.
    async fn reconnect_writer(&self) -> Result<Writer, StoreError> {
        let writer = Writer::on(session(&self.url).await?, &self.schema).await?;
        writer.client.batch_execute(BARRIER_SQL).await.map_err(pg)?;
        self.unconfirmed.store(false, Ordering::Release);
        tracing::warn!("reconnected the appending session to PostgreSQL");
        Ok(writer)
    }

    fn table(&self) -> String {
        format!("{}.events", self.schema)
    }

    fn index(&self) -> std::sync::RwLockReadGuard<'_, LogIndex> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Index the rows after the indexed end (all of them at open).
    async fn catch_up(&self, client: &Client) -> Result<(), StoreError> {
        self.catch_up_through(client, None).await
    }

    /// Index the rows after the indexed end, through `last` if given.
    async fn catch_up_through(&self, client: &Client, last: Option<u64>) -> Result<(), StoreError> {
        let sql = range_sql(&self.schema);
        let last = last.map_or(i64::MAX, |l| l as i64);
        loop {
            let flusher = self.flusher_before().await?;
            let from = self.index().last_position as i64 + 1;
            let rows = client
                .query(&sql, &[&from, &last, &PAGE])
                .await
                .map_err(pg)?;
            if rows.is_empty() {
                return Ok(());
            }
            // The rows may come from a commit that is not flushed yet (see the module doc). Run
            // after the read returned, the barrier's flush covers every commit it saw.
            flusher.batch_execute(BARRIER_SQL).await.map_err(pg)?;
            self.index_rows(client, &rows).await?;
        }
    }

    /// Add rows read after the indexed end to the index (rows indexed meanwhile are skipped).
    /// First the keys of the accounts other servers created in them are fetched (committed in
    /// the same transactions), so that their profiles open here too; the keys of the accounts
    /// they deleted are forgotten once the rows are indexed, as the deleting server did.
    async fn index_rows(
        &self,
        client: &Client,
        rows: &[tokio_postgres::Row],
    ) -> Result<(), StoreError> {
        let mut decoded = Vec::with_capacity(rows.len());
        for row in rows {
            decoded.extend(decode_row(row, None)?);
        }
        // One indexing at a time (the follower's and an append's may overlap), and only of
        // what is not indexed yet: a key fetched for an account whose deletion another
        // indexing has applied meanwhile would otherwise come back after it was forgotten.
        let _one_at_a_time = self.indexing.lock().await;
        let indexed = self.index().last_position;
        decoded.retain(|e| e.position > indexed);
        self.learn_keys(client, &decoded).await?;
        self.add_to_index(&decoded)?;
        codec::destroy_deleted_keys(decoded.iter(), &self.vault)
    }

    /// Fetch the keys of the accounts created in `events` that this server does not hold.
    async fn learn_keys(
        &self,
        client: &Client,
        events: &[RecordedEvent],
    ) -> Result<(), StoreError> {
        let missing: Vec<i64> = events
            .iter()
            .filter_map(|e| e.event.created_account())
            .filter(|a| !self.vault.has_key(*a))
            .map(|a| a as i64)
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let rows = client
            .query(
                &format!(
                    "SELECT account, key FROM {}.account_keys WHERE account = ANY($1)",
                    self.schema
                ),
                &[&missing],
            )
            .await
            .map_err(pg)?;
        let learned = rows
            .iter()
            .map(|row| key_row(&self.schema, row))
            .collect::<Result<Vec<_>, _>>()?;
        // A key that is not there any more went with a later deletion: the profile reads erased.
        self.vault.learn(learned);
        Ok(())
    }

    fn add_to_index(&self, decoded: &[RecordedEvent]) -> Result<(), StoreError> {
        let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
        for e in decoded {
            if e.position <= index.last_position {
                // Indexed meanwhile by our own append or another catch-up.
                continue;
            }
            if e.position != index.last_position + 1 {
                return Err(StoreError::Corrupt {
                    at: format!("{} position {}", self.table(), e.position),
                    reason: format!("expected position {}", index.last_position + 1),
                });
            }
            index.add(e);
        }
        self.durable.store(index.last_position, Ordering::Release);
        Ok(())
    }

    async fn refresh_size(&self) -> Result<(), StoreError> {
        let row = self
            .reader
            .get()
            .await?
            .query_one(
                "SELECT pg_total_relation_size($1::text::regclass)
                      + pg_total_relation_size($2::text::regclass)",
                &[&self.table(), &format!("{}.account_keys", self.schema)],
            )
            .await
            .map_err(pg)?;
        let bytes: i64 = col(&row, 0)?;
        self.size.store(bytes as u64, Ordering::Relaxed);
        Ok(())
    }

    fn decode(&self, rows: Vec<tokio_postgres::Row>) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.extend(decode_row(&row, Some(&self.vault))?);
        }
        Ok(out)
    }
}

/// An `(account, key)` row of the keys table.
fn key_row(schema: &str, row: &tokio_postgres::Row) -> Result<(u64, Key), StoreError> {
    let account: i64 = col(row, 0)?;
    let key: &[u8] = col(row, 1)?;
    let key: Key = key.try_into().map_err(|_| StoreError::Corrupt {
        at: format!("{schema}.account_keys, account {account}"),
        reason: format!("a key of {} bytes", key.len()),
    })?;
    Ok((account as u64, key))
}

/// The event of a `(position, recorded_at_us, body)` row: the body's chunk, at the row's
/// position and with the row's stamp (the commit's, which the body's may precede).
fn decode_row(
    row: &tokio_postgres::Row,
    vault: Option<&Vault>,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let position: i64 = col(row, 0)?;
    let stamp: i64 = col(row, 1)?;
    let body: &[u8] = col(row, 2)?;
    let mut events = codec::decode_chunk(position as u64, body, vault)?;
    for e in &mut events {
        e.recorded_at_us = stamp;
    }
    Ok(events)
}

/// Rewrite the keys table (VACUUM FULL) at most every [`SHRED_WITHIN`] when keys were deleted:
/// a plain DELETE leaves the dead row's bytes in the table's pages until they are reused. The
/// task ends when the log is dropped.
fn spawn_shredder(url: String, schema: String, shred: Arc<std::sync::atomic::AtomicBool>) {
    let weak = Arc::downgrade(&shred);
    drop(shred);
    tokio::spawn(async move {
        let mut client = None;
        loop {
            tokio::time::sleep(SHRED_WITHIN).await;
            let Some(shred) = weak.upgrade() else { return };
            if !shred.swap(false, Ordering::AcqRel) {
                continue;
            }
            if client.is_none() {
                client = connect(&url).await.ok();
                if let Some(c) = &client {
                    // Its exclusive lock, queued behind an import's transaction, would hold
                    // every key lookup and insert behind it: give up soon and retry later.
                    if c.batch_execute("SET lock_timeout = '5s'").await.is_err() {
                        client = None;
                    }
                }
            }
            let done = match &client {
                Some(c) => c
                    .batch_execute(&format!("VACUUM FULL {schema}.account_keys"))
                    .await
                    .map_err(pg),
                None => Err(StoreError::Io("cannot connect to PostgreSQL".into())),
            };
            if let Err(e) = done {
                tracing::error!("rewriting the keys table failed (retried): {e}");
                shred.store(true, Ordering::Release);
                client = None;
            }
        }
    });
}

#[async_trait]
impl EventLog for PgEventLog {
    async fn append(&self, events: Vec<NewEvent>) -> Result<Appended, StoreError> {
        self.append_fenced(events, None).await
    }

    async fn append_fenced(
        &self,
        events: Vec<NewEvent>,
        fence: Option<&Fence>,
    ) -> Result<Appended, StoreError> {
        let prepared = codec::prepare_batch(events.iter().map(|e| &e.event), &self.vault)?;
        let made: Vec<u64> = prepared.new_keys.iter().map(|(a, _)| *a).collect();
        let mut writer = self.writer.lock().await;
        if let Err(e) = self.writer_ready(&mut writer).await {
            // Keys that were never committed must not pass for stored ones later.
            self.vault.forget(&made);
            return Err(e);
        }
        let (positions, records) = match self.append_locked(&writer, events, prepared, fence).await
        {
            Ok(a) => (a.positions, a.recorded),
            Err(e) => {
                // Keys that were never committed must not pass for stored ones later.
                self.vault.forget(&made);
                return Err(e);
            }
        };
        {
            let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
            // Only right after what is indexed: if the other servers' rows before these could
            // not be indexed yet, the next catch-up reads these from the table with them.
            if records.first().map(|r| r.position) == Some(index.last_position + 1) {
                for r in &records {
                    index.add(r);
                }
            }
            self.durable.store(index.last_position, Ordering::Release);
        }
        drop(writer);
        // The deletion is committed: now destroy the key for real.
        codec::destroy_deleted_keys(records.iter(), &self.vault)?;
        Ok(Appended {
            positions,
            recorded: records,
        })
    }

    async fn read_range(
        &self,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let to = to.min(self.last_position());
        if from > to || limit == 0 {
            return Ok(Vec::new());
        }
        let rows = self
            .reader
            .get()
            .await?
            .query(
                &range_sql(&self.schema),
                &[
                    &(from as i64),
                    &(to as i64),
                    &(limit.min(i64::MAX as usize) as i64),
                ],
            )
            .await
            .map_err(pg)?;
        self.decode(rows)
    }

    async fn read_positions(&self, positions: &[u64]) -> Result<Vec<RecordedEvent>, StoreError> {
        let durable = self.last_position();
        let wanted: Vec<i64> = positions
            .iter()
            .filter(|p| **p <= durable)
            .map(|p| *p as i64)
            .collect();
        let rows = self
            .reader
            .get()
            .await?
            .query(
                &format!(
                    "SELECT position, recorded_at_us, body FROM {}
                     WHERE position = ANY($1) ORDER BY position",
                    self.table()
                ),
                &[&wanted],
            )
            .await
            .map_err(pg)?;
        self.decode(rows)
    }

    fn stream_positions(&self, stream: &StreamId) -> Vec<u64> {
        self.index().streams.positions(stream, self.last_position())
    }

    fn stream_version(&self, stream: &StreamId) -> u64 {
        self.index().streams.version(stream)
    }

    fn accounts_changed_after(&self, accounts: &[AccountId], position: u64) -> Vec<AccountId> {
        log_index::accounts_changed_after(&self.index, accounts, position)
    }

    fn position_at(&self, at_us: i64) -> u64 {
        self.index().position_at(at_us)
    }

    fn request_positions(&self, request_id: &str) -> Vec<u64> {
        log_index::durable_only(self.index().requests.get(request_id), self.last_position())
    }

    fn job_positions(&self, job_id: &Uuid) -> Vec<u64> {
        log_index::Runs::durable_only(self.index().jobs.get(job_id), self.last_position())
    }

    async fn sync(&self) -> Result<(), StoreError> {
        // Commits are durable already, keys included.
        self.refresh_size().await
    }

    fn event_position(&self, id: &Uuid) -> Option<u64> {
        self.index().event_ids.get(id)
    }

    fn last_position(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    async fn refresh(&self) -> Result<u64, StoreError> {
        self.catch_up(&*self.reader.get().await?).await?;
        Ok(self.last_position())
    }

    async fn appended_elsewhere(&self, at_most: std::time::Duration) {
        let _ = tokio::time::timeout(at_most, self.appended.notified()).await;
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.size.load(Ordering::Relaxed))
    }
}
