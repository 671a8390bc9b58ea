//! `db`: SQL for scripts — each server's own SQLite database, and PostgreSQL or MySQL by URL.
//!
//! ```rhai
//! db::execute("CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, at INTEGER)");
//! db::execute("INSERT INTO seen VALUES (?, ?)", [id, time::unix()]);
//! let rows = db::query("SELECT * FROM seen WHERE at > :since", #{ since: 0 });
//! db::transaction(|tx| { tx.execute("DELETE FROM seen", []); tx.execute("INSERT INTO seen VALUES ('a', 1)", []) });
//! let pg = db::connect("postgres://user@127.0.0.1/app");
//! let rows = pg.query("SELECT id, name FROM users WHERE id = $1", [42]);
//! ```
//!
//! Parameters are always bound, never interpolated: an array binds positionally, a map by name.
//! Rows come back as maps with faithful types: integers, floats, text, booleans, `()` for NULL,
//! timestamps as RFC 3339 text, bytes as base64, JSON columns as values.
//!
//! The per-server database is a file of its own under `<data>/db/`; it cannot attach other files, so a
//! script can never reach the runtime's store. Every statement stops at the invocation's deadline.

mod mysql;
mod postgres;
mod sqlite;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rhai::{Array, Dynamic, Engine, EvalAltResult, FnPtr, Map, Module, NativeCallContext};

use super::{Services, arg_error, func};
use crate::engine::{Context, may_block, raise};
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

/// What the script's closure gets inside a transaction, and what a connection does.
pub trait Database: Send + Sync {
    fn query(&self, sql: &str, params: &Params, timeout: Duration) -> Result<Vec<Map>, Box<EvalAltResult>>;
    fn execute(&self, sql: &str, params: &Params, timeout: Duration) -> Result<i64, Box<EvalAltResult>>;
    /// Runs `body` inside a transaction, handing it the database to use; commits when `body` succeeds
    /// and rolls back when it fails.
    fn transaction(
        &self,
        timeout: Duration,
        body: &mut dyn FnMut(Db) -> Result<Dynamic, Box<EvalAltResult>>,
    ) -> Result<Dynamic, Box<EvalAltResult>>;
}

/// One checked-out connection to a database server: what the PostgreSQL and MySQL backends implement.
trait Session: Send + 'static {
    fn query(&mut self, sql: &str, params: &Params) -> Result<Vec<Map>, Box<EvalAltResult>>;
    fn execute(&mut self, sql: &str, params: &Params) -> Result<i64, Box<EvalAltResult>>;
    /// Runs a statement without parameters or results (`BEGIN`, `COMMIT`, `ROLLBACK`).
    fn run(&mut self, statement: &str) -> Result<(), Box<EvalAltResult>>;
}

/// A pool of sessions.
trait Connector: Send + Sync + 'static {
    type Session: Session;
    /// The statement that opens a transaction.
    const BEGIN: &'static str;
    /// A session whose statements stop after `timeout`.
    fn checkout(&self, timeout: Duration) -> Result<Self::Session, Box<EvalAltResult>>;
}

/// A pool as scripts use it: each statement on a session of its own, a transaction on one held session.
struct Pooled<C>(C);

impl<C: Connector> Database for Pooled<C> {
    fn query(&self, sql: &str, params: &Params, timeout: Duration) -> Result<Vec<Map>, Box<EvalAltResult>> {
        self.0.checkout(timeout)?.query(sql, params)
    }

    fn execute(&self, sql: &str, params: &Params, timeout: Duration) -> Result<i64, Box<EvalAltResult>> {
        self.0.checkout(timeout)?.execute(sql, params)
    }

    fn transaction(
        &self,
        timeout: Duration,
        body: &mut dyn FnMut(Db) -> Result<Dynamic, Box<EvalAltResult>>,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        let mut session = self.0.checkout(timeout)?;
        session.run(C::BEGIN)?;
        let held = Arc::new(Held(Mutex::new(Some(session))));
        let outcome = body(Db(held.clone()));
        let mut session =
            held.0.lock().unwrap_or_else(|p| p.into_inner()).take().expect("the transaction holds its session");
        match outcome {
            Ok(value) => session.run("COMMIT").map(|()| value),
            Err(error) => {
                let _ = session.run("ROLLBACK");
                Err(error)
            }
        }
    }
}

/// The session a transaction holds; usable only while the transaction's closure runs.
struct Held<S>(Mutex<Option<S>>);

impl<S: Session> Held<S> {
    fn with<T>(&self, f: impl FnOnce(&mut S) -> Result<T, Box<EvalAltResult>>) -> Result<T, Box<EvalAltResult>> {
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(guard.as_mut().ok_or_else(|| sql_error("the transaction is over"))?)
    }
}

impl<S: Session> Database for Held<S> {
    fn query(&self, sql: &str, params: &Params, _: Duration) -> Result<Vec<Map>, Box<EvalAltResult>> {
        self.with(|session| session.query(sql, params))
    }

    fn execute(&self, sql: &str, params: &Params, _: Duration) -> Result<i64, Box<EvalAltResult>> {
        self.with(|session| session.execute(sql, params))
    }

    fn transaction(
        &self,
        _: Duration,
        _: &mut dyn FnMut(Db) -> Result<Dynamic, Box<EvalAltResult>>,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        Err(sql_error("a transaction is already open on this connection"))
    }
}

/// A database handle as scripts hold it.
#[derive(Clone)]
pub struct Db(Arc<dyn Database>);

