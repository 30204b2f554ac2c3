//! What several servers over one PostgreSQL schema agree on, kept in that schema: which servers
//! are serving (and where peers reach them), which server decides each domain (a lease), the
//! next account numbers, the token table, the secret peers forward commands with, and what
//! authentication shares ([`auth`]).
//!
//! A lease is (domain, owner, epoch, expiry). Taking one over bumps the epoch and happens under
//! the schema's append lock, so it is ordered with every append: an append checks, under that
//! same lock, that its server still holds the domain at the epoch it decided with
//! ([`Fence`]), and is refused otherwise. Two servers therefore never both decide a domain.

mod auth;

use std::ops::Range;
use std::time::Duration;

use tokio_postgres::Client;
use uuid::Uuid;

use super::StoreError;
use super::pg_conn::{PgConn, reconnect_if_lost, session};
use super::pg_log::{append_lock, checked_schema, col, pg};

/// How long a lease lasts without renewal: a killed server's domains move after this.
pub const LEASE_TTL: Duration = Duration::from_secs(5);

/// What an append must still hold when it commits: its server's lease on the domain, at the
/// epoch the server took it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub domain: String,
    pub owner: Uuid,
    pub epoch: i64,
}

/// The outcome of trying to take a domain's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This server holds it now, with this epoch.
    Won { epoch: i64 },
    /// Another server holds it until its lease runs out (`left`), reachable at `address`.
    Held {
        owner: Uuid,
        address: String,
        left: Duration,
    },
}

pub struct PgCluster {
    /// One connection, one statement or transaction at a time (these calls are rare: a claim
    /// per domain move, a renewal a second, a block of account numbers); made again at its
    /// next use when its connection was lost.
    client: tokio::sync::Mutex<Client>,
    /// Authentication's own connection ([`auth`]): its traffic never queues before a lease
    /// renewal.
    auth: PgConn,
    url: String,
    schema: String,
    server: Uuid,
}

impl PgCluster {
    /// Connect as server `server` (the schema is migrated by [`super::pg_log::PgEventLog`]).
    pub async fn open(url: &str, schema: &str, server: Uuid) -> Result<PgCluster, StoreError> {
        // Tokens, leases and account numbers are acknowledged after their commits too.
        Ok(PgCluster {
            client: tokio::sync::Mutex::new(session(url).await?),
            auth: PgConn::open(url).await?,
            url: url.to_string(),
            schema: checked_schema(schema)?.to_string(),
            server,
        })
    }

