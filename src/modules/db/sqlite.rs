//! A server's own SQLite database.
//!
//! One connection per server, behind a re-entrant lock so that statements a script runs inside
//! `db::transaction` (on the same thread) share the transaction. The connection cannot attach other
//! database files, and a progress handler stops any statement once the invocation's deadline passes.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::ReentrantMutex;
use rhai::{Dynamic, EvalAltResult, Map};
use rusqlite::Connection;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::types::{Value, ValueRef};

use super::{Database, Db, Param, Params, base64, sql_error};
use crate::engine::raise;
use crate::error::Error;

pub struct Local {
    conn: Arc<ReentrantMutex<Connection>>,
}

/// Denies what would let a script reach beyond its own file.
fn authorize(context: AuthContext<'_>) -> Authorization {
    match context.action {
        AuthAction::Attach { .. } | AuthAction::Detach { .. } => Authorization::Deny,
        _ => Authorization::Allow,
    }
}

impl Local {
    pub fn open(path: &Path) -> Result<Local, Box<EvalAltResult>> {
        let fail = |e: rusqlite::Error| raise(Error::internal("server database", e));
        let mut conn = Connection::open(path).map_err(fail)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(fail)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(fail)?;
        conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0).map_err(fail)?;
        conn.authorizer(Some(authorize)).map_err(fail)?;
        // Checked every thousand virtual-machine steps: stop once the invocation has no time left.
        conn.progress_handler(1000, Some(|| crate::engine::context().is_some_and(|c| c.remaining().is_zero())))
            .map_err(fail)?;
        Ok(Local { conn: Arc::new(ReentrantMutex::new(conn)) })
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
        _ => sql_error(error),
    }
}

/// Runs `f` with the statement prepared and its parameters bound.
fn with_statement<T>(
    conn: &Connection,
    sql: &str,
    params: &Params,
    f: impl FnOnce(&mut rusqlite::Statement<'_>) -> rusqlite::Result<T>,
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
    f(&mut statement).map_err(failure)
}

impl Database for Local {
    fn query(&self, sql: &str, params: &Params, _timeout: Duration) -> Result<Vec<Map>, Box<EvalAltResult>> {
        let conn = self.conn.lock();
        with_statement(&conn, sql, params, |statement| {
            let names: Vec<String> = statement.column_names().map(str::to_owned).collect();
            let mut rows = statement.raw_query();
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let mut map = Map::new();
                for (index, name) in names.iter().enumerate() {
                    map.insert(name.into(), from_sql(row.get_ref(index)?));
                }
                out.push(map);
            }
            Ok(out)
        })
    }

    fn execute(&self, sql: &str, params: &Params, _timeout: Duration) -> Result<i64, Box<EvalAltResult>> {
        let conn = self.conn.lock();
        with_statement(&conn, sql, params, |statement| statement.raw_execute()).map(|n| n as i64)
    }

    fn transaction(
        &self,
        _timeout: Duration,
        body: &mut dyn FnMut(Db) -> Result<Dynamic, Box<EvalAltResult>>,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        let conn = self.conn.lock();
        conn.execute_batch("BEGIN IMMEDIATE").map_err(failure)?;
        let handle = Db(Arc::new(Local { conn: self.conn.clone() }));
        match body(handle) {
            Ok(value) => {
                conn.execute_batch("COMMIT").map_err(failure)?;
                Ok(value)
            }
            Err(error) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(error)
            }
        }
    }
}
