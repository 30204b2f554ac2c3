//! PostgreSQL connections that are made again once lost (the database restarted or failed
//! over, an administrator's `pg_terminate_backend`): the next use reconnects, so a server
//! rides through what its operators do to the database instead of failing until restarted.
//! A statement already sent on a lost connection fails (its caller reports it); nothing is
//! retried blindly here, as only the caller knows whether a retry is safe.

use std::sync::Arc;

use tokio_postgres::Client;

use super::StoreError;
use super::pg_log::{commit_durably, connect};

/// One connection, shared by concurrent users (tokio-postgres pipelines their statements).
pub(super) struct PgConn {
    url: String,
    client: tokio::sync::Mutex<Arc<Client>>,
}

impl PgConn {
    /// Connect; every session commits durably ([`commit_durably`]).
    pub(super) async fn open(url: &str) -> Result<PgConn, StoreError> {
        let client = session(url).await?;
        Ok(PgConn {
            url: url.to_string(),
            client: tokio::sync::Mutex::new(Arc::new(client)),
        })
    }

    /// The connection, made again first if it was lost.
    pub(super) async fn get(&self) -> Result<Arc<Client>, StoreError> {
        let mut client = self.client.lock().await;
        if client.is_closed() {
            *client = Arc::new(session(&self.url).await?);
            tracing::warn!("reconnected to PostgreSQL after the connection was lost");
        }
        Ok(client.clone())
    }
}

/// A new session with `synchronous_commit` on.
pub(super) async fn session(url: &str) -> Result<Client, StoreError> {
    let client = connect(url).await?;
    commit_durably(&client).await?;
    Ok(client)
}
