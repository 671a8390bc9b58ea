//! `db`: SQL for scripts — each server's own database, and PostgreSQL or MySQL by URL.
//!
//! ```rhai
//! db::execute("CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, at INTEGER)");
//! db::execute("INSERT INTO seen VALUES (?, ?)", [id, time::unix()]);
//! let rows = db::query("SELECT * FROM seen WHERE at > :since", #{ since: 0 });
//! db::transaction(|tx| { tx.execute("DELETE FROM seen", []); tx.execute("INSERT INTO seen VALUES ('a', 1)", []) });
//! let pg = db::connect("postgres://user@127.0.0.1/app");
//! let rows = pg.query("SELECT id, name FROM users WHERE id = $1", [42]);
//! let mongo = db::mongo("mongodb://user@127.0.0.1/app");
//! let reply = mongo.command("app", "find", "users", #{ filter: #{ age: #{ "$gt": 30 } } });
//! ```
//!
//! Parameters are always bound, never interpolated: an array binds positionally, a map by name.
//! Rows come back as maps with faithful types: integers, floats, text, booleans, `()` for NULL,
//! timestamps as RFC 3339 text, bytes as base64, JSON columns as values.
//!
//! A server's own database lives with the store. With the SQLite store it is a file of its own under
//! `<data>/db/` ([`sqlite`]), which cannot attach other files, so a script can never reach the runtime's
//! store. With the PostgreSQL store it is a schema of the store's database, reached as a role of the
//! server's own that can reach nothing else ([`schemas`]), with the same `?` and `:name` placeholders
//! ([`placeholders`]). Every statement stops at the invocation's deadline.
//!
//! No statement holds a script's thread. The drivers (tokio-postgres pooled by deadpool, mysql_async,
//! and SQLite on a blocking pool) live on a small runtime of their own; a statement is a task there and
//! the script waits on it with [`wait`], suspending its fiber. Every backend is a [`Connector`] handing
//! out [`Session`]s, so statements, transactions and their clean-up are written once, in [`Pooled`]; a
//! server's schema on the store is PostgreSQL's own session behind the placeholder translation.
//! [`Databases`] keeps what the process opened; [`functions`] is the module scripts call.

pub mod functions;
mod mongo;
mod mysql;
mod placeholders;
mod postgres;
mod schemas;
mod sqlite;
mod tally;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use rhai::{Array, Dynamic, EvalAltResult, Map};

use super::native::arg_error;
use super::values::{scalar_text, to_json, to_json_text};
use crate::engine::{raise, wait};
use crate::error::Error;

/// Bound parameters.
#[derive(Debug, Clone)]
pub enum Params {
    Positional(Vec<Dynamic>),
    Named(Vec<(String, Dynamic)>),
}

impl Params {
    fn from_dynamic(value: Dynamic) -> Result<Params, Box<EvalAltResult>> {
        if value.is_unit() {
            Ok(Params::Positional(Vec::new()))
        } else if value.is_array() {
            Ok(Params::Positional(value.cast::<Array>()))
        } else if value.is_map() {
            Ok(Params::Named(value.cast::<Map>().into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
        } else {
            Err(arg_error("SQL parameters are an array (positional) or a map (named)"))
        }
    }
}

/// What a database handle does for a script. Every call suspends the script until the database
/// answers; none holds the script's thread while it waits.
pub trait Database: Send + Sync {
    fn query(&self, sql: &str, params: Params, timeout: Duration) -> Result<Vec<Map>, Box<EvalAltResult>>;
    fn execute(&self, sql: &str, params: Params, timeout: Duration) -> Result<i64, Box<EvalAltResult>>;
    /// Runs `body` inside a transaction, handing it the database to use; commits when `body` succeeds
    /// and rolls back when it fails.
    fn transaction(
        &self,
        timeout: Duration,
        body: &mut dyn FnMut(Db) -> Result<Dynamic, Box<EvalAltResult>>,
    ) -> Result<Dynamic, Box<EvalAltResult>>;
}

/// A statement's outcome as the drivers report it.
type Sql<T> = Result<T, Box<EvalAltResult>>;

/// One checked-out connection: what the SQLite, PostgreSQL and MySQL backends implement. Its futures
/// run on the drivers' runtime ([`on_io`]), never on a script's thread.
trait Session: Send + 'static {
    fn query(&mut self, sql: &str, params: &Params) -> impl Future<Output = Sql<Vec<Map>>> + Send;
    fn execute(&mut self, sql: &str, params: &Params) -> impl Future<Output = Sql<i64>> + Send;
    /// Ends the transaction [`Connector::begin`] opened: commits, or rolls back. A session dropped
    /// without finishing never goes back to its pool with the transaction open.
    fn finish(self, commit: bool) -> impl Future<Output = Sql<()>> + Send;
}

/// Where sessions come from: a pool, or a server's one SQLite connection.
trait Connector: Send + Sync + 'static {
    type Session: Session;
    /// A session whose statements stop after `timeout`.
    fn checkout(&self, timeout: Duration) -> impl Future<Output = Sql<Self::Session>> + Send + 'static;
    /// A session inside a new transaction whose statements stop after `timeout`.
    fn begin(&self, timeout: Duration) -> impl Future<Output = Sql<Self::Session>> + Send + 'static;
}

