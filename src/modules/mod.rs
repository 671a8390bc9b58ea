//! Native modules bound into every script, and the services they share.
//!
//! Each file is one Rhai module registered under its own namespace (`http::get`, `secret::require`,
//! `db::query`, …). Functions that wait on the network, the disk or the store first call
//! [`may_block`](crate::engine::may_block): only a run on a fiber may wait (it suspends on the future and
//! holds no thread), so an inline run stops there and starts again as a fiber. Functions that
//! need to know which invocation they serve (its server name, declared secrets, deadline) read it from
//! the sandbox with [`context`]; none of them can reach the runtime's own store other than through the
//! narrow doors here (secrets the script declared, variables).

pub mod api;
mod aws;
mod azure;
mod codec;
mod crypto;
pub mod db;
pub mod egress;
pub mod http;
pub(crate) mod jwt;
pub(crate) mod pages;
pub(crate) mod secret;
pub(crate) mod throttle;
mod time;
mod xml;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rhai::{Dynamic, Engine, EvalAltResult, FuncRegistration, Map, Module, Position};

use crate::engine::{Context, nesting, raise};
use crate::error::Error;
use crate::secrets::{Opened, Secrets, Vault};
use crate::store::Store;

/// What native modules share: the store (for writing secrets only), the vault, one HTTP client,
/// database connections, and snapshots of the variables and opened secrets that scripts read without
/// touching the store.
pub struct Services {
    pub store: Arc<dyn Store>,
    pub vault: Vault,
    pub http: http::HttpClient,
    pub databases: db::Databases,
    /// The registry's variables, refreshed whenever the store changes.
    pub variables: ArcSwap<BTreeMap<String, String>>,
    /// Every stored secret, opened, refreshed whenever the store changes.
    opened: ArcSwap<Opened>,
    /// OAuth access tokens, per server.
    pub oauth: crate::oauth::Tokens,
    /// Outbound rate limits, per server.
    pub throttles: throttle::Throttles,
}

impl Services {
    pub fn new(
        store: Arc<dyn Store>,
        vault: Vault,
        data_dir: PathBuf,
        http: http::HttpSettings,
    ) -> Result<Services, Error> {
        Ok(Services {
            store,
            vault,
            http: http::HttpClient::new(http)?,
            databases: db::Databases::new(data_dir.join("db")),
            variables: ArcSwap::default(),
            opened: ArcSwap::default(),
            oauth: crate::oauth::Tokens::default(),
            throttles: throttle::Throttles::default(),
        })
    }

    pub fn secrets(&self) -> Secrets<'_> {
        Secrets { store: self.store.as_ref(), vault: &self.vault, opened: &self.opened }
    }

    /// A variable of the registry, else the process environment variable of the same name (never a
    /// reserved one: see [`environment`](crate::environment)).
    pub fn variable(&self, name: &str) -> Option<String> {
        self.variables.load().get(name).cloned().or_else(|| crate::environment::var(name))
    }
}

/// Registers every native module on the engine.
pub fn register(engine: &mut Engine, services: Arc<Services>) {
    let modules: [(&str, Module); 15] = [
        ("http", http::module(services.clone())),
        ("secret", secret::module(services.clone())),
        ("db", db::module(services.clone())),
        ("api", api::module(services.clone())),
        ("json", codec::json_module()),
        ("base64", codec::base64_module()),
        ("hex", codec::hex_module()),
        ("url", codec::url_module()),
        ("crypto", crypto::module()),
        ("uuid", crypto::uuid_module()),
        ("time", time::module()),
        ("aws", aws::module()),
        ("azure", azure::module()),
        ("jwt", jwt::module()),
        ("xml", xml::module()),
    ];
    for (name, module) in modules {
        engine.register_static_module(name, module.into());
    }
    db::register_types(engine);
}

/// What a native function returns.
pub(crate) type Fallible<T> = Result<T, Box<EvalAltResult>>;

