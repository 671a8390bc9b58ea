//! Invocation over HTTP, in both styles.
//!
//! * Proxy style, `ANY /{name|cid}/{*rest}`: the request *is* the call — its path (still percent-encoded)
//!   and query string become `endpoint`, its method `method`, its body `data`. Chaining and storing use
//!   the `X-Input-Cid`, `X-Store-Output`, `X-Timeout-Ms` and `X-All-Pages` headers, because the query
//!   string belongs to the upstream.
//! * Call style, `GET|POST /{name|cid}`: `endpoint`, `method`, `data`, `input`, `store`, `timeout_ms`, `all` and
//!   `headers` (the caller headers a script may pass on, see `META.api.pass_headers`)
//!   come from the query string (GET) or from a JSON object or form body (POST). A GET with no
//!   parameters describes the server instead. Other methods on `/{name|cid}` are proxy-style calls
//!   with an empty endpoint.

use std::time::Duration;

use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Map, Value};

use super::{AppState, describe, parse_cid, read_body};
use crate::engine::Data;
use crate::engine::output::exact_integers;
use crate::error::Error;
use crate::invoke::{Invocation, Invoked, Target};
use crate::observe::trace::Trace;
use crate::store::Via;

static SERVER_CID: HeaderName = HeaderName::from_static("x-server-cid");
static OUTPUT_CID: HeaderName = HeaderName::from_static("x-output-cid");
static INPUT_CID: HeaderName = HeaderName::from_static("x-input-cid");
static STORE_OUTPUT: HeaderName = HeaderName::from_static("x-store-output");
static TIMEOUT_MS: HeaderName = HeaderName::from_static("x-timeout-ms");
static ALL_PAGES: HeaderName = HeaderName::from_static("x-all-pages");

/// The paths under a fixed route's word that no fixed route takes (the edge sends every other
/// invocation to [`serve`] itself).
pub async fn dispatch(State(runtime): State<AppState>, mut request: axum::extract::Request) -> Response {
    let trace = request.extensions_mut().remove::<Trace>();
    serve(runtime, request, trace).await
}

/// An invocation request, with the trace the edge gave it.
pub async fn serve(runtime: AppState, request: axum::extract::Request, trace: Option<Trace>) -> Response {
    let prepared = invocation(&runtime, request).await;
    match prepared {
        Ok(mut invocation) => {
            (invocation.via, invocation.trace) = (Via::Http, trace);
            respond(runtime.invoke(invocation).await)
        }
        Err(response) => response,
    }
}

/// The invocation a request asks for, or the response it gets instead (a description, an error).
/// Boxed, as the invocation path takes it: a future holding it whole would be that much larger for
/// every layer that moves it.
async fn invocation(runtime: &AppState, request: axum::extract::Request) -> Result<Box<Invocation>, Response> {
    let (mut parts, body) = request.into_parts();
    let headers = std::mem::take(&mut parts.headers);
    let path = parts.uri.path().trim_start_matches('/');
    permitted(runtime, path, &headers).map_err(IntoResponse::into_response)?;
    let limit = runtime.settings.max_body;
    let prepared = match path.split_once('/') {
        _ if path.is_empty() => Err(Error::NotFound("no such route".into())),
        Some((target, rest)) => proxy_request(target, Some(rest), &parts, headers, read_body(body, limit).await),
        None if parts.method == Method::GET => match parts.uri.query() {
            None | Some("") => return Err(describe::describe(runtime, path, &headers)),
            Some(query) => form_params(query.as_bytes()).and_then(|params| call_request(path, params)),
        },
        None if parts.method == Method::POST => read_body(body, limit)
            .await
            .and_then(|body| post_params(&body))
            .and_then(|params| call_request(path, params)),
        None => proxy_request(path, None, &parts, headers, read_body(body, limit).await),
    };
    prepared.map(Box::new).map_err(IntoResponse::into_response)
}