/// A connector as scripts use it: each statement on a session of its own, a transaction on one held
/// session while the script's closure runs.
struct Pooled<C>(C);

impl<C: Connector> Database for Pooled<C> {
    fn query(&self, sql: &str, params: Params, timeout: Duration) -> Result<Vec<Map>, Box<EvalAltResult>> {
        let (checkout, sql) = (self.0.checkout(timeout), sql.to_owned());
        on_io(async move { checkout.await?.query(&sql, &params).await })
    }

    fn execute(&self, sql: &str, params: Params, timeout: Duration) -> Result<i64, Box<EvalAltResult>> {
        let (checkout, sql) = (self.0.checkout(timeout), sql.to_owned());
        on_io(async move { checkout.await?.execute(&sql, &params).await })
    }

    fn transaction(
        &self,
        timeout: Duration,
        body: &mut dyn FnMut(Db) -> Result<Dynamic, Box<EvalAltResult>>,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        let session = on_io(self.0.begin(timeout))?;
        let held = Arc::new(Held(Mutex::new(Some(session))));
        let outcome = body(Db(held.clone()));
        // A statement that failed to come back (deadline, caller gone) dropped the session, which
        // rolled the transaction back.
        let session = held.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        let session = session.ok_or_else(|| sql_error("the transaction was abandoned and rolled back"));
        match outcome {
            Ok(value) => on_io(async move { session?.finish(true).await }).map(|()| value),
            Err(error) => {
                // The script may be stopping (deadline, caller gone): roll back without waiting.
                if let (Ok(session), Ok(drivers)) = (session, drivers()) {
                    drivers.spawn(session.finish(false));
                }
                Err(error)
            }
        }
    }
}

/// The session a transaction holds; usable only while the transaction's closure runs.
struct Held<S>(Mutex<Option<S>>);

impl<S: Session> Held<S> {
    fn take(&self) -> Result<S, Box<EvalAltResult>> {
        let taken = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        taken.ok_or_else(|| sql_error("the transaction is over"))
    }

    /// Gives the session back after a statement that returned it.
    fn keep<T>(&self, (session, result): (S, Sql<T>)) -> Sql<T> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(session);
        result
    }
}

impl<S: Session> Database for Held<S> {
    fn query(&self, sql: &str, params: Params, _: Duration) -> Result<Vec<Map>, Box<EvalAltResult>> {
        let (mut session, sql) = (self.take()?, sql.to_owned());
        self.keep(on_io(async move {
            let result = session.query(&sql, &params).await;
            Ok((session, result))
        })?)
    }

    fn execute(&self, sql: &str, params: Params, _: Duration) -> Result<i64, Box<EvalAltResult>> {
        let (mut session, sql) = (self.take()?, sql.to_owned());
        self.keep(on_io(async move {
            let result = session.execute(&sql, &params).await;
            Ok((session, result))
        })?)
    }

    fn transaction(
        &self,
        _: Duration,
        _: &mut dyn FnMut(Db) -> Result<Dynamic, Box<EvalAltResult>>,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        Err(sql_error("a transaction is already open on this connection"))
    }
}

/// The runtime the database drivers live on: one thread of its own, whatever runs the scripts, so a
/// connection's socket and background task never depend on which script thread opened it. SQLite
/// statements run on its blocking pool.
fn drivers() -> Result<&'static tokio::runtime::Runtime, Box<EvalAltResult>> {
    static DRIVERS: LazyLock<std::io::Result<tokio::runtime::Runtime>> = LazyLock::new(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(16)
            .thread_name("db")
            .enable_all()
            .build()
    });
    DRIVERS.as_ref().map_err(|e| raise(Error::internal("database driver runtime", e)))
}

/// Runs `work` on the drivers' runtime and suspends the script until it is done. If the script stops
/// waiting (deadline, caller gone), the work is aborted: a held session is dropped, which rolls back.
fn on_io<T: Send + 'static>(work: impl Future<Output = Sql<T>> + Send + 'static) -> Sql<T> {
    struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);
    impl<T> Drop for AbortOnDrop<T> {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let mut task = AbortOnDrop(drivers()?.spawn(work));
    let joined = wait(std::future::poll_fn(move |cx| std::pin::Pin::new(&mut task.0).poll(cx)))?;
    joined.map_err(|e| raise(Error::internal("database task", e)))?
}

/// A database handle as scripts hold it.
#[derive(Clone)]
pub struct Db(Arc<dyn Database>);

/// Where servers' own databases are: SQLite files in a directory, or schemas of the PostgreSQL store.
enum Own {
    Files(PathBuf),
    Store(Arc<schemas::Schemas>),
}

/// Connections the process keeps: each server's own database, and pools by URL.
pub struct Databases {
    own: Own,
    opened: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Db>>>>,
    pools: Mutex<HashMap<String, Db>>,
    mongo: Mutex<HashMap<String, mongo::Mongo>>,
}

