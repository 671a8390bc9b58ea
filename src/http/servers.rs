//! `/api/servers`: list, show, edit live, enable, disable, delete, history and rollback.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{Admin, Reader};
use super::{AppState, LimitedBody, parse_cid};
use crate::error::Error;
use crate::runtime::Runtime;
use crate::server::Server;
use crate::store::Origin;

fn summary(runtime: &Runtime, server: &Server) -> Value {
    let meta = server.script.as_ref().ok().map(|s| &s.meta);
    json!({
        "name": server.name,
        "cid": server.cid,
        "enabled": server.enabled,
        "title": meta.map(|m| &m.title),
        "description": meta.map(|m| &m.description),
        "category": meta.map(|m| &m.category),
        "load_error": server.script.as_ref().err().map(|e| e.to_json()["error"].clone()),
        "last_error": runtime.last_error(&server.name).map(|e| e.to_json()["error"].clone()),
    })
}

/// `GET /api/servers`: every server, by name.
pub async fn list(_: Reader, State(runtime): State<AppState>) -> Json<Value> {
    let servers = runtime.servers();
    let mut names: Vec<&String> = servers.keys().collect();
    names.sort();
    Json(json!({ "servers": names.into_iter().map(|n| summary(&runtime, &servers[n])).collect::<Vec<_>>() }))
}

/// `GET /api/servers/{name}`: one server with its metadata, history and last hour (`stats`: calls,
/// error rate, p50/p99).
pub async fn show(_: Reader, State(runtime): State<AppState>, Path(name): Path<String>) -> Result<Json<Value>, Error> {
    let server = runtime.existing(&name)?;
    let (history, stats) = runtime
        .blocking(move |rt| {
            let now = chrono::Utc::now().timestamp_millis();
            Ok((rt.history(&name)?, crate::observe::stats::last_hour(rt.store.as_ref(), &name, now)?))
        })
        .await?;
    let mut body = summary(&runtime, &server);
    body["meta"] = server.script.as_ref().map(|s| s.meta.json.clone()).unwrap_or(Value::Null);
    body["history"] = json!(history);
    body["stats"] = json!(stats);
    Ok(Json(body))
}

/// `GET /api/servers/{name}/history`: every binding of the name, oldest first.
pub async fn history(
    _: Reader,
    State(runtime): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, Error> {
    let lookup = name.clone();
    let history = runtime.blocking(move |rt| rt.history(&lookup)).await?;
    Ok(Json(json!({ "name": name, "history": history })))
}

/// `PUT /api/servers/{name}` with Rhai source: compiled, stored and bound, or refused with 422.
pub async fn put(
    _: Admin,
    State(runtime): State<AppState>,
    Path(name): Path<String>,
    LimitedBody(source): LimitedBody,
) -> Result<Json<Value>, Error> {
    let bound = name.clone();
    let cid = runtime.blocking(move |rt| rt.put_script(&bound, &source, Origin::Api)).await?;
    tracing::info!(server = %name, %cid, "bound through the API");
    Ok(Json(json!({ "name": name, "cid": cid })))
}

/// `DELETE /api/servers/{name}`: the server goes, its history stays.
pub async fn remove(_: Admin, State(runtime): State<AppState>, Path(name): Path<String>) -> Result<StatusCode, Error> {
    runtime.blocking(move |rt| rt.remove(&name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_enabled(runtime: AppState, name: String, enabled: bool) -> Result<Json<Value>, Error> {
    let target = name.clone();
    runtime.blocking(move |rt| rt.set_enabled(&target, enabled)).await?;
    let server = runtime.existing(&name)?;
    Ok(Json(summary(&runtime, &server)))
}

/// `POST /api/servers/{name}/enable`.
pub async fn enable(_: Admin, State(runtime): State<AppState>, Path(name): Path<String>) -> Result<Json<Value>, Error> {
    set_enabled(runtime, name, true).await
}

/// `POST /api/servers/{name}/disable`.
pub async fn disable(
    _: Admin,
    State(runtime): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, Error> {
    set_enabled(runtime, name, false).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    cid: String,
}

/// `POST /api/servers/{name}/rollback` with `{"cid": "…"}`: bind the name back to a CID from its history.
pub async fn rollback(
    _: Admin,
    State(runtime): State<AppState>,
    Path(name): Path<String>,
    LimitedBody(body): LimitedBody,
) -> Result<Json<Value>, Error> {
    let request: Rollback = serde_json::from_slice(&body)
        .map_err(|e| Error::BadRequest(format!("rollback takes {{\"cid\": \"…\"}}: {e}")))?;
    let cid = parse_cid(&request.cid)?;
    let target = name.clone();
    runtime.blocking(move |rt| rt.rollback(&target, &cid)).await?;
    let server = runtime.existing(&name)?;
    Ok(Json(summary(&runtime, &server)))
}
