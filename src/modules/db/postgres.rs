//! PostgreSQL through a pool per URL (tokio-postgres, pooled by deadpool).
//!
//! Parameters are positional (`$1`, `$2`, …) and converted to the type the server expects for each
//! (so `[42]` binds an `int4` or an `int8` alike). Every statement runs under a `statement_timeout`
//! equal to the invocation's remaining time. A session that opened a transaction and is dropped
//! before it finishes is taken out of the pool, its statement cancelled and its connection closed, so
//! the server rolls it back and no later statement runs inside it.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Utc};
use deadpool_postgres::{Manager, Object, Runtime, Timeouts};
use rhai::{Dynamic, EvalAltResult, Map};
use rust_decimal::Decimal;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Config, NoTls, Row};

use futures_util::TryStreamExt;

use super::tally::Tally;
use super::{Connector, Params, Sql, base64, sql_error};
use crate::engine::raise;
use crate::error::Error;

#[derive(Clone)]
pub struct Pool(deadpool_postgres::Pool);

/// The longest a new connection may take, whatever the invocation has left.
const CONNECT: Duration = Duration::from_secs(10);
/// Connections kept per URL.
pub const SIZE: usize = 8;

fn failure(error: tokio_postgres::Error) -> Box<EvalAltResult> {
    use tokio_postgres::error::SqlState;
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

/// The settings a `postgres://` URL gives.
pub fn config(url: &str) -> Sql<Config> {
    url.parse().map_err(|e| super::arg_error(&format!("not a PostgreSQL URL: {e}")))
}

fn unreachable(error: impl std::fmt::Display) -> Box<EvalAltResult> {
    raise(Error::UpstreamUnreachable(format!("cannot connect to PostgreSQL: {error}")))
}

impl Pool {
    /// A pool of up to `size` connections made with `config`, after one connection proves the server
    /// answers: a server that cannot be reached fails now, with its own error.
    pub async fn open(mut config: Config, size: usize, timeout: Duration) -> Sql<Pool> {
        config.connect_timeout(timeout.min(CONNECT));
        let pool = deadpool_postgres::Pool::builder(Manager::new(config, NoTls))
            .max_size(size)
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| raise(Error::internal("PostgreSQL pool", e)))?;
        let pool = Pool(pool);
        drop(pool.get(timeout).await?);
        Ok(pool)
    }

    async fn get(&self, timeout: Duration) -> Sql<Object> {
        let limit = Some(timeout.min(CONNECT));
        let timeouts = Timeouts { wait: Some(timeout), create: limit, recycle: limit };
        self.0.timeout_get(&timeouts).await.map_err(unreachable)
    }

    /// Closes the connections waiting in the pool that were last taken out `idle` ago or more.
    pub fn close_idle(&self, idle: Duration) {
        self.0.retain(|_, metrics| metrics.last_used() < idle);
    }
}

/// A pooled connection whose statements stop at the deadline it was checked out with; `open` while it
/// is inside a transaction.
pub struct Session {
    client: Option<Object>,
    open: bool,
}

impl Drop for Session {
    /// A transaction abandoned mid-statement is cancelled as well as closed: the script may have lifted
    /// `statement_timeout` inside it, and a server whose client went away runs the statement on until it
    /// next writes to it.
    fn drop(&mut self) {
        if self.open
            && let Some(client) = self.client.take()
        {
            if let Ok(drivers) = tokio::runtime::Handle::try_current() {
                let cancel = client.cancel_token();
                drivers.spawn(async move { cancel.cancel_query(NoTls).await });
            }
            drop(Object::take(client));
        }
    }
}

impl Session {
    fn client(&self) -> Sql<&Object> {
        self.client.as_ref().ok_or_else(|| sql_error("the connection is closed"))
    }
}

impl Connector for Pool {
    type Session = Session;

    fn checkout(&self, timeout: Duration) -> impl Future<Output = Sql<Session>> + Send + 'static {
        let pool = Pool(self.0.clone());
        async move {
            let client = pool.get(timeout).await?;
            client
                .batch_execute(&format!("SET statement_timeout = {}", timeout.as_millis().max(1)))
                .await
                .map_err(failure)?;
            Ok(Session { client: Some(client), open: false })
        }
    }

    fn begin(&self, timeout: Duration) -> impl Future<Output = Sql<Session>> + Send + 'static {
        let checkout = self.checkout(timeout);
        async move {
            let mut session = checkout.await?;
            session.open = true;
            session.client()?.batch_execute("BEGIN").await.map_err(failure)?;
            Ok(session)
        }
    }
}

