//! The store on PostgreSQL, for several instances behind a load balancer: the same tables as the
//! SQLite store, in a schema of their own (`switchboard`, see [`schema`]), shared by every instance.
//!
//! The [`Store`] trait is synchronous, as the callers are (they run on the blocking pool or in CLI
//! commands), and tokio-postgres is not: the store owns a small tokio runtime of its own, runs each
//! operation there on a pooled connection, and waits for its answer. Nothing it does needs the
//! caller's runtime, so it works alike from a tokio worker, the blocking pool or a plain thread.
//!
//! Each commit is one transaction that NOTIFYs what it changed ([`commit`]); each instance hears it on
//! a connection of its own ([`listen`]). A store that cannot be reached answers `unavailable`, naming
//! itself (never with its password): mutations fail with 503 while everything served from memory goes
//! on; the pool and the feed reconnect by themselves.

mod commit;
mod listen;
mod records;
mod schema;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio::sync::broadcast;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Config, NoTls, Row};

use super::copy::Dump;
use super::{
    Binding, Change, Changed, EventStatus, Held, InvocationRecord, RecordFilter, ServerRecord, Store, Usage,
    WebhookEvent,
};
use crate::cid::Cid;
use crate::error::{Error, Result};

/// The advisory lock key (`pg_advisory_lock` takes any bigint) under which a new database is given the
/// store's schema; the only advisory lock the store takes (see [`schema`]).
const ADVISORY_MIGRATE: i64 = 0x5357_4254_0001;
/// Takes the lock named `$1` until the transaction ends. The store's locks are rows of its own table,
/// `switchboard.locks`, which no other role of the database can touch: an advisory lock can be taken,
/// and held for ever, by any role, servers' own `db::` roles included.
pub const TAKE_LOCK: &str =
    "INSERT INTO switchboard.locks (key) VALUES ($1) ON CONFLICT (key) DO UPDATE SET key = excluded.key";
/// Removes the row of a lock named once (its holder still holds it until the transaction ends; a
/// waiter then makes the row again), so that one-off names leave nothing behind.
const DROP_LOCK: &str = "DELETE FROM switchboard.locks WHERE key = $1";
/// The lock every commit that changes what is served takes.
const REGISTRY: &str = "registry";
/// Connections each instance keeps to the store.
const POOL: usize = 16;
/// The longest an operation may take, connecting included, before the store counts as unavailable.
const PATIENCE: Duration = Duration::from_secs(10);

/// How often a lock that is taken is tried again.
const LOCK_POLL: Duration = Duration::from_millis(25);

/// What went wrong with an operation: the store could not be reached (or stopped answering), or it
/// refused the operation.
#[derive(Debug)]
enum Fault {
    Lost(String),
    Refused(String),
}

type Sql<T> = std::result::Result<T, Fault>;

impl From<tokio_postgres::Error> for Fault {
    fn from(error: tokio_postgres::Error) -> Fault {
        match error.as_db_error() {
            // Class 08 is a connection exception; 57P an operator's intervention (a shutdown, a
            // terminated backend).
            Some(db) if db.code().code().starts_with("08") || db.code().code().starts_with("57P") => {
                Fault::Lost(db.message().to_owned())
            }
            Some(db) => Fault::Refused(format!("{}: {}", db.code().code(), db.message())),
            None => Fault::Lost(error.to_string()),
        }
    }
}

impl From<deadpool_postgres::PoolError> for Fault {
    fn from(error: deadpool_postgres::PoolError) -> Fault {
        match error {
            deadpool_postgres::PoolError::Backend(error) => error.into(),
            other => Fault::Lost(other.to_string()),
        }
    }
}

/// A PostgreSQL URL as it may be shown: without its password (or any query parameter, which may carry
/// one).
pub fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut url) => {
            let _ = url.set_password(None);
            url.set_query(None);
            url.to_string()
        }
        Err(_) => "(a URL that does not parse)".into(),
    }
}

