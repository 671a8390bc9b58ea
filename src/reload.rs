//! Hot reload: watch a boot source and the scripts it names, and swap changes in as they are saved.
//!
//! A dedicated thread receives file events (notify, with `Access` events dropped: reading a file must
//! not wake the watcher), waits a few milliseconds for the burst an editor's save produces, then re-reads
//! the source and compares it with what it applied last. Only what changed is applied, through the same
//! runtime calls as the management API: a script whose CID changed is compiled and bound (origin
//! `file`); a script that does not compile is never bound — the old version keeps serving and the error,
//! with its line and column, is logged and kept as the server's `last_error`; servers that left the source
//! are removed; changed variables are replaced. Everything one save changed is committed as one
//! change. Servers added through the API are left alone.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};

use crate::boot::{Image, ImageServer, Source};
use crate::cid::Cid;
use crate::error::Error;
use crate::runtime::Runtime;
use crate::store::{Change, Op, Origin};

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

/// Applies what changed between `applied` and the source as it is now, as one [`Change`]: a request
/// sees either the state before the save or the state after it, never half of it. Returns what is
/// applied now.
fn reload(runtime: &Runtime, source: &Path, applied: Image) -> Image {
    let parsed = match Source::open(source) {
        Ok(parsed) => parsed,
        Err(problem) => {
            tracing::error!("boot source not reloaded: {problem}");
            count(runtime, "invalid_source");
            return applied;
        }
    };
    let base = source.parent().unwrap_or(Path::new("."));
    runtime.managed.set(parsed.files(source));
    let mut now = Image { variables: parsed.variables.clone(), secrets: parsed.secrets.clone(), ..Image::default() };
    let mut change = Change::default();
    let mut bound = Vec::new();
    for server in &parsed.servers {
        let before = applied.servers.iter().find(|s| s.name == server.name);
        let Some(script) = read_script(&base.join(&server.script), &server.name, before) else { continue };
        let current = runtime.server(&server.name);
        if before.is_none_or(|b| Cid::of(&b.script) != Cid::of(&script)) {
            match runtime.compile(&script) {
                Ok(compiled) if current.as_ref().is_none_or(|s| s.cid != compiled.cid) => {
                    change.blob(script.clone());
                    let enabled = current.is_none().then_some(server.enabled);
                    change.op(Op::Bind { name: server.name.clone(), cid: compiled.cid, origin: Origin::File, enabled });
                    bound.push((server.name.clone(), compiled.cid));
                }
                Ok(_) => runtime.set_last_error(&server.name, None),
                Err(error) => {
                    tracing::error!(server = %server.name, "not reloaded, the previous version keeps serving: {}", error.message());
                    count(runtime, error.kind());
                    runtime.set_last_error(&server.name, Some(error));
                }
            }
        }
        if before.is_none_or(|b| b.enabled != server.enabled) && current.is_some_and(|s| s.enabled != server.enabled) {
            change.op(Op::SetEnabled { name: server.name.clone(), enabled: server.enabled });
        }
        now.servers.push(ImageServer { name: server.name.clone(), script, enabled: server.enabled });
    }
    let gone = applied.servers.iter().filter(|old| !now.servers.iter().any(|s| s.name == old.name));
    for gone in gone.filter(|old| runtime.server(&old.name).is_some()) {
        change.op(Op::Remove { name: gone.name.clone() });
    }
    if now.variables != applied.variables {
        change.op(Op::SetVariables(now.variables.clone()));
    }
    match change.ops.is_empty() {
        true => now,
        false => commit(runtime, &change, bound, now, applied),
    }
}

/// Counts one reload (or one refused script of it) by how it went.
fn count(runtime: &Runtime, result: &'static str) {
    runtime.observer.metrics.reloads.get_or_create(&crate::observe::metrics::Reload { result }).inc();
}

/// Commits the change a reload found; what is applied afterwards is `now`, or `applied` still if the
/// commit failed.
fn commit(runtime: &Runtime, change: &Change, bound: Vec<(String, Cid)>, now: Image, applied: Image) -> Image {
    let committed = runtime.commit(change);
    count(runtime, committed.as_ref().map_or_else(Error::kind, |()| "ok"));
    match committed {
        Ok(()) => {
            for (name, cid) in bound {
                runtime.set_last_error(&name, None);
                tracing::info!(server = %name, %cid, "reloaded");
            }
            now
        }
        Err(error) => {
            tracing::error!("boot source not reloaded: {}", error.message());
            applied
        }
    }
}

/// A script file's bytes; when it cannot be read, what was applied before (or nothing for a new server).
fn read_script(path: &Path, name: &str, before: Option<&ImageServer>) -> Option<Vec<u8>> {
    match std::fs::read(path) {
        Ok(script) => Some(script),
        Err(e) => {
            tracing::error!(server = %name, "{}: {e}", path.display());
            before.map(|b| b.script.clone())
        }
    }
}
