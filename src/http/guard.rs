//! The edge: what every request passes before routing, and what every response carries after it.
//!
//! Before routing: the request line and headers are held to bounds well inside the HTTP parser's own
//! (hyper answers a URI over 64 KiB or a header block over ~400 KiB itself, with an empty body, before
//! any of this runs), the method is normalised — upper-case, at most [`method::MAX_METHOD`] characters, so a
//! script sees `GET` whether the client sent `get` or `GET`, and never a 100-character verb — and the
//! browser rules ([`super::browser`]) decide whether the request may run anything at all. Every request
//! gets its [`Trace`] (the caller's `X-Request-Id` when it is sane, its `traceparent` continued) in its
//! extensions, where the entry points (invocations, webhooks, MCP) take it for the invocation.
//!
//! After routing: axum answers some requests itself — 405 for a method a route does not take, 400 when
//! a path parameter is not UTF-8 — in plain text, and so does the MCP transport. Those become the one
//! JSON error shape. Responses of invocations (they carry `X-Server-Cid`) are the script's own and are
//! left alone, and so are pages. Every response says `X-Request-Id`, and `X-Content-Type-Options:
//! nosniff`, so that no browser reads a script's text or a stored blob as HTML or script, whatever it
//! looks like.
//!
//! The edge is a service of its own around the router rather than a middleware layer: a layer clones
//! the service it wraps and boxes one more future for every request, which an invocation whose script
//! takes a few microseconds notices.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use http_body_util::BodyExt;
use tower_service::Service;

use super::browser::Policy;
use super::method;
use crate::error::Error;
use crate::observe::trace::{REQUEST_ID_HEADER, Trace};
use crate::runtime::Runtime;

/// Longest request target (path and query) accepted.
pub const MAX_URI: usize = 16 * 1024;
/// Most bytes of header names and values accepted in one request.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// An edge's answer to one request, to come.
pub type Routed = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

/// The router behind the edge: the service every connection is served by.
#[derive(Clone)]
pub struct Edge {
    router: Router,
    policy: Arc<Policy>,
    runtime: Arc<Runtime>,
}

impl Edge {
    pub fn new(router: Router, policy: Policy, runtime: Arc<Runtime>) -> Edge {
        Edge { router, policy: Arc::new(policy), runtime }
    }
}

/// Whether `path` may be a fixed route: its first segment is empty (the index) or a word no server may
/// be named. Every other path is an invocation, which goes to the dispatcher without the router (the
/// route table, the handler's box and the extension the trace would travel in, for every call).
fn fixed_route(path: &str) -> bool {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or_default();
    first.is_empty() || crate::server::RESERVED.contains(&first)
}

impl<B> Service<axum::http::Request<B>> for Edge
where
    B: http_body::Body<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Routed;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Routed {
        let mut request: Request = request.map(axum::body::Body::new);
        let trace = Trace::from_headers(request.headers());
        let id = HeaderValue::from_str(&trace.request_id);
        // What serves the request is made inside the one box below, not moved into it: an
        // invocation's future is large, and each move copies it whole.
        let route = admit(&mut request, &self.policy).map(|()| match fixed_route(request.uri().path()) {
            true => Either::Left(self.router.clone()),
            false => Either::Right(self.runtime.clone()),
        });
        Box::pin(async move {
            let mut response = match route {
                Ok(Either::Left(mut router)) => {
                    request.extensions_mut().insert(trace);
                    match router.call(request).await {
                        Ok(response) => as_json(response).await,
                        Err(never) => match never {},
                    }
                }
                Ok(Either::Right(runtime)) => {
                    as_json(super::dispatch::serve(runtime, request, Some(trace)).await).await
                }
                Err(error) => error.into_response(),
            };
            let headers = response.headers_mut();
            headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            if let Ok(id) = id {
                headers.insert(REQUEST_ID_HEADER.clone(), id);
            }
            Ok(response)
        })
    }
}

fn admit(request: &mut Request, policy: &Policy) -> Result<(), Error> {
    let target = request.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > MAX_URI {
        return Err(Error::UriTooLong(format!("the request target is over {MAX_URI} bytes")));
    }
    if header_bytes(request.headers()) > MAX_HEADER_BYTES {
        return Err(Error::HeadersTooLarge(format!("the request headers are over {MAX_HEADER_BYTES} bytes")));
    }
    *request.method_mut() = method::normalised(request.method())?;
    policy.admit(request.uri(), request.headers())
}

fn header_bytes(headers: &HeaderMap) -> usize {
    headers.iter().map(|(name, value)| name.as_str().len() + value.len()).sum()
}

/// An error response axum produced in plain text (or with no body), as the JSON error of its status.
async fn as_json(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|v| v.to_str().is_ok_and(|v| v.starts_with("text/plain")));
    if !plain || response.headers().contains_key("x-server-cid") {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match http_body_util::Limited::new(body, 4096).collect().await {
        Ok(collected) => String::from_utf8_lossy(&collected.to_bytes()).trim().to_owned(),
        Err(_) => String::new(),
    };
    let message = if text.is_empty() { status.canonical_reason().unwrap_or("error").to_owned() } else { text };
    let mut json = of_status(status, message).into_response();
    // The status stays the one the layer chose (a 406 or 415 from the MCP transport is a bad request
    // whose status says more).
    *json.status_mut() = status;
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        json.headers_mut().insert(header::ALLOW, allow.clone());
    }
    json
}

/// The error users see for a status the HTTP layer chose.
fn of_status(status: StatusCode, message: String) -> Error {
    match status.as_u16() {
        401 => Error::Unauthorized(message),
        403 => Error::Forbidden(message),
        404 => Error::NotFound(message),
        405 => Error::MethodNotAllowed(message),
        413 => Error::PayloadTooLarge(message),
        414 => Error::UriTooLong(message),
        431 => Error::HeadersTooLarge(message),
        400..=499 => Error::BadRequest(message),
        _ => Error::Internal(message),
    }
}

#[cfg(test)]
mod tests {
    use super::fixed_route;

    #[test]
    fn only_paths_a_fixed_route_could_take_go_through_the_router() {
        for path in
            ["/", "", "/health", "/metrics", "/cid/x", "/oauth/gh/callback", "/webhooks/gh", "/api/servers", "/mcp"]
        {
            assert!(fixed_route(path), "{path}");
        }
        for path in ["/ui/", "//api", "/static/x"] {
            assert!(fixed_route(path), "{path}");
        }
        for path in ["/echo/", "/echo", "//echo", "/apis/x", "/%61pi/x", "/bafkreia/x"] {
            assert!(!fixed_route(path), "{path}");
        }
    }
}
