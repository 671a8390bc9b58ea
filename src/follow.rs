//! Following the store: when it changes, here or in another process, the runtime rebuilds what it
//! serves from it — the registry, the variables and the opened secrets.
//!
//! The store's change feed ([`Store::changes`](crate::store::Store::changes)) only says that something
//! changed; a task on the tokio runtime waits on it and runs [`Runtime::refresh`] on the blocking pool,
//! which reads the store and compiles what is new. Steps that arrive during a refresh fold into one more
//! refresh. The task holds the runtime weakly and ends when the runtime (and so the store) is gone.
//! A runtime opened outside tokio (a one-shot CLI command) does not follow.

use std::sync::Arc;

use crate::runtime::Runtime;

/// Starts following the store's changes for `runtime`, if a tokio runtime is there to wait on them.
pub fn follow(runtime: &Arc<Runtime>) {
    let Ok(tokio) = tokio::runtime::Handle::try_current() else { return };
    let mut changes = runtime.store.changes();
    let runtime = Arc::downgrade(runtime);
    tokio.spawn(async move {
        while changes.changed().await.is_ok() {
            changes.borrow_and_update();
            let Some(runtime) = runtime.upgrade() else { return };
            if let Err(error) = runtime.blocking(|rt| rt.refresh()).await {
                tracing::error!("the store changed but could not be reloaded: {}", error.message());
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::runtime::{Runtime, Settings};

    /// Waits (bounded only so that a broken feed fails instead of hanging) until `seen` holds.
    async fn eventually(mut seen: impl FnMut() -> bool) -> bool {
        for _ in 0..600 {
            if seen() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn changes_made_by_another_runtime_are_served_without_restart() {
        let dir = tempfile::tempdir().unwrap();
        let running = Runtime::open(Settings::new(dir.path().to_owned())).unwrap();
        let other = Runtime::open(Settings::new(dir.path().to_owned())).unwrap();

        other.services.secrets().set("FOLLOWED_KEY", "v1-value").unwrap();
        let secret = |rt: &Runtime| rt.services.secrets().get("FOLLOWED_KEY").unwrap();
        assert!(eventually(|| secret(&running).as_deref() == Some("v1-value")).await);
        other.services.secrets().set("FOLLOWED_KEY", "v2-value").unwrap();
        assert!(eventually(|| secret(&running).as_deref() == Some("v2-value")).await);
        other.services.secrets().remove("FOLLOWED_KEY").unwrap();
        assert!(eventually(|| secret(&running).is_none()).await);

        let source = b"const META = #{ title: \"New\", description: \"added elsewhere\" };\nfn main(e, m, d) { 1 }\n";
        let cid = other.put_script("added_elsewhere", source, crate::store::Origin::Api).unwrap();
        assert!(eventually(|| running.server("added_elsewhere").is_some_and(|s| s.cid == cid)).await);
        other.set_variables([("FOLLOWED_VAR".to_string(), "x".to_string())].into()).unwrap();
        assert!(eventually(|| running.services.variable("FOLLOWED_VAR").as_deref() == Some("x")).await);
    }
}
