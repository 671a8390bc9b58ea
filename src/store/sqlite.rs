//! The embedded store: one SQLite file in WAL mode inside the data directory.
//!
//! Its change feed tells this store's own commits as they are made, item by item. Another process's
//! commits are found by a thread of its own, started by the first subscriber, that reads `PRAGMA
//! data_version` on a connection of its own whenever the file system says the store's files were
//! written (a commit writes the WAL), and once a second besides, for file systems that say nothing.
//! That number moves whenever another connection commits (from its point of view every commit, this
//! process's included) and says nothing of what changed, so it is told as [`Changed::Everything`]. The
//! thread ends once the store is gone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tokio::sync::broadcast;

use super::copy::Dump;
use super::sqlite_records::Records;
use super::{
    Binding, Change, Changed, EventStatus, Held, InvocationRecord, Op, Origin, RecordFilter, ServerRecord, Store,
    Usage, WebhookEvent,
};
use crate::cid::Cid;
use crate::error::{Error, Result};

/// Bumped whenever the schema below changes; older files are migrated in [`SqliteStore::open`].
const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS blobs (
    cid   BLOB PRIMARY KEY,
    bytes BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS servers (
    name    TEXT PRIMARY KEY,
    cid     BLOB NOT NULL REFERENCES blobs(cid),
    enabled INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    id     INTEGER PRIMARY KEY,
    name   TEXT NOT NULL,
    cid    BLOB NOT NULL REFERENCES blobs(cid),
    origin TEXT NOT NULL,
    at     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS history_by_name ON history(name, id);
CREATE TABLE IF NOT EXISTS facts (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS variables (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS secrets (
    name   TEXT PRIMARY KEY,
    sealed BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS oauth_connections (
    server TEXT PRIMARY KEY,
    sealed BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS oauth_states (
    key     TEXT PRIMARY KEY,
    server  TEXT NOT NULL,
    sealed  BLOB NOT NULL,
    expires INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS webhook_events (
    cid         BLOB PRIMARY KEY REFERENCES blobs(cid),
    server      TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    body_cid    BLOB NOT NULL REFERENCES blobs(cid),
    received_at INTEGER NOT NULL,
    status      TEXT NOT NULL,
    outcome     TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    UNIQUE (server, delivery_id)
);
CREATE INDEX IF NOT EXISTS webhook_events_by_server ON webhook_events(server);
CREATE INDEX IF NOT EXISTS webhook_events_by_body ON webhook_events(server, body_cid, received_at);
CREATE INDEX IF NOT EXISTS webhook_events_due ON webhook_events(next_attempt_at) WHERE next_attempt_at IS NOT NULL;
";

/// From schema 1: events get a due time, and those a handler had not settled join the queue — an event
/// left `received` (its run was cut short) and a `failed` one (which then waited for a replay).
const MIGRATE_FROM_1: &str = "
ALTER TABLE webhook_events ADD COLUMN next_attempt_at INTEGER;
UPDATE webhook_events SET status = 'pending' WHERE status = 'received';
UPDATE webhook_events SET next_attempt_at = received_at WHERE status IN ('pending', 'failed');
";

/// How often the change feed looks at the file when no file-system event woke it.
const FALLBACK: Duration = Duration::from_secs(1);
/// How long after a write the feed keeps looking for the commit it belongs to, and how often.
const SETTLE: Duration = Duration::from_millis(250);
const GLANCE: Duration = Duration::from_millis(2);

pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// The file, followed by the change feed; `None` for a store in memory, which no one else writes.
    path: Option<PathBuf>,
    feed: Arc<broadcast::Sender<Changed>>,
    /// Set once the first subscriber started following the file.
    followed: OnceLock<()>,
    /// Invocation records, in a file of their own (see `sqlite_records.rs`).
    records: Records,
}

fn db_error(err: rusqlite::Error) -> Error {
    Error::internal("store", err)
}

fn cid_from_row(bytes: Vec<u8>) -> rusqlite::Result<Cid> {
    let digest: [u8; 32] = bytes.try_into().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, "CID digest is not 32 bytes".into())
    })?;
    Ok(Cid::from_digest(digest))
}

/// A history row whose first three columns are `cid, at, origin`.
fn binding_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Binding> {
    let origin: String = row.get(2)?;
    Ok(Binding {
        cid: cid_from_row(row.get(0)?)?,
        at: row.get(1)?,
        origin: origin
            .parse()
            .map_err(|e: String| rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, e.into()))?,
    })
}

/// The columns [`event_from_row`] reads, in its order.
const EVENT_COLUMNS: &str =
    "cid, server, delivery_id, body_cid, received_at, status, outcome, attempts, next_attempt_at";

fn event_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<WebhookEvent> {
    let status: String = row.get(5)?;
    let outcome: Option<String> = row.get(6)?;
    Ok(WebhookEvent {
        cid: cid_from_row(row.get(0)?)?,
        server: row.get(1)?,
        delivery_id: row.get(2)?,
        body_cid: cid_from_row(row.get(3)?)?,
        received_at: row.get(4)?,
        status: status
            .parse()
            .map_err(|e: String| rusqlite::Error::FromSqlConversionFailure(5, rusqlite::types::Type::Text, e.into()))?,
        outcome: outcome.map(|text| serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))),
        attempts: row.get(7)?,
        next_attempt_at: row.get(8)?,
    })
}

