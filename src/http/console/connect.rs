//! The server page's OAuth and webhook cards: a connection's status with a Connect button that runs the
//! authorization-code flow (the provider sends the browser back to `/oauth/{name}/callback`, whose page
//! returns here), and the webhook endpoint to give a provider with the events received and a replay.
//! Both only present what [`crate::oauth::connect`] and [`crate::webhooks`] do for `/api/`.

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
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
use crate::meta::Meta;
use crate::store::WebhookEvent;

/// The OAuth card of a server that uses OAuth, with the current values of its declared variables.
pub async fn oauth_card(
    console: &State,
    name: &str,
    meta: Option<&Meta>,
    read_only: bool,
) -> Result<Option<Markup>, Error> {
    let Some(meta) = meta.filter(|meta| meta.oauth2.is_some()) else { return Ok(None) };
    let (server, declared) = (name.to_owned(), meta.variables.clone());
    let (status, variables) = console
        .runtime
        .blocking(move |rt| {
            let current = |variable: String| {
                let value = rt.services.variable(&variable).unwrap_or_default();
                (variable, value)
            };
            Ok((crate::oauth::connections::status(rt, &server)?, declared.into_iter().map(current).collect::<Vec<_>>()))
        })
        .await?;
    Ok(Some(oauth(name, &status, &variables, read_only)))
}

/// The webhook card of a server that receives webhooks.
pub async fn webhook_card(
    console: &State,
    headers: &HeaderMap,
    name: &str,
    meta: Option<&Meta>,
    read_only: bool,
) -> Result<Option<Markup>, Error> {
    if meta.is_none_or(|meta| meta.webhook.is_none()) {
        return Ok(None);
    }
    let events = console.runtime.webhook_events(name, None, 20).await?;
    Ok(Some(webhooks(name, &endpoint(console, headers, name)?, &events, read_only)))
}

/// The OAuth card, from `GET /api/oauth/{name}`'s status: connected or not, expiry and scopes. The
/// variables the server declares (a subdomain, a tenant…) are asked for with the Connect button, filled
/// with their current values.
fn oauth(name: &str, status: &Value, variables: &[(String, String)], read_only: bool) -> Markup {
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
            form hx-post={ "/ui/servers/" (name) "/connect" } {
                @for (variable, value) in variables {
                    label for={ "var-" (variable) } { (variable) }
                    input id={ "var-" (variable) } name=(variable) value=(value) required data-testid="oauth-variable";
                }
                div.actions {
                    button.primary type="submit" data-testid="oauth-connect" {
                        @if connected { "Connect again" } @else { "Connect" }
                    }
                    @if connected {
                        button.danger type="button" hx-post={ "/ui/servers/" (name) "/disconnect" }
                               hx-confirm="Disconnect and revoke the token where the provider can?"
                               data-testid="oauth-disconnect" { "Disconnect" }
                    }
                }
            }
        }
    }
}

/// `POST /ui/servers/{name}/connect` with the declared variables: each checked against its declared
/// pattern and kept as a registry variable, then the code flow starts and the browser goes to the provider.
pub async fn connect(
    _: Editor,
    console: State,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Error> {
    let public = crate::http::oauth::public_url(&console.runtime, &headers)?;
    let fields: HashMap<String, String> =
        serde_urlencoded::from_bytes(&body).map_err(|e| Error::BadRequest(format!("malformed form: {e}")))?;
    let script = console.runtime.existing(&name)?.script.clone()?;
    let values = checked_variables(&script.meta, &fields)?;
    let started = console
        .runtime
        .blocking(move |rt| {
            if !values.is_empty() {
                rt.merge_variables(values)?;
            }
            crate::oauth::connect::start(rt, &name, &public)
        })
        .await?;
    let target = HeaderValue::from_str(&started.authorize_url).map_err(|e| Error::internal("authorize URL", e))?;
    Ok((StatusCode::OK, [("hx-redirect", target)]).into_response())
}

/// `POST /ui/servers/{name}/disconnect`: forgets the connection, revoking its token where the provider can.
pub async fn disconnect(_: Editor, console: State, Path(name): Path<String>) -> Result<Response, Error> {
    crate::oauth::connections::disconnect(console.runtime.clone(), name).await?;
    Ok((StatusCode::OK, [("hx-refresh", HeaderValue::from_static("true"))]).into_response())
}

/// The declared variables from the form, each present, free of control characters and matching its
/// declared pattern as a whole; `bad_request` naming the first that is not.
fn checked_variables(meta: &Meta, fields: &HashMap<String, String>) -> Result<BTreeMap<String, String>, Error> {
    let mut values = BTreeMap::new();
    for name in &meta.variables {
        let value = fields.get(name).map(|v| v.trim()).unwrap_or_default();
        let matches = meta.variable_patterns.get(name).is_none_or(|pattern| pattern.is_match(value));
        if value.is_empty() || value.chars().any(char::is_control) || !matches {
            let expected = meta
                .variable_patterns
                .get(name)
                .map(|p| format!(" (it must match {})", p.as_str()))
                .unwrap_or_default();
            return Err(Error::BadRequest(format!("'{value}' is not a valid {name}{expected}")));
        }
        values.insert(name.clone(), value.to_owned());
    }
    Ok(values)
}

/// The webhook card: where the provider sends events, and the latest ones with a replay each.
fn webhooks(name: &str, endpoint: &str, events: &[WebhookEvent], read_only: bool) -> Markup {
    let when = |at: i64| {
        chrono::DateTime::from_timestamp_millis(at)
            .map_or_else(String::new, |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
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
    let events = console.runtime.webhook_events(&name, None, 20).await?;
    let endpoint = endpoint(&console, &headers, &name)?;
    Ok(frame::fragment(StatusCode::OK, webhooks(&name, &endpoint, &events, false)))
}

/// The URL a provider delivers this server's events to.
fn endpoint(console: &State, headers: &HeaderMap, name: &str) -> Result<String, Error> {
    let public = crate::http::oauth::public_url(&console.runtime, headers)?;
    Ok(format!("{}/webhooks/{name}", public.trim_end_matches('/')))
}