/// Connections the process keeps: each server's SQLite file, and pools by URL.
pub struct Databases {
    dir: PathBuf,
    sqlite: Mutex<HashMap<String, Db>>,
    pools: Mutex<HashMap<String, Db>>,
}

impl Databases {
    pub fn new(dir: PathBuf) -> Databases {
        Databases { dir, sqlite: Mutex::default(), pools: Mutex::default() }
    }

    /// The SQLite database of `server`, opened once and kept.
    fn local(&self, server: &str) -> Result<Db, Box<EvalAltResult>> {
        let mut open = self.sqlite.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(db) = open.get(server) {
            return Ok(db.clone());
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| raise(Error::internal("db directory", e)))?;
        let db = Db(Arc::new(sqlite::Local::open(&self.dir.join(format!("{server}.sqlite")))?));
        open.insert(server.to_owned(), db.clone());
        Ok(db)
    }

    /// A pooled connection to a PostgreSQL or MySQL URL.
    fn connect(&self, url: &str, timeout: Duration) -> Result<Db, Box<EvalAltResult>> {
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(db) = pools.get(url) {
            return Ok(db.clone());
        }
        let db = match url.split_once("://").map(|(scheme, _)| scheme) {
            Some("postgres" | "postgresql") => Db(Arc::new(Pooled(postgres::Pool::open(url, timeout)?))),
            Some("mysql" | "mariadb") => Db(Arc::new(Pooled(mysql::Pool::open(url, timeout)?))),
            _ => return Err(arg_error("db::connect takes a postgres:// or mysql:// URL")),
        };
        pools.insert(url.to_owned(), db.clone());
        Ok(db)
    }
}

/// The invocation, checked to be allowed to block, and its remaining time.
fn invocation() -> Result<(Arc<Context>, Duration), Box<EvalAltResult>> {
    may_block()?;
    let context = super::context()?;
    let remaining = context.remaining();
    if remaining.is_zero() {
        return Err(raise(Error::Timeout("no time left for the query".into())));
    }
    Ok((context, remaining))
}

fn own_database(services: &Services) -> Result<(Db, Duration), Box<EvalAltResult>> {
    let (context, remaining) = invocation()?;
    let server = context
        .server
        .as_deref()
        .ok_or_else(|| arg_error("db:: needs a server name: invoke the script by its name (or run it from a file)"))?;
    Ok((services.databases.local(server)?, remaining))
}

fn run_transaction(
    db: &Db,
    remaining: Duration,
    context: &NativeCallContext,
    body: &FnPtr,
) -> Result<Dynamic, Box<EvalAltResult>> {
    db.0.transaction(remaining, &mut |tx: Db| body.call_within_context::<Dynamic>(context, (tx,)))
}

fn rows(rows: Vec<Map>) -> Array {
    rows.into_iter().map(Dynamic::from).collect()
}

pub fn module(services: Arc<Services>) -> Module {
    let mut module = Module::new();
    for with_params in [false, true] {
        let s = services.clone();
        let query = move |sql: &str, params: Dynamic| {
            let (db, remaining) = own_database(&s)?;
            db.0.query(sql, &Params::from_dynamic(params)?, remaining).map(rows)
        };
        let s = services.clone();
        let execute = move |sql: &str, params: Dynamic| {
            let (db, remaining) = own_database(&s)?;
            db.0.execute(sql, &Params::from_dynamic(params)?, remaining)
        };
        if with_params {
            func("query").set_into_module(&mut module, query);
            func("execute").set_into_module(&mut module, execute);
        } else {
            func("query").set_into_module(&mut module, move |sql: &str| query(sql, Dynamic::UNIT));
            func("execute").set_into_module(&mut module, move |sql: &str| execute(sql, Dynamic::UNIT));
        }
    }
    let s = services.clone();
    func("transaction").set_into_module(&mut module, move |context: NativeCallContext, body: FnPtr| {
        let (db, remaining) = own_database(&s)?;
        run_transaction(&db, remaining, &context, &body)
    });
    let s = services;
    func("connect").set_into_module(&mut module, move |url: &str| {
        let (context, remaining) = invocation()?;
        super::egress::check_database(&s, &context, url)?;
        s.databases.connect(url, remaining)
    });
    module
}

/// Methods on the handles `db::connect` returns and transactions hand out.
pub fn register_types(engine: &mut Engine) {
    engine.register_type_with_name::<Db>("Database");
    engine.register_fn("query", |db: &mut Db, sql: &str| -> Result<Array, Box<EvalAltResult>> {
        let (_, remaining) = invocation()?;
        db.0.query(sql, &Params::Positional(Vec::new()), remaining).map(rows)
    });
    engine.register_fn("query", |db: &mut Db, sql: &str, params: Dynamic| -> Result<Array, Box<EvalAltResult>> {
        let (_, remaining) = invocation()?;
        db.0.query(sql, &Params::from_dynamic(params)?, remaining).map(rows)
    });
    engine.register_fn("execute", |db: &mut Db, sql: &str| -> Result<i64, Box<EvalAltResult>> {
        let (_, remaining) = invocation()?;
        db.0.execute(sql, &Params::Positional(Vec::new()), remaining)
    });
    engine.register_fn("execute", |db: &mut Db, sql: &str, params: Dynamic| -> Result<i64, Box<EvalAltResult>> {
        let (_, remaining) = invocation()?;
        db.0.execute(sql, &Params::from_dynamic(params)?, remaining)
    });
    engine.register_fn("transaction", |context: NativeCallContext, db: &mut Db, body: FnPtr| {
        let (_, remaining) = invocation()?;
        run_transaction(db, remaining, &context, &body)
    });
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
            Param::Text(super::to_json_text(value, false)?)
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
