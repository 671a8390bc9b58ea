//! A server's own SQLite database.
//!
//! One connection per server. A statement borrows it (an async lock, so a script waiting for it holds
//! no thread) and runs on the blocking pool of the drivers' runtime, never on a script's thread; a
//! transaction keeps it for as long as the script's closure runs. The connection cannot attach other
//! database files, and a progress handler stops any statement once the invocation's deadline passes.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rhai::{Dynamic, EvalAltResult, Map};
use rusqlite::Connection;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::types::{Value, ValueRef};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::tally::{MAX_VALUE, Tally};
use super::{Connector, Param, Params, Sql, base64, sql_error};
use crate::engine::raise;
use crate::error::{Error, Location};

pub struct Local {
    conn: Arc<Mutex<Connection>>,
    /// The invocation whose transaction holds the connection (0: none), so that a plain `db::query`
    /// it runs inside its own `db::transaction` fails at once instead of waiting for itself.
    holder: Arc<AtomicUsize>,
}

/// Denies what would let a script reach beyond its own file.
fn authorize(context: AuthContext<'_>) -> Authorization {
    match context.action {
        AuthAction::Attach { .. } | AuthAction::Detach { .. } => Authorization::Deny,
        _ => Authorization::Allow,
    }
}

impl Local {
    /// Opens (creating) the database file at `path`; blocking.
    pub fn open(path: &Path) -> Sql<Local> {
        let fail = |e: rusqlite::Error| raise(Error::internal("server database", e));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| raise(Error::internal("db directory", e)))?;
        }
        let mut conn = Connection::open(path).map_err(fail)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(fail)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(fail)?;
        conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0).map_err(fail)?;
        // No value a script could hold is built: randomblob(400000000) fails at once instead of
        // allocating it (and the row it would be in).
        conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, MAX_VALUE as i32).map_err(fail)?;
        conn.authorizer(Some(authorize)).map_err(fail)?;
        Ok(Local { conn: Arc::new(Mutex::new(conn)), holder: Arc::default() })
    }
}

/// Who is asking: the running invocation, as a number unique while it runs.
fn invocation_id() -> usize {
    crate::engine::context().map_or(0, |context| Arc::as_ptr(&context) as usize)
}

/// The connection, borrowed until its statements stop at `deadline`.
pub struct Session {
    conn: Option<OwnedMutexGuard<Connection>>,
    deadline: Instant,
    /// The connection's holder mark while this session holds a transaction.
    holder: Option<Arc<AtomicUsize>>,
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(holder) = &self.holder {
            holder.store(0, Ordering::Release);
        }
    }
}

impl Session {
    /// Runs `work` on the blocking pool with the connection, stopped at the deadline.
    async fn run<T: Send + 'static>(&mut self, work: impl FnOnce(&Connection) -> Sql<T> + Send + 'static) -> Sql<T> {
        let mut conn = self.conn.take().ok_or_else(|| sql_error("the connection is closed"))?;
        let deadline = self.deadline;
        let (conn, result) = tokio::task::spawn_blocking(move || {
            // Checked every thousand virtual-machine steps.
            let stop = conn.progress_handler(1000, Some(move || Instant::now() >= deadline));
            let result = stop.map_err(failure).and_then(|()| work(&conn));
            (conn, result)
        })
        .await
        .map_err(|e| raise(Error::internal("server database", e)))?;
        self.conn = Some(conn);
        result
    }
}

impl Connector for Local {
    type Session = Session;

    fn checkout(&self, timeout: Duration) -> impl Future<Output = Sql<Session>> + Send + 'static {
        let id = invocation_id();
        let waiting_on_itself = id != 0 && self.holder.load(Ordering::Acquire) == id;
        let conn = self.conn.clone();
        async move {
            if waiting_on_itself {
                return Err(sql_error("inside db::transaction, run statements on the handle its closure receives"));
            }
            let mut session =
                Session { conn: Some(conn.lock_owned().await), deadline: Instant::now() + timeout, holder: None };
            // A transaction a stopped script left open is rolled back by the next user.
            session
                .run(|conn| if conn.is_autocommit() { Ok(()) } else { conn.execute_batch("ROLLBACK").map_err(failure) })
                .await?;
            Ok(session)
        }
    }

    fn begin(&self, timeout: Duration) -> impl Future<Output = Sql<Session>> + Send + 'static {
        let (checkout, holder, id) = (self.checkout(timeout), self.holder.clone(), invocation_id());
        async move {
            let mut session = checkout.await?;
            holder.store(id, Ordering::Release);
            session.holder = Some(holder);
            session.run(|conn| conn.execute_batch("BEGIN IMMEDIATE").map_err(failure)).await?;
            Ok(session)
        }
    }
}

