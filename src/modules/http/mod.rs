//! `http`: outbound HTTP — the client every network module sends through, and ([`functions`]) the
//! `http` module scripts call.
//!
//! One reqwest client (and so one connection pool) serves the whole process. A script's call suspends
//! its fiber on the request (see `engine/fiber.rs`), so a script waiting on an API holds no thread;
//! `Retry-After` and backoff waits are async sleeps for the same reason.
//! Failures are retried where retrying is safe — 429, 502, 503, 504 and refused connections — with
//! exponential backoff and jitter, honouring `Retry-After`, never past the invocation's deadline.
//! Each attempt logs method, host, path, status, duration and attempt number, in the invocation's span
//! (with its request and trace ids): never headers, query values or bodies, and the path with every
//! secret the invocation read masked. Each request carries the invocation's `X-Request-Id` and a
//! `traceparent` of its own span (unless the script set them), and is counted in the metrics by server,
//! declared host and status class.

pub mod functions;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::Rng;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use rhai::EvalAltResult;
use tracing::Instrument;

use super::egress::connection::{Refused, Resolver, redirect};
use super::multipart::{Part, form};
use super::native::arg_error;
use super::throttle::{Admit, Throttle, retry_after};
use crate::engine::{Context, raise, wait};
use crate::error::Error;
use crate::observe::metrics::{self, Metrics, UNKNOWN};
use crate::observe::trace::{REQUEST_ID_HEADER, TRACEPARENT_HEADER};

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
    pub throttle: Option<Arc<Throttle>>,
    /// The declared destination the egress check matched: the host label of its metrics.
    pub destination: Option<String>,
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
            destination: None,
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

/// The shared client; cloning it is cheap and shares the connection pool.
#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    pub settings: HttpSettings,
    /// URLs (without query) whose redirects are never followed: OAuth token endpoints, so that a
    /// client secret is never re-sent to wherever a token endpoint points.
    unredirected: Arc<parking_lot::RwLock<HashSet<String>>>,
    metrics: Arc<Metrics>,
}

/// A URL as the redirect policy compares it: without query or fragment.
fn redirect_key(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.into()
}

/// Waits until `throttle` admits a send (a timer the fiber suspends on), or fails when the next chance
/// comes after `deadline`, naming the (masked) `host`.
async fn admitted(throttle: &Throttle, deadline: Instant, host: impl Fn() -> String) -> Result<(), Error> {
    loop {
        match throttle.admit(deadline) {
            Ok(()) => return Ok(()),
            Err(Admit::Later(at)) => tokio::time::sleep_until(at.into()).await,
            Err(Admit::TooLate(wait)) => {
                return Err(Error::RateLimited {
                    message: format!(
                        "{}: the rate limit leaves no slot for {} ms, past this call's deadline",
                        host(),
                        wait.as_millis()
                    ),
                    retry_after: Some(wait.as_secs().max(1)),
                });
            }
        }
    }
}

fn retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 502 | 503 | 504)
}