/// A function registration in the module's own namespace, never constant-folded (natives read the
/// clock, the network or the store).
pub(crate) fn func(name: &str) -> FuncRegistration {
    FuncRegistration::new(name).in_internal_namespace().with_volatility(true)
}

/// A script passed something a native function cannot use: a script error at the call.
pub(crate) fn arg_error(message: &str) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(message.into(), Position::NONE).into()
}

/// The invocation this run serves.
pub(crate) fn context() -> Result<Arc<Context>, Box<EvalAltResult>> {
    crate::engine::context().ok_or_else(|| arg_error("this function is only available while a server runs"))
}

/// The `limit_exceeded` error for a value over a bound of [`nesting`].
fn over_bound(exceeded: nesting::Exceeded) -> Box<EvalAltResult> {
    let message = exceeded.message("the value", nesting::MAX_BYTES);
    raise(Error::limit_exceeded(exceeded.limit(), message, crate::error::Location::default()))
}

/// A Rhai value as JSON, refused beyond the bounds of [`nesting`].
pub(crate) fn to_json(value: &Dynamic) -> Result<serde_json::Value, Box<EvalAltResult>> {
    nesting::measure(value, nesting::MAX_BYTES).map_err(over_bound)?;
    rhai::serde::from_dynamic(value).map_err(|e| arg_error(&format!("value cannot be sent as JSON: {e}")))
}

/// A Rhai value as JSON text, refused beyond the bounds of [`nesting`].
pub(crate) fn to_json_text(value: &Dynamic, pretty: bool) -> Fallible<String> {
    match nesting::to_json_bytes(value, pretty, nesting::MAX_BYTES) {
        Ok(bytes) => String::from_utf8(bytes).map_err(|_| arg_error("JSON text is UTF-8")),
        Err(nesting::JsonError::Exceeded(exceeded)) => Err(over_bound(exceeded)),
        Err(nesting::JsonError::Invalid(e)) => Err(arg_error(&format!("value cannot be written as JSON: {e}"))),
        Err(nesting::JsonError::Stopped(stop)) => Err(stop),
    }
}

/// A scalar as the text it stands for in a query string or form (strings without quotes).
pub(crate) fn scalar_text(value: &Dynamic) -> String {
    if value.is_string() || value.is_int() || value.is_float() || value.is_bool() || value.is_unit() {
        if value.is_unit() { String::new() } else { value.to_string() }
    } else {
        to_json_text(value, false).unwrap_or_default()
    }
}

/// A map's entries as names and texts (query parameters, headers, signed fields), measured first like
/// [`form_fields`]: a 16 MB string shared by a thousand entries is 16 GB of text, refused before it is
/// built.
pub(crate) fn text_pairs(map: &Map) -> Fallible<Vec<(String, String)>> {
    nesting::measure_map(map, nesting::MAX_BYTES).map_err(over_bound)?;
    Ok(map.iter().map(|(name, value)| (name.to_string(), scalar_text(value))).collect())
}

/// A value as form fields, nesting in the bracket notation most form-encoded APIs read:
/// `#{ a: 1, meta: #{ k: "v" }, items: ["x"] }` → `a=1`, `meta[k]=v`, `items[0]=x`.
pub(crate) fn form_fields(value: &Dynamic) -> Fallible<Vec<(String, String)>> {
    nesting::measure(value, nesting::MAX_BYTES).map_err(over_bound)?;
    fn walk(prefix: &str, value: &Dynamic, out: &mut Vec<(String, String)>) {
        let key = |k: &str| if prefix.is_empty() { k.to_owned() } else { format!("{prefix}[{k}]") };
        if let Some(map) = value.read_lock::<rhai::Map>() {
            for (k, v) in map.iter() {
                walk(&key(k), v, out);
            }
        } else if let Some(array) = value.read_lock::<rhai::Array>() {
            for (i, v) in array.iter().enumerate() {
                walk(&key(&i.to_string()), v, out);
            }
        } else {
            out.push((prefix.to_owned(), scalar_text(value)));
        }
    }
    let mut out = Vec::new();
    walk("", value, &mut out);
    Ok(out)
}
