//! `/mcp` over Streamable HTTP: rmcp's stateless service, behind the invocation-token check.
//!
//! Stateless means no session and nothing kept between requests: every request carries what it
//! needs (the 2026-07-28 revision's `_meta`, or the earlier revisions' `MCP-Protocol-Version` after
//! their `initialize`), so any instance can answer any request, and JSON responses suffice. The
//! browser rules of every route (`Host` against DNS rebinding, `Origin`: `crate::http::browser`) have
//! run before a request gets here; rmcp checks `Host` once more with the same list, and the protocol's
//! headers. This module turns the plain-text refusals of the transport into the JSON errors every
//! other route gives.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
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
    let hosts = crate::http::browser::allowed_hosts(settings);
    let config = match hosts.iter().any(|host| host == "*") {
        true => config.disable_allowed_hosts(),
        false => config.with_allowed_hosts(hosts),
    };
    let handler = Handler::new(runtime.clone(), false);
    let mcp = StreamableHttpService::new(move || Ok(handler.clone()), Arc::new(NeverSessionManager::default()), config);
    Router::new().fallback_service(mcp).layer(middleware::from_fn_with_state(runtime.clone(), guard))
}

/// Refuses callers without an invocation token (when tokens are set), grants the caller what its
/// token covers, then makes every refusal of the transport a JSON error.
async fn guard(State(runtime): State<Arc<Runtime>>, mut request: Request, next: Next) -> Response {
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
