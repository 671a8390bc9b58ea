//! The server page's OAuth and webhook cards: a connection's status with a Connect button that runs the
//! authorization-code flow (the provider sends the browser back to `/oauth/{name}/callback`, whose page
//! returns here), and the webhook endpoint to give a provider with the events received and a replay.
//! Both only present what [`crate::oauth::connect`] and [`crate::webhooks`] do for `/api/`.

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde_json::Value;

use super::State;
use super::frame;
use super::session::Editor;
use crate::error::Error;
use crate::http::parse_cid;
use crate::store::WebhookEvent;

/// The OAuth card, from `GET /api/oauth/{name}`'s status: connected or not, expiry and scopes.
pub fn oauth(name: &str, status: &Value, read_only: bool) -> Markup {
    let connected = status["connected"] == true;
    html! {
        h2 { "OAuth connection" }
        p data-testid="oauth-status" {
            @if connected { span.badge.ok { "connected" } } @else { span.badge.warn { "not connected" } }
            " grant " code { (status["grant"].as_str().unwrap_or_default()) }
        }
        @if let Some(expires) = status["expires_at"].as_str() { p.muted { "Token renewed automatically; current one expires " (expires) } }
        @if let Some(scopes) = status["scopes"].as_array().filter(|s| !s.is_empty()) {
            p.muted { "Scopes: " @for scope in scopes { code { (scope.as_str().unwrap_or_default()) } " " } }
        }
        @if !read_only && status["needs_connection"] == true {
            button.primary hx-post={ "/ui/servers/" (name) "/connect" } data-testid="oauth-connect" {
                @if connected { "Connect again" } @else { "Connect" }
            }
        }
    }
}

/// `POST /ui/servers/{name}/connect`: starts the code flow and sends the browser to the provider.
pub async fn connect(_: Editor, console: State, Path(name): Path<String>, headers: HeaderMap) -> Result<Response, Error> {
    let public = crate::http::oauth::public_url(&console.runtime, &headers)?;
    let started = console.runtime.blocking(move |rt| crate::oauth::connect::start(rt, &name, &public)).await?;
    let target = HeaderValue::from_str(&started.authorize_url).map_err(|e| Error::internal("authorize URL", e))?;
    Ok((StatusCode::OK, [("hx-redirect", target)]).into_response())
}

/// The webhook card: where the provider sends events, and the latest ones with a replay each.
pub fn webhooks(name: &str, endpoint: &str, events: &[WebhookEvent], read_only: bool) -> Markup {
    let when = |at: i64| {
        chrono::DateTime::from_timestamp_millis(at).map_or_else(String::new, |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
    };
    html! {
        h2 { "Webhooks" }
        p { "Give the provider this endpoint: " code data-testid="webhook-endpoint" { (endpoint) } }
        @if events.is_empty() { p.muted { "No event received yet." } }
        @else {
            table {
                thead { tr { th { "Received" } th { "Delivery" } th { "Result" } th { "Runs" } th {} } }
                tbody {
                    @for event in events {
                        tr data-testid="webhook-event" data-cid=(event.cid) {
                            td { (when(event.received_at)) }
                            td { code { (event.delivery_id) } }
                            td { (event.status.as_str()) @if let Some(status) = event.outcome.as_ref().and_then(|o| o.get("status")) { " · " (status) } }
                            td { (event.attempts) }
                            td { @if !read_only {
                                button hx-post={ "/ui/servers/" (name) "/events/" (event.cid) "/replay" } hx-target="#webhooks"
                                       data-testid="webhook-replay" { "Replay" }
                            } }
                        }
                    }
                }
            }
        }
    }
}

/// `POST /ui/servers/{name}/events/{cid}/replay`: runs the handler on the event again; the card again.
pub async fn replay(
    _: Editor,
    console: State,
    Path((name, cid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    console.runtime.replay_webhook(&name, parse_cid(&cid)?).await?;
    let events = console.runtime.webhook_events(&name, 20).await?;
    let endpoint = endpoint(&console, &headers, &name)?;
    Ok(frame::fragment(StatusCode::OK, webhooks(&name, &endpoint, &events, false)))
}

/// The URL a provider delivers this server's events to.
pub fn endpoint(console: &State, headers: &HeaderMap, name: &str) -> Result<String, Error> {
    let public = crate::http::oauth::public_url(&console.runtime, headers)?;
    Ok(format!("{}/webhooks/{name}", public.trim_end_matches('/')))
}
