//! PostgreSQL through a pool per URL.
//!
//! Parameters are positional (`$1`, `$2`, …) and converted to the type the server expects for each
//! (so `[42]` binds an `int4` or an `int8` alike). Every statement runs under a `statement_timeout`
//! equal to the invocation's remaining time.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Utc};
use r2d2_postgres::PostgresConnectionManager;
use r2d2_postgres::postgres::types::{ToSql, Type};
use r2d2_postgres::postgres::{Client, Config, NoTls, Row};
use rhai::{Dynamic, EvalAltResult, Map};
use rust_decimal::Decimal;

use super::{Connector, Params, base64, sql_error};
use crate::engine::raise;
use crate::error::Error;

type Manager = PostgresConnectionManager<NoTls>;
type Pooled = r2d2::PooledConnection<Manager>;

pub struct Pool {
    pool: r2d2::Pool<Manager>,
}

/// The longest a new connection may take, whatever the invocation has left.
const CONNECT: Duration = Duration::from_secs(10);

fn failure(error: r2d2_postgres::postgres::Error) -> Box<EvalAltResult> {
    use r2d2_postgres::postgres::error::SqlState;
    let lost = error.is_closed() || std::error::Error::source(&error).is_some_and(|s| s.is::<std::io::Error>());
    match error.as_db_error() {
        Some(db) if db.code() == &SqlState::QUERY_CANCELED => {
            raise(Error::Timeout("the query did not finish before the invocation's deadline".into()))
        }
        Some(db) => sql_error(format!("{}: {}", db.code().code(), db.message())),
        None if lost => raise(Error::UpstreamUnreachable(format!("PostgreSQL: {error}"))),
        None => sql_error(error),
    }
}

impl Pool {
    pub fn open(url: &str, timeout: Duration) -> Result<Pool, Box<EvalAltResult>> {
        let mut config: Config = url.parse().map_err(|e| super::arg_error(&format!("not a PostgreSQL URL: {e}")))?;
        config.connect_timeout(timeout.min(CONNECT));
        // Connect once directly: a server that cannot be reached fails now, with its own error, instead
        // of after the pool's patient retries.
        let first = config
            .connect(NoTls)
            .map_err(|e| raise(Error::UpstreamUnreachable(format!("cannot connect to PostgreSQL: {e}"))))?;
        drop(first);
        let pool = r2d2::Pool::builder()
            .max_size(8)
            .min_idle(Some(0))
            .connection_timeout(timeout.min(CONNECT))
            .build_unchecked(PostgresConnectionManager::new(config, NoTls));
        Ok(Pool { pool })
    }
}

/// A pooled connection whose statements stop at the deadline it was checked out with.
pub struct Session(Pooled);

impl Connector for Pool {
    type Session = Session;
    const BEGIN: &'static str = "BEGIN";

    fn checkout(&self, timeout: Duration) -> Result<Session, Box<EvalAltResult>> {
        let mut client = self
            .pool
            .get()
            .map_err(|e| raise(Error::UpstreamUnreachable(format!("cannot connect to PostgreSQL: {e}"))))?;
        client.batch_execute(&format!("SET statement_timeout = {}", timeout.as_millis().max(1))).map_err(failure)?;
        Ok(Session(client))
    }
}

type Bound = Box<dyn ToSql + Sync>;

fn mismatch(value: &Dynamic, ty: &Type) -> Box<EvalAltResult> {
    sql_error(format!("a {} cannot be bound to a {ty} parameter", value.type_name()))
}

/// `value` as the Rust type PostgreSQL expects for a parameter of type `ty`.
fn bind(value: &Dynamic, ty: &Type) -> Result<Bound, Box<EvalAltResult>> {
    let null = value.is_unit();
    let int = || value.as_int().map_err(|_| mismatch(value, ty));
    let float = || value.as_float().or_else(|_| value.as_int().map(|i| i as f64)).map_err(|_| mismatch(value, ty));
    let text = || if value.is_string() { Ok(value.to_string()) } else { Err(mismatch(value, ty)) };
    macro_rules! opt {
        ($t:ty, $e:expr) => {
            Ok(Box::new(if null { None::<$t> } else { Some($e) }) as Bound)
        };
    }
    match *ty {
        Type::BOOL => opt!(bool, value.as_bool().map_err(|_| mismatch(value, ty))?),
        Type::INT2 => opt!(i16, i16::try_from(int()?).map_err(|_| sql_error("the integer is out of range for int2"))?),
        Type::INT4 => opt!(i32, i32::try_from(int()?).map_err(|_| sql_error("the integer is out of range for int4"))?),
        Type::INT8 => opt!(i64, int()?),
        Type::OID => opt!(u32, u32::try_from(int()?).map_err(|_| sql_error("the integer is out of range for oid"))?),
        Type::FLOAT4 => opt!(f32, float()? as f32),
        Type::FLOAT8 => opt!(f64, float()?),
        Type::NUMERIC => opt!(Decimal, {
            let text = if value.is_string() { value.to_string() } else { float().map(|_| value.to_string())? };
            text.parse::<Decimal>().map_err(|_| sql_error(format!("'{text}' is not a number")))?
        }),
        Type::JSON | Type::JSONB => opt!(serde_json::Value, super::super::to_json(value)?),
        Type::UUID => opt!(uuid::Uuid, text()?.parse().map_err(|_| sql_error("not a UUID"))?),
        Type::TIMESTAMPTZ => opt!(DateTime<Utc>, {
            DateTime::parse_from_rfc3339(&text()?).map_err(|_| sql_error("not an RFC 3339 time"))?.with_timezone(&Utc)
        }),
        Type::TIMESTAMP => opt!(NaiveDateTime, {
            DateTime::parse_from_rfc3339(&text()?).map_err(|_| sql_error("not an RFC 3339 time"))?.naive_utc()
        }),
        Type::DATE => opt!(NaiveDate, text()?.parse().map_err(|_| sql_error("not a date (YYYY-MM-DD)"))?),
        Type::BYTEA => opt!(Vec<u8>, if value.is_blob() { value.clone().cast() } else { text()?.into_bytes() }),
        _ => opt!(String, if value.is_string() { value.to_string() } else { super::super::scalar_text(value) }),
    }
}