fn now_millis() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl SqliteStore {
    /// Opens (creating if needed) the store file at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        private(path)?;
        let records_path = path.with_extension("invocations.sqlite");
        private(&records_path)?;
        let records = Records::open(&records_path)?;
        Self::prepare(Connection::open(path).map_err(db_error)?, Some(path), records)
    }

    /// A store that lives in memory and goes with it (for checking images without a data directory).
    pub fn in_memory() -> Result<SqliteStore> {
        Self::prepare(Connection::open_in_memory().map_err(db_error)?, None, Records::in_memory()?)
    }

    fn prepare(conn: Connection, path: Option<&Path>, records: Records) -> Result<SqliteStore> {
        let name = path.map_or_else(|| "the store".to_owned(), |p| p.display().to_string());
        // Another process (`switchboard call` beside a running server) may hold the write lock briefly.
        conn.busy_timeout(Duration::from_secs(10)).map_err(db_error)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(db_error)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(db_error)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(db_error)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(db_error)?;
        if version > SCHEMA_VERSION {
            return Err(Error::Internal(format!(
                "{name} was written by a newer Switchboard (schema {version}, this one knows {SCHEMA_VERSION})"
            )));
        }
        if version == 1 {
            conn.execute_batch(MIGRATE_FROM_1).map_err(db_error)?;
        }
        conn.execute_batch(SCHEMA).map_err(db_error)?;
        // Written only when it changes: a write here would tell every follower of the file that
        // something changed.
        if version != SCHEMA_VERSION {
            conn.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(db_error)?;
        }
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            path: path.map(Path::to_owned),
            feed: Arc::new(super::feed()),
            followed: OnceLock::new(),
            records,
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (transactions roll back), so the
        // connection stays usable.
        self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Makes the store file (created if absent) and its WAL and shared-memory files readable by the owner
/// only: they hold sealed secrets and the whole registry. SQLite gives the files it creates next to the
/// database the database file's mode, so new ones follow.
fn private(path: &Path) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let problem = |e: std::io::Error| Error::internal(&path.display().to_string(), e);
    std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path).map_err(problem)?;
    for suffix in ["", "-wal", "-shm"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        if file.exists() {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).map_err(problem)?;
        }
    }
    Ok(())
}

fn data_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA data_version", [], |row| row.get(0))
}

/// Starts the thread that publishes a step on `feed` whenever the file's `data_version` moves, until
/// the store is dropped. The first version is read before this returns, so no later commit is missed.
fn follow_data_version(path: &Path, feed: Weak<broadcast::Sender<Changed>>) -> Result<(), Box<dyn std::error::Error>> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    let mut seen = data_version(&conn)?;
    let (wake, woken) = std::sync::mpsc::channel();
    let watcher = watch_files(path, wake)
        .inspect_err(|e| tracing::warn!("{} is looked at once a second only: {e}", path.display()))
        .ok();
    let follow = move || {
        let _watching = watcher;
        loop {
            let woke = woken.recv_timeout(FALLBACK).is_ok();
            let Some(feed) = feed.upgrade() else { return };
            if moved(&conn, &mut seen, woke.then(|| (&woken, Instant::now() + SETTLE))) {
                let _ = feed.send(Changed::Everything);
            }
        }
    };
    std::thread::Builder::new().name("store-changes".into()).spawn(follow)?;
    Ok(())
}

