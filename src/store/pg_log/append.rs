//! The append of [`PgEventLog`]: one pipelined round trip under the schema's append lock
//! (see the parent module's doc for why), and its statements.

use tokio_postgres::{Client, Statement};
use uuid::Uuid;

use super::{PAGE, PgEventLog, append_lock, appends_channel, col, pg, range_sql};
use crate::store::codec;
use crate::store::pg_cluster::Fence;
use crate::store::vault::Key;
use crate::store::{Appended, EventParts, NewEvent, RecordParts, StoreError};

/// A batch's rows as columns, for one `INSERT ... SELECT FROM unnest(...)` (position and
/// stamp are the INSERT's).
#[derive(Default)]
struct Columns {
    stream: Vec<String>,
    version: Vec<i64>,
    event_id: Vec<Uuid>,
    body: Vec<Vec<u8>>,
}

/// Why one append's round trip wrote nothing.
enum Trip {
    /// Another server recorded one of the batch's event ids (the batch is assigned again).
    EventIdTaken,
    Failed(StoreError),
}

impl From<StoreError> for Trip {
    fn from(e: StoreError) -> Trip {
        Trip::Failed(e)
    }
}

impl From<tokio_postgres::Error> for Trip {
    fn from(e: tokio_postgres::Error) -> Trip {
        Trip::Failed(pg(e))
    }
}

/// The append's statements, prepared once on the writer's connection (a statement given as
/// text costs a round trip to prepare each time).
pub(super) struct AppendStatements {
    lock: Statement,
    /// Wakes the other servers' followers when the transaction commits.
    notify: Statement,
    /// The last row's position and stamp, and whether the fence holds (read under the lock;
    /// the INSERT computes the same).
    head: Statement,
    /// What other servers wrote after this one's indexed end ([`range_sql`]).
    read_after: Statement,
    keys: Statement,
    events: Statement,
    shred: Statement,
    /// The durability barrier after the append's own commit ([`super::BARRIER_SQL`]).
    barrier: Statement,
}

/// Whether the appending server still holds the domain's lease: `$1` true for an append with
/// no lease (a single server), else the lease row must still name `$3` with epoch `$4`.
fn fence_holds(schema: &str) -> String {
    format!(
        "($1::bool OR EXISTS (SELECT 1 FROM {schema}.leases
                              WHERE domain = $2::text AND owner = $3::uuid AND epoch = $4::int8))"
    )
}

/// The last row's position and stamp (0 and 0 for an empty log).
fn head_sql(schema: &str) -> String {
    format!(
        "coalesce((SELECT position FROM {schema}.events ORDER BY position DESC LIMIT 1), 0),
         coalesce((SELECT recorded_at_us FROM {schema}.events ORDER BY position DESC LIMIT 1), 0)"
    )
}

/// The appending session: its connection and the append's statements prepared on it.
pub(super) struct Writer {
    pub(super) client: Client,
    statements: AppendStatements,
}

impl Writer {
    /// Prepare the append's statements on `client` (a durable session, schema migrated).
    pub(super) async fn on(client: Client, schema: &str) -> Result<Writer, StoreError> {
        let statements = AppendStatements::prepare(&client, schema).await?;
        Ok(Writer { client, statements })
    }
}

impl AppendStatements {
    async fn prepare(client: &Client, schema: &str) -> Result<AppendStatements, StoreError> {
        let prepare = |sql: String| async move { client.prepare(&sql).await.map_err(pg) };
        let fence = fence_holds(schema);
        let head = head_sql(schema);
        Ok(AppendStatements {
            lock: prepare("SELECT pg_advisory_xact_lock($1)".into()).await?,
            notify: prepare("SELECT pg_notify($1, $2)".into()).await?,
            head: prepare(format!("SELECT {head}, {fence}")).await?,
            read_after: prepare(range_sql(schema)).await?,
            keys: prepare(format!(
                "INSERT INTO {schema}.account_keys (account, key)
                 SELECT * FROM unnest($5::int8[], $6::bytea[]) WHERE {fence}"
            ))
            .await?,
            // Row n of the batch goes to the last position + n, stamped no earlier than the
            // last row (other servers' clocks may run ahead of this one's).
            events: prepare(format!(
                "INSERT INTO {schema}.events
                     (position, stream, stream_version, event_id, recorded_at_us, body)
                 SELECT h.position + u.n, u.stream, u.version, u.event_id,
                        greatest($5::int8, h.stamp), u.body
                 FROM (SELECT {head}) AS h(position, stamp),
                      unnest($6::text[], $7::int8[], $8::uuid[], $9::bytea[])
                          WITH ORDINALITY AS u(stream, version, event_id, body, n)
                 WHERE {fence}"
            ))
            .await?,
            shred: prepare(format!(
                "DELETE FROM {schema}.account_keys WHERE account = ANY($5) AND {fence}"
            ))
            .await?,
            barrier: prepare(super::BARRIER_SQL.into()).await?,
        })
    }
}

