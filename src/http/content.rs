//! Content by CID, and the health check.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth::Reader;
use super::{AppState, parse_cid};
use crate::engine::{Data, output};
use crate::error::Error;

/// `GET /cid/{cid}`: the blob, cacheable forever (its name is its content).
pub async fn blob(
    _: Reader,
    State(runtime): State<AppState>,
    Path(cid): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let cid = parse_cid(&cid)?;
    let etag = HeaderValue::from_str(&format!("\"{cid}\"")).map_err(|e| Error::internal("etag", e))?;
    if headers.get(header::IF_NONE_MATCH) == Some(&etag) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    let bytes = runtime.blocking(move |rt| rt.blob(&cid)).await?;
    let content_type = match Data::sniff(bytes.clone().into()) {
        Data::Json(_) => output::JSON,
        Data::Text(_) => output::TEXT,
        _ => output::BINARY,
    };
    let headers = [
        (header::CONTENT_TYPE, content_type),
        (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable")),
        (header::ETAG, etag),
    ];
    Ok((headers, bytes).into_response())
}

/// `GET /health`.
pub async fn health(State(runtime): State<AppState>) -> Result<Json<Value>, Error> {
    let servers = runtime.servers();
    let boot_cid = runtime.blocking(|rt| rt.boot_cid()).await?;
    Ok(Json(json!({
        "status": "ok",
        "servers": servers.len(),
        "enabled": servers.values().filter(|s| s.enabled).count(),
        "boot_cid": boot_cid,
    })))
}
