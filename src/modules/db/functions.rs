//! The `db` module scripts call: `db::query`, `execute` and `transaction` on the server's own database
//! (a SQLite file, or its schema of the PostgreSQL store), `db::connect` and `db::mongo` by URL (after
//! the egress check), and the methods of the handles they return. Every statement gets the
//! invocation's remaining time.

use std::sync::Arc;
use std::time::Duration;

use rhai::{Array, Dynamic, Engine, EvalAltResult, FnPtr, Map, Module, NativeCallContext};

use super::{Db, Params, mongo};
use crate::engine::{Context, raise};
use crate::error::Error;
use crate::modules::egress;
use crate::modules::native::{arg_error, context, func};
use crate::modules::services::Services;

/// The invocation and its remaining time.
fn invocation() -> Result<(Arc<Context>, Duration), Box<EvalAltResult>> {
    let context = context()?;
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
    Ok((services.databases.local(server, remaining)?, remaining))
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
            db.0.query(sql, Params::from_dynamic(params)?, remaining).map(rows)
        };
        let s = services.clone();
        let execute = move |sql: &str, params: Dynamic| {
            let (db, remaining) = own_database(&s)?;
            db.0.execute(sql, Params::from_dynamic(params)?, remaining)
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
    let s = services.clone();
    func("connect").set_into_module(&mut module, move |url: &str| {
        let (context, remaining) = invocation()?;
        egress::check_database(&s, &context, url)?;
        s.databases.connect(url, remaining)
    });
    let s = services;
    func("mongo").set_into_module(&mut module, move |uri: &str| {
        let (context, remaining) = invocation()?;
        egress::check_mongodb(&s, &context, uri)?;
        s.databases.mongo(uri, remaining)
    });
    module
}

/// Methods on the handles `db::connect` returns and transactions hand out.
pub fn register_types(engine: &mut Engine) {
    engine.register_type_with_name::<Db>("Database");
    engine.register_fn("query", |db: &mut Db, sql: &str| -> Result<Array, Box<EvalAltResult>> {
        let (_, remaining) = invocation()?;
        db.0.query(sql, Params::Positional(Vec::new()), remaining).map(rows)
    });
    engine.register_fn("query", |db: &mut Db, sql: &str, params: Dynamic| -> Result<Array, Box<EvalAltResult>> {
        let (_, remaining) = invocation()?;
        db.0.query(sql, Params::from_dynamic(params)?, remaining).map(rows)
    });
    engine.register_fn("execute", |db: &mut Db, sql: &str| -> Result<i64, Box<EvalAltResult>> {
        let (_, remaining) = invocation()?;
        db.0.execute(sql, Params::Positional(Vec::new()), remaining)
    });
    engine.register_fn("execute", |db: &mut Db, sql: &str, params: Dynamic| -> Result<i64, Box<EvalAltResult>> {
        let (_, remaining) = invocation()?;
        db.0.execute(sql, Params::from_dynamic(params)?, remaining)
    });
    engine.register_fn("transaction", |context: NativeCallContext, db: &mut Db, body: FnPtr| {
        let (_, remaining) = invocation()?;
        run_transaction(db, remaining, &context, &body)
    });
    engine.register_type_with_name::<mongo::Mongo>("MongoDB");
    engine.register_fn(
        "command",
        |m: &mut mongo::Mongo, database: &str, name: &str, value: Dynamic| -> Result<Map, Box<EvalAltResult>> {
            let (_, remaining) = invocation()?;
            m.command(database, name, &value, &Map::new(), remaining)
        },
    );
    engine.register_fn(
        "command",
        |m: &mut mongo::Mongo,
         database: &str,
         name: &str,
         value: Dynamic,
         fields: Map|
         -> Result<Map, Box<EvalAltResult>> {
            let (_, remaining) = invocation()?;
            m.command(database, name, &value, &fields, remaining)
        },
    );
}
