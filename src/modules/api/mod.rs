//! `api::call(META, endpoint, method, data[, options])`: everything a typical API server does, once;
//! `api::all(…)` the same for every page of a list (see [`walk`] and [`pages`]).
//!
//! A server script declares its service in `META` and hands each invocation to this helper. What a call
//! follows is that declaration as the script was loaded ([`meta::Meta`](crate::meta::Meta), checked
//! when the script was saved), found through the invocation: the first argument is kept for the scripts
//! that pass `global::META`, and a changed copy of it changes nothing — not the auth or the credential,
//! the base URL and hosts, the pagination, the rate limit or the caller headers passed through.
//!
//! * **Base URL** — `META.base_url`, overridden by the variable or environment variable
//!   `<NAME>_BASE_URL` (`STRIPE_BASE_URL` for the server `stripe`). `{SECRET}` placeholders are filled
//!   from declared secrets (`https://{SHOPIFY_STORE_URL}/admin/api/2024-10`); a host without a scheme
//!   gets `https://`. The option `host` picks a named base URL from `META.hosts` instead (overridden by
//!   `<NAME>_<HOST>_BASE_URL`). The request goes out only after the egress check (see [`egress`](super::egress)).
//! * **Auth** — `META.auth`: `bearer`, `basic`, `header:<Name>`, `query:<param>`, `form:<field>`,
//!   `oauth2` (a token the runtime obtains and renews, see [`crate::oauth`]), `aws:<service>` (SigV4) or
//!   `azure_shared_key` (both signed over the finished request, body included), or `none`. The
//!   credential is `token` (a template) or the first declared secret that is set.
//! * **Options** — `META.api` and the fifth argument (which wins) may set: `token`, `scheme` (the word
//!   before the credential in a header, `Bearer` for bearer), `username`, `password` (basic auth
//!   templates), `headers` and `query` (templates), `body` (`json`, `form`, `multipart` or `text`), `response`
//!   (`json`, `text`, or `auto` by content type, with `xml_lists`), `default_endpoint` (used when the endpoint
//!   is empty), `base_url`, `host`, `timeout_ms`, `max_retries`, for signing `region` and `session_token`,
//!   `pagination` (a call's refines the declared one key by key), `rate_limit` (see
//!   [`throttle`](super::throttle); `META.api` only, as `auth` is `META`'s only), `pass_headers` (caller
//!   headers forwarded; a call's list only narrows `META`'s, which the invocation already applied).
//! * **All pages** — `api::all` walks the pages; so does `api::call` when the caller asked for all pages
//!   (`all=1`, `X-All-Pages: 1`, the MCP argument `all_pages`) and the server declares pagination.
//! * **Data** — sent as the body (per `body`) for POST, PUT, PATCH and DELETE; a map given to GET or
//!   HEAD becomes query parameters.
//! * **Result** — the parsed JSON body (or text, or `()` when empty). Failures are the documented error
//!   types: `missing_secret` before anything is sent, `upstream` with status and body excerpt,
//!   `rate_limited` with `retry_after` once retries are spent, `invalid_response`, `timeout`,
//!   `upstream_unreachable`.
//!
//! `api::variable(NAME)` reads a declared variable (`()` when unset) for scripts that act on a setting.

mod options;
mod pages;
mod request;
mod response;
mod sign;
mod walk;

use std::sync::Arc;

use rhai::{Dynamic, EvalAltResult, Map, Module};

use self::options::Options;
use self::request::{Request, build, send};
use self::response::{Expect, result};
use crate::engine::{Context, raise};
use crate::error::Error;
use crate::modules::native::{arg_error, context, func};
use crate::modules::services::Services;
use crate::modules::template::fill;