type Bound = Box<dyn ToSql + Sync + Send>;

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
        Type::JSON | Type::JSONB => opt!(serde_json::Value, super::to_json(value)?),
        Type::UUID => opt!(uuid::Uuid, text()?.parse().map_err(|_| sql_error("not a UUID"))?),
        Type::TIMESTAMPTZ => opt!(DateTime<Utc>, {
            DateTime::parse_from_rfc3339(&text()?).map_err(|_| sql_error("not an RFC 3339 time"))?.with_timezone(&Utc)
        }),
        Type::TIMESTAMP => opt!(NaiveDateTime, {
            DateTime::parse_from_rfc3339(&text()?).map_err(|_| sql_error("not an RFC 3339 time"))?.naive_utc()
        }),
        Type::DATE => opt!(NaiveDate, text()?.parse().map_err(|_| sql_error("not a date (YYYY-MM-DD)"))?),
        Type::BYTEA => opt!(Vec<u8>, if value.is_blob() { value.clone().cast() } else { text()?.into_bytes() }),
        _ => opt!(String, if value.is_string() { value.to_string() } else { super::scalar_text(value) }),
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

/// Prepares `sql` and binds `params` to the types it expects.
async fn prepared(client: &Object, sql: &str, params: &Params) -> Sql<(tokio_postgres::Statement, Vec<Bound>)> {
    let Params::Positional(values) = params else {
        return Err(sql_error("PostgreSQL takes positional parameters ($1, $2, …): pass an array"));
    };
    // Not cached: a script could otherwise grow a connection's statement cache without bound.
    let statement = client.prepare(sql).await.map_err(failure)?;
    let types = statement.params();
    if types.len() != values.len() {
        return Err(sql_error(format!("the statement takes {} parameters, {} given", types.len(), values.len())));
    }
    let bound = values.iter().zip(types).map(|(v, t)| bind(v, t)).collect::<Result<_, _>>()?;
    Ok((statement, bound))
}

fn refs(bound: &[Bound]) -> Vec<&(dyn ToSql + Sync)> {
    bound.iter().map(|b| b.as_ref() as &(dyn ToSql + Sync)).collect()
}

fn to_map(row: &Row) -> Sql<Map> {
    let mut map = Map::new();
    for (index, col) in row.columns().iter().enumerate() {
        map.insert(col.name().into(), column(row, index)?);
    }
    Ok(map)
}

impl super::Session for Session {
    async fn query(&mut self, sql: &str, params: &Params) -> Sql<Vec<Map>> {
        let client = self.client()?;
        let (statement, bound) = prepared(client, sql, params).await?;
        // Streamed, so that the tally stops the read; the rest of a stopped result is discarded by the
        // connection as it arrives. (The driver reads a row whole: one value up to PostgreSQL's own 1 GB
        // field limit is read before it is counted.)
        let rows = client.query_raw(&statement, refs(&bound)).await.map_err(failure)?;
        let mut rows = std::pin::pin!(rows);
        let (mut out, mut tally) = (Vec::new(), Tally::default());
        while let Some(row) = rows.try_next().await.map_err(failure)? {
            tally.row()?;
            let map = to_map(&row)?;
            map.values().try_for_each(|value| tally.value(value))?;
            out.push(map);
        }
        Ok(out)
    }

    async fn execute(&mut self, sql: &str, params: &Params) -> Sql<i64> {
        let client = self.client()?;
        let (statement, bound) = prepared(client, sql, params).await?;
        client.execute(&statement, &refs(&bound)).await.map(|n| n as i64).map_err(failure)
    }

    async fn finish(mut self, commit: bool) -> Sql<()> {
        self.client()?.batch_execute(if commit { "COMMIT" } else { "ROLLBACK" }).await.map_err(failure)?;
        self.open = false;
        Ok(())
    }
}
