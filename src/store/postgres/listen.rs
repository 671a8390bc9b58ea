//! The change feed of a PostgreSQL store: one connection of its own that `LISTEN`s on the store's
//! channel and tells each notification as the [`Changed`] it carries.
//!
//! PostgreSQL lets every role of a database NOTIFY on any channel, and servers' own `db::` roles are
//! roles of the store's database. So the channel is named at random when the schema is made
//! (`switchboard.change_channel`), and only the store's user can read that name: a script's notices
//! reach no instance, and cannot make each of them re-read everything.
//!
//! Notifications are delivered to sessions listening when the sending transaction commits, and never
//! stored: whatever was committed while this connection was down is lost to it. So after every
//! reconnect the feed says [`Changed::Everything`] and subscribers re-read it all. It reconnects by
//! itself, waiting longer after each failure (up to [`LONGEST`]). The connection is driven by hand
//! (`poll_message`): awaiting a tokio-postgres connection as a future drops its notifications.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use std::sync::mpsc::SyncSender;

use tokio::sync::{broadcast, mpsc};
use tokio_postgres::{AsyncMessage, Config, NoTls};

use crate::store::Changed;

/// The first wait after losing the connection, doubled after each failed attempt up to [`LONGEST`].
const FIRST: Duration = Duration::from_millis(100);
const LONGEST: Duration = Duration::from_secs(5);

/// Listens until the runtime it runs on shuts down. `ready` hears how the first attempt went: a store
/// whose feed cannot listen does not open.
pub(super) async fn listen(
    config: Config,
    feed: Arc<broadcast::Sender<Changed>>,
    ready: SyncSender<Result<(), String>>,
) {
    let mut ready = Some(ready);
    let mut wait = FIRST;
    loop {
        let outcome = session(&config, &feed, &mut ready, &mut wait).await;
        let problem = outcome.err().map_or_else(|| "the connection closed".to_owned(), |e| e.to_string());
        if let Some(ready) = ready.take() {
            let _ = ready.send(Err(problem));
            return;
        }
        tracing::warn!("the store's change feed lost its connection ({problem}); trying again in {wait:?}");
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(LONGEST);
    }
}

/// One connection, from LISTEN until it is lost.
async fn session(
    config: &Config,
    feed: &broadcast::Sender<Changed>,
    ready: &mut Option<SyncSender<Result<(), String>>>,
    wait: &mut Duration,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (notes, mut heard) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message? {
                AsyncMessage::Notification(note) => drop(notes.send(note.payload().to_owned())),
                _ => continue,
            }
        }
        Ok::<(), tokio_postgres::Error>(())
    });
    let channel: String = client.query_one("SELECT name FROM change_channel", &[]).await?.try_get(0)?;
    client.batch_execute(&format!("LISTEN \"{}\"", channel.replace('"', "\"\""))).await?;
    *wait = FIRST;
    match ready.take() {
        Some(ready) => drop(ready.send(Ok(()))),
        None => {
            tracing::info!("the store's change feed is back; re-reading everything");
            let _ = feed.send(Changed::Everything);
        }
    }
    while let Some(payload) = heard.recv().await {
        let changed = serde_json::from_str(&payload).unwrap_or_else(|_| {
            tracing::warn!("an unreadable change notice; re-reading everything");
            Changed::Everything
        });
        let _ = feed.send(changed);
    }
    drop(client);
    driver.await.unwrap_or(Ok(()))
}