pub struct PostgresStore {
    pool: Pool,
    /// Where operations run; shut down (without waiting) when the store goes.
    tokio: Option<tokio::runtime::Runtime>,
    /// The store as messages name it: its URL without the password.
    name: Arc<str>,
    feed: Arc<broadcast::Sender<Changed>>,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        if let Some(tokio) = self.tokio.take() {
            tokio.shutdown_background();
        }
    }
}

fn now_millis() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl PostgresStore {
    /// Connects to the database `url` names, migrates its schema and starts listening for changes.
    /// A database that cannot be reached, or whose schema is newer than this binary, is refused.
    pub fn open(url: &str) -> Result<PostgresStore> {
        let name: Arc<str> = format!("the PostgreSQL store {}", without_password(url)).into();
        let mut config: Config =
            url.parse().map_err(|e| Error::BadRequest(format!("{name} is not a usable URL: {e}")))?;
        config
            .options("-c search_path=switchboard -c client_min_messages=warning")
            .application_name("switchboard")
            .connect_timeout(PATIENCE)
            .keepalives_idle(Duration::from_secs(10));
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("store-postgres")
            .enable_all()
            .build()
            .map_err(|e| Error::internal("the store's runtime", e))?;
        let manager =
            Manager::from_config(config.clone(), NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(POOL)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(PATIENCE))
            .create_timeout(Some(PATIENCE))
            .recycle_timeout(Some(PATIENCE))
            .build()
            .map_err(|e| Error::internal("the store's pool", e))?;
        let store = PostgresStore { pool, tokio: Some(tokio), name, feed: Arc::new(super::feed()) };
        let pool = store.pool.clone();
        store.run(async move { schema::migrate(&mut pool.get().await?).await })?;
        let (ready, listening) = std::sync::mpsc::sync_channel(1);
        store.handle().spawn(listen::listen(config, store.feed.clone(), ready));
        let problem = match listening.recv() {
            Ok(Ok(())) => return Ok(store),
            Ok(Err(problem)) => problem,
            Err(_) => "the listener stopped".to_owned(),
        };
        Err(Error::Unavailable(format!("{} cannot follow changes: {problem}", store.name)))
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.tokio.as_ref().expect("the store's runtime lives as long as the store").handle()
    }

    /// Runs `work` on the store's runtime and waits for it, at most [`PATIENCE`].
    fn run<T: Send + 'static>(&self, work: impl Future<Output = Sql<T>> + Send + 'static) -> Result<T> {
        let (answer, answered) = std::sync::mpsc::sync_channel(1);
        self.handle().spawn(async move {
            let outcome = tokio::time::timeout(PATIENCE, work)
                .await
                .unwrap_or_else(|_| Err(Fault::Lost(format!("no answer within {PATIENCE:?}"))));
            let _ = answer.send(outcome);
        });
        let outcome = answered.recv().unwrap_or_else(|_| Err(Fault::Lost("the store is closing".into())));
        outcome.map_err(|fault| match fault {
            Fault::Lost(why) => Error::Unavailable(format!("{} is unavailable: {why}", self.name)),
            Fault::Refused(why) => Error::Internal(format!("{} refused the operation: {why}", self.name)),
        })
    }

    /// Every row `sql` selects with `params`, each read by `read`.
    fn rows<T: Send + 'static>(
        &self,
        sql: impl Into<Cow<'static, str>>,
        params: Vec<Box<dyn ToSql + Sync + Send>>,
        read: fn(&Row) -> Sql<T>,
    ) -> Result<Vec<T>> {
        let (pool, sql) = (self.pool.clone(), sql.into());
        self.run(async move {
            let client: Object = pool.get().await?;
            let statement = client.prepare_cached(&sql).await?;
            let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as _).collect();
            client.query(&statement, &params).await?.iter().map(read).collect()
        })
    }

    /// The first row `sql` selects with `params`, if any, read by `read`.
    fn row<T: Send + 'static>(
        &self,
        sql: &'static str,
        params: Vec<Box<dyn ToSql + Sync + Send>>,
        read: fn(&Row) -> Sql<T>,
    ) -> Result<Option<T>> {
        Ok(self.rows(sql, params, read)?.into_iter().next())
    }
}