impl HttpClient {
    pub fn new(settings: HttpSettings, metrics: Arc<Metrics>) -> Result<HttpClient, Error> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let unredirected: Arc<parking_lot::RwLock<HashSet<String>>> = Arc::default();
        let stop = unredirected.clone();
        // Token endpoints are never redirected; anything else only within its origin (see egress).
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            let first = attempt.previous().first().map(redirect_key);
            match first.is_some_and(|url| stop.read().contains(&url)) {
                true => attempt.stop(),
                false => redirect(attempt),
            }
        });
        let client = reqwest::Client::builder()
            .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
            .pool_idle_timeout(Duration::from_secs(90))
            .redirect(policy)
            .dns_resolver(Arc::new(Resolver))
            .build()
            .map_err(|e| Error::internal("http client", e))?;
        Ok(HttpClient { client, settings, unredirected, metrics })
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

    /// Sends `request`, retrying as documented, from async code, in the invocation's log span (a
    /// script's wait runs outside the task that holds it).
    pub async fn send_async(&self, request: Outgoing, context: &Context) -> Result<Incoming, Error> {
        self.send_traced(request, context).instrument(context.span.clone()).await
    }

    async fn send_traced(&self, mut request: Outgoing, context: &Context) -> Result<Incoming, Error> {
        let max_retries = request.max_retries.unwrap_or(self.settings.max_retries);
        if let Some((user, password)) = &request.basic_auth {
            context.reveal_basic(user, password);
        }
        propagate(&mut request.headers, context);
        // A secret may form the host (a store's domain) as well as the path: what is logged or said
        // of them is masked (and made only when it is logged or said).
        let raw_host = request.url.host_str().unwrap_or("");
        let host = || context.redact(raw_host);
        let server = context.server.as_deref().unwrap_or(UNKNOWN);
        let destination = request.destination.as_deref().unwrap_or(UNKNOWN);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let remaining = context.remaining();
            if remaining.is_zero() {
                return Err(Error::Timeout(format!("no time left to call {}", host())));
            }
            if let Some(throttle) = &request.throttle {
                let waiting = Instant::now();
                admitted(throttle, context.deadline(), host).await?;
                let labels = metrics::Server { server: server.to_owned() };
                self.metrics.rate_limit_wait.get_or_create(&labels).observe(waiting.elapsed().as_secs_f64());
            }
            let remaining = context.remaining();
            let timeout = request.timeout.unwrap_or(self.settings.timeout).min(remaining);
            let started = Instant::now();
            let result = self.attempt(&request, timeout).await;
            if let (Some(throttle), Ok(response)) = (&request.throttle, &result) {
                throttle.observe(response.status, &response.headers);
            }
            let elapsed = started.elapsed().as_secs_f64();
            let status = result.as_ref().map(|r| r.status.as_u16()).ok();
            self.count(server, destination, status, elapsed);
            if let Ok(response) = &result {
                context.count_upstream(response.body.len());
            }
            let (millis, status) = (elapsed * 1000.0, status.unwrap_or(0));
            tracing::info!(target: "switchboard::http", method = %request.method, host = %host(), path = %context.redact(request.url.path()), status, duration_ms = format!("{millis:.1}"), attempt, "outbound");
            let retries_left = attempt <= max_retries;
            let delay = match &result {
                Ok(response) if retries_left && retryable(response.status) => {
                    response.retry_after().unwrap_or_else(|| self.backoff(attempt))
                }
                Err(Failure::Connect(_)) if retries_left => self.backoff(attempt),
                _ => return result.map_err(|failure| failure.into_error(&host(), timeout, context)),
            };
            // A wait the deadline cannot afford ends the retrying: the caller gets the last answer.
            if delay > self.settings.retry_cap || delay >= context.remaining() {
                return result.map_err(|failure| failure.into_error(&host(), timeout, context));
            }
            self.metrics.upstream_retries.get_or_create(&metrics::Server { server: server.to_owned() }).inc();
            tokio::time::sleep(delay).await;
        }
    }

    /// Counts one attempt in the metrics: by server, declared host and status class.
    fn count(&self, server: &str, host: &str, status: Option<u16>, seconds: f64) {
        let labels = metrics::Upstream {
            server: server.to_owned(),
            host: host.to_owned(),
            status: metrics::status_class(status),
        };
        self.metrics.upstream_requests.get_or_create(&labels).inc();
        let labels = metrics::UpstreamHost { server: labels.server, host: labels.host };
        self.metrics.upstream_duration.get_or_create(&labels).observe(seconds);
    }

    /// Exponential backoff with full jitter in the upper half: base·2^(n-1) · [0.5, 1).
    fn backoff(&self, attempt: u32) -> Duration {
        backoff(self.settings.retry_base, self.settings.retry_cap, attempt)
    }

    async fn attempt(&self, request: &Outgoing, timeout: Duration) -> Result<Incoming, Failure> {
        // The headers go in whole: the builder's `headers` would insert them one by one into a new map.
        let mut outgoing = reqwest::Request::new(request.method.clone(), request.url.clone());
        *outgoing.headers_mut() = request.headers.clone();
        *outgoing.timeout_mut() = Some(timeout);
        let mut builder = reqwest::RequestBuilder::from_parts(self.client.clone(), outgoing);
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
        // A body that arrives in one chunk (most do) is kept as it came, not copied.
        let (mut chunks, mut size) = (Vec::new(), 0);
        while let Some(chunk) = response.chunk().await.map_err(Failure::from_reqwest)? {
            size += chunk.len();
            if size > cap {
                return Err(Failure::TooLarge(cap));
            }
            chunks.push(chunk);
        }
        let body = match chunks.len() {
            1 => chunks.pop().unwrap_or_default(),
            _ => chunks.concat().into(),
        };
        Ok(Incoming { status, headers, body })
    }
}

/// Adds the invocation's request id and a `traceparent` of a new span (child of the invocation's) to an
/// upstream request, unless the script set its own.
fn propagate(headers: &mut HeaderMap, context: &Context) {
    if !headers.contains_key(&REQUEST_ID_HEADER)
        && let Ok(value) = HeaderValue::from_str(&context.trace.request_id)
    {
        headers.insert(REQUEST_ID_HEADER.clone(), value);
    }
    if !headers.contains_key(&TRACEPARENT_HEADER)
        && let Ok(value) = HeaderValue::try_from(context.trace.child_traceparent())
    {
        headers.insert(TRACEPARENT_HEADER.clone(), value);
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
            if let Some(refused) = cause.downcast_ref::<Refused>() {
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

/// A header a script names, or a script error saying what is wrong with it.
pub fn header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), Box<EvalAltResult>> {
    let name =
        HeaderName::from_bytes(name.as_bytes()).map_err(|_| arg_error(&format!("'{name}' is not a header name")))?;
    let value =
        HeaderValue::from_str(value).map_err(|_| arg_error(&format!("header '{name}' has an invalid value")))?;
    Ok((name, value))
}

/// A URL a script gave, which must be http or https.
pub fn parse_url(text: &str) -> Result<Url, Box<EvalAltResult>> {
    let url = Url::parse(text).map_err(|e| arg_error(&format!("'{text}' is not a URL: {e}")))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(arg_error(&format!("only http and https URLs can be called, not {other}"))),
    }
}

/// The wait before retry number `attempt` (from 1): exponential backoff with jitter in the upper half,
/// base·2^(n-1) (at most `cap`) · [0.5, 1), so that clients failing together do not retry together.
pub fn backoff(base: Duration, cap: Duration, attempt: u32) -> Duration {
    let exponential = base.saturating_mul(1 << attempt.saturating_sub(1).min(16));
    exponential.min(cap).mul_f64(rand::rng().random_range(0.5..1.0))
}
