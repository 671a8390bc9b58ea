//! `http`: outbound HTTP for scripts, and the client every other network module sends through.
//!
//! One reqwest client (and so one connection pool) serves the whole process. A script's call suspends
//! its fiber on the request (see `engine/fiber.rs`), so a script waiting on an API holds no thread;
//! `Retry-After` and backoff waits are async sleeps for the same reason.
//! Failures are retried where retrying is safe — 429, 502, 503, 504 and refused connections — with
//! exponential backoff and jitter, honouring `Retry-After`, never past the invocation's deadline.
//! Each attempt logs method, host, path, status, duration and attempt number: never headers, query
//! values or bodies, and the path with every secret the invocation read masked.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::Rng;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use rhai::{Dynamic, EvalAltResult, Map, Module};

use super::{Services, arg_error, func, to_json};
use crate::engine::{Context, raise, wait};
use crate::error::Error;

/// Tunables of outbound HTTP.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Largest response body accepted; a larger one fails with `invalid_response`.
    pub max_response: usize,
    /// Timeout of one call when neither the call nor the invocation's deadline says less.
    pub timeout: Duration,
    pub max_retries: u32,
    /// First backoff delay; each retry doubles it, up to `retry_cap`.
    pub retry_base: Duration,
    /// Longest wait before one retry, `Retry-After` included.
    pub retry_cap: Duration,
}

impl Default for HttpSettings {
    fn default() -> HttpSettings {
        HttpSettings {
            max_response: 10 * 1024 * 1024,
            timeout: Duration::from_secs(60),
            max_retries: 3,
            retry_base: Duration::from_millis(200),
            retry_cap: Duration::from_secs(10),
        }
    }
}

/// A request body.
#[derive(Debug, Clone, Default)]
pub enum Body {
    #[default]
    None,
    Json(serde_json::Value),
    Form(Vec<(String, String)>),
    Text(String),
    Bytes(Vec<u8>),
    /// `multipart/form-data`: fields and files, in order.
    Multipart(Vec<Part>),
}

/// One part of a multipart body.
#[derive(Debug, Clone)]
pub struct Part {
    pub name: String,
    pub content: PartContent,
}

#[derive(Debug, Clone)]
pub enum PartContent {
    Text(String),
    File { filename: Option<String>, content_type: Option<String>, data: Vec<u8> },
}

/// The keys a file part may have.
const FILE_KEYS: [&str; 3] = ["filename", "content_type", "data"];

/// The parts of a multipart body from a map: a scalar is a text field, a map `#{ filename,
/// content_type, data }` (data text or a blob) a file, any other map a field holding its JSON text
/// (Box's `attributes`), an array several parts of one name, `()` none.
/// A part that is none of these says why; the error is the caller's (`bad_request`), who sent the data.
pub fn multipart(fields: &Map) -> Result<Vec<Part>, Error> {
    fn add(name: &str, value: &Dynamic, nested: bool, parts: &mut Vec<Part>) -> Result<(), Error> {
        let bad = |why: String| Error::BadRequest(format!("multipart part '{name}': {why}"));
        if value.is_unit() {
            return Ok(());
        }
        let file = value.read_lock::<Map>().filter(|map| map.keys().any(|key| FILE_KEYS.contains(&key.as_str())));
        if let Some(file) = file {
            if let Some(key) = file.keys().find(|key| !FILE_KEYS.contains(&key.as_str())) {
                return Err(bad(format!("unknown key '{key}': a file part is #{{ filename, content_type, data }}")));
            }
            let text = |key: &str| match file.get(key) {
                None => Ok(None),
                Some(value) if value.is_string() => Ok(Some(value.to_string())),
                Some(_) => Err(bad(format!("'{key}' must be a string"))),
            };
            let data = match file.get("data") {
                Some(data) if data.is_blob() => data.clone().cast::<rhai::Blob>(),
                Some(data) if data.is_string() => data.to_string().into_bytes(),
                Some(_) => return Err(bad("'data' must be text or a blob".into())),
                None => return Err(bad("a file part needs 'data' (and may have filename, content_type)".into())),
            };
            let content_type = text("content_type")?;
            if let Some(content_type) = &content_type
                && reqwest::multipart::Part::bytes(Vec::new()).mime_str(content_type).is_err()
            {
                return Err(bad(format!("'{content_type}' is not a content type")));
            }
            let filename = text("filename")?.as_deref().map(header_safe);
            let content = PartContent::File { filename, content_type, data };
            parts.push(Part { name: name.to_owned(), content });
        } else if let Some(items) = value.read_lock::<rhai::Array>() {
            if nested {
                return Err(bad("an array may hold text and file parts, not arrays".into()));
            }
            for item in items.iter() {
                add(name, item, true, parts)?;
            }
        } else if value.is_blob() {
            return Err(bad("a blob goes in a file part: #{ filename, content_type, data: blob }".into()));
        } else {
            parts.push(Part { name: name.to_owned(), content: PartContent::Text(super::scalar_text(value)) });
        }
        Ok(())
    }
    let mut parts = Vec::new();
    for (name, value) in fields {
        add(name, value, false, &mut parts)?;
    }
    Ok(parts)
}