fn column(row: &Row, index: usize) -> Result<Dynamic, Box<EvalAltResult>> {
    let ty = row.columns()[index].type_().clone();
    macro_rules! get {
        ($t:ty, $f:expr) => {
            row.try_get::<_, Option<$t>>(index).map_err(failure)?.map_or(Dynamic::UNIT, $f)
        };
    }
    Ok(match ty {
        Type::BOOL => get!(bool, Dynamic::from),
        Type::INT2 => get!(i16, |v| Dynamic::from(v as i64)),
        Type::INT4 => get!(i32, |v| Dynamic::from(v as i64)),
        Type::INT8 => get!(i64, Dynamic::from),
        Type::OID => get!(u32, |v| Dynamic::from(v as i64)),
        Type::FLOAT4 => get!(f32, |v| Dynamic::from(v as f64)),
        Type::FLOAT8 => get!(f64, Dynamic::from),
        Type::NUMERIC => get!(Decimal, |v| Dynamic::from(v.to_string())),
        Type::JSON | Type::JSONB => get!(serde_json::Value, |v| rhai::serde::to_dynamic(v).unwrap_or_default()),
        Type::UUID => get!(uuid::Uuid, |v| Dynamic::from(v.to_string())),
        Type::TIMESTAMPTZ => get!(DateTime<Utc>, |v| Dynamic::from(v.to_rfc3339_opts(SecondsFormat::AutoSi, true))),
        Type::TIMESTAMP => {
            get!(NaiveDateTime, |v| Dynamic::from(v.and_utc().to_rfc3339_opts(SecondsFormat::AutoSi, true)))
        }
        Type::DATE => get!(NaiveDate, |v| Dynamic::from(v.to_string())),
        Type::TIME => get!(NaiveTime, |v| Dynamic::from(v.to_string())),
        Type::BYTEA => get!(Vec<u8>, |v| base64(&v)),
        _ => row
            .try_get::<_, Option<String>>(index)
            .map_err(|_| {
                sql_error(format!("column {} has type {ty}, which is not supported: cast it to text", index + 1))
            })?
            .map_or(Dynamic::UNIT, Dynamic::from),
    })
}

/// Prepares `sql`, binds `params` to the types it expects, and hands both to `run`.
fn prepared<T>(
    client: &mut Client,
    sql: &str,
    params: &Params,
    run: impl FnOnce(
        &mut Client,
        &r2d2_postgres::postgres::Statement,
        &[&(dyn ToSql + Sync)],
    ) -> Result<T, Box<EvalAltResult>>,
) -> Result<T, Box<EvalAltResult>> {
    let Params::Positional(values) = params else {
        return Err(sql_error("PostgreSQL takes positional parameters ($1, $2, …): pass an array"));
    };
    let statement = client.prepare(sql).map_err(failure)?;
    let types = statement.params();
    if types.len() != values.len() {
        return Err(sql_error(format!("the statement takes {} parameters, {} given", types.len(), values.len())));
    }
    let bound: Vec<Bound> = values.iter().zip(types).map(|(v, t)| bind(v, t)).collect::<Result<_, _>>()?;
    let refs: Vec<&(dyn ToSql + Sync)> = bound.iter().map(|b| b.as_ref()).collect();
    run(client, &statement, &refs)
}

impl super::Session for Session {
    fn query(&mut self, sql: &str, params: &Params) -> Result<Vec<Map>, Box<EvalAltResult>> {
        prepared(&mut self.0, sql, params, |client, statement, refs| {
            let rows = client.query(statement, refs).map_err(failure)?;
            rows.iter()
                .map(|row| {
                    let mut map = Map::new();
                    for (index, col) in row.columns().iter().enumerate() {
                        map.insert(col.name().into(), column(row, index)?);
                    }
                    Ok(map)
                })
                .collect()
        })
    }

    fn execute(&mut self, sql: &str, params: &Params) -> Result<i64, Box<EvalAltResult>> {
        prepared(&mut self.0, sql, params, |client, statement, refs| {
            client.execute(statement, refs).map(|n| n as i64).map_err(failure)
        })
    }

    fn run(&mut self, statement: &str) -> Result<(), Box<EvalAltResult>> {
        self.0.batch_execute(statement).map_err(failure)
    }
}
