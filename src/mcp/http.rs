//! `/mcp` over Streamable HTTP: rmcp's stateless service, behind the invocation-token check.
//!
//! Stateless means no session and nothing kept between requests: every request carries what it
//! needs (the 2026-07-28 revision's `_meta`, or the earlier revisions' `MCP-Protocol-Version` after
//! their `initialize`), so any instance can answer any request, and JSON responses suffice. The
//! browser rules of every route (`Host` against DNS rebinding, `Origin`: `crate::http::browser`) have
//! run before a request gets here; rmcp checks `Host` once more with the same list, and the protocol's
//! headers. This module answers bodies the transport cannot read with JSON-RPC's own errors; the
//! transport's other refusals (plain text) become the JSON errors of every route in the HTTP guard.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rmcp::model::ClientJsonRpcMessage;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::error::Category;

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

/// Refuses callers without an invocation token (when tokens are set) and bodies that are not JSON-RPC,
/// then grants the caller what its token covers.
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
    match checked(request, runtime.settings.max_body).await {
        Ok(request) => next.run(request).await,
        Err(response) => response,
    }
}

/// Deepest nesting of arrays and objects a request may have: serde_json, which the transport parses
/// with, refuses the next level ("recursion limit exceeded"), and the transport would answer that as
/// an unsupported media type.
const MAX_NESTING: usize = 127;

/// A JSON POST, its body read (within the body limit) and checked before the transport sees it: the
/// transport answers every body it cannot read with 415, where a JSON-RPC client expects JSON-RPC's
/// own errors — -32700 for text that is not JSON, -32600 for JSON that is not a request it can take
/// (nested too deep included).
async fn checked(request: Request, limit: usize) -> Result<Request, Response> {
    let json = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(';').next().is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
    });
    if request.method() != Method::POST || !json {
        return Ok(request);
    }
    let (parts, body) = request.into_parts();
    let body = crate::http::body::read_body(body, limit).await.map_err(IntoResponse::into_response)?;
    if nesting(&body) > MAX_NESTING {
        let message = format!("Invalid Request: arrays and objects nest deeper than {MAX_NESTING} levels");
        return Err(rpc_error(-32600, message));
    }
    if let Err(error) = serde_json::from_slice::<ClientJsonRpcMessage>(&body) {
        return Err(match error.classify() {
            Category::Syntax | Category::Eof => rpc_error(-32700, format!("Parse error: {error}")),
            Category::Data | Category::Io => rpc_error(-32600, format!("Invalid Request: {error}")),
        });
    }
    Ok(Request::from_parts(parts, Body::from(body)))
}

/// How deeply `text` nests arrays and objects (brackets inside strings do not count).
fn nesting(text: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &byte in text {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// A JSON-RPC error without an id (the request's could not be read), as 400.
fn rpc_error(code: i64, message: String) -> Response {
    let body = serde_json::json!({ "jsonrpc": "2.0", "id": null, "error": { "code": code, "message": message } });
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn the_nesting_bound_is_the_parsers() {
        let parses = |text: &str| serde_json::from_str::<serde_json::Value>(text).is_ok();
        assert!(parses(&nested(MAX_NESTING)) && !parses(&nested(MAX_NESTING + 1)));
        assert_eq!(nesting(nested(MAX_NESTING).as_bytes()), MAX_NESTING);
        assert_eq!(nesting(br#"{"a": "[[[{{\"]]", "b": [{}]}"#), 3);
        assert_eq!(nesting(br#"{"a": "\\", "b": [[1]]}"#), 3);
    }
}
