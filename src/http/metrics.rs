//! `GET /metrics`: the process's Prometheus metrics. Open like `/health`, unless `serve
//! --metrics-token` set a token it must present as `Authorization: Bearer <token>`.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::error::Error;

/// What Prometheus and other scrapers read (`prometheus-client` writes OpenMetrics text).
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub async fn metrics(State(runtime): State<AppState>, headers: HeaderMap) -> Result<Response, Error> {
    if let Some(token) = &runtime.settings.metrics_token {
        let presented = crate::access::bearer(headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()));
        // Digests compare in constant time.
        if presented.is_none_or(|presented| blake3::hash(presented.as_bytes()) != blake3::hash(token.as_bytes())) {
            return Err(Error::Unauthorized("/metrics needs Authorization: Bearer <metrics token>".into()));
        }
    }
    let text = runtime.observer.metrics.encode().map_err(|e| Error::internal("metrics", e))?;
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))], text).into_response())
}
