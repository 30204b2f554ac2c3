//! The connection that LISTENs for other servers' appends to the schema, made again when
//! lost, so followers are woken at once rather than at their next poll.

use std::sync::Arc;

use tokio_postgres::NoTls;

use super::{config, pg, pg_text};
use crate::store::StoreError;

/// How long the listener waits before connecting again after its connection was lost.
const LISTEN_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// A task that LISTENs on `channel` and notifies `appended` for each notification another
/// process (not `me`) sent, connecting again when its connection is lost (and notifying
/// then: a notification may have been missed), until the log is dropped.
pub(super) fn spawn_listener(
    url: &str,
    channel: &str,
    me: &str,
    appended: &Arc<tokio::sync::Notify>,
) {
    let (url, channel, me) = (url.to_string(), channel.to_string(), me.to_string());
    let appended = Arc::downgrade(appended);
    tokio::spawn(async move {
        let mut warned = false;
        loop {
            match listen(&url, &channel, &me, &appended, &mut warned).await {
                Ok(()) => return,
                // Followers poll meanwhile: slower to see other servers' writes, still right.
                Err(e) if !warned => {
                    tracing::warn!("listening for other servers' appends: {e} (polling meanwhile)");
                    warned = true;
                }
                Err(_) => {}
            }
            let Some(notify) = appended.upgrade() else {
                return;
            };
            notify.notify_one();
            drop(notify);
            tokio::time::sleep(LISTEN_RETRY).await;
        }
    });
}

/// Listen on one connection until it is lost (`Err`) or the log is dropped (`Ok`).
async fn listen(
    url: &str,
    channel: &str,
    me: &str,
    appended: &std::sync::Weak<tokio::sync::Notify>,
    warned: &mut bool,
) -> Result<(), StoreError> {
    use futures::StreamExt;
    let (client, mut connection) = config(url)?
        .connect(NoTls)
        .await
        .map_err(|e| StoreError::Io(format!("cannot connect to PostgreSQL ({})", pg_text(&e))))?;
    let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
    let listen = format!("LISTEN {channel}");
    let listening = client.batch_execute(&listen);
    tokio::pin!(listening);
    let mut listened = false;
    // Whether the log still exists is looked at this often when no notification comes.
    let mut alive = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            done = &mut listening, if !listened => {
                done.map_err(pg)?;
                listened = true;
                if std::mem::take(warned) {
                    tracing::info!("listening for other servers' appends again");
                }
            }
            message = messages.next() => match message {
                Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) if n.payload() != me => {
                    match appended.upgrade() {
                        Some(notify) => notify.notify_one(),
                        None => return Ok(()),
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(pg(e)),
                None => return Err(StoreError::Io("the LISTEN connection closed".into())),
            },
            _ = alive.tick() => {
                if appended.strong_count() == 0 {
                    return Ok(());
                }
            }
        }
    }
}