impl Databases {
    /// Servers' own databases as SQLite files in `dir`.
    pub fn new(dir: PathBuf) -> Databases {
        Databases::with(Own::Files(dir))
    }

    /// Servers' own databases where the store is: schemas of its database when it is PostgreSQL (see
    /// [`schemas`], their roles' passwords derived from `master_key`), else files in `<data_dir>/db`.
    pub fn for_store(store: Option<&str>, data_dir: &Path, master_key: &[u8; 32]) -> Result<Databases, Error> {
        Ok(match store.filter(|location| crate::store::is_postgres(location)) {
            Some(url) => Databases::with(Own::Store(Arc::new(schemas::Schemas::new(url, master_key)?))),
            None => Databases::new(data_dir.join("db")),
        })
    }

    fn with(own: Own) -> Databases {
        Databases { own, opened: Mutex::default(), pools: Mutex::default(), mongo: Mutex::default() }
    }

    /// The own database of `server`, opened once and kept. Scripts that ask for it while it is being
    /// opened wait for that opening: a server's first calls arriving at once make one pool, and set
    /// its role up once. An opening that fails is tried again by the next call.
    fn local(&self, server: &str, timeout: Duration) -> Result<Db, Box<EvalAltResult>> {
        let cell = self.opened.lock().unwrap_or_else(|p| p.into_inner()).entry(server.to_owned()).or_default().clone();
        if let Some(db) = cell.get() {
            return Ok(db.clone());
        }
        let opening: std::pin::Pin<Box<dyn Future<Output = Sql<Db>> + Send>> = match &self.own {
            Own::Files(dir) => {
                let path = dir.join(format!("{server}.sqlite"));
                Box::pin(async move {
                    let opened = tokio::task::spawn_blocking(move || sqlite::Local::open(&path)).await;
                    let local = opened.map_err(|e| raise(Error::internal("server database", e)))??;
                    Ok(Db(Arc::new(Pooled(local))))
                })
            }
            Own::Store(schemas) => {
                let open = schemas.open(server, timeout);
                Box::pin(async move { Ok(Db(Arc::new(Pooled(open.await?)))) })
            }
        };
        on_io(async move { cell.get_or_try_init(|| opening).await.cloned() })
    }

    /// A pooled connection to a PostgreSQL or MySQL URL. The first connection is made without holding
    /// the map's lock; two scripts racing to open one URL each connect, and one pool is kept.
    fn connect(&self, url: &str, timeout: Duration) -> Result<Db, Box<EvalAltResult>> {
        if let Some(db) = self.pools.lock().unwrap_or_else(|p| p.into_inner()).get(url) {
            return Ok(db.clone());
        }
        let db = match url.split_once("://").map(|(scheme, _)| scheme) {
            Some("postgres" | "postgresql") => {
                let config = postgres::config(url)?;
                Db(Arc::new(Pooled(on_io(postgres::Pool::open(config, postgres::SIZE, timeout))?)))
            }
            Some("mysql" | "mariadb") => Db(Arc::new(Pooled(on_io(mysql::Pool::open(url.to_owned(), timeout))?))),
            _ => return Err(arg_error("db::connect takes a postgres:// or mysql:// URL")),
        };
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        Ok(pools.entry(url.to_owned()).or_insert(db).clone())
    }

    /// The MongoDB client for `uri`, made once and kept.
    fn mongo(&self, uri: &str, timeout: Duration) -> Result<mongo::Mongo, Box<EvalAltResult>> {
        if let Some(client) = self.mongo.lock().unwrap_or_else(|p| p.into_inner()).get(uri) {
            return Ok(client.clone());
        }
        let client = on_io(mongo::Mongo::open(uri.to_owned(), timeout))?;
        let mut open = self.mongo.lock().unwrap_or_else(|p| p.into_inner());
        Ok(open.entry(uri.to_owned()).or_insert(client).clone())
    }
}

/// A bound parameter in the types every SQL backend has; what each backend binds it as is its own affair.
enum Param {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
}

impl Param {
    /// Booleans bind as 0 or 1; maps and arrays as their JSON text.
    fn of(value: &Dynamic) -> Result<Param, Box<EvalAltResult>> {
        Ok(if value.is_unit() {
            Param::Null
        } else if let Ok(i) = value.as_int() {
            Param::Int(i)
        } else if let Ok(f) = value.as_float() {
            Param::Float(f)
        } else if let Ok(b) = value.as_bool() {
            Param::Int(b as i64)
        } else if value.is_string() {
            Param::Text(value.to_string())
        } else if value.is_blob() {
            Param::Bytes(value.clone().cast())
        } else {
            Param::Text(to_json_text(value, false)?)
        })
    }
}

/// Formats bytes the way every backend reports them.
fn base64(bytes: &[u8]) -> Dynamic {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes).into()
}

/// A SQL failure as the script sees it: an error it can catch, reported with the statement's position.
fn sql_error(error: impl std::fmt::Display) -> Box<EvalAltResult> {
    arg_error(&format!("SQL error: {error}"))
}
