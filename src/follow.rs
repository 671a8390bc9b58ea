//! Following the store: when it changes, here or in another process, what is served from it is rebuilt —
//! the registry, the variables and the opened secrets.
//!
//! The store's change feed ([`Store::changes`](crate::store::Store::changes)) only says that something
//! changed; a task on the tokio runtime waits on it and runs the refresh it was given on the blocking pool
//! (a refresh reads the store and compiles what is new). Steps that arrive during a refresh fold into one
//! more refresh. A refresh answers `None` once what it rebuilds is gone (the runtime holds itself weakly
//! in it), and the task ends with it. Without a tokio runtime to wait on (a one-shot CLI command) nothing
//! is followed.

use std::sync::Arc;

use tokio::sync::watch;

use crate::error::Result;

/// Runs `refresh` after every step of `changes`, if a tokio runtime is there to wait on them, until it
/// answers `None`.
pub fn follow(mut changes: watch::Receiver<u64>, refresh: impl Fn() -> Option<Result<()>> + Send + Sync + 'static) {
    let Ok(tokio) = tokio::runtime::Handle::try_current() else { return };
    let refresh = Arc::new(refresh);
    tokio.spawn(async move {
        while changes.changed().await.is_ok() {
            changes.borrow_and_update();
            let refresh = refresh.clone();
            let error = match tokio::task::spawn_blocking(move || refresh()).await {
                Ok(None) => return,
                Ok(Some(Ok(()))) => continue,
                Ok(Some(Err(error))) => error.message(),
                Err(panicked) => panicked.to_string(),
            };
            tracing::error!("the store changed but could not be reloaded: {error}");
        }
    });
}