/// Whether the caller's invocation token covers the server the path names (by name, or the server
/// bound to the CID it names).
fn permitted(runtime: &AppState, path: &str, headers: &HeaderMap) -> Result<(), Error> {
    let access = &runtime.settings.invoke_access;
    if access.is_open() {
        return Ok(());
    }
    let target = path.split_once('/').map_or(path, |(target, _)| target);
    let server = match Target::parse(target) {
        Target::Cid(cid) => runtime.server_bound_to(&cid).unwrap_or_else(|| cid.to_string()),
        _ => target.to_owned(),
    };
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    access.allows(crate::access::bearer(authorization), &server)
}

/// A proxy-style request: `rest` is the path after the target (`None` for a bare `/{target}`); the
/// request's `headers` go with it (they were taken out of `parts`).
fn proxy_request(
    target: &str,
    rest: Option<&str>,
    parts: &Parts,
    headers: HeaderMap,
    body: Result<Bytes, Error>,
) -> Result<Invocation, Error> {
    let mut request = Invocation::with_method(Target::parse(target), parts.method.as_str().to_owned());
    request.endpoint = match (rest, parts.uri.query()) {
        (Some(rest), Some(query)) => ["/", rest, "?", query].concat(),
        (Some(rest), None) => ["/", rest].concat(),
        (None, Some(query)) => ["?", query].concat(),
        (None, None) => String::new(),
    };
    request.data = body_data(&headers, body?);
    // One pass over the headers (most requests carry none of ours).
    for (name, value) in &headers {
        let text = || value.to_str().map_err(|_| Error::BadRequest(format!("header {name} is not text")));
        if name == INPUT_CID {
            request.input = Some(parse_cid(text()?)?);
        } else if name == STORE_OUTPUT {
            request.store_output = parse_flag("X-Store-Output", text()?)?;
        } else if name == TIMEOUT_MS {
            request.timeout = Some(parse_timeout(text()?)?);
        } else if name == ALL_PAGES {
            request.all_pages = parse_flag("X-All-Pages", text()?)?;
        }
    }
    request.headers = headers;
    Ok(request)
}

/// A call-style request from its parameters (query string, form or JSON object).
pub(super) fn call_request(target: &str, params: Map<String, Value>) -> Result<Invocation, Error> {
    let mut request = Invocation::new(Target::parse(target));
    for (key, value) in params {
        let text = || match &value {
            Value::String(s) => Ok(s.as_str()),
            other => Err(Error::BadRequest(format!("parameter '{key}' must be a string, not {other}"))),
        };
        match key.as_str() {
            "endpoint" => request.endpoint = text()?.to_owned(),
            "method" => request.method = parse_method(text()?)?,
            "data" => request.data = Data::Value(value.clone()),
            "input" => request.input = Some(parse_cid(text()?)?),
            "store" => request.store_output = parse_flag("store", &param_text(&value))?,
            "timeout_ms" => request.timeout = Some(parse_timeout(&param_text(&value))?),
            "all" => request.all_pages = parse_flag("all", &param_text(&value))?,
            "headers" => request.headers = parse_headers(&value)?,
            other => {
                return Err(Error::BadRequest(format!(
                    "unknown parameter '{other}': call style takes endpoint, method, data, input, store, timeout_ms, all and headers"
                )));
            }
        }
    }
    Ok(request)
}

/// A flag or number given either as text (query, form) or as a JSON scalar.
fn param_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Query strings and form bodies: every value is text, and `data` is JSON when it parses as JSON.
pub(super) fn form_params(bytes: &[u8]) -> Result<Map<String, Value>, Error> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(bytes).map_err(|e| Error::BadRequest(format!("malformed parameters: {e}")))?;
    let mut params = Map::new();
    for (key, value) in pairs {
        // An HTML form sends an empty field for "no data".
        if key == "data" && value.is_empty() {
            continue;
        }
        let value = match key.as_str() {
            "data" => match serde_json::from_str(&value) {
                Ok(parsed) => exact_integers(value.as_bytes()).map(|()| parsed)?,
                Err(_) => Value::String(value),
            },
            _ => Value::String(value),
        };
        if params.insert(key.clone(), value).is_some() {
            return Err(Error::BadRequest(format!("parameter '{key}' is given twice")));
        }
    }
    Ok(params)
}