/// Whether `data_version` moved from `seen` (which it updates). After a write woke the feed, it keeps
/// looking every [`GLANCE`] (sooner at the next write) until a deadline: a commit writes the WAL first
/// and becomes visible only when it updates the shared memory, which the file system does not report.
fn moved(conn: &Connection, seen: &mut i64, after_write: Option<(&Receiver<()>, Instant)>) -> bool {
    loop {
        match data_version(conn) {
            Ok(now) if now != *seen => {
                *seen = now;
                return true;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!("cannot read the store's data_version: {e}");
                return false;
            }
        }
        match after_write {
            Some((woken, until)) if Instant::now() < until => drop(woken.recv_timeout(GLANCE)),
            _ => return false,
        }
    }
}

/// Sends on `wake` whenever the store file at `path`, its WAL or its shared memory is written. Opening
/// and reading (`Access` events) do not count: the feed's own reads would wake it again.
fn watch_files(path: &Path, wake: std::sync::mpsc::Sender<()>) -> notify::Result<notify::RecommendedWatcher> {
    use notify::{EventKind, RecursiveMode, Watcher};
    let name = path.file_name().unwrap_or_default().to_os_string();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let ours = |file: &PathBuf| {
            file.file_name().is_some_and(|f| f.as_encoded_bytes().starts_with(name.as_encoded_bytes()))
        };
        if let Ok(event) = event
            && !matches!(event.kind, EventKind::Access(_))
            && event.paths.iter().any(ours)
        {
            let _ = wake.send(());
        }
    })?;
    let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

fn apply(tx: &rusqlite::Transaction<'_>, change: &Change) -> rusqlite::Result<()> {
    let mut put = tx.prepare_cached("INSERT OR IGNORE INTO blobs (cid, bytes) VALUES (?1, ?2)")?;
    for (cid, bytes) in &change.blobs {
        put.execute(params![&cid.digest()[..], bytes])?;
    }
    let at = now_millis();
    for op in &change.ops {
        apply_op(tx, op, at)?;
    }
    Ok(())
}

/// One operation of a change, at `at` (Unix milliseconds).
fn apply_op(tx: &rusqlite::Transaction<'_>, op: &Op, at: i64) -> rusqlite::Result<()> {
    match op {
        Op::Bind { name, cid, origin, enabled } => bind(tx, name, cid, origin, *enabled, at)?,
        Op::SetEnabled { name, enabled } => {
            tx.execute("UPDATE servers SET enabled = ?2 WHERE name = ?1", params![name, enabled])?;
        }
        Op::Remove { name } => {
            tx.execute("DELETE FROM servers WHERE name = ?1", params![name])?;
        }
        Op::SetVariables(variables) => set_variables(tx, variables)?,
        Op::SetSecret { name, sealed } => upsert(tx, ("secrets", "name", "sealed"), name, sealed)?,
        Op::RemoveSecret { name } => {
            tx.execute("DELETE FROM secrets WHERE name = ?1", params![name])?;
        }
        Op::SetConnection { server, sealed: Some(sealed) } => {
            upsert(tx, ("oauth_connections", "server", "sealed"), server, sealed)?
        }
        Op::SetConnection { server, sealed: None } => {
            tx.execute("DELETE FROM oauth_connections WHERE server = ?1", params![server])?;
        }
        Op::PutOAuthState { key, server, sealed, expires } => {
            tx.execute("DELETE FROM oauth_states WHERE expires <= ?1", params![at])?;
            tx.execute(
                "INSERT INTO oauth_states (key, server, sealed, expires) VALUES (?1, ?2, ?3, ?4)",
                params![key, server, sealed, expires],
            )?;
        }
        Op::RecordEvent { .. } => record_event(tx, op)?,
        Op::EventOutcome { cid, status, outcome, next_attempt_at } => {
            tx.execute(
                "UPDATE webhook_events SET status = ?2, outcome = ?3, next_attempt_at = ?4 WHERE cid = ?1",
                params![&cid.digest()[..], status.as_str(), outcome.as_ref().map(|o| o.to_string()), next_attempt_at],
            )?;
        }
        Op::SetFact { key, value } => upsert(tx, ("facts", "key", "value"), key, value)?,
        Op::PutServer(record) => {
            tx.execute(
                "INSERT INTO servers (name, cid, enabled) VALUES (?1, ?2, ?3)
                 ON CONFLICT(name) DO UPDATE SET cid = excluded.cid, enabled = excluded.enabled",
                params![record.name, &record.cid.digest()[..], record.enabled],
            )?;
        }
        Op::PutBinding { name, binding } => {
            tx.execute(
                "INSERT INTO history (name, cid, origin, at) VALUES (?1, ?2, ?3, ?4)",
                params![name, &binding.cid.digest()[..], binding.origin.to_string(), binding.at],
            )?;
        }
        Op::PutEvent(event) => put_event(tx, event)?,
    }
    Ok(())
}

