//! The SQLite store's invocation records, in a file of their own beside the store
//! (`store.invocations.sqlite`).
//!
//! Records are many small appends. Kept apart, they neither wait for nor hold the lock registry changes
//! take, and they do not move the store's change feed (`PRAGMA data_version`), which would make every
//! process rebuild its registry after every batch.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, params, params_from_iter};

use super::records::{Bound, InvocationRecord, RecordFilter, Usage};
use crate::cid::Cid;
use crate::error::{Error, Result};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS invocations (
    id             INTEGER PRIMARY KEY,
    time           INTEGER NOT NULL,
    server         TEXT,
    operation      TEXT,
    cid            TEXT,
    via            TEXT NOT NULL,
    input_cid      TEXT,
    output_cid     TEXT,
    status         INTEGER NOT NULL,
    error_type     TEXT,
    duration_ms    REAL NOT NULL,
    upstream_calls INTEGER NOT NULL,
    upstream_bytes INTEGER NOT NULL,
    request_id     TEXT NOT NULL,
    trace_id       TEXT NOT NULL,
    cost           REAL NOT NULL,
    currency       TEXT
);
CREATE INDEX IF NOT EXISTS invocations_by_time ON invocations(time);
CREATE INDEX IF NOT EXISTS invocations_by_server ON invocations(server, time);
";

const COLUMNS: &str = "time, server, operation, cid, via, input_cid, output_cid, status, error_type, duration_ms, \
                       upstream_calls, upstream_bytes, request_id, trace_id, cost, currency";

fn db_error(err: rusqlite::Error) -> Error {
    Error::internal("invocation records", err)
}

pub struct Records {
    conn: Mutex<Connection>,
}

impl Records {
    /// Opens (creating if needed) the file at `path`; the store made it private first.
    pub fn open(path: &Path) -> Result<Records> {
        Records::prepare(Connection::open(path).map_err(db_error)?)
    }

    pub fn in_memory() -> Result<Records> {
        Records::prepare(Connection::open_in_memory().map_err(db_error)?)
    }

    fn prepare(conn: Connection) -> Result<Records> {
        conn.busy_timeout(Duration::from_secs(10)).map_err(db_error)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(db_error)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(db_error)?;
        conn.execute_batch(SCHEMA).map_err(db_error)?;
        Ok(Records { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn append(&self, records: &[InvocationRecord]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(db_error)?;
        {
            let sql = format!(
                "INSERT INTO invocations ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
            );
            let mut insert = tx.prepare_cached(&sql).map_err(db_error)?;
            let text = |cid: &Option<Cid>| cid.map(|cid| cid.to_string());
            for r in records {
                insert
                    .execute(params![
                        r.time,
                        r.server,
                        r.operation,
                        text(&r.cid),
                        r.via.as_str(),
                        text(&r.input_cid),
                        text(&r.output_cid),
                        r.status,
                        r.error_type,
                        r.duration_ms,
                        r.upstream_calls,
                        i64::try_from(r.upstream_bytes).unwrap_or(i64::MAX),
                        r.request_id,
                        r.trace_id,
                        r.cost,
                        r.currency,
                    ])
                    .map_err(db_error)?;
            }
        }
        tx.commit().map_err(db_error)
    }

    pub fn query(&self, filter: &RecordFilter) -> Result<Vec<InvocationRecord>> {
        let (clause, values) = conditions(filter);
        let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
        let sql = format!("SELECT {COLUMNS} FROM invocations{clause} ORDER BY id DESC LIMIT {limit}");
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&sql).map_err(db_error)?;
        let rows = stmt.query_map(params_from_iter(values), record_from_row).map_err(db_error)?;
        rows.collect::<rusqlite::Result<_>>().map_err(db_error)
    }

    pub fn usage(&self, filter: &RecordFilter) -> Result<Vec<Usage>> {
        let (clause, values) = conditions(filter);
        let clause = match clause.is_empty() {
            true => " WHERE server IS NOT NULL".to_owned(),
            false => format!("{clause} AND server IS NOT NULL"),
        };
        let sql = format!(
            "SELECT server, operation, COUNT(*), SUM(error_type IS NOT NULL), SUM(cost), MAX(currency)
             FROM invocations{clause} GROUP BY server, operation ORDER BY server, operation"
        );
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&sql).map_err(db_error)?;
        let rows = stmt
            .query_map(params_from_iter(values), |row| {
                Ok(Usage {
                    server: row.get(0)?,
                    operation: row.get(1)?,
                    calls: row.get::<_, i64>(2)?.max(0) as u64,
                    errors: row.get::<_, i64>(3)?.max(0) as u64,
                    cost: row.get(4)?,
                    currency: row.get(5)?,
                })
            })
            .map_err(db_error)?;
        rows.collect::<rusqlite::Result<_>>().map_err(db_error)
    }

    /// Keeps the newest `keep` records and none older than `before` (Unix ms); returns how many went.
    pub fn prune(&self, keep: usize, before: i64) -> Result<u64> {
        let conn = self.conn();
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        // Ids grow by one per record and records only ever go from the old end, so the newest `keep`
        // are those above the last id minus `keep`: no walk over the rows kept.
        let by_count = conn
            .execute("DELETE FROM invocations WHERE id <= (SELECT MAX(id) FROM invocations) - ?1", [keep])
            .map_err(db_error)?;
        let by_age = conn.execute("DELETE FROM invocations WHERE time < ?1", [before]).map_err(db_error)?;
        Ok((by_count + by_age) as u64)
    }
}

/// The `WHERE` clause of a filter (empty when it filters nothing) and its values, in order.
fn conditions(filter: &RecordFilter) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value;
    let (clause, bounds) = filter.clause(|n| format!("?{n}"));
    let values = bounds.into_iter().map(|bound| match bound {
        Bound::Text(text) => Value::Text(text),
        Bound::Time(time) => Value::Integer(time),
        Bound::Status(code) => Value::Integer(code.into()),
    });
    (clause, values.collect())
}

fn record_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<InvocationRecord> {
    let cid = |index: usize| -> rusqlite::Result<Option<Cid>> {
        let text: Option<String> = row.get(index)?;
        text.map(|text| {
            text.parse::<Cid>().map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, e.to_string().into())
            })
        })
        .transpose()
    };
    let via: String = row.get(4)?;
    Ok(InvocationRecord {
        time: row.get(0)?,
        server: row.get(1)?,
        operation: row.get(2)?,
        cid: cid(3)?,
        via: via
            .parse()
            .map_err(|e: String| rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, e.into()))?,
        input_cid: cid(5)?,
        output_cid: cid(6)?,
        status: row.get(7)?,
        error_type: row.get(8)?,
        duration_ms: row.get(9)?,
        upstream_calls: row.get(10)?,
        upstream_bytes: row.get::<_, i64>(11)?.max(0) as u64,
        request_id: row.get(12)?,
        trace_id: row.get(13)?,
        cost: row.get(14)?,
        currency: row.get(15)?,
    })
}