/// Registers `api::NAME(meta, endpoint, method, data[, options])` for a first argument of type `M`.
fn helper<M: rhai::Variant + Clone>(module: &mut Module, services: &Arc<Services>, name: &str, all_pages: bool) {
    let s = services.clone();
    func(name).set_into_module(module, move |_: M, endpoint: &str, method: &str, data: Dynamic| {
        call(&s, endpoint, method, &data, &Map::new(), all_pages)
    });
    let s = services.clone();
    func(name).set_into_module(module, move |_: M, endpoint: &str, method: &str, data: Dynamic, options: Map| {
        call(&s, endpoint, method, &data, &options, all_pages)
    });
}

/// `api::call` (every page when the caller asked for all pages) and `api::all` (every page), as the
/// running script's loaded declaration says, with the call's own options.
fn call(
    services: &Arc<Services>,
    endpoint: &str,
    method: &str,
    data: &Dynamic,
    overrides: &Map,
    all_pages: bool,
) -> Result<Dynamic, Box<EvalAltResult>> {
    let context = context()?;
    let options = options(services, &context, overrides)?;
    if all_pages || context.all_pages {
        return walk::walk(services, &context, &options, endpoint, method, data);
    }
    let call = Request::new(&options, services, &context, endpoint, method, data)?;
    let request = build(services, &context, &options, &call)?;
    let host = request.url.host_str().unwrap_or_default().to_owned();
    let expect = Expect::of(&options)?;
    let response = send(services, &context, &options, request)?;
    result(response, &host, &expect, &context).map_err(raise)
}

/// The call's options: the declared `META.api` with the call's own on top, and `META.oauth2.fallback` in
/// place of the grant when the grant has nothing to start from.
fn options<'a>(services: &Services, context: &'a Context, overrides: &Map) -> Result<Options<'a>, Box<EvalAltResult>> {
    let mut options = Options::new(&context.script.meta, overrides)?;
    if options.auth() == "oauth2" {
        fall_back(services, context, &mut options)?;
    }
    Ok(options)
}

/// `META.oauth2.fallback` takes over (its auth, and its token as the call's) when the grant has nothing
/// to start from. With neither set, the error names every secret that would do.
fn fall_back(services: &Services, context: &Context, options: &mut Options) -> Result<(), Box<EvalAltResult>> {
    let Some(spec) = context.script.meta.oauth2.as_ref() else { return Ok(()) };
    let Some((auth, token)) = spec.fallback.as_ref() else { return Ok(()) };
    let Some(lacking) = crate::oauth::lacking(services, context, spec)? else { return Ok(()) };
    fill(token, services, context).map_err(|error| match crate::oauth::error_of(*error) {
        Error::MissingSecret { name, .. } => raise(Error::missing_secret(format!("{lacking} or {name}"))),
        other => raise(other),
    })?;
    options.fall_back(auth, token);
    Ok(())
}

pub fn module(services: Arc<Services>) -> Module {
    let mut module = Module::new();
    // The first argument is the script's `META`, kept for the scripts that pass it: what a call follows is
    // the declaration the script was loaded with, never a map it passes. A `META` a script only passes
    // here reaches it as `()` (see `engine`'s prelude).
    for (name, all_pages) in [("call", false), ("all", true)] {
        helper::<Map>(&mut module, &services, name, all_pages);
        helper::<()>(&mut module, &services, name, all_pages);
    }
    func("has_files").set_into_module(&mut module, |data: Dynamic| crate::modules::multipart::has_files(&data));
    // A declared variable's value, `()` when it is not set: settings a script acts on beyond templates
    // (a database server's read-only mode).
    let s = services;
    func("variable").set_into_module(&mut module, move |name: &str| -> Result<Dynamic, Box<EvalAltResult>> {
        let context = context()?;
        if !context.script.meta.variables.iter().any(|v| v == name) {
            return Err(arg_error(&format!(
                "api::variable reads only declared variables: add {name} to META.variables"
            )));
        }
        let value = s.variable(name).or_else(|| context.script.meta.variable_defaults.get(name).cloned());
        Ok(value.map_or(Dynamic::UNIT, Dynamic::from))
    });
    module
}