/// Records an event as another store held it.
fn put_event(tx: &rusqlite::Transaction<'_>, event: &WebhookEvent) -> rusqlite::Result<()> {
    tx.execute(
        &format!("INSERT INTO webhook_events ({EVENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
        params![
            &event.cid.digest()[..],
            event.server,
            event.delivery_id,
            &event.body_cid.digest()[..],
            event.received_at,
            event.status.as_str(),
            event.outcome.as_ref().map(|o| o.to_string()),
            event.attempts,
            event.next_attempt_at
        ],
    )?;
    Ok(())
}

/// Sets the value column of the row `key` in a `(table, key column, value column)`, adding the row when
/// there is none.
fn upsert(
    tx: &rusqlite::Transaction<'_>,
    (table, key_column, column): (&str, &str, &str),
    key: &str,
    value: &dyn rusqlite::ToSql,
) -> rusqlite::Result<()> {
    let sql = format!(
        "INSERT INTO {table} ({key_column}, {column}) VALUES (?1, ?2)
         ON CONFLICT({key_column}) DO UPDATE SET {column} = excluded.{column}"
    );
    tx.prepare_cached(&sql)?.execute(params![key, value])?;
    Ok(())
}

/// Binds `name` to `cid` (keeping its enabled flag unless one is given) and records it in the history.
fn bind(
    tx: &rusqlite::Transaction<'_>,
    name: &str,
    cid: &Cid,
    origin: &Origin,
    enabled: Option<bool>,
    at: i64,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO servers (name, cid, enabled) VALUES (?1, ?2, ?3)
         ON CONFLICT(name) DO UPDATE SET cid = excluded.cid,
             enabled = CASE WHEN ?4 IS NULL THEN servers.enabled ELSE excluded.enabled END",
        params![name, &cid.digest()[..], enabled.unwrap_or(true), enabled],
    )?;
    tx.execute(
        "INSERT INTO history (name, cid, origin, at) VALUES (?1, ?2, ?3, ?4)",
        params![name, &cid.digest()[..], origin.to_string(), at],
    )?;
    Ok(())
}

/// Replaces the variables as a whole.
fn set_variables(tx: &rusqlite::Transaction<'_>, variables: &BTreeMap<String, String>) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM variables", [])?;
    for (name, value) in variables {
        tx.execute("INSERT INTO variables (name, value) VALUES (?1, ?2)", params![name, value])?;
    }
    Ok(())
}

