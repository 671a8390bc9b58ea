//! Request ids and trace context at the edge: every request gets its [`Trace`] (the caller's
//! `X-Request-Id` when it is sane, its `traceparent` continued) in its extensions, where the entry
//! points (invocations, webhooks, MCP) take it for the invocation, and every response says
//! `X-Request-Id`.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use crate::observe::trace::{REQUEST_ID, Trace};

static X_REQUEST_ID: HeaderName = HeaderName::from_static(REQUEST_ID);

pub async fn traced(mut request: Request, next: Next) -> Response {
    let trace = Trace::from_headers(request.headers());
    let id = HeaderValue::from_str(&trace.request_id);
    request.extensions_mut().insert(trace);
    let mut response = next.run(request).await;
    if let Ok(id) = id {
        response.headers_mut().insert(X_REQUEST_ID.clone(), id);
    }
    response
}
