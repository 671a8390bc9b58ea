//! Hot reload: watch a boot source and the scripts it names, and swap changes in as they are saved.
//!
//! A dedicated thread receives file events (notify, with `Access` events dropped: reading a file must
//! not wake the watcher), waits a few milliseconds for the burst an editor's save produces, then re-reads
//! the source and compares it with what it applied last. Only what changed is applied, through the same
//! runtime calls as the management API: a script whose CID changed is compiled and bound (origin
//! `file`); a script that does not compile is never bound — the old version keeps serving and the error,
//! with its line and column, is logged and kept as the server's `last_error`; servers that left the source
//! are removed; changed variables are replaced. Servers added through the API are left alone.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};

use crate::boot::{Image, Source};
use crate::cid::Cid;
use crate::error::Error;
use crate::runtime::Runtime;
use crate::store::Origin;

/// How long to wait for an editor's burst of events to end before reloading.
const SETTLE: Duration = Duration::from_millis(5);

/// Keeps the watch alive; dropping it stops watching.
pub struct Watch {
    _watcher: notify::RecommendedWatcher,
}

/// Starts watching `source` (already applied as `applied`) and the directories of its scripts.
pub fn watch(runtime: Arc<Runtime>, source: PathBuf, applied: Image) -> Result<Watch, Error> {
    let (events, received) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !matches!(event.kind, EventKind::Access(_))
        {
            let _ = events.send(());
        }
    })
    .map_err(|e| Error::internal("file watcher", e))?;
    for dir in directories(&source)? {
        watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|e| Error::internal(&format!("watching {}", dir.display()), e))?;
    }
    tracing::info!(source = %source.display(), "watching the boot source and its scripts");
    std::thread::Builder::new()
        .name("reload".into())
        .spawn(move || {
            let mut applied = applied;
            while received.recv().is_ok() {
                // Let the burst of events from one save settle.
                loop {
                    match received.recv_timeout(SETTLE) {
                        Ok(()) => continue,
                        Err(RecvTimeoutError::Timeout) => break,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
                applied = reload(&runtime, &source, applied);
            }
        })
        .map_err(|e| Error::internal("reload thread", e))?;
    Ok(Watch { _watcher: watcher })
}

/// The directory of the source and of every script it names.
fn directories(source: &Path) -> Result<BTreeSet<PathBuf>, Error> {
    let base = source.parent().unwrap_or(Path::new(".")).to_path_buf();
    let parsed = Source::open(source).map_err(Error::BadRequest)?;
    let mut dirs = BTreeSet::from([base.clone()]);
    for server in &parsed.servers {
        if let Some(dir) = base.join(&server.script).parent() {
            dirs.insert(dir.to_path_buf());
        }
    }
    Ok(dirs.into_iter().filter(|d| d.is_dir()).collect())
}

/// Applies what changed between `applied` and the source as it is now; returns what is applied now.
fn reload(runtime: &Runtime, source: &Path, applied: Image) -> Image {
    let parsed = match Source::open(source) {
        Ok(parsed) => parsed,
        Err(problem) => {
            tracing::error!("boot source not reloaded: {problem}");
            return applied;
        }
    };
    let base = source.parent().unwrap_or(Path::new("."));
    let mut now = Image { variables: parsed.variables.clone(), secrets: parsed.secrets.clone(), ..Image::default() };
    for server in &parsed.servers {
        let path = base.join(&server.script);
        let before = applied.servers.iter().find(|s| s.name == server.name);
        let script = match std::fs::read(&path) {
            Ok(script) => script,
            Err(e) => {
                tracing::error!(server = %server.name, "{}: {e}", path.display());
                match before {
                    Some(before) => before.script.clone(),
                    None => continue,
                }
            }
        };
        let changed = before.is_none_or(|b| Cid::of(&b.script) != Cid::of(&script));
        if changed {
            match runtime.put_script(&server.name, &script, Origin::File) {
                Ok(cid) => tracing::info!(server = %server.name, %cid, "reloaded"),
                Err(error) => {
                    tracing::error!(server = %server.name, "not reloaded, the previous version keeps serving: {}", error.message());
                    runtime.set_last_error(&server.name, Some(error));
                }
            }
        }
        if before.is_none_or(|b| b.enabled != server.enabled)
            && runtime.server(&server.name).is_some_and(|s| s.enabled != server.enabled)
            && let Err(error) = runtime.set_enabled(&server.name, server.enabled)
        {
            tracing::error!(server = %server.name, "cannot switch it {}: {}", if server.enabled { "on" } else { "off" }, error.message());
        }
        now.servers.push(crate::boot::ImageServer { name: server.name.clone(), script, enabled: server.enabled });
    }
    for gone in applied.servers.iter().filter(|old| !now.servers.iter().any(|s| s.name == old.name)) {
        match runtime.remove(&gone.name) {
            Ok(()) => tracing::info!(server = %gone.name, "removed: no longer in the boot source"),
            Err(error) => tracing::error!(server = %gone.name, "cannot remove: {}", error.message()),
        }
    }
    if now.variables != applied.variables
        && let Err(error) = runtime.set_variables(now.variables.clone())
    {
        tracing::error!("variables not reloaded: {}", error.message());
    }
    now
}
