//! What every request passes before routing, and the JSON form of errors that are not ours.
//!
//! Before routing: the request line and headers are held to bounds well inside the HTTP parser's own
//! (hyper answers a URI over 64 KiB or a header block over ~400 KiB itself, with an empty body, before
//! any of this runs), the method is normalised — upper-case, at most [`MAX_METHOD`] characters, so a
//! script sees `GET` whether the client sent `get` or `GET`, and never a 100-character verb — and the
//! browser rules ([`super::browser`]) decide whether the request may run anything at all.
//!
//! After routing: axum answers some requests itself — 405 for a method a route does not take, 400 when
//! a path parameter is not UTF-8 — in plain text, and so does the MCP transport. Those become the one
//! JSON error shape. Responses of invocations (they carry `X-Server-Cid`) are the script's own and are
//! left alone, and so are pages. Every response says `X-Content-Type-Options: nosniff`, so that no
//! browser reads a script's text or a stored blob as HTML or script, whatever it looks like.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use super::browser::Policy;
use crate::error::Error;

/// Longest request target (path and query) accepted.
pub const MAX_URI: usize = 16 * 1024;
/// Most bytes of header names and values accepted in one request.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Longest method accepted (the longest registered HTTP method, `UPDATEREDIRECTREF`, has 17).
pub const MAX_METHOD: usize = 20;

/// The middleware: checks and normalises the request, then makes a plain-text error JSON.
pub async fn guard(State(policy): State<Arc<Policy>>, mut request: Request, next: Next) -> Response {
    let mut response = match admit(&mut request, &policy) {
        Ok(()) => as_json(next.run(request).await).await,
        Err(error) => error.into_response(),
    };
    response.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

fn admit(request: &mut Request, policy: &Policy) -> Result<(), Error> {
    let target = request.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > MAX_URI {
        return Err(Error::UriTooLong(format!("the request target is over {MAX_URI} bytes")));
    }
    if header_bytes(request.headers()) > MAX_HEADER_BYTES {
        return Err(Error::HeadersTooLarge(format!("the request headers are over {MAX_HEADER_BYTES} bytes")));
    }
    *request.method_mut() = normalised(request.method())?;
    policy.admit(request.uri(), request.headers())
}

fn header_bytes(headers: &HeaderMap) -> usize {
    headers.iter().map(|(name, value)| name.as_str().len() + value.len()).sum()
}

/// The method in upper case; a method that is too long or not an HTTP token is refused.
pub fn normalised(method: &Method) -> Result<Method, Error> {
    let text = method.as_str();
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if text.is_empty() || text.len() > MAX_METHOD || !text.bytes().all(token) {
        let shown: String = text.chars().take(MAX_METHOD).collect();
        return Err(Error::BadRequest(format!(
            "'{shown}' is not an HTTP method (a token of at most {MAX_METHOD} characters)"
        )));
    }
    if text.bytes().all(|b| !b.is_ascii_lowercase()) {
        return Ok(method.clone());
    }
    Method::from_bytes(text.to_ascii_uppercase().as_bytes())
        .map_err(|_| Error::BadRequest(format!("'{text}' is not an HTTP method")))
}

/// An error response axum produced in plain text (or with no body), as the JSON error of its status.
async fn as_json(response: Response) -> Response {
    let status = response.status();
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|v| v.to_str().is_ok_and(|v| v.starts_with("text/plain")));
    if !(status.is_client_error() || status.is_server_error())
        || !plain
        || response.headers().contains_key("x-server-cid")
    {
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