fn to_sql(value: &Dynamic) -> Result<Value, Box<EvalAltResult>> {
    Ok(match Param::of(value)? {
        Param::Null => Value::Null,
        Param::Int(i) => Value::Integer(i),
        Param::Float(f) => Value::Real(f),
        Param::Text(text) => Value::Text(text),
        Param::Bytes(bytes) => Value::Blob(bytes),
    })
}

/// Counts a value as read, before it is converted: text by its bytes, a blob by its base64 text.
fn count(tally: &mut Tally, value: ValueRef<'_>) -> Sql<()> {
    tally.bytes(match value {
        ValueRef::Text(t) => t.len(),
        ValueRef::Blob(b) => b.len().div_ceil(3) * 4,
        _ => 8,
    })
}

fn from_sql(value: ValueRef<'_>) -> Dynamic {
    match value {
        ValueRef::Null => Dynamic::UNIT,
        ValueRef::Integer(i) => i.into(),
        ValueRef::Real(f) => f.into(),
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned().into(),
        ValueRef::Blob(b) => base64(b),
    }
}

/// Translates a failure, telling a statement stopped by the deadline from a SQL error.
fn failure(error: rusqlite::Error) -> Box<EvalAltResult> {
    match error.sqlite_error_code() {
        Some(rusqlite::ErrorCode::OperationInterrupted) => {
            raise(Error::Timeout("the query did not finish before the invocation's deadline".into()))
        }
        Some(rusqlite::ErrorCode::TooBig) => raise(Error::limit_exceeded(
            "size",
            format!("SQL error: a value of the statement would be longer than {MAX_VALUE} bytes"),
            Location::default(),
        )),
        _ => sql_error(error),
    }
}

/// Runs `f` with the statement prepared and its parameters bound.
fn with_statement<T>(
    conn: &Connection,
    sql: &str,
    params: &Params,
    f: impl FnOnce(&mut rusqlite::Statement<'_>) -> Sql<T>,
) -> Result<T, Box<EvalAltResult>> {
    let mut statement = conn.prepare(sql).map_err(failure)?;
    match params {
        Params::Positional(values) => {
            let expected = statement.parameter_count();
            if values.len() != expected {
                return Err(sql_error(format!("the statement takes {expected} parameters, {} given", values.len())));
            }
            for (index, value) in values.iter().enumerate() {
                statement.raw_bind_parameter(index + 1, to_sql(value)?).map_err(failure)?;
            }
        }
        Params::Named(values) => {
            for (name, value) in values {
                let key = if name.starts_with([':', '@', '$']) { name.clone() } else { format!(":{name}") };
                let index = statement
                    .parameter_index(&key)
                    .map_err(failure)?
                    .ok_or_else(|| sql_error(format!("the statement has no parameter {key}")))?;
                statement.raw_bind_parameter(index, to_sql(value)?).map_err(failure)?;
            }
        }
    }
    f(&mut statement)
}

impl super::Session for Session {
    async fn query(&mut self, sql: &str, params: &Params) -> Sql<Vec<Map>> {
        let (sql, params) = (sql.to_owned(), params.clone());
        self.run(move |conn| {
            with_statement(conn, &sql, &params, |statement| {
                let names: Vec<String> = statement.column_names().map(str::to_owned).collect();
                let mut rows = statement.raw_query();
                let (mut out, mut tally) = (Vec::new(), Tally::default());
                while let Some(row) = rows.next().map_err(failure)? {
                    tally.row()?;
                    let mut map = Map::new();
                    for (index, name) in names.iter().enumerate() {
                        let value = row.get_ref(index).map_err(failure)?;
                        count(&mut tally, value)?;
                        map.insert(name.into(), from_sql(value));
                    }
                    out.push(map);
                }
                Ok(out)
            })
        })
        .await
    }

    async fn execute(&mut self, sql: &str, params: &Params) -> Sql<i64> {
        let (sql, params) = (sql.to_owned(), params.clone());
        let execute = |statement: &mut rusqlite::Statement<'_>| statement.raw_execute().map_err(failure);
        self.run(move |conn| with_statement(conn, &sql, &params, execute).map(|n| n as i64)).await
    }

    async fn finish(mut self, commit: bool) -> Sql<()> {
        self.run(move |conn| conn.execute_batch(if commit { "COMMIT" } else { "ROLLBACK" }).map_err(failure)).await
    }
}