impl PgEventLog {
    /// Append `events`: positions and versions assigned against this server's index, then
    /// written in one round trip ([`PgEventLog::write_in_one_trip`]), the positions then moved to
    /// where the INSERT put them. An event id another server recorded meanwhile (a client's
    /// retry sent to two servers) fails the INSERT: the index then catches up and the batch
    /// is assigned again, that event answered with its recorded position.
    pub(super) async fn append_locked(
        &self,
        writer: &Writer,
        events: Vec<NewEvent>,
        prepared: codec::PreparedBatch,
        fence: Option<&Fence>,
    ) -> Result<Appended, StoreError> {
        const ATTEMPTS: usize = 3;
        let client = &writer.client;
        let keys = prepared.new_keys;
        let (mut batch, mut sealed) = (EventParts::from(events), prepared.sealed);
        // The caller's positions so far: `Some((from, positions))` after a failed attempt
        // whose provisional positions started after `from`.
        let mut earlier: Option<(u64, Vec<u64>)> = None;
        for attempt in 1..=ATTEMPTS {
            let (from, stamp, (positions, mut records, sealed_now)) = {
                let index = self.index();
                let stamp = crate::store::now_us().max(index.last_stamp);
                let from = index.last_position;
                (from, stamp, index.assign(batch, sealed, stamp))
            };
            let positions = match earlier.take() {
                None => positions,
                Some((before, caller)) => caller
                    .into_iter()
                    .map(|p| match p > before {
                        true => positions[(p - before - 1) as usize],
                        false => p,
                    })
                    .collect(),
            };
            if records.is_empty() {
                // Every event was recorded already: nothing to write.
                return Ok(Appended {
                    positions,
                    recorded: records,
                });
            }
            let flusher = self.flusher_before().await?;
            let written = self
                .write_in_one_trip(
                    writer,
                    &flusher,
                    from,
                    stamp,
                    &mut records,
                    &sealed_now,
                    &keys,
                    fence,
                )
                .await;
            if written.is_err() {
                // Whatever was sent, end the transaction (a no-op if it ended already).
                let _ = client.batch_execute("ROLLBACK").await;
            }
            match written {
                Ok((head, head_stamp, others)) => {
                    self.index_others(client, head, &others).await;
                    // The index never runs ahead of the table (it only holds committed rows).
                    let shift = head.checked_sub(from).ok_or_else(|| StoreError::Corrupt {
                        at: self.table(),
                        reason: format!(
                            "the table ends at {head}, before what this server indexed ({from})"
                        ),
                    })?;
                    let stamp = stamp.max(head_stamp);
                    for r in &mut records {
                        r.position += shift;
                        r.recorded_at_us = stamp;
                    }
                    let positions = positions
                        .into_iter()
                        .map(|p| if p > from { p + shift } else { p })
                        .collect();
                    return Ok(Appended {
                        positions,
                        recorded: records,
                    });
                }
                Err(Trip::EventIdTaken) if attempt < ATTEMPTS => {
                    self.catch_up_through(client, None).await?;
                    batch = EventParts::from(records);
                    sealed = sealed_now;
                    earlier = Some((from, positions));
                }
                Err(Trip::EventIdTaken) => {
                    return Err(StoreError::Io(
                        "an event id of this batch was recorded by another server at each of \
                         three attempts"
                            .into(),
                    ));
                }
                Err(Trip::Failed(e)) => return Err(e),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// One transaction in one round trip (the statements pipelined: sent together, run in
    /// order by the server): BEGIN without waiting for the commit's WAL flush, the lock, the
    /// last row and the fence, the rows other servers appended after `from`, the keys, the
    /// events (at the positions after the last row), the deleted keys, the notification,
    /// COMMIT (which releases the lock at once), then the durability barrier, which returns
    /// once the WAL is flushed past that commit. With the fence lost, every write is a no-op
    /// and the answer says so. A statement that fails aborts the transaction and the COMMIT
    /// after it only rolls back. Answers the last row's position and stamp before this batch,
    /// and the other servers' rows read.
    #[allow(clippy::too_many_arguments)]
    async fn write_in_one_trip(
        &self,
        writer: &Writer,
        flusher: &Client,
        from: u64,
        stamp: i64,
        records: &mut RecordParts,
        sealed: &[Option<Vec<u8>>],
        keys: &[(crate::domain::AccountId, Key)],
        fence: Option<&Fence>,
    ) -> Result<(u64, i64, Vec<tokio_postgres::Row>), Trip> {
        let (client, st) = (&writer.client, &writer.statements);
        let lock = append_lock(&self.schema);
        let unfenced = fence.is_none();
        let (domain, owner, epoch) = match fence {
            Some(f) => (f.domain.as_str(), f.owner, f.epoch),
            None => ("", Uuid::nil(), 0),
        };
        let (accounts, key_bytes): (Vec<i64>, Vec<Vec<u8>>) =
            keys.iter().map(|(a, k)| (*a as i64, k.to_vec())).unzip();
        let mut cols = Columns::default();
        for (r, s) in records.iter_mut().zip(sealed) {
            cols.stream.push(r.stream().to_string());
            cols.version.push(r.stream_version as i64);
            cols.event_id.push(r.event_id);
            cols.body.push(codec::encode_chunk_sealed(
                std::slice::from_mut(r),
                std::slice::from_ref(s),
            )?);
        }
        // Crypto-shredding: the key row goes in the transaction that records the deletion.
        let deleted: Vec<i64> = records
            .iter()
            .filter_map(|r| r.event.deleted_account().map(|a| a as i64))
            .collect();
        let channel = appends_channel(&self.schema);
        let from = from as i64;
        let (
            begun,
            locked,
            head,
            others,
            new_keys,
            inserted,
            shredded,
            notified,
            committed,
            flushed,
        ) = futures::join!(
            client.batch_execute("BEGIN; SET LOCAL synchronous_commit TO off"),
            async { client.execute(&st.lock, &[&lock]).await },
            async {
                client
                    .query_one(&st.head, &[&unfenced, &domain, &owner, &epoch])
                    .await
            },
            async {
                client
                    .query(&st.read_after, &[&(from + 1), &i64::MAX, &PAGE])
                    .await
            },
            async {
                match accounts.is_empty() {
                    true => Ok(0),
                    false => {
                        client
                            .execute(
                                &st.keys,
                                &[&unfenced, &domain, &owner, &epoch, &accounts, &key_bytes],
                            )
                            .await
                    }
                }
            },
            async {
                client
                    .execute(
                        &st.events,
                        &[
                            &unfenced,
                            &domain,
                            &owner,
                            &epoch,
                            &stamp,
                            &cols.stream,
                            &cols.version,
                            &cols.event_id,
                            &cols.body,
                        ],
                    )
                    .await
            },
            async {
                match deleted.is_empty() {
                    true => Ok(0),
                    false => {
                        client
                            .execute(&st.shred, &[&unfenced, &domain, &owner, &epoch, &deleted])
                            .await
                    }
                }
            },
            async { client.execute(&st.notify, &[&channel, &self.me]).await },
            client.batch_execute("COMMIT"),
            async { client.execute(&st.barrier, &[]).await },
        );
        // A failed statement turned the COMMIT into a rollback: report that statement.
        begun.map_err(pg)?;
        locked.map_err(pg)?;
        let head = head.map_err(pg)?;
        let others = others.map_err(pg)?;
        new_keys.map_err(pg)?;
        let inserted =
            inserted.map_err(|e| match e.as_db_error().and_then(|d| d.constraint()) {
                Some(c) if c.ends_with("event_id_key") => Trip::EventIdTaken,
                _ => Trip::Failed(pg(e)),
            })?;
        shredded.map_err(pg)?;
        notified.map_err(pg)?;
        committed.map_err(pg)?;
        let (last, last_stamp, held): (i64, i64, bool) = (
            col(&head, 0).map_err(Trip::Failed)?,
            col(&head, 1).map_err(Trip::Failed)?,
            col(&head, 2).map_err(Trip::Failed)?,
        );
        if !held {
            return Err(Trip::Failed(StoreError::LeaseLost {
                domain: domain.to_string(),
            }));
        }
        if inserted != records.len() as u64 {
            return Err(Trip::Failed(StoreError::Io(format!(
                "{inserted} of {} events were inserted",
                records.len()
            ))));
        }
        if !deleted.is_empty() {
            self.shred.store(true, std::sync::atomic::Ordering::Release);
        }
        // Committed: acknowledged once durable. A barrier that failed (its connection may have
        // dropped right after the COMMIT) is tried once more on the flusher's session, open
        // since before the COMMIT ([`PgEventLog::flusher_before`]); if that fails too, nothing
        // more is appended until the database confirms again and what it holds is read back.
        if let Err(first) = flushed
            && let Err(again) = flusher.batch_execute(super::BARRIER_SQL).await
        {
            self.unconfirmed
                .store(true, std::sync::atomic::Ordering::Release);
            tracing::error!("{}: {first}; {again}", super::UNCONFIRMED);
            return Err(Trip::Failed(StoreError::Io(super::UNCONFIRMED.into())));
        }
        Ok((last as u64, last_stamp, others))
    }

    /// Index the other servers' rows an append read (its COMMIT has succeeded, so the append
    /// happened whatever goes wrong here: a failure is left to the next catch-up, and this
    /// batch's records then wait for it too, as the index only grows without gaps).
    async fn index_others(&self, client: &Client, head: u64, others: &[tokio_postgres::Row]) {
        let more = others.len() as i64 == PAGE;
        let indexed = match self.index_rows(client, others).await {
            Ok(()) if more => self.catch_up_through(client, Some(head)).await,
            done => done,
        };
        if let Err(e) = indexed {
            tracing::warn!("indexing other servers' rows after an append: {e} (caught up later)");
        }
    }
}
