//! MySQL and MariaDB through a pool per URL (mysql_async, with its own pool).
//!
//! Statements are prepared (binary protocol), so rows arrive typed. Parameters bind positionally (`?`)
//! or by name (`:name`). Sessions run in UTC, so `TIMESTAMP` values read back as UTC; `DATETIME` values,
//! which carry no zone, are reported as UTC too. Every statement is limited to the invocation's remaining
//! time (`max_statement_time` on MariaDB, `max_execution_time` on MySQL, which limits `SELECT`s only).
//! A transaction is the driver's own, so a session dropped before it finishes is rolled back before its
//! connection is used again.

use std::collections::HashMap;
use std::time::Duration;

use mysql_async::consts::{ColumnFlags, ColumnType};
use mysql_async::prelude::Queryable;
use mysql_async::{Column, Conn, Opts, OptsBuilder, PoolConstraints, PoolOpts, Transaction, TxOpts, Value};
use rhai::{Dynamic, EvalAltResult, Map};

use super::tally::Tally;
use super::{Connector, Param, Params, Sql, base64, sql_error};
use crate::engine::raise;
use crate::error::Error;

/// The longest a new connection may take, whatever the invocation has left.
const CONNECT: Duration = Duration::from_secs(10);
/// The character set number MySQL reports for binary strings.
const BINARY_CHARSET: u16 = 63;

pub struct Pool {
    pool: mysql_async::Pool,
    mariadb: bool,
}

fn failure(error: mysql_async::Error) -> Box<EvalAltResult> {
    match &error {
        mysql_async::Error::Server(e) if e.code == 1969 || e.code == 3024 => {
            raise(Error::Timeout("the query did not finish before the invocation's deadline".into()))
        }
        mysql_async::Error::Server(e) => sql_error(format!("{} ({}): {}", e.state, e.code, e.message)),
        mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => {
            raise(Error::UpstreamUnreachable(format!("MySQL: {error}")))
        }
        _ => sql_error(error),
    }
}

/// `work`, or `upstream_unreachable` once the connection has taken `limit`.
async fn within<T>(limit: Duration, work: impl Future<Output = mysql_async::Result<T>>) -> Sql<T> {
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result.map_err(failure),
        Err(_) => Err(raise(Error::UpstreamUnreachable("MySQL: no connection within the time left".into()))),
    }
}

impl Pool {
    /// A pool for `url`, after one connection proves the server answers and tells what it is.
    pub async fn open(url: String, timeout: Duration) -> Sql<Pool> {
        let opts = Opts::from_url(&url).map_err(|e| super::arg_error(&format!("not a MySQL URL: {e}")))?;
        let constraints = PoolConstraints::new(0, 8).expect("0 ≤ 8");
        let builder = OptsBuilder::from_opts(opts)
            .init(vec!["SET time_zone = '+00:00'"])
            .pool_opts(PoolOpts::default().with_constraints(constraints));
        let pool = mysql_async::Pool::new(builder);
        let mut conn = within(timeout.min(CONNECT), pool.get_conn()).await?;
        let version: Option<String> = conn.query_first("SELECT VERSION()").await.map_err(failure)?;
        let mariadb = version.is_some_and(|v| v.contains("MariaDB"));
        Ok(Pool { pool, mariadb })
    }

    /// The statement that limits every later statement of a session to `timeout`.
    fn limit(&self, timeout: Duration) -> String {
        if self.mariadb {
            format!("SET SESSION max_statement_time = {:.3}", timeout.as_secs_f64().max(0.001))
        } else {
            format!("SET SESSION max_execution_time = {}", timeout.as_millis().max(1))
        }
    }
}

/// A pooled connection, or a transaction on one, whose statements stop at its deadline.
pub enum Session {
    Conn(Conn),
    Transaction(Transaction<'static>),
}

impl Connector for Pool {
    type Session = Session;

    fn checkout(&self, timeout: Duration) -> impl Future<Output = Sql<Session>> + Send + 'static {
        let (pool, limit) = (self.pool.clone(), self.limit(timeout));
        async move {
            let mut conn = within(timeout.min(CONNECT), pool.get_conn()).await?;
            conn.query_drop(limit).await.map_err(failure)?;
            Ok(Session::Conn(conn))
        }
    }

    fn begin(&self, timeout: Duration) -> impl Future<Output = Sql<Session>> + Send + 'static {
        let (pool, limit) = (self.pool.clone(), self.limit(timeout));
        async move {
            let mut tx = within(timeout.min(CONNECT), pool.start_transaction(TxOpts::default())).await?;
            tx.query_drop(limit).await.map_err(failure)?;
            Ok(Session::Transaction(tx))
        }
    }
}

