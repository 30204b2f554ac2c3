//! [`EventLog`] on PostgreSQL. One row per event (`events`: position, stream, stream version,
//! event id, commit stamp, and the event as a one-event codec chunk with its profile sealed),
//! in a schema of the operator's choice. The schema is created and migrated by the server
//! (`ledger_migrations`); a database migrated by a newer binary is refused.
//!
//! Gap-free commit order: a sequence is not enough (a later transaction can commit a smaller
//! value first, and a rolled-back one leaves a hole), so every append takes a transaction-level
//! advisory lock, reads the current end, writes the positions after it, and commits; the lock
//! is released by the commit. Appends are therefore serialized in commit order, and a reader
//! that sees position N sees every position before it. `UNIQUE (stream, stream_version)` and
//! `UNIQUE (event_id)` hold in the table whatever a writer does. An append is acknowledged
//! after COMMIT returns (`synchronous_commit` on: durable).
//!
//! The in-memory indexes are the sled backend's ([`LogIndex`]), built by one scan at open and
//! caught up under the lock before each append (another server may have written meanwhile).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use tokio_postgres::{Client, NoTls};
use uuid::Uuid;

use super::codec;
use super::log_index::{self, LogIndex};
use super::vault::Vault;
use super::{Appended, EventLog, NewEvent, RecordedEvent, StoreError};
use crate::domain::StreamId;

/// The advisory lock key appends serialize on ("ALLEDGER" in ASCII).
const APPEND_LOCK: i64 = 0x414C_4C45_4447_4552;

/// Migrations in order; the database records the last one applied.
const MIGRATIONS: &[&str] = &["CREATE TABLE events (
        position bigint PRIMARY KEY,
        stream text NOT NULL,
        stream_version bigint NOT NULL,
        event_id uuid NOT NULL UNIQUE,
        recorded_at_us bigint NOT NULL,
        body bytea NOT NULL,
        UNIQUE (stream, stream_version)
    )"];

/// Rows read per query while scanning.
const PAGE: i64 = 10_000;

fn pg(e: tokio_postgres::Error) -> StoreError {
    StoreError::Io(format!("postgres: {e}"))
}

pub struct PgEventLog {
    /// Appends: one at a time in this process (the advisory lock orders them across servers).
    writer: tokio::sync::Mutex<Client>,
    reader: Client,
    schema: String,
    vault: Arc<Vault>,
    index: RwLock<LogIndex>,
    /// The end of the log as committed by this process or seen by it.
    durable: AtomicU64,
    /// Bytes of the events table (refreshed by `sync`) plus the key vault.
    size: AtomicU64,
}

async fn connect(url: &str) -> Result<Client, StoreError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| StoreError::Io(format!("cannot connect to PostgreSQL ({e})")))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::error!("PostgreSQL connection closed: {e}");
        }
    });
    Ok(client)
}

/// A schema name we put into SQL text: lowercase letters, digits and `_`, not first a digit.
fn checked_schema(schema: &str) -> Result<&str, StoreError> {
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
    /// Connect, create or migrate `schema`, and index the log.
    pub async fn open(
        url: &str,
        schema: &str,
        vault: Arc<Vault>,
    ) -> Result<PgEventLog, StoreError> {
        let schema = checked_schema(schema)?.to_string();
        let mut writer = connect(url).await?;
        migrate(&mut writer, &schema).await?;
        let log = PgEventLog {
            writer: tokio::sync::Mutex::new(writer),
            reader: connect(url).await?,
            schema,
            vault,
            index: RwLock::new(LogIndex::default()),
            durable: AtomicU64::new(0),
            size: AtomicU64::new(0),
        };
        log.catch_up(&log.reader).await?;
        log.refresh_size().await?;
        Ok(log)
    }

    fn table(&self) -> String {
        format!("{}.events", self.schema)
    }

    fn index(&self) -> std::sync::RwLockReadGuard<'_, LogIndex> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Index the rows after the indexed end (all of them at open).
    async fn catch_up(
        &self,
        client: &impl tokio_postgres::GenericClient,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "SELECT position, body FROM {} WHERE position > $1 ORDER BY position LIMIT $2",
            self.table()
        );
        loop {
            let from = self.index().last_position as i64;
            let rows = client.query(&sql, &[&from, &PAGE]).await.map_err(pg)?;
            if rows.is_empty() {
                return Ok(());
            }
            let mut decoded = Vec::with_capacity(rows.len());
            for row in &rows {
                let position: i64 = row.get(0);
                let body: &[u8] = row.get(1);
                decoded.extend(codec::decode_chunk(position as u64, body, None)?);
            }
            let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
            for e in &decoded {
                if e.position != index.last_position + 1 {
                    return Err(StoreError::Corrupt {
                        at: format!("{} position {}", self.table(), e.position),
                        reason: format!("expected position {}", index.last_position + 1),
                    });
                }
                index.add(e);
            }
            self.durable.store(index.last_position, Ordering::Release);
        }
    }

    async fn refresh_size(&self) -> Result<(), StoreError> {
        let row = self
            .reader
            .query_one(
                "SELECT pg_total_relation_size($1::text::regclass)",
                &[&self.table()],
            )
            .await
            .map_err(pg)?;
        let bytes: i64 = row.get(0);
        self.size
            .store(bytes as u64 + self.vault.len_on_disk(), Ordering::Relaxed);
        Ok(())
    }

    fn decode(&self, rows: Vec<tokio_postgres::Row>) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let position: i64 = row.get(0);
            let body: &[u8] = row.get(1);
            out.extend(codec::decode_chunk(
                position as u64,
                body,
                Some(&self.vault),
            )?);
        }
        Ok(out)
    }
}

