//! `POST /webhooks/{name}` (deliveries from providers) and `/api/webhooks/{name}/events` (what was
//! received, and replaying it). The receiving itself is [`crate::webhooks`]'; this only translates HTTP.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{Admin, AdminRead};
use super::{AppState, parse_cid, read_body};
use crate::error::Error;
use crate::store::EventStatus;
use crate::webhooks::Incoming;

static WEBHOOK_EVENT: HeaderName = HeaderName::from_static("x-webhook-event");

/// `POST /webhooks/{name}`: the raw body goes to verification untouched. The answer is the handler's
/// response (or the event's CID), with the event's CID in `X-Webhook-Event`.
pub async fn receive(
    State(runtime): State<AppState>,
    Path(name): Path<String>,
    request: axum::extract::Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = match read_body(body, runtime.settings.max_body).await {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    let url = public_url(runtime.settings.public_url.as_ref(), &parts);
    let received = runtime.receive_webhook(&name, Incoming { headers: parts.headers, body, url }).await;
    let mut response = super::dispatch::respond(received.invoked);
    if let Some(cid) = received.event {
        match super::cid_header(&cid) {
            Ok(value) => response.headers_mut().insert(WEBHOOK_EVENT.clone(), value),
            Err(error) => return error.into_response(),
        };
    }
    response
}

/// The URL the provider sent this request to: `serve --public-url` followed by the request's path and
/// query, else `http://` and the Host the request names.
fn public_url(configured: Option<&url::Url>, parts: &Parts) -> String {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    match configured {
        Some(base) => format!("{}{path}", base.as_str().trim_end_matches('/')),
        None => {
            let host = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok());
            let host = host.or_else(|| parts.uri.authority().map(|a| a.as_str())).unwrap_or("localhost");
            format!("http://{host}{path}")
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listing {
    limit: Option<usize>,
    status: Option<String>,
}

/// `GET /api/webhooks/{name}/events[?limit=N][&status=S]` (admin token): the newest events first (100
/// by default), of one status (`pending`, `failed`, `dead`, `handled`, `stored`) if asked.
pub async fn events(
    _: AdminRead,
    State(runtime): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, Error> {
    let listing: Listing = serde_urlencoded::from_str(query.as_deref().unwrap_or_default())
        .map_err(|e| Error::BadRequest(format!("the event listing takes limit=N and status=S: {e}")))?;
    let limit = listing.limit.unwrap_or(100).min(10_000);
    let status = listing.status.map(|s| s.parse::<EventStatus>()).transpose().map_err(Error::BadRequest)?;
    let events = runtime.webhook_events(&name, status, limit).await?;
    Ok(Json(json!({ "server": name, "events": events })))
}

/// `POST /api/webhooks/{name}/events/{cid}/replay` (admin): runs the server's current handler on the
/// stored event again and answers the event as it then stands.
pub async fn replay(
    _: Admin,
    State(runtime): State<AppState>,
    Path((name, cid)): Path<(String, String)>,
) -> Result<Json<Value>, Error> {
    let cid = parse_cid(&cid)?;
    let event = runtime.replay_webhook(&name, cid).await?;
    Ok(Json(json!({ "event": event })))
}