fn cid_at(row: &Row, index: usize) -> Sql<Cid> {
    cid_of(row.try_get(index)?)
}

/// The CID whose digest is `bytes`, as the tables keep CIDs.
fn cid_of(bytes: Vec<u8>) -> Sql<Cid> {
    let digest: [u8; 32] = bytes.try_into().map_err(|_| Fault::Refused("a CID digest is not 32 bytes".into()))?;
    Ok(Cid::from_digest(digest))
}

fn first<T: for<'a> tokio_postgres::types::FromSql<'a>>(row: &Row) -> Sql<T> {
    Ok(row.try_get(0)?)
}

fn pair<T: for<'a> tokio_postgres::types::FromSql<'a>>(row: &Row) -> Sql<(String, T)> {
    Ok((row.try_get(0)?, row.try_get(1)?))
}

/// A history row whose first three columns are `cid, at, origin`.
fn binding(row: &Row) -> Sql<Binding> {
    let origin: String = row.try_get(2)?;
    Ok(Binding { cid: cid_at(row, 0)?, at: row.try_get(1)?, origin: origin.parse().map_err(Fault::Refused)? })
}

fn server(row: &Row) -> Sql<ServerRecord> {
    Ok(ServerRecord { name: row.try_get(0)?, cid: cid_at(row, 1)?, enabled: row.try_get(2)? })
}

/// The columns [`event`] reads, in its order.
macro_rules! event_select {
    ($rest:literal) => {
        concat!(
            "SELECT cid, server, delivery_id, body_cid, received_at, status, outcome, attempts, next_attempt_at \
             FROM webhook_events ",
            $rest
        )
    };
}

fn event(row: &Row) -> Sql<WebhookEvent> {
    let status: String = row.try_get(5)?;
    let outcome: Option<String> = row.try_get(6)?;
    let attempts: i32 = row.try_get(7)?;
    Ok(WebhookEvent {
        cid: cid_at(row, 0)?,
        server: row.try_get(1)?,
        delivery_id: row.try_get(2)?,
        body_cid: cid_at(row, 3)?,
        received_at: row.try_get(4)?,
        status: status.parse().map_err(Fault::Refused)?,
        outcome: outcome.map(|text| serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))),
        attempts: attempts.max(0) as u32,
        next_attempt_at: row.try_get(8)?,
    })
}

fn digest(cid: &Cid) -> Box<dyn ToSql + Sync + Send> {
    Box::new(cid.digest().to_vec())
}

fn text(value: &str) -> Box<dyn ToSql + Sync + Send> {
    Box::new(value.to_owned())
}

impl Store for PostgresStore {
    fn blob(&self, cid: &Cid) -> Result<Option<Vec<u8>>> {
        self.row("SELECT bytes FROM blobs WHERE cid = $1", vec![digest(cid)], first)
    }

    fn blobs(&self, cids: &[Cid]) -> Result<Vec<(Cid, Vec<u8>)>> {
        let digests: Vec<Vec<u8>> = cids.iter().map(|cid| cid.digest().to_vec()).collect();
        let read = |row: &Row| Ok((cid_at(row, 0)?, row.try_get(1)?));
        self.rows("SELECT cid, bytes FROM blobs WHERE cid = ANY($1)", vec![Box::new(digests)], read)
    }

    fn servers(&self) -> Result<Vec<ServerRecord>> {
        self.rows("SELECT name, cid, enabled FROM servers", vec![], server)
    }

    fn server(&self, name: &str) -> Result<Option<ServerRecord>> {
        self.row("SELECT name, cid, enabled FROM servers WHERE name = $1", vec![text(name)], server)
    }

    fn history(&self, name: &str) -> Result<Vec<Binding>> {
        self.rows("SELECT cid, at, origin FROM history WHERE name = $1 ORDER BY id", vec![text(name)], binding)
    }

    fn bindings(&self) -> Result<Vec<(String, Binding)>> {
        self.rows("SELECT cid, at, origin, name FROM history ORDER BY id", vec![], |row| {
            Ok((row.try_get(3)?, binding(row)?))
        })
    }

