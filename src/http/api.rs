//! The management API under `/api/`.

use axum::extract::{Path, State};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::{AppState, secrets};
use crate::error::Error;
use crate::server::Server;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/servers", get(list))
        .route("/servers/{name}", get(show))
        .route("/secrets", get(secrets::list))
        .route("/secrets/{name}", put(secrets::set).delete(secrets::remove))
        .fallback(not_found)
}

async fn not_found() -> Error {
    Error::NotFound("no such management route".into())
}

fn summary(server: &Server) -> Value {
    let meta = server.script.as_ref().ok().map(|s| &s.meta);
    json!({
        "name": server.name,
        "cid": server.cid,
        "enabled": server.enabled,
        "title": meta.map(|m| &m.title),
        "description": meta.map(|m| &m.description),
        "category": meta.map(|m| &m.category),
        "load_error": server.script.as_ref().err().map(|e| e.to_json()["error"].clone()),
        "last_error": server.last_error.as_ref().map(|e| e.to_json()["error"].clone()),
    })
}

/// `GET /api/servers`: every server, by name.
async fn list(State(runtime): State<AppState>) -> Json<Value> {
    let servers = runtime.servers();
    let mut names: Vec<&String> = servers.keys().collect();
    names.sort();
    Json(json!({ "servers": names.into_iter().map(|n| summary(&servers[n])).collect::<Vec<_>>() }))
}

/// `GET /api/servers/{name}`: one server with its metadata and history.
async fn show(State(runtime): State<AppState>, Path(name): Path<String>) -> Result<Json<Value>, Error> {
    let server = runtime.server(&name).ok_or_else(|| Error::NotFound(format!("no server named '{name}'")))?;
    let lookup = name.clone();
    let history = runtime.blocking(move |rt| rt.store.history(&lookup)).await?;
    let mut body = summary(&server);
    body["meta"] = server.script.as_ref().map(|s| s.meta.json.clone()).unwrap_or(Value::Null);
    body["history"] = json!(history);
    Ok(Json(body))
}