/// Records a received webhook event: refused, like a repeated delivery id, when `same_body_since` is
/// given and the server has an event with the same body received since then.
fn record_event(tx: &rusqlite::Transaction<'_>, op: &Op) -> rusqlite::Result<()> {
    let Op::RecordEvent { cid, server, delivery_id, body_cid, received_at, status, same_body_since, claimed_until } =
        op
    else {
        return Ok(());
    };
    let body = &body_cid.digest()[..];
    if let Some(since) = same_body_since {
        let sql =
            "SELECT EXISTS (SELECT 1 FROM webhook_events WHERE server = ?1 AND body_cid = ?2 AND received_at >= ?3)";
        if tx.query_row(sql, params![server, body, since], |row| row.get::<_, bool>(0))? {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE),
                Some("an event with this body was received within the window".into()),
            ));
        }
    }
    let (attempts, due) = status.on_receipt(*received_at, *claimed_until);
    tx.execute(
        "INSERT INTO webhook_events (cid, server, delivery_id, body_cid, received_at, status, attempts, next_attempt_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![&cid.digest()[..], server, delivery_id, body, received_at, status.as_str(), attempts, due],
    )?;
    Ok(())
}

impl SqliteStore {
    /// The row `sql` selects with `params`, if there is one, read by `read`.
    fn row<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        read: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(sql).map_err(db_error)?;
        stmt.query_row(params, read).optional().map_err(db_error)
    }

    /// Every row `sql` selects with `params`, each read by `read`.
    fn rows<T, C: FromIterator<T>>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        read: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<C> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(sql).map_err(db_error)?;
        let rows = stmt.query_map(params, read).map_err(db_error)?;
        rows.collect::<rusqlite::Result<C>>().map_err(db_error)
    }
}

impl Store for SqliteStore {
    fn blob(&self, cid: &Cid) -> Result<Option<Vec<u8>>> {
        self.row("SELECT bytes FROM blobs WHERE cid = ?1", [&cid.digest()[..]], |row| row.get(0))
    }

    fn servers(&self) -> Result<Vec<ServerRecord>> {
        self.rows("SELECT name, cid, enabled FROM servers ORDER BY name", [], |row| {
            Ok(ServerRecord { name: row.get(0)?, cid: cid_from_row(row.get(1)?)?, enabled: row.get(2)? })
        })
    }

    fn history(&self, name: &str) -> Result<Vec<Binding>> {
        self.rows("SELECT cid, at, origin FROM history WHERE name = ?1 ORDER BY id", [name], binding_from_row)
    }

    fn bindings(&self) -> Result<Vec<(String, Binding)>> {
        self.rows("SELECT cid, at, origin, name FROM history ORDER BY id", [], |row| {
            Ok((row.get(3)?, binding_from_row(row)?))
        })
    }

    fn dump(&self) -> Result<Dump> {
        Ok(Dump {
            blobs: self
                .rows("SELECT cid, bytes FROM blobs", [], |row| Ok((cid_from_row(row.get(0)?)?, row.get(1)?)))?,
            servers: self.servers()?,
            history: self.bindings()?,
            facts: self.rows("SELECT key, value FROM facts", [], |row| Ok((row.get(0)?, row.get(1)?)))?,
            variables: self.variables()?,
            secrets: self.sealed_secrets()?,
            connections: self
                .rows("SELECT server, sealed FROM oauth_connections", [], |row| Ok((row.get(0)?, row.get(1)?)))?,
            events: self.rows(
                &format!("SELECT {EVENT_COLUMNS} FROM webhook_events ORDER BY rowid"),
                [],
                event_from_row,
            )?,
        })
    }

    fn fact(&self, key: &str) -> Result<Option<String>> {
        self.row("SELECT value FROM facts WHERE key = ?1", [key], |row| row.get(0))
    }

    fn variables(&self) -> Result<BTreeMap<String, String>> {
        self.rows("SELECT name, value FROM variables", [], |row| Ok((row.get(0)?, row.get(1)?)))
    }

    fn secret(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.row("SELECT sealed FROM secrets WHERE name = ?1", [name], |row| row.get(0))
    }

    fn secret_names(&self) -> Result<Vec<String>> {
        self.rows("SELECT name FROM secrets ORDER BY name", [], |row| row.get(0))
    }

    fn sealed_secrets(&self) -> Result<Vec<(String, Vec<u8>)>> {
        self.rows("SELECT name, sealed FROM secrets", [], |row| Ok((row.get(0)?, row.get(1)?)))
    }

    fn connection(&self, server: &str) -> Result<Option<Vec<u8>>> {
        self.row("SELECT sealed FROM oauth_connections WHERE server = ?1", [server], |row| row.get(0))
    }

