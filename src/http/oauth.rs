//! `/api/oauth` (every connection), `/api/oauth/{name}` (status, disconnect), `/api/oauth/{name}/start`
//! and the public `/oauth/{name}/callback`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use maud::html;
use serde_json::Value;

use super::AppState;
use super::auth::{Admin, AdminRead};
use crate::error::Error;
use crate::oauth::{connect, connections};

/// The URL browsers reach this runtime at: `serve --public-url`, else `http://` and the request's Host.
fn public_url(runtime: &AppState, headers: &HeaderMap) -> Result<String, Error> {
    if let Some(url) = &runtime.settings.public_url {
        return Ok(url.as_str().to_owned());
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).filter(|h| !h.is_empty());
    let host = host.ok_or_else(|| {
        Error::BadRequest("no Host header to build the redirect URI from: use serve --public-url".into())
    })?;
    Ok(format!("http://{host}"))
}

/// `POST /api/oauth/{name}/start` → `{authorize_url, redirect_uri, expires_in}`.
pub async fn start(
    _: Admin,
    State(runtime): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Json<connect::Started>, Error> {
    let public = public_url(&runtime, &headers)?;
    runtime.blocking(move |rt| connect::start(rt, &name, &public)).await.map(Json)
}

/// `GET /api/oauth/{name}`: connected, expiry, scopes — never a token.
pub async fn status(
    _: AdminRead,
    State(runtime): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, Error> {
    runtime.blocking(move |rt| connections::status(rt, &name)).await.map(Json)
}

/// `GET /api/oauth`: the status of every server that uses OAuth.
pub async fn list(_: AdminRead, State(runtime): State<AppState>) -> Result<Json<Value>, Error> {
    runtime.blocking(connections::list).await.map(Json)
}

/// `DELETE /api/oauth/{name}`: forgets the connection, revoking its token where the provider can.
pub async fn disconnect(
    _: Admin,
    State(runtime): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, Error> {
    connections::disconnect(runtime, name).await.map(Json)
}

/// Longest provider text shown on the callback page.
const SHOWN: usize = 300;

/// `GET /oauth/{name}/callback?code=…&state=…`: where the provider sends the browser back. Answers a
/// page saying what happened (400 when the state is not one this runtime issued for this server).
pub async fn callback(
    State(runtime): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let server = name.clone();
    let outcome = match (query.get("state").cloned(), query.get("code").cloned(), query.get("error")) {
        (_, _, Some(refusal)) => return refused(&name, refusal, query.get("error_description")),
        (Some(state), Some(code), None) => connect::finish(runtime.clone(), server, state, code).await,
        _ => Err(Error::BadRequest("the callback lacks its code or state".into())),
    };
    let (status, title, message) = match &outcome {
        Ok(()) => (
            StatusCode::OK,
            "Connected",
            format!("'{name}' is connected: Switchboard now obtains and renews its tokens."),
        ),
        Err(error) => (
            StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST),
            "Not connected",
            format!("'{name}' was not connected: {}", error.message()),
        ),
    };
    super::page::page(status, title, html! { h1 { (title) } p { (message) } p { "You can close this page." } })
}

/// The page for a provider that sent the browser back with an error (RFC 6749 §4.1.2.1): its `error`
/// and `error_description`, shortened and escaped like every text on a page.
fn refused(name: &str, error: &str, description: Option<&String>) -> Response {
    let shown = |text: &str| text.chars().take(SHOWN).collect::<String>();
    let title = "Not connected";
    let body = html! {
        h1 { (title) }
        p { "'" (name) "' was not connected: the provider did not authorize the connection." }
        dl {
            dt { "error" } dd { code { (shown(error)) } }
            @if let Some(description) = description {
                dt { "error_description" } dd { (shown(description)) }
            }
        }
        p { "Start again from Switchboard when the cause is fixed. You can close this page." }
    };
    super::page::page(StatusCode::BAD_REQUEST, title, body)
}
