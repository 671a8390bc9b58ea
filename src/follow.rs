//! Following the store: when it changes, here or in another process, what is served from it is brought
//! up to date — the registry, the variables and the opened secrets.
//!
//! The store's change feed ([`Store::changes`](crate::store::Store::changes)) says what each commit
//! changed; a task on the tokio runtime waits on it and hands what arrived, in batches, to the refresh it
//! was given, on the blocking pool (a refresh reads the store and compiles what is new). Reports that
//! arrive during a refresh fold into the next batch; a subscriber that fell behind is told
//! [`Changed::Everything`]. A refresh answers `None` once what it rebuilds is gone (the runtime holds
//! itself weakly in it), and the task ends with it. Without a tokio runtime to wait on (a one-shot CLI
//! command) nothing is followed.

use std::sync::Arc;

use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

use crate::error::Result;
use crate::store::Changed;

/// The next reports of `changes`: the first to arrive and every one already waiting behind it, or
/// `None` once the store is gone.
pub async fn next_batch(changes: &mut broadcast::Receiver<Changed>) -> Option<Vec<Changed>> {
    let mut batch = vec![match changes.recv().await {
        Ok(changed) => changed,
        Err(RecvError::Lagged(_)) => Changed::Everything,
        Err(RecvError::Closed) => return None,
    }];
    loop {
        match changes.try_recv() {
            Ok(changed) => batch.push(changed),
            Err(TryRecvError::Lagged(_)) => batch.push(Changed::Everything),
            Err(TryRecvError::Empty | TryRecvError::Closed) => return Some(batch),
        }
    }
}

/// Runs `refresh` on every batch of `changes`, if a tokio runtime is there to wait on them, until it
/// answers `None`.
pub fn follow(
    mut changes: broadcast::Receiver<Changed>,
    refresh: impl Fn(&[Changed]) -> Option<Result<()>> + Send + Sync + 'static,
) {
    let Ok(tokio) = tokio::runtime::Handle::try_current() else { return };
    let refresh = Arc::new(refresh);
    tokio.spawn(async move {
        while let Some(batch) = next_batch(&mut changes).await {
            let refresh = refresh.clone();
            let error = match tokio::task::spawn_blocking(move || refresh(&batch)).await {
                Ok(None) => return,
                Ok(Some(Ok(()))) => continue,
                Ok(Some(Err(error))) => error.message(),
                Err(panicked) => panicked.to_string(),
            };
            tracing::error!("the store changed but could not be reloaded: {error}");
        }
    });
}
