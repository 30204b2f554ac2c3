//! PostgreSQL connections that are made again once lost (the database restarted or failed
//! over, an administrator's `pg_terminate_backend`): the next use reconnects, so a server
//! rides through what its operators do to the database instead of failing until restarted.
//! A statement already sent on a lost connection fails (its caller reports it); nothing is
//! retried blindly here, as only the caller knows whether a retry is safe.

use std::sync::Arc;

use tokio_postgres::Client;

use super::StoreError;
use super::pg_log::{bound_waits, commit_durably, connect};

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
        reconnect_if_lost(&mut *client, &self.url).await?;
        Ok(client.clone())
    }
}

/// Make the connection in `slot` again if it was lost: the one place that decides when a
/// session is replaced (shared connections hold an `Arc<Client>`, exclusive ones a `Client`).
pub(super) async fn reconnect_if_lost<C>(slot: &mut C, url: &str) -> Result<(), StoreError>
where
    C: std::borrow::Borrow<Client> + From<Client>,
{
    if slot.borrow().is_closed() {
        *slot = C::from(session(url).await?);
        tracing::warn!("reconnected to PostgreSQL after the connection was lost");
    }
    Ok(())
}

/// A new session with `synchronous_commit` on and its waits bounded ([`bound_waits`]).
pub(super) async fn session(url: &str) -> Result<Client, StoreError> {
    let client = connect(url).await?;
    commit_durably(&client).await?;
    bound_waits(&client).await?;
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg_url() -> String {
        std::env::var("ACCOUNT_LEDGER_TEST_PG")
            .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into())
    }

    /// `url` with startup `options`, in either form of connection string.
    fn with_options(url: &str, options: &str) -> String {
        match url.contains("://") {
            true => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!(
                    "{url}{sep}options={}",
                    options.replace(' ', "%20").replace('=', "%3D")
                )
            }
            false => format!("{url} options='{options}'"),
        }
    }

    async fn show(client: &Client, name: &str) -> String {
        client
            .query_one(&format!("SHOW {name}"), &[])
            .await
            .unwrap()
            .get(0)
    }

    /// The server's defaults where nobody set anything; what the URL sets is kept.
    #[tokio::test]
    async fn sessions_bound_their_waits_unless_the_url_says_otherwise() {
        let plain = session(&pg_url()).await.unwrap();
        assert_eq!(show(&plain, "lock_timeout").await, "1min");
        assert_eq!(
            show(&plain, "idle_in_transaction_session_timeout").await,
            "30s"
        );
        let url = with_options(&pg_url(), "-c lock_timeout=2s");
        let told = session(&url).await.unwrap();
        assert_eq!(show(&told, "lock_timeout").await, "2s");
        assert_eq!(
            show(&told, "idle_in_transaction_session_timeout").await,
            "30s"
        );
    }
}