/// A file name as a `filename="…"` parameter may carry it. Quotes and line breaks are percent-encoded as
/// browsers send them (HTML's rules for `multipart/form-data`), and so is every other control
/// character: a name must not end its header line and start a header, or a part, of its own. (Part
/// names are percent-encoded by the form itself.)
fn header_safe(filename: &str) -> String {
    let mut safe = String::with_capacity(filename.len());
    for c in filename.chars() {
        match c == '"' || c.is_control() {
            true => safe.extend(c.encode_utf8(&mut [0; 4]).bytes().map(|b| format!("%{b:02X}"))),
            false => safe.push(c),
        }
    }
    safe
}

/// Whether `data` holds a file part (`#{ data, filename?, content_type? }`) at its top level or in an
/// array there: what a script checks to choose a multipart body for an upload.
pub fn has_files(data: &Dynamic) -> bool {
    let is_file = |value: &Dynamic| {
        value
            .read_lock::<Map>()
            .is_some_and(|part| part.contains_key("data") && part.keys().all(|key| FILE_KEYS.contains(&key.as_str())))
    };
    data.read_lock::<Map>().is_some_and(|map| {
        map.values().any(|value| {
            is_file(value) || value.read_lock::<rhai::Array>().is_some_and(|items| items.iter().any(is_file))
        })
    })
}

/// The form reqwest sends; built anew for each attempt, as sending consumes it.
pub fn form(parts: &[Part]) -> reqwest::multipart::Form {
    parts.iter().fold(reqwest::multipart::Form::new(), |form, part| match &part.content {
        PartContent::Text(text) => form.text(part.name.clone(), text.clone()),
        PartContent::File { filename, content_type, data } => {
            let bytes = || reqwest::multipart::Part::bytes(data.clone());
            // The content type was checked when the part was read (`multipart`).
            let file = match content_type {
                Some(content_type) => bytes().mime_str(content_type).unwrap_or_else(|_| bytes()),
                None => bytes(),
            };
            let file = match filename {
                Some(filename) => file.file_name(filename.clone()),
                None => file,
            };
            form.part(part.name.clone(), file)
        }
    })
}

/// An outbound request.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Body,
    pub basic_auth: Option<(String, String)>,
    pub timeout: Option<Duration>,
    pub max_retries: Option<u32>,
    /// The server's outbound schedule: every attempt waits for a slot, and reports what the upstream
    /// said about its limit (`api` calls only).
    pub throttle: Option<Arc<super::throttle::Throttle>>,
}

impl Outgoing {
    pub fn new(method: Method, url: Url) -> Outgoing {
        Outgoing {
            method,
            url,
            headers: HeaderMap::new(),
            body: Body::None,
            basic_auth: None,
            timeout: None,
            max_retries: None,
            throttle: None,
        }
    }
}

/// A response, body read in full (within the cap).
#[derive(Debug, Clone)]
pub struct Incoming {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Incoming {
    /// Seconds the upstream asked us to wait, from `Retry-After` (seconds or an HTTP date).
    pub fn retry_after(&self) -> Option<Duration> {
        retry_after(self.headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim())
    }
}

/// A `Retry-After` value, in seconds or as an HTTP date, as the wait it asks for.
pub fn retry_after(value: &str) -> Option<Duration> {
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(std::time::SystemTime::now()).unwrap_or_default())
}

/// The shared client; cloning it is cheap and shares the connection pool.
#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    pub settings: HttpSettings,
    /// URLs (without query) whose redirects are never followed: OAuth token endpoints, so that a
    /// client secret is never re-sent to wherever a token endpoint points.
    unredirected: Arc<parking_lot::RwLock<HashSet<String>>>,
}

/// A URL as the redirect policy compares it: without query or fragment.
fn redirect_key(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.into()
}

fn retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 502 | 503 | 504)
}

