//! MySQL and MariaDB through a pool per URL.
//!
//! Statements are prepared (binary protocol), so rows arrive typed. Parameters bind positionally (`?`)
//! or by name (`:name`). Sessions run in UTC, so `TIMESTAMP` values read back as UTC; `DATETIME` values,
//! which carry no zone, are reported as UTC too. Every statement is limited to the invocation's remaining
//! time (`max_statement_time` on MariaDB, `max_execution_time` on MySQL, which limits `SELECT`s only).

use std::collections::HashMap;
use std::time::Duration;

use mysql::consts::{ColumnFlags, ColumnType};
use mysql::prelude::Queryable;
use mysql::{Column, Opts, OptsBuilder, PoolConstraints, PoolOpts, PooledConn, Value};
use rhai::{Dynamic, EvalAltResult, Map};

use super::{Connector, Param, Params, base64, sql_error};
use crate::engine::raise;
use crate::error::Error;

/// The longest a new connection may take, whatever the invocation has left.
const CONNECT: Duration = Duration::from_secs(10);
/// The character set number MySQL reports for binary strings.
const BINARY_CHARSET: u16 = 63;

pub struct Pool {
    pool: mysql::Pool,
    mariadb: bool,
}

fn failure(error: mysql::Error) -> Box<EvalAltResult> {
    match &error {
        mysql::Error::MySqlError(e) if e.code == 1969 || e.code == 3024 => {
            raise(Error::Timeout("the query did not finish before the invocation's deadline".into()))
        }
        mysql::Error::MySqlError(e) => sql_error(format!("{} ({}): {}", e.state, e.code, e.message)),
        mysql::Error::IoError(_) | mysql::Error::DriverError(_) => {
            raise(Error::UpstreamUnreachable(format!("MySQL: {error}")))
        }
        _ => sql_error(error),
    }
}

impl Pool {
    pub fn open(url: &str, timeout: Duration) -> Result<Pool, Box<EvalAltResult>> {
        let opts = Opts::from_url(url).map_err(|e| super::super::arg_error(&format!("not a MySQL URL: {e}")))?;
        let constraints = PoolConstraints::new(0, 8).expect("0 ≤ 8");
        let builder = OptsBuilder::from_opts(opts)
            .tcp_connect_timeout(Some(timeout.min(CONNECT)))
            .init(vec!["SET time_zone = '+00:00'"])
            .pool_opts(PoolOpts::default().with_constraints(constraints));
        let pool = mysql::Pool::new(builder).map_err(failure)?;
        let mut conn = pool.get_conn().map_err(failure)?;
        let version: Option<String> = conn.query_first("SELECT VERSION()").map_err(failure)?;
        let mariadb = version.is_some_and(|v| v.contains("MariaDB"));
        Ok(Pool { pool, mariadb })
    }
}

/// A pooled connection whose statements stop at the deadline it was checked out with.
pub struct Session(PooledConn);

impl Connector for Pool {
    type Session = Session;
    const BEGIN: &'static str = "START TRANSACTION";

    fn checkout(&self, timeout: Duration) -> Result<Session, Box<EvalAltResult>> {
        let mut conn = self.pool.try_get_conn(timeout.min(CONNECT)).map_err(failure)?;
        let limit = if self.mariadb {
            format!("SET SESSION max_statement_time = {:.3}", timeout.as_secs_f64().max(0.001))
        } else {
            format!("SET SESSION max_execution_time = {}", timeout.as_millis().max(1))
        };
        conn.query_drop(limit).map_err(failure)?;
        Ok(Session(conn))
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

fn params(params: &Params) -> Result<mysql::Params, Box<EvalAltResult>> {
    Ok(match params {
        Params::Positional(values) if values.is_empty() => mysql::Params::Empty,
        Params::Positional(values) => mysql::Params::Positional(values.iter().map(to_value).collect::<Result<_, _>>()?),
        Params::Named(values) => mysql::Params::Named(
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

impl super::Session for Session {
    fn query(&mut self, sql: &str, bound: &Params) -> Result<Vec<Map>, Box<EvalAltResult>> {
        let result = self.0.exec_iter(sql, params(bound)?).map_err(failure)?;
        let columns = result.columns().as_ref().to_vec();
        let mut rows = Vec::new();
        for row in result {
            let row = row.map_err(failure)?;
            let mut map = Map::new();
            for (column, value) in columns.iter().zip(row.unwrap()) {
                map.insert(column.name_str().as_ref().into(), from_value(value, column));
            }
            rows.push(map);
        }
        Ok(rows)
    }

    fn execute(&mut self, sql: &str, bound: &Params) -> Result<i64, Box<EvalAltResult>> {
        self.0.exec_drop(sql, params(bound)?).map_err(failure)?;
        Ok(self.0.affected_rows() as i64)
    }

    fn run(&mut self, statement: &str) -> Result<(), Box<EvalAltResult>> {
        self.0.query_drop(statement).map_err(failure)
    }
}