/// A call-style POST body: a JSON object, or form fields (what an HTML form sends). Empty means defaults.
fn post_params(body: &Bytes) -> Result<Map<String, Value>, Error> {
    let trimmed = body.trim_ascii_start();
    if trimmed.is_empty() {
        return Ok(Map::new());
    }
    if trimmed.starts_with(b"{") {
        exact_integers(body)?;
        return serde_json::from_slice::<Map<String, Value>>(body)
            .map_err(|e| Error::BadRequest(format!("the body is not a valid JSON object: {e}")));
    }
    form_params(body)
}

/// A proxy-style body as `data`: JSON that must parse when it says it is JSON, else of unknown type
/// (the core parses it when it is JSON and keeps it as text otherwise).
fn body_data(headers: &HeaderMap, body: Bytes) -> Data {
    if body.is_empty() {
        return Data::None;
    }
    let declared_json =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).and_then(|v| v.split(';').next()).is_some_and(
            |mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            },
        );
    match declared_json {
        true => Data::Json(body),
        false => Data::Body(body),
    }
}

fn parse_flag(name: &str, text: &str) -> Result<bool, Error> {
    match text {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" | "" => Ok(false),
        other => Err(Error::BadRequest(format!("{name} is 1 or 0, not '{other}'"))),
    }
}

/// Call style's `headers`: a JSON object of names to strings (JSON text in a query string or form).
fn parse_headers(value: &Value) -> Result<HeaderMap, Error> {
    let bad = || Error::BadRequest("headers is a JSON object of header names to strings".into());
    let parsed;
    let object = match value {
        Value::Object(object) => object,
        Value::String(text) => {
            parsed = serde_json::from_str::<Value>(text).map_err(|_| bad())?;
            parsed.as_object().ok_or_else(bad)?
        }
        _ => return Err(bad()),
    };
    let mut headers = HeaderMap::new();
    for (name, value) in object {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Error::BadRequest(format!("'{name}' is not a header name")))?;
        let value = value
            .as_str()
            .and_then(|v| HeaderValue::from_str(v).ok())
            .ok_or_else(|| Error::BadRequest(format!("header '{name}' must be a string a header can carry")))?;
        headers.append(name, value);
    }
    Ok(headers)
}

fn parse_timeout(text: &str) -> Result<Duration, Error> {
    match text.parse::<u64>() {
        Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
        _ => Err(Error::BadRequest(format!("a timeout is a positive number of milliseconds, not '{text}'"))),
    }
}

fn parse_method(text: &str) -> Result<String, Error> {
    let method = Method::from_bytes(text.as_bytes()).map_err(|_| {
        Error::BadRequest(format!("'{}' is not an HTTP method", text.chars().take(20).collect::<String>()))
    })?;
    Ok(super::method::normalised(&method)?.as_str().to_owned())
}

/// The HTTP response of an invocation: the output with its status, type and headers, or the error;
/// `X-Server-Cid` whenever a script was resolved.
pub(super) fn respond(invoked: Invoked) -> Response {
    let server_cid = invoked.script.as_ref().map(|script| script.cid_header.clone());
    let mut response = match invoked.result {
        Ok(reply) => {
            let output = reply.output;
            let mut response = Response::new(axum::body::Body::from(output.body));
            *response.status_mut() = StatusCode::from_u16(output.status).unwrap_or(StatusCode::OK);
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, output.content_type);
            for (name, value) in output.headers {
                headers.append(name, value);
            }
            if let Some(cid) = reply.output_cid {
                match super::cid_header(&cid) {
                    Ok(value) => headers.insert(OUTPUT_CID.clone(), value),
                    Err(error) => return error.into_response(),
                };
            }
            response
        }
        Err(error) => error.into_response(),
    };
    if let Some(value) = server_cid {
        response.headers_mut().insert(SERVER_CID.clone(), value);
    }
    response
}