impl HttpClient {
    pub fn new(settings: HttpSettings) -> Result<HttpClient, Error> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let unredirected: Arc<parking_lot::RwLock<HashSet<String>>> = Arc::default();
        let stop = unredirected.clone();
        // Token endpoints are never redirected; anything else only within its origin (see egress).
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            let first = attempt.previous().first().map(redirect_key);
            match first.is_some_and(|url| stop.read().contains(&url)) {
                true => attempt.stop(),
                false => super::egress::redirect(attempt),
            }
        });
        let client = reqwest::Client::builder()
            .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
            .pool_idle_timeout(Duration::from_secs(90))
            .redirect(policy)
            .dns_resolver(std::sync::Arc::new(super::egress::Resolver))
            .build()
            .map_err(|e| Error::internal("http client", e))?;
        Ok(HttpClient { client, settings, unredirected })
    }

    /// Never follow a redirect answered to a request for `url` (whatever its query).
    pub fn refuse_redirects(&self, url: &Url) {
        let key = redirect_key(url);
        if !self.unredirected.read().contains(&key) {
            self.unredirected.write().insert(key);
        }
    }

    /// The shared client, for modules that speak HTTP through another crate (OAuth token exchange).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends `request` on behalf of the invocation in `context`, retrying as documented. The script
    /// waits for it without holding its thread.
    pub fn send(&self, request: Outgoing, context: &Arc<Context>) -> Result<Incoming, Box<EvalAltResult>> {
        let (client, context) = (self.clone(), context.clone());
        wait(async move { client.send_async(request, &context).await })?.map_err(raise)
    }

    /// Sends `request`, retrying as documented, from async code.
    pub async fn send_async(&self, request: Outgoing, context: &Context) -> Result<Incoming, Error> {
        let max_retries = request.max_retries.unwrap_or(self.settings.max_retries);
        if let Some((user, password)) = &request.basic_auth {
            context.reveal_basic(user, password);
        }
        // A secret may form the host (a store's domain) as well as the path: the log masks both.
        let host = context.redact(request.url.host_str().unwrap_or(""));
        let path = context.redact(request.url.path());
        let mut attempt = 0;
        loop {
            attempt += 1;
            let remaining = context.remaining();
            if remaining.is_zero() {
                return Err(Error::Timeout(format!("no time left to call {host}")));
            }
            if let Some(throttle) = &request.throttle {
                let at = throttle.reserve(context.deadline()).map_err(|wait| Error::RateLimited {
                    message: format!(
                        "{host}: the rate limit leaves no slot for {} ms, past this call's deadline",
                        wait.as_millis()
                    ),
                    retry_after: Some(wait.as_secs().max(1)),
                })?;
                if at > Instant::now() {
                    tokio::time::sleep_until(at.into()).await;
                }
            }
            let remaining = context.remaining();
            let timeout = request.timeout.unwrap_or(self.settings.timeout).min(remaining);
            let started = Instant::now();
            let result = self.attempt(&request, timeout).await;
            if let (Some(throttle), Ok(response)) = (&request.throttle, &result) {
                throttle.observe(response.status, &response.headers);
            }
            let millis = started.elapsed().as_secs_f64() * 1000.0;
            let status = result.as_ref().map(|r| r.status.as_u16()).unwrap_or(0);
            tracing::info!(target: "switchboard::http", method = %request.method, %host, %path, status, duration_ms = format!("{millis:.1}"), attempt, "outbound");
            let retries_left = attempt <= max_retries;
            let delay = match &result {
                Ok(response) if retries_left && retryable(response.status) => {
                    response.retry_after().unwrap_or_else(|| self.backoff(attempt))
                }
                Err(Failure::Connect(_)) if retries_left => self.backoff(attempt),
                _ => return result.map_err(|failure| failure.into_error(&host, timeout, context)),
            };
            // A wait the deadline cannot afford ends the retrying: the caller gets the last answer.
            if delay > self.settings.retry_cap || delay >= context.remaining() {
                return result.map_err(|failure| failure.into_error(&host, timeout, context));
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// Exponential backoff with full jitter in the upper half: base·2^(n-1) · [0.5, 1).
    fn backoff(&self, attempt: u32) -> Duration {
        let exponential = self.settings.retry_base.saturating_mul(1 << (attempt - 1).min(16));
        exponential.min(self.settings.retry_cap).mul_f64(rand::rng().random_range(0.5..1.0))
    }

    async fn attempt(&self, request: &Outgoing, timeout: Duration) -> Result<Incoming, Failure> {
        let mut builder = self
            .client
            .request(request.method.clone(), request.url.clone())
            .headers(request.headers.clone())
            .timeout(timeout);
        if let Some((user, password)) = &request.basic_auth {
            builder = builder.basic_auth(user, Some(password));
        }
        builder = match &request.body {
            Body::None => builder,
            Body::Json(value) => builder.json(value),
            Body::Form(pairs) => builder.form(pairs),
            Body::Text(text) => builder.body(text.clone()),
            Body::Bytes(bytes) => builder.body(bytes.clone()),
            Body::Multipart(parts) => builder.multipart(form(parts)),
        };
        let mut response = builder.send().await.map_err(Failure::from_reqwest)?;
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let cap = self.settings.max_response;
        if response.content_length().is_some_and(|length| length > cap as u64) {
            return Err(Failure::TooLarge(cap));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(Failure::from_reqwest)? {
            if body.len() + chunk.len() > cap {
                return Err(Failure::TooLarge(cap));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Incoming { status, headers, body: body.into() })
    }
}

/// Why an attempt got no response.
enum Failure {
    Connect(String),
    /// The resolver found only addresses egress forbids.
    Refused(String),
    Timeout,
    Other(String),
    TooLarge(usize),
}

impl Failure {
    fn from_reqwest(error: reqwest::Error) -> Failure {
        // The URL may carry credentials in its query: never let it into a message.
        let error = error.without_url();
        let mut source: Option<&dyn std::error::Error> = Some(&error);
        while let Some(cause) = source {
            if let Some(refused) = cause.downcast_ref::<super::egress::Refused>() {
                return Failure::Refused(refused.0.clone());
            }
            source = cause.source();
        }
        if error.is_timeout() {
            Failure::Timeout
        } else if error.is_connect() {
            Failure::Connect(error_chain(&error))
        } else {
            Failure::Other(error_chain(&error))
        }
    }

    fn into_error(self, host: &str, timeout: Duration, context: &Context) -> Error {
        match self {
            Failure::Connect(message) => {
                Error::UpstreamUnreachable(context.redact(&format!("cannot connect to {host}: {message}")))
            }
            Failure::Refused(name) => Error::Refused {
                host: context.redact(host),
                message: context.redact(&format!(
                    "refused to send to {host}: {name} resolves only to link-local or cloud-metadata addresses"
                )),
            },
            Failure::Timeout => Error::Timeout(format!("{host} did not answer within {} ms", timeout.as_millis())),
            Failure::Other(message) => Error::UpstreamUnreachable(context.redact(&format!("{host}: {message}"))),
            Failure::TooLarge(cap) => Error::InvalidResponse(format!("{host} sent a response larger than {cap} bytes")),
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

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
                    let name = HeaderName::from_bytes(name.as_bytes())
                        .map_err(|_| arg_error(&format!("'{name}' is not a header name")))?;
                    let value = HeaderValue::from_str(&value.to_string())
                        .map_err(|_| arg_error(&format!("header '{name}' has an invalid value")))?;
                    request.headers.append(name, value);
                }
            }
            "query" => {
                let query = value.read_lock::<Map>().ok_or_else(|| arg_error("query must be a map"))?;
                request.url.query_pairs_mut().extend_pairs(super::text_pairs(&query)?);
            }
            "json" => request.body = Body::Json(to_json(value)?),
            "form" if value.is_map() => request.body = Body::Form(super::form_fields(value)?),
            "form" => return Err(arg_error("form must be a map")),
            "multipart" => {
                let fields = value.read_lock::<Map>().ok_or_else(|| arg_error("multipart must be a map"))?;
                request.body = Body::Multipart(multipart(&fields).map_err(raise)?);
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

pub fn parse_url(text: &str) -> Result<Url, Box<EvalAltResult>> {
    let url = Url::parse(text).map_err(|e| arg_error(&format!("'{text}' is not a URL: {e}")))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(arg_error(&format!("only http and https URLs can be called, not {other}"))),
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
    let context = super::context()?;
    super::egress::check(services, &context, &outgoing.url)?;
    let response = services.http.send(outgoing, &context)?;
    Ok(response_map(&response))
}

/// Sends every request at once and returns the response maps in the same order; the first failure
/// (as `http::request` would raise it) fails the whole call.
fn parallel(services: &Services, requests: rhai::Array) -> Result<Dynamic, Box<EvalAltResult>> {
    let context = super::context()?;
    let outgoing = requests
        .iter()
        .map(|request| {
            let options =
                request.read_lock::<Map>().ok_or_else(|| arg_error("http::parallel takes an array of request maps"))?;
            described(&options)
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Every request is checked before any is sent.
    let policy = super::egress::Policy::of(services, &context);
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
