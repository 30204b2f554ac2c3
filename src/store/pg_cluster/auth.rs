//! What authentication knows beyond one server, kept in the store several servers share:
//! each token's last use, and each peer address's failed authentications in its window (so a
//! peer refused by one server is refused by all, and `token list` on any server shows a use
//! on another). On a connection of their own, so that no burst of failed calls queues before
//! a lease renewal.

use std::time::Duration;

use super::PgCluster;
use crate::store::StoreError;
use crate::store::pg_log::{col, pg};

/// The database's clock in µs since the epoch, the same wherever a statement reads it: one
/// clock for every server's windows.
const NOW_US: &str = "(extract(epoch FROM statement_timestamp()) * 1000000)::bigint";

impl PgCluster {
    /// Record this server's last uses of tokens (a later use wins) and answer every token's
    /// last use by any server. `tokens` is the token table this server holds (its version and
    /// ids): while it is the current one, the rows of tokens no longer in it (revoked) are
    /// deleted, so the table holds no more than the live tokens.
    pub async fn share_token_uses(
        &self,
        uses: &[(String, i64)],
        tokens: (i64, &[String]),
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let client = self.auth.get().await?;
        let (version, ids) = tokens;
        client
            .execute(
                &format!(
                    "DELETE FROM {0}.token_uses WHERE NOT (id = ANY($1))
                     AND (SELECT version FROM {0}.tokens WHERE id = 1) = $2",
                    self.schema
                ),
                &[&ids, &version],
            )
            .await
            .map_err(pg)?;
        if !uses.is_empty() {
            let ids: Vec<&str> = uses.iter().map(|(id, _)| id.as_str()).collect();
            let times: Vec<i64> = uses.iter().map(|(_, t)| *t).collect();
            client
                .execute(
                    &format!(
                        "INSERT INTO {0}.token_uses AS u (id, last_used_us)
                         SELECT * FROM unnest($1::text[], $2::bigint[])
                         ON CONFLICT (id) DO UPDATE
                         SET last_used_us = greatest(u.last_used_us, EXCLUDED.last_used_us)",
                        self.schema
                    ),
                    &[&ids, &times],
                )
                .await
                .map_err(pg)?;
        }
        let rows = client
            .query(
                &format!("SELECT id, last_used_us FROM {}.token_uses", self.schema),
                &[],
            )
            .await
            .map_err(pg)?;
        rows.iter().map(|r| Ok((col(r, 0)?, col(r, 1)?))).collect()
    }

    /// Add failed authentications (peer, how many) to each peer's window of `window` (a new
    /// window when its last one is over); answers each peer's failures in its window and how
    /// long the window has left. Rows are taken in the peers' order, the same on every
    /// server, so that two servers' rounds never deadlock on each other's rows.
    pub async fn record_auth_failures(
        &self,
        failed: &[(String, u32)],
        window: Duration,
    ) -> Result<Vec<(String, u32, Duration)>, StoreError> {
        if failed.is_empty() {
            return Ok(Vec::new());
        }
        let peers: Vec<&str> = failed.iter().map(|(p, _)| p.as_str()).collect();
        let counts: Vec<i32> = failed
            .iter()
            .map(|(_, n)| i32::try_from(*n).unwrap_or(i32::MAX))
            .collect();
        let window_us = window.as_micros() as i64;
        let rows = self
            .auth
            .get()
            .await?
            .query(
                &format!(
                    "INSERT INTO {0}.auth_failures AS f (peer, started_us, failures)
                     SELECT peer, {NOW_US}, n FROM unnest($1::text[], $2::int[]) AS x(peer, n)
                     ORDER BY peer
                     ON CONFLICT (peer) DO UPDATE SET
                         failures = CASE WHEN f.started_us <= {NOW_US} - $3 THEN EXCLUDED.failures
                                         ELSE f.failures + EXCLUDED.failures END,
                         started_us = CASE WHEN f.started_us <= {NOW_US} - $3 THEN {NOW_US}
                                           ELSE f.started_us END
                     RETURNING peer, failures, started_us + $3 - {NOW_US}",
                    self.schema
                ),
                &[&peers, &counts, &window_us],
            )
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|r| {
                let failures: i32 = col(r, 1)?;
                Ok((col(r, 0)?, failures.max(0) as u32, left(col(r, 2)?)))
            })
            .collect()
    }

    /// Peers with at least `max` failures in a window that is not over, with the time it has
    /// left. Windows that are over are forgotten.
    pub async fn refused_peers(
        &self,
        max: u32,
        window: Duration,
    ) -> Result<Vec<(String, Duration)>, StoreError> {
        let window_us = window.as_micros() as i64;
        let client = self.auth.get().await?;
        client
            .execute(
                &format!(
                    "DELETE FROM {}.auth_failures WHERE started_us <= {NOW_US} - $1",
                    self.schema
                ),
                &[&window_us],
            )
            .await
            .map_err(pg)?;
        let rows = client
            .query(
                &format!(
                    "SELECT peer, started_us + $2 - {NOW_US} FROM {}.auth_failures
                     WHERE failures >= $1",
                    self.schema
                ),
                &[&(max as i32), &window_us],
            )
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|r| Ok((col(r, 0)?, left(col(r, 1)?))))
            .collect()
    }
}

/// A window's time left, as the database computed it in µs (none once it is over).
fn left(us: i64) -> Duration {
    Duration::from_micros(us.max(0) as u64)
}