async fn migrate(client: &mut Client, schema: &str) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&APPEND_LOCK])
        .await
        .map_err(pg)?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {schema}.ledger_migrations (
             version int PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         );"
    ))
    .await
    .map_err(pg)?;
    let row = tx
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {schema}.ledger_migrations"),
            &[],
        )
        .await
        .map_err(pg)?;
    let applied: i32 = row.get(0);
    let known = MIGRATIONS.len() as i32;
    if applied > known {
        return Err(StoreError::Io(format!(
            "the database schema {schema} is at version {applied}, newer than this binary knows \
             ({known}): run a newer account-ledger"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        tx.batch_execute(&format!("SET LOCAL search_path TO {schema}; {sql}"))
            .await
            .map_err(pg)?;
        tx.execute(
            &format!("INSERT INTO {schema}.ledger_migrations (version) VALUES ($1)"),
            &[&(i as i32 + 1)],
        )
        .await
        .map_err(pg)?;
    }
    tx.commit().await.map_err(pg)
}

#[async_trait]
impl EventLog for PgEventLog {
    async fn append(&self, events: Vec<NewEvent>) -> Result<Appended, StoreError> {
        let sealed_all = codec::prepare_batch(&events, &self.vault)?;
        let mut client = self.writer.lock().await;
        let tx = client.transaction().await.map_err(pg)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&APPEND_LOCK])
            .await
            .map_err(pg)?;
        // Another server may have appended since our last look.
        self.catch_up(&tx).await?;
        let (positions, records, sealed) = {
            let index = self.index();
            let stamp = super::now_us().max(index.last_stamp);
            index.assign(events, sealed_all, stamp)
        };
        if records.is_empty() {
            tx.commit().await.map_err(pg)?;
            return Ok(Appended {
                positions,
                recorded: records,
            });
        }
        let mut cols: (
            Vec<i64>,
            Vec<String>,
            Vec<i64>,
            Vec<Uuid>,
            Vec<i64>,
            Vec<Vec<u8>>,
        ) = Default::default();
        for (r, s) in records.iter().zip(sealed) {
            cols.0.push(r.position as i64);
            cols.1.push(r.stream().to_string());
            cols.2.push(r.stream_version as i64);
            cols.3.push(r.event_id);
            cols.4.push(r.recorded_at_us);
            cols.5
                .push(codec::encode_chunk_sealed(std::slice::from_ref(r), &[s])?);
        }
        tx.execute(
            &format!(
                "INSERT INTO {} (position, stream, stream_version, event_id, recorded_at_us, body)
                 SELECT * FROM unnest($1::int8[], $2::text[], $3::int8[], $4::uuid[], $5::int8[],
                                      $6::bytea[])",
                self.table()
            ),
            &[&cols.0, &cols.1, &cols.2, &cols.3, &cols.4, &cols.5],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        {
            let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
            for r in &records {
                index.add(r);
            }
            self.durable.store(index.last_position, Ordering::Release);
        }
        drop(client);
        // The deletion is committed: now destroy the key for real.
        codec::destroy_deleted_keys(&records, &self.vault)?;
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
            .query(
                &format!(
                    "SELECT position, body FROM {} WHERE position BETWEEN $1 AND $2
                     ORDER BY position LIMIT $3",
                    self.table()
                ),
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
            .query(
                &format!(
                    "SELECT position, body FROM {} WHERE position = ANY($1) ORDER BY position",
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

    fn position_at(&self, at_us: i64) -> u64 {
        self.index().position_at(at_us)
    }

    fn request_positions(&self, request_id: &str) -> Vec<u64> {
        log_index::durable_only(self.index().requests.get(request_id), self.last_position())
    }

    fn job_positions(&self, job_id: &Uuid) -> Vec<u64> {
        log_index::durable_only(self.index().jobs.get(job_id), self.last_position())
    }

    async fn sync(&self) -> Result<(), StoreError> {
        // Commits are durable already; the vault is a file beside the database.
        self.vault.sync()?;
        self.refresh_size().await
    }

    fn event_position(&self, id: &Uuid) -> Option<u64> {
        self.index().event_ids.get(id).copied()
    }

    fn last_position(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.size.load(Ordering::Relaxed))
    }
}
