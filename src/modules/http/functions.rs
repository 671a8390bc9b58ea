//! The `http` module scripts call: `http::get`, `post`, `put`, `patch`, `delete`, `request` and
//! `parallel`, each sent through the shared client after the egress check, answered as
//! `#{ status, headers, body, json }`.

use std::time::Duration;

use reqwest::Method;
use rhai::{Dynamic, EvalAltResult, Map, Module};

use super::{Body, Incoming, Outgoing, header, parse_url};
use crate::engine::{raise, wait};
use crate::modules::egress::{self, Policy};
use crate::modules::multipart::{multipart, ordered};
use crate::modules::native::{arg_error, context, func};
use crate::modules::services::Services;
use crate::modules::values::{form_fields, text_pairs, to_json};

/// The response as scripts see it: `#{ status, headers, body, json }`.
pub fn response_map(response: &Incoming) -> Dynamic {
    let mut headers = Map::new();
    for (name, value) in &response.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().into())
            .and_modify(|existing: &mut Dynamic| *existing = format!("{existing}, {value}").into())
            .or_insert_with(|| value.clone().into());
    }
    let mut map = Map::new();
    map.insert("status".into(), (response.status.as_u16() as i64).into());
    map.insert("headers".into(), headers.into());
    map.insert("body".into(), String::from_utf8_lossy(&response.body).into_owned().into());
    map.insert("json".into(), serde_json::from_slice::<Dynamic>(&response.body).unwrap_or(Dynamic::UNIT));
    map.into()
}

/// Reads a script's request options into `request`.
fn apply_options(request: &mut Outgoing, options: &Map) -> Result<(), Box<EvalAltResult>> {
    for (key, value) in options {
        match key.as_str() {
            "method" | "url" => {}
            "headers" => {
                for (name, value) in
                    value.clone().try_cast::<Map>().ok_or_else(|| arg_error("headers must be a map"))?
                {
                    let (name, value) = header(&name, &value.to_string())?;
                    request.headers.append(name, value);
                }
            }
            "query" => {
                let query = value.read_lock::<Map>().ok_or_else(|| arg_error("query must be a map"))?;
                request.url.query_pairs_mut().extend_pairs(text_pairs(&query)?);
            }
            "json" => request.body = Body::Json(to_json(value)?),
            "form" if value.is_map() => request.body = Body::Form(form_fields(value)?),
            "form" => return Err(arg_error("form must be a map")),
            "multipart" => {
                let parts = match (value.read_lock::<Map>(), value.read_lock::<rhai::Array>()) {
                    (Some(fields), _) => multipart(&fields),
                    (_, Some(items)) => ordered(&Map::new(), &items),
                    _ => return Err(arg_error("multipart must be a map, or an array of maps in the order to send")),
                };
                request.body = Body::Multipart(parts.map_err(raise)?);
            }
            "body" if value.is_blob() => request.body = Body::Bytes(value.clone().cast()),
            "body" => request.body = Body::Text(value.to_string()),
            "basic_auth" => {
                let (user, password) = match value.clone().try_cast::<rhai::Array>() {
                    Some(parts) if !parts.is_empty() && parts.len() <= 2 => {
                        (parts[0].to_string(), parts.get(1).map(|p| p.to_string()).unwrap_or_default())
                    }
                    _ => return Err(arg_error("basic_auth is [username, password]")),
                };
                request.basic_auth = Some((user, password));
            }
            "timeout_ms" => request.timeout = Some(Duration::from_millis(positive(value, "timeout_ms")?)),
            "max_retries" => request.max_retries = Some(positive_or_zero(value, "max_retries")? as u32),
            other => {
                return Err(arg_error(&format!(
                    "unknown request option '{other}' (method, url, headers, query, json, form, multipart, body, basic_auth, timeout_ms, max_retries)"
                )));
            }
        }
    }
    Ok(())
}

fn positive_or_zero(value: &Dynamic, name: &str) -> Result<u64, Box<EvalAltResult>> {
    value
        .as_int()
        .ok()
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| arg_error(&format!("{name} must be a whole number")))
}

fn positive(value: &Dynamic, name: &str) -> Result<u64, Box<EvalAltResult>> {
    match positive_or_zero(value, name)? {
        0 => Err(arg_error(&format!("{name} must be positive"))),
        n => Ok(n),
    }
}

/// A request as a script describes it: `method` (default GET) and `url`, then the other options.
fn outgoing(method: &str, url: &str, options: &Map) -> Result<Outgoing, Box<EvalAltResult>> {
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| arg_error(&format!("'{method}' is not an HTTP method")))?;
    let mut outgoing = Outgoing::new(method, parse_url(url)?);
    apply_options(&mut outgoing, options)?;
    Ok(outgoing)
}

/// The request a `http::request`-style option map describes.
fn described(options: &Map) -> Result<Outgoing, Box<EvalAltResult>> {
    let text = |key: &str| options.get(key).map(|v| v.to_string());
    let url = text("url").ok_or_else(|| arg_error("a request needs a url"))?;
    outgoing(&text("method").unwrap_or_else(|| "GET".into()), &url, options)
}

/// Sends a request built by a script and returns the response map.
fn request(services: &Services, outgoing: Outgoing) -> Result<Dynamic, Box<EvalAltResult>> {
    let context = context()?;
    egress::check(services, &context, &outgoing.url)?;
    let response = services.http.send(outgoing, &context)?;
    Ok(response_map(&response))
}

/// Sends every request at once and returns the response maps in the same order; the first failure
/// (as `http::request` would raise it) fails the whole call.
fn parallel(services: &Services, requests: rhai::Array) -> Result<Dynamic, Box<EvalAltResult>> {
    let context = context()?;
    let outgoing = requests
        .iter()
        .map(|request| {
            let options =
                request.read_lock::<Map>().ok_or_else(|| arg_error("http::parallel takes an array of request maps"))?;
            described(&options)
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Every request is checked before any is sent.
    let policy = Policy::of(services, &context);
    for request in &outgoing {
        policy.check(&request.url).map_err(raise)?;
    }
    let (client, shared) = (services.http.clone(), context.clone());
    let responses = wait(async move {
        let sends = outgoing.into_iter().map(|request| client.send_async(request, &shared));
        futures_util::future::join_all(sends).await
    })?;
    let maps = responses.into_iter().map(|response| response.map(|r| response_map(&r)).map_err(raise));
    Ok(maps.collect::<Result<rhai::Array, _>>()?.into())
}

pub fn module(services: std::sync::Arc<Services>) -> Module {
    let mut module = Module::new();
    let s = services.clone();
    func("request").set_into_module(&mut module, move |options: Map| request(&s, described(&options)?));
    let s = services.clone();
    func("parallel").set_into_module(&mut module, move |requests: rhai::Array| parallel(&s, requests));
    for method in ["get", "post", "put", "patch", "delete", "head"] {
        let s = services.clone();
        func(method).set_into_module(&mut module, move |url: &str| request(&s, outgoing(method, url, &Map::new())?));
        let s = services.clone();
        func(method)
            .set_into_module(&mut module, move |url: &str, options: Map| request(&s, outgoing(method, url, &options)?));
    }
    module
}
