//! `/mcp` over Streamable HTTP: rmcp's stateless service, behind the `Origin` check.
//!
//! Stateless means no session and nothing kept between requests: every request carries what it
//! needs (the 2026-07-28 revision's `_meta`, or the earlier revisions' `MCP-Protocol-Version` after
//! their `initialize`), so any instance can answer any request, and JSON responses suffice. rmcp
//! checks the `Host` header against the allowed hosts (against DNS rebinding) and the protocol's
//! headers; this module checks `Origin` — a browser page from elsewhere must not drive the gateway —
//! and turns the plain-text refusals of the transport into the JSON errors every other route gives.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use crate::error::Error;
use crate::runtime::Runtime;

use super::access::Access;
use super::handler::Handler;

/// The `/mcp` service, to mount with `Router::nest_service`.
pub fn service(runtime: &Arc<Runtime>) -> Router {
    let settings = &runtime.settings;
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_max_request_body_bytes(settings.max_body);
    let config = match settings.allowed_hosts.iter().any(|host| host == "*") {
        true => config.disable_allowed_hosts(),
        false => config.with_allowed_hosts(settings.allowed_hosts.clone()),
    };
    let handler = Handler::new(runtime.clone(), false);
    let mcp = StreamableHttpService::new(move || Ok(handler.clone()), Arc::new(NeverSessionManager::default()), config);
    Router::new().fallback_service(mcp).layer(middleware::from_fn_with_state(runtime.clone(), guard))
}

/// Refuses foreign origins and callers without an invocation token (when tokens are set), grants the
/// caller what its token covers, then makes every refusal of the transport a JSON error.
async fn guard(State(runtime): State<Arc<Runtime>>, mut request: Request, next: Next) -> Response {
    if let Err(error) = check_origin(request.headers(), &runtime.settings.allowed_origins) {
        // The Origin's value stays out of the log: header values are never logged.
        tracing::warn!("refused an MCP request from an origin that is not allowed");
        return error.into_response();
    }
    let authorization = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    match runtime.settings.invoke_access.grant(crate::access::bearer(authorization)) {
        // Open invocation (no tokens): the caller may reach everything.
        Ok(None) => {}
        Ok(Some(servers)) => {
            request.extensions_mut().insert(Access::only(servers.iter().cloned()));
        }
        Err(error) => return error.into_response(),
    }
    as_json_error(next.run(request).await).await
}

/// A request may come from no browser page (no `Origin`), from a page of this very server (`Origin`
/// matches `Host`), or from an origin the operator allowed (`serve --allowed-origin`).
pub fn check_origin(headers: &HeaderMap, allowed: &[String]) -> Result<(), Error> {
    let Some(origin) = headers.get(header::ORIGIN) else { return Ok(()) };
    let refused =
        || Error::Forbidden(format!("origin '{}' may not use /mcp", String::from_utf8_lossy(origin.as_bytes())));
    let origin = origin.to_str().map_err(|_| refused())?;
    let authority = url::Url::parse(origin).ok().filter(|url| matches!(url.scheme(), "http" | "https")).map(|url| {
        let host = url.host_str().unwrap_or_default().to_owned();
        match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host,
        }
    });
    let same_origin = authority.is_some_and(|authority| {
        headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .is_some_and(|host| host.eq_ignore_ascii_case(&authority))
    });
    let listed = allowed.iter().any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin));
    if same_origin || listed { Ok(()) } else { Err(refused()) }
}

/// The transport answers malformed requests with plain text; give them the JSON error shape, keeping
/// the status and headers (such as `Allow`). JSON-RPC answers are JSON already and pass untouched.
async fn as_json_error(response: Response) -> Response {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/event-stream"));
    if response.status().is_success() || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
    let message = String::from_utf8_lossy(&text).trim().to_owned();
    let error = match parts.status {
        StatusCode::UNAUTHORIZED => Error::Unauthorized(message),
        StatusCode::FORBIDDEN => Error::Forbidden(message),
        StatusCode::NOT_FOUND => Error::NotFound(message),
        StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge(message),
        status if status.is_client_error() => Error::BadRequest(message),
        _ => Error::Internal(message),
    };
    let body = serde_json::to_vec(&error.to_json()).unwrap_or_default();
    parts.headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: &str, host: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ORIGIN, origin.parse().unwrap());
        headers.insert(header::HOST, host.parse().unwrap());
        headers
    }

    #[test]
    fn origins_are_allowed_only_when_absent_same_or_listed() {
        assert!(check_origin(&HeaderMap::new(), &[]).is_ok());
        assert!(check_origin(&headers("http://127.0.0.1:8080", "127.0.0.1:8080"), &[]).is_ok());
        assert!(check_origin(&headers("http://localhost:3000", "127.0.0.1:8080"), &[]).is_err());
        assert!(check_origin(&headers("https://evil.example", "127.0.0.1:8080"), &[]).is_err());
        assert!(check_origin(&headers("null", "127.0.0.1:8080"), &[]).is_err());
        let allowed = vec!["https://app.example.com".to_owned()];
        assert!(check_origin(&headers("https://app.example.com", "127.0.0.1:8080"), &allowed).is_ok());
        assert!(check_origin(&headers("https://app.example.com:444", "127.0.0.1:8080"), &allowed).is_err());
        let error = check_origin(&headers("https://evil.example", "h"), &allowed).unwrap_err();
        assert_eq!((error.kind(), error.status()), ("forbidden", 403));
    }
}