    fn dump(&self) -> Result<Dump> {
        Ok(Dump {
            blobs: self.rows("SELECT cid, bytes FROM blobs", vec![], |row| Ok((cid_at(row, 0)?, row.try_get(1)?)))?,
            servers: self.servers()?,
            history: self.bindings()?,
            facts: self.rows("SELECT key, value FROM facts", vec![], pair)?,
            variables: self.variables()?,
            secrets: self.sealed_secrets()?,
            connections: self.rows("SELECT server, sealed FROM oauth_connections", vec![], pair)?,
            events: self.rows(event_select!("ORDER BY id"), vec![], event)?,
        })
    }

    fn fact(&self, key: &str) -> Result<Option<String>> {
        self.row("SELECT value FROM facts WHERE key = $1", vec![text(key)], first)
    }

    fn variables(&self) -> Result<BTreeMap<String, String>> {
        Ok(self.rows("SELECT name, value FROM variables", vec![], pair)?.into_iter().collect())
    }

    fn secret(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.row("SELECT sealed FROM secrets WHERE name = $1", vec![text(name)], first)
    }

    fn secret_names(&self) -> Result<Vec<String>> {
        self.rows("SELECT name FROM secrets ORDER BY name", vec![], first)
    }

    fn sealed_secrets(&self) -> Result<Vec<(String, Vec<u8>)>> {
        self.rows("SELECT name, sealed FROM secrets", vec![], pair)
    }

    fn connection(&self, server: &str) -> Result<Option<Vec<u8>>> {
        self.row("SELECT sealed FROM oauth_connections WHERE server = $1", vec![text(server)], first)
    }

    fn take_oauth_state(&self, key: &str, server: &str) -> Result<Option<Vec<u8>>> {
        let sql = "DELETE FROM oauth_states WHERE key = $1 AND server = $2 RETURNING sealed, expires";
        let read = |row: &Row| Ok((row.try_get::<_, Vec<u8>>(0)?, row.try_get::<_, i64>(1)?));
        let taken = self.row(sql, vec![text(key), text(server)], read)?;
        Ok(taken.filter(|(_, expires)| *expires > now_millis()).map(|(sealed, _)| sealed))
    }

    fn events(&self, server: &str, status: Option<EventStatus>, limit: usize) -> Result<Vec<WebhookEvent>> {
        let limit = Box::new(i64::try_from(limit).unwrap_or(i64::MAX));
        let status = Box::new(status.map(|status| status.as_str().to_owned()));
        let sql = event_select!("WHERE server = $1 AND ($2::text IS NULL OR status = $2) ORDER BY id DESC LIMIT $3");
        self.rows(sql, vec![text(server), status, limit], event)
    }

    fn due_events(&self, now: i64, limit: usize) -> Result<Vec<WebhookEvent>> {
        let limit = Box::new(i64::try_from(limit).unwrap_or(i64::MAX));
        let sql = event_select!(
            "WHERE next_attempt_at <= $1 AND status IN ('pending', 'failed') ORDER BY next_attempt_at LIMIT $2"
        );
        self.rows(sql, vec![Box::new(now), limit], event)
    }

    fn next_event_due(&self) -> Result<Option<i64>> {
        let sql = "SELECT min(next_attempt_at) FROM webhook_events WHERE status IN ('pending', 'failed')";
        Ok(self.row(sql, vec![], first::<Option<i64>>)?.flatten())
    }

    /// One UPDATE, so that of two instances claiming one event at once exactly one gets it: the second
    /// waits for the first's row lock, then finds the event no longer due.
    fn claim_event(&self, cid: &Cid, due_by: Option<i64>, until: i64) -> Result<Option<u32>> {
        let sql = "UPDATE webhook_events SET attempts = attempts + 1, next_attempt_at = $3
                   WHERE cid = $1 AND ($2::bigint IS NULL OR (next_attempt_at <= $2 AND status IN ('pending', 'failed')))
                   RETURNING attempts";
        let claimed = self.row(sql, vec![digest(cid), Box::new(due_by), Box::new(until)], first::<i32>)?;
        Ok(claimed.map(|attempts| attempts.max(0) as u32))
    }