fn to_value(value: &Dynamic) -> Result<Value, Box<EvalAltResult>> {
    Ok(match Param::of(value)? {
        Param::Null => Value::NULL,
        Param::Int(i) => Value::Int(i),
        Param::Float(f) => Value::Double(f),
        Param::Text(text) => Value::Bytes(text.into_bytes()),
        Param::Bytes(bytes) => Value::Bytes(bytes),
    })
}

fn params(params: &Params) -> Result<mysql_async::Params, Box<EvalAltResult>> {
    Ok(match params {
        Params::Positional(values) if values.is_empty() => mysql_async::Params::Empty,
        Params::Positional(values) => {
            mysql_async::Params::Positional(values.iter().map(to_value).collect::<Result<_, _>>()?)
        }
        Params::Named(values) => mysql_async::Params::Named(
            values
                .iter()
                .map(|(name, value)| Ok((name.trim_start_matches(':').as_bytes().to_vec(), to_value(value)?)))
                .collect::<Result<HashMap<_, _>, Box<EvalAltResult>>>()?,
        ),
    })
}

fn from_value(value: Value, column: &Column) -> Dynamic {
    let ty = column.column_type();
    match value {
        Value::NULL => Dynamic::UNIT,
        Value::Int(i) => i.into(),
        Value::UInt(u) => i64::try_from(u).map_or_else(|_| Dynamic::from(u as f64), Dynamic::from),
        Value::Float(f) => (f as f64).into(),
        Value::Double(f) => f.into(),
        Value::Bytes(bytes) => match ty {
            ColumnType::MYSQL_TYPE_JSON => serde_json::from_slice::<Dynamic>(&bytes).unwrap_or_else(|_| base64(&bytes)),
            ColumnType::MYSQL_TYPE_DECIMAL | ColumnType::MYSQL_TYPE_NEWDECIMAL => {
                String::from_utf8_lossy(&bytes).into_owned().into()
            }
            _ if column.character_set() == BINARY_CHARSET && !column.flags().contains(ColumnFlags::NUM_FLAG) => {
                base64(&bytes)
            }
            _ => match String::from_utf8(bytes) {
                Ok(text) => text.into(),
                Err(e) => base64(e.as_bytes()),
            },
        },
        Value::Date(year, month, day, hour, minute, second, micros) => match ty {
            ColumnType::MYSQL_TYPE_DATE | ColumnType::MYSQL_TYPE_NEWDATE => {
                format!("{year:04}-{month:02}-{day:02}").into()
            }
            _ if micros == 0 => format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z").into(),
            _ => format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{micros:06}Z").into(),
        },
        Value::Time(negative, days, hours, minutes, seconds, _) => {
            let hours = days * 24 + u32::from(hours);
            format!("{}{hours:02}:{minutes:02}:{seconds:02}", if negative { "-" } else { "" }).into()
        }
    }
}

/// Counts a value as read, before it is converted (bytes by their length).
fn count(tally: &mut Tally, value: &Value) -> Sql<()> {
    tally.bytes(match value {
        Value::Bytes(bytes) => bytes.len(),
        _ => 8,
    })
}

async fn query(q: &mut impl Queryable, sql: &str, bound: &Params) -> Sql<Vec<Map>> {
    // Row by row, so that the tally stops the read; the rest of a stopped result is read and dropped
    // before the connection is used again.
    let mut result = q.exec_iter(sql, params(bound)?).await.map_err(failure)?;
    let (mut out, mut tally) = (Vec::new(), Tally::default());
    while let Some(row) = result.next().await.map_err(failure)? {
        tally.row()?;
        let columns = row.columns();
        let mut map = Map::new();
        for (column, value) in columns.iter().zip(row.unwrap()) {
            count(&mut tally, &value)?;
            map.insert(column.name_str().as_ref().into(), from_value(value, column));
        }
        out.push(map);
    }
    Ok(out)
}

async fn execute(q: &mut impl Queryable, sql: &str, bound: &Params) -> Sql<i64> {
    let result = q.exec_iter(sql, params(bound)?).await.map_err(failure)?;
    let affected = result.affected_rows() as i64;
    result.drop_result().await.map_err(failure)?;
    Ok(affected)
}

impl super::Session for Session {
    async fn query(&mut self, sql: &str, bound: &Params) -> Sql<Vec<Map>> {
        match self {
            Session::Conn(conn) => query(conn, sql, bound).await,
            Session::Transaction(tx) => query(tx, sql, bound).await,
        }
    }

    async fn execute(&mut self, sql: &str, bound: &Params) -> Sql<i64> {
        match self {
            Session::Conn(conn) => execute(conn, sql, bound).await,
            Session::Transaction(tx) => execute(tx, sql, bound).await,
        }
    }

    async fn finish(self, commit: bool) -> Sql<()> {
        match self {
            Session::Conn(_) => Ok(()),
            Session::Transaction(tx) if commit => tx.commit().await.map_err(failure),
            Session::Transaction(tx) => tx.rollback().await.map_err(failure),
        }
    }
}