    fn take_oauth_state(&self, key: &str, server: &str) -> Result<Option<Vec<u8>>> {
        let sql = "DELETE FROM oauth_states WHERE key = ?1 AND server = ?2 RETURNING sealed, expires";
        let taken = self.row(sql, [key, server], |row| Ok((row.get(0)?, row.get::<_, i64>(1)?)))?;
        Ok(taken.filter(|(_, expires)| *expires > now_millis()).map(|(sealed, _)| sealed))
    }

    fn events(&self, server: &str, status: Option<EventStatus>, limit: usize) -> Result<Vec<WebhookEvent>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM webhook_events WHERE server = ?1 AND (?2 IS NULL OR status = ?2)
             ORDER BY rowid DESC LIMIT ?3"
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.rows(&sql, params![server, status.map(EventStatus::as_str), limit], event_from_row)
    }

    fn due_events(&self, now: i64, limit: usize) -> Result<Vec<WebhookEvent>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM webhook_events WHERE next_attempt_at <= ?1 AND status IN ('pending', 'failed')
             ORDER BY next_attempt_at LIMIT ?2"
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.rows(&sql, params![now, limit], event_from_row)
    }

    fn next_event_due(&self) -> Result<Option<i64>> {
        let sql = "SELECT MIN(next_attempt_at) FROM webhook_events WHERE status IN ('pending', 'failed')";
        Ok(self.row(sql, [], |row| row.get::<_, Option<i64>>(0))?.flatten())
    }

    fn claim_event(&self, cid: &Cid, due_by: Option<i64>, until: i64) -> Result<Option<u32>> {
        let sql = "UPDATE webhook_events SET attempts = attempts + 1, next_attempt_at = ?3
                   WHERE cid = ?1 AND (?2 IS NULL OR (next_attempt_at <= ?2 AND status IN ('pending', 'failed')))
                   RETURNING attempts";
        self.row(sql, params![&cid.digest()[..], due_by, until], |row| row.get(0))
    }

    fn event(&self, server: &str, cid: &Cid) -> Result<Option<WebhookEvent>> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM webhook_events WHERE server = ?1 AND cid = ?2");
        self.row(&sql, params![server, &cid.digest()[..]], event_from_row)
    }

    fn event_by_delivery(&self, server: &str, delivery_id: &str) -> Result<Option<WebhookEvent>> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM webhook_events WHERE server = ?1 AND delivery_id = ?2");
        self.row(&sql, params![server, delivery_id], event_from_row)
    }

    fn event_by_body(&self, server: &str, body_cid: &Cid, since: i64) -> Result<Option<WebhookEvent>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM webhook_events WHERE server = ?1 AND body_cid = ?2 AND received_at >= ?3
             ORDER BY received_at LIMIT 1"
        );
        self.row(&sql, params![server, &body_cid.digest()[..], since], event_from_row)
    }

    fn commit(&self, change: &Change) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(db_error)?;
        apply(&tx, change).map_err(db_error)?;
        tx.commit().map_err(db_error)?;
        for changed in change.changed() {
            let _ = self.feed.send(changed);
        }
        Ok(())
    }

    fn changes(&self) -> broadcast::Receiver<Changed> {
        let subscribed = self.feed.subscribe();
        self.followed.get_or_init(|| {
            if let Some(path) = &self.path
                && let Err(e) = follow_data_version(path, Arc::downgrade(&self.feed))
            {
                tracing::error!("changes to {} will not be followed: {e}", path.display());
            }
        });
        subscribed
    }

    fn blobs(&self, cids: &[Cid]) -> Result<Vec<(Cid, Vec<u8>)>> {
        // Reads from a local file cost no round trip: one at a time is as good.
        let found = cids.iter().map(|cid| Ok(self.blob(cid)?.map(|bytes| (*cid, bytes))));
        found.filter_map(Result::transpose).collect()
    }

    fn lock(&self, _key: &str) -> Result<Held> {
        Ok(Held::new(()))
    }

    fn server(&self, name: &str) -> Result<Option<ServerRecord>> {
        self.row("SELECT name, cid, enabled FROM servers WHERE name = ?1", [name], |row| {
            Ok(ServerRecord { name: row.get(0)?, cid: cid_from_row(row.get(1)?)?, enabled: row.get(2)? })
        })
    }

    fn append_records(&self, records: &[InvocationRecord]) -> Result<()> {
        self.records.append(records)
    }

    fn records(&self, filter: &RecordFilter) -> Result<Vec<InvocationRecord>> {
        self.records.query(filter)
    }

    fn usage(&self, filter: &RecordFilter) -> Result<Vec<Usage>> {
        self.records.usage(filter)
    }

    fn prune_records(&self, keep: usize, before: i64) -> Result<u64> {
        self.records.prune(keep, before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Origin;

    fn open() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("store.sqlite")).unwrap();
        (dir, store)
    }

    #[test]
    fn the_store_and_its_wal_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.sqlite");
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let store = SqliteStore::open(&path).unwrap();
        let mut change = Change::default();
        change.blob(b"x".to_vec());
        store.commit(&change).unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let file = dir.path().join(format!("store.sqlite{suffix}"));
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", file.display());
        }
    }

    #[tokio::test]
    async fn a_commit_from_another_connection_moves_the_change_feed() {
        let (dir, store) = open();
        let mut changes = store.changes();
        let other = SqliteStore::open(&dir.path().join("store.sqlite")).unwrap();
        let mut change = Change::default();
        change.op(Op::SetFact { key: "k".into(), value: "1".into() });
        other.commit(&change).unwrap();
        // Bounded only so that a broken feed fails instead of hanging.
        let limit = Duration::from_secs(60);
        let told = tokio::time::timeout(limit, changes.recv()).await.unwrap().unwrap();
        assert_eq!(told, Changed::Everything, "another process's commit says nothing of what it changed");
        assert_eq!(store.fact("k").unwrap().as_deref(), Some("1"));
        // The feed closes when its store is dropped.
        drop(store);
        assert!(tokio::time::timeout(limit, changes.recv()).await.unwrap().is_err());
    }

    #[tokio::test]
    async fn its_own_commits_are_told_item_by_item_at_once() {
        let (_dir, store) = open();
        let mut changes = store.changes();
        let mut change = Change::default();
        let cid = change.blob(b"v1".to_vec());
        change.op(Op::Bind { name: "demo".into(), cid, origin: Origin::Api, enabled: None });
        change.op(Op::SetSecret { name: "KEY".into(), sealed: vec![1] });
        change.op(Op::SetFact { key: "k".into(), value: "1".into() });
        store.commit(&change).unwrap();
        assert_eq!(changes.try_recv().unwrap(), Changed::Server { name: "demo".into(), head: Some(cid) });
        assert_eq!(changes.try_recv().unwrap(), Changed::Secret { name: "KEY".into() });
    }

    #[test]
    fn events_a_schema_1_store_left_unsettled_join_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            let schema_1 = SCHEMA
                .replace("    next_attempt_at INTEGER,\n", "")
                .replace("CREATE INDEX IF NOT EXISTS webhook_events_due", "-- ");
            conn.execute_batch(schema_1.split("-- ").next().unwrap()).unwrap();
            let digest = |n: u8| format!("x'{}'", hex::encode([n; 32]));
            let (a, b, c) = (digest(1), digest(2), digest(3));
            conn.execute_batch(&format!(
                "PRAGMA user_version = 1;
                 INSERT INTO blobs VALUES ({a}, x''), ({b}, x''), ({c}, x'');
                 INSERT INTO webhook_events (cid, server, delivery_id, body_cid, received_at, status)
                 VALUES ({a}, 'hook', 'a', {a}, 7, 'received'), ({b}, 'hook', 'b', {b}, 8, 'failed'),
                        ({c}, 'hook', 'c', {c}, 9, 'handled');"
            ))
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let statuses: Vec<_> =
            store.events("hook", None, 10).unwrap().iter().map(|e| (e.status, e.next_attempt_at)).collect();
        assert_eq!(
            statuses,
            vec![(EventStatus::Handled, None), (EventStatus::Failed, Some(8)), (EventStatus::Pending, Some(7))]
        );
    }
}