    fn event(&self, server: &str, cid: &Cid) -> Result<Option<WebhookEvent>> {
        self.row(event_select!("WHERE server = $1 AND cid = $2"), vec![text(server), digest(cid)], event)
    }

    fn event_by_delivery(&self, server: &str, delivery_id: &str) -> Result<Option<WebhookEvent>> {
        let params = vec![text(server), text(delivery_id)];
        self.row(event_select!("WHERE server = $1 AND delivery_id = $2"), params, event)
    }

    fn event_by_body(&self, server: &str, body_cid: &Cid, since: i64) -> Result<Option<WebhookEvent>> {
        let sql =
            event_select!("WHERE server = $1 AND body_cid = $2 AND received_at >= $3 ORDER BY received_at LIMIT 1");
        self.row(sql, vec![text(server), digest(body_cid), Box::new(since)], event)
    }

    fn commit(&self, change: &Change) -> Result<()> {
        let (pool, change) = (self.pool.clone(), change.clone());
        self.run(async move {
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            commit::apply(&tx, &change, now_millis()).await?;
            Ok(tx.commit().await?)
        })
    }

    fn changes(&self) -> broadcast::Receiver<Changed> {
        self.feed.subscribe()
    }

    fn append_records(&self, records: &[InvocationRecord]) -> Result<()> {
        self.append_invocations(records)
    }

    fn records(&self, filter: &RecordFilter) -> Result<Vec<InvocationRecord>> {
        self.query_invocations(filter)
    }

    fn usage(&self, filter: &RecordFilter) -> Result<Vec<Usage>> {
        self.invocation_usage(filter)
    }

    fn prune_records(&self, keep: usize, before: i64) -> Result<u64> {
        self.prune_invocations(keep, before)
    }

    /// A lock held by a transaction on a pooled connection, which the guard keeps out of the pool until
    /// it rolls back. It is tried (`NOWAIT`) rather than waited for, so that giving up (short of
    /// [`PATIENCE`]) never leaves a wait behind.
    fn lock(&self, key: &str) -> Result<Held> {
        let (pool, key, tokio) = (self.pool.clone(), key.to_owned(), self.handle().clone());
        let give_up = tokio::time::Instant::now() + PATIENCE - Duration::from_secs(1);
        let unlock = self.run(async move {
            // Rolled back on every path from here, the connection closed if it cannot say so.
            let unlock = Unlock { held: Some(pool.get().await?), tokio };
            let client = unlock.held.as_ref().expect("held until dropped");
            client.execute("INSERT INTO locks (key) VALUES ($1) ON CONFLICT DO NOTHING", &[&key]).await?;
            loop {
                client.batch_execute("BEGIN").await?;
                let taken = client.query("SELECT 1 FROM locks WHERE key = $1 FOR UPDATE NOWAIT", &[&key]).await;
                match taken {
                    Ok(_) => break,
                    Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
                        client.batch_execute("ROLLBACK").await?
                    }
                    Err(e) => return Err(e.into()),
                }
                if tokio::time::Instant::now() >= give_up {
                    return Err(Fault::Lost(format!("the lock '{key}' stayed taken")));
                }
                tokio::time::sleep(LOCK_POLL).await;
            }
            Ok(unlock)
        })?;
        Ok(Held::new(unlock))
    }
}

/// Releases a lock when dropped, by rolling back the transaction that holds it (outside one, a
/// rollback only warns); a connection that cannot say so is closed instead, which releases it too.
struct Unlock {
    held: Option<Object>,
    tokio: tokio::runtime::Handle,
}

impl Drop for Unlock {
    fn drop(&mut self) {
        let Some(client) = self.held.take() else { return };
        self.tokio.spawn(async move {
            if client.batch_execute("ROLLBACK").await.is_err() {
                drop(Object::take(client));
            }
        });
    }
}