    /// The connection, made again first if it was lost.
    async fn client(&self) -> Result<tokio::sync::MutexGuard<'_, Client>, StoreError> {
        let mut client = self.client.lock().await;
        reconnect_if_lost(&mut *client, &self.url).await?;
        Ok(client)
    }

    pub fn server(&self) -> Uuid {
        self.server
    }

    /// Say where peers reach this server (and that it is alive).
    pub async fn announce(&self, address: &str) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                &format!(
                    "INSERT INTO {}.servers (id, address) VALUES ($1, $2)
                     ON CONFLICT (id) DO UPDATE SET address = $2, seen_at = now()",
                    self.schema
                ),
                &[&self.server, &address],
            )
            .await
            .map_err(pg)?;
        Ok(())
    }

    /// Renew the leases of `held`; returns the domains this server still holds (the others
    /// were taken over after this server failed to renew them in time).
    pub async fn renew(&self, held: &[String]) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        client
            .execute(
                &format!(
                    "UPDATE {}.servers SET seen_at = now() WHERE id = $1",
                    self.schema
                ),
                &[&self.server],
            )
            .await
            .map_err(pg)?;
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let rows = client
            .query(
                &format!(
                    "UPDATE {}.leases SET expires_at = now() + $3::bigint * interval '1 ms'
                     WHERE owner = $1 AND domain = ANY($2) RETURNING domain",
                    self.schema
                ),
                &[&self.server, &held, &(LEASE_TTL.as_millis() as i64)],
            )
            .await
            .map_err(pg)?;
        rows.iter().map(|r| col(r, 0)).collect()
    }

    /// Take the lease of `domain` if nobody holds it or it ran out; otherwise say who holds it.
    pub async fn claim(&self, domain: &str) -> Result<Claim, StoreError> {
        let mut client = self.client().await?;
        // Held by another live server: said without the append lock (a claim takes it, and
        // would queue behind every append for nothing).
        let live = "AND l.expires_at > now() AND l.owner <> $2";
        if let Some(row) = client
            .query_opt(&self.holder_sql(live), &[&domain, &self.server])
            .await
            .map_err(pg)?
        {
            return held(&row);
        }
        let tx = client.transaction().await.map_err(pg)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[&append_lock(&self.schema)],
        )
        .await
        .map_err(pg)?;
        let won = tx
            .query_opt(
                &format!(
                    "INSERT INTO {s}.leases AS l (domain, owner, epoch, expires_at)
                     VALUES ($1, $2, 1, now() + $3::bigint * interval '1 ms')
                     ON CONFLICT (domain) DO UPDATE
                        SET owner = $2, epoch = l.epoch + 1, expires_at = excluded.expires_at
                        WHERE l.expires_at < now() OR l.owner = $2
                     RETURNING epoch",
                    s = self.schema
                ),
                &[&domain, &self.server, &(LEASE_TTL.as_millis() as i64)],
            )
            .await
            .map_err(pg)?;
        let claim = match won {
            Some(row) => Claim::Won {
                epoch: col(&row, 0)?,
            },
            None => {
                let row = tx
                    .query_one(&self.holder_sql(""), &[&domain])
                    .await
                    .map_err(pg)?;
                held(&row)?
            }
        };
        tx.commit().await.map_err(pg)?;
        Ok(claim)
    }

    /// Give up every lease and the server's row (a graceful stop: others take over at once).
    /// Who holds a domain's lease (`$1`), where it is reached and for how long (ms), with
    /// `more` conditions.
    fn holder_sql(&self, more: &str) -> String {
        format!(
            "SELECT l.owner, coalesce(s.address, ''),
                    greatest(extract(epoch FROM l.expires_at - now()) * 1000, 0)::bigint
             FROM {s}.leases l LEFT JOIN {s}.servers s ON s.id = l.owner
             WHERE l.domain = $1 {more}",
            s = self.schema
        )
    }

    pub async fn leave(&self) -> Result<(), StoreError> {
        self.client()
            .await?
            .batch_execute(&format!(
                "DELETE FROM {s}.leases WHERE owner = '{id}';
                 DELETE FROM {s}.servers WHERE id = '{id}'",
                s = self.schema,
                id = self.server
            ))
            .await
            .map_err(pg)
    }

    /// `n` account numbers no other server will hand out, none below `at_least` (numbers
    /// already used by the log).
    pub async fn reserve_accounts(&self, n: u64, at_least: u64) -> Result<Range<u64>, StoreError> {
        let row = self
            .client()
            .await?
            .query_one(
                &format!(
                    "UPDATE {}.account_numbers SET next = greatest(next, $2) + $1
                     RETURNING next - $1",
                    self.schema
                ),
                &[&(n as i64), &(at_least as i64)],
            )
            .await
            .map_err(pg)?;
        let start: i64 = col(&row, 0)?;
        Ok(start as u64..start as u64 + n)
    }

    /// The shared secret peers authenticate forwarded commands with.
    pub async fn secret(&self) -> Result<Vec<u8>, StoreError> {
        let row = self
            .client()
            .await?
            .query_one(
                &format!("SELECT secret FROM {}.cluster_secret", self.schema),
                &[],
            )
            .await
            .map_err(pg)?;
        col(&row, 0)
    }

    /// The token table as stored (its version and JSON), if any server has made it.
    pub async fn load_tokens(&self) -> Result<Option<(i64, String)>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                &format!(
                    "SELECT version, config FROM {}.tokens WHERE id = 1",
                    self.schema
                ),
                &[],
            )
            .await
            .map_err(pg)?;
        row.map(|r| Ok((col(&r, 0)?, col(&r, 1)?))).transpose()
    }

    /// Store the first token table; false when another server made one first.
    pub async fn init_tokens(&self, config: &str) -> Result<bool, StoreError> {
        let n = self
            .client()
            .await?
            .execute(
                &format!(
                    "INSERT INTO {}.tokens (id, version, config) VALUES (1, 1, $1)
                     ON CONFLICT (id) DO NOTHING",
                    self.schema
                ),
                &[&config],
            )
            .await
            .map_err(pg)?;
        Ok(n == 1)
    }

    /// Replace the token table if it is still at `version`; returns the new version, or None
    /// when another server changed it first (read it again and redo the change).
    pub async fn save_tokens(&self, version: i64, config: &str) -> Result<Option<i64>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                &format!(
                    "UPDATE {}.tokens SET version = version + 1, config = $2
                     WHERE id = 1 AND version = $1 RETURNING version",
                    self.schema
                ),
                &[&version, &config],
            )
            .await
            .map_err(pg)?;
        row.map(|r| col(&r, 0)).transpose()
    }
}

/// A row of [`PgCluster::holder_sql`] as a claim that lost.
fn held(row: &tokio_postgres::Row) -> Result<Claim, StoreError> {
    let left: i64 = col(row, 2)?;
    Ok(Claim::Held {
        owner: col(row, 0)?,
        address: col(row, 1)?,
        left: Duration::from_millis(left.max(0) as u64),
    })
}
