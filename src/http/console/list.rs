//! `/ui`: every server, searchable as you type by name, title and category, each row with its state
//! and its last hour (calls, error rate: one aggregated read of the records for the whole list).

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};

use super::frame::{self, Section};
use super::session::Viewer;
use super::{State, state};
use crate::error::Error;
use crate::observe::stats::{Calls, last_hour_by_server};
use crate::runtime::Runtime;

/// `GET /ui[?q=…]`.
pub async fn page(
    viewer: Viewer,
    console: State,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Error> {
    let q = query.get("q").cloned().unwrap_or_default();
    let runtime = console.runtime.clone();
    let shown = q.clone();
    let (rows, total) = runtime.blocking(move |rt| Ok((rows_of(rt, &shown)?, rt.servers().len()))).await?;
    let body = html! {
        div.heading {
            div {
                h1 { "Servers" }
                p.muted { (total) " servers · type to filter by name, title or category" }
            }
            @if !viewer.read_only {
                div.actions {
                    a.button href="/ui/import" data-testid="import-openapi" { "Import OpenAPI" }
                    a.button href="/ui/new" data-testid="new-server" { "New server" }
                }
            }
        }
        input.search type="search" name="q" value=(q) placeholder="Search servers…" autofocus
              aria-label="Search servers" data-testid="server-search"
              hx-get="/ui/servers" hx-trigger="input changed delay:120ms, search" hx-target="#rows"
              hx-push-url="false";
        // A grid rather than a table: each row can then skip layout and paint while it is off screen
        // (`content-visibility`), so the first paint costs the rows in view, not all of them.
        div.servers role="table" aria-label="Servers" {
            div.head role="row" {
                span role="columnheader" { "Server" } span role="columnheader" { "Category" }
                span role="columnheader" { "State" } span.num role="columnheader" { "Last hour" }
            }
            div #rows role="rowgroup" { (rows) }
        }
    };
    Ok(frame::page(&viewer.csrf, viewer.read_only, Section::Servers, "Servers", None, body))
}

/// `GET /ui/servers?q=…`: the rows that match, for the search box.
pub async fn rows(_: Viewer, console: State, Query(query): Query<HashMap<String, String>>) -> Result<Response, Error> {
    let q = query.get("q").cloned().unwrap_or_default();
    let rows = console.runtime.blocking(move |rt| rows_of(rt, &q)).await?;
    Ok(frame::fragment(StatusCode::OK, rows))
}

fn rows_of(runtime: &Runtime, query: &str) -> Result<Markup, Error> {
    let servers = runtime.servers();
    let now = chrono::Utc::now().timestamp_millis();
    let calls = last_hour_by_server(runtime.store.as_ref(), now)?;
    let mut names: Vec<&String> = servers.keys().collect();
    names.sort();
    let words: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
    let matches = |name: &str| {
        let server = &servers[name];
        let meta = server.script.as_ref().ok().map(|s| &s.meta);
        let text =
            format!("{name} {} {}", meta.map_or("", |m| m.title.as_str()), meta.map_or("", |m| m.category.as_str()))
                .to_lowercase();
        words.iter().all(|word| text.contains(word.as_str()))
    };
    let shown: Vec<&String> = names.into_iter().filter(|name| matches(name)).collect();
    Ok(html! {
        @for name in &shown {
            @let server = &servers[name.as_str()];
            @let meta = server.script.as_ref().ok().map(|s| &s.meta);
            @let state = state::of(runtime, server);
            div.row role="row" data-testid="server-row" data-name=(name) {
                div.name role="cell" {
                    a href={ "/ui/servers/" (name) } { (name) }
                    span.sub { (meta.map_or("", |m| m.title.as_str())) }
                }
                div role="cell" { (meta.map_or("", |m| m.category.as_str())) }
                div role="cell" { (badges(&state)) }
                div.num role="cell" data-testid="server-calls" {
                    (last_hour(calls.get(name.as_str()).copied().unwrap_or_default()))
                }
            }
        }
        @if shown.is_empty() { div.empty role="row" { span role="cell" { "No server matches “" (query) "”." } } }
    })
}

/// A row's last hour: its calls and, when some failed, the share that did.
fn last_hour(calls: Calls) -> Markup {
    html! {
        @if calls.calls == 0 { span.muted { "no calls" } } @else {
            (calls.calls) @if calls.calls == 1 { " call" } @else { " calls" }
            @if calls.errors > 0 {
                @let rate = calls.error_rate() * 100.0;
                @let class = if rate >= 5.0 { "bad" } else { "warn" };
                " " span class={ "badge " (class) } title={ (calls.errors) " failed" } { (format!("{rate:.1}")) " % errors" }
            }
        }
    }
}

/// The state of a server as a few words, each with its colour.
pub fn badges(state: &state::State) -> Markup {
    html! {
        @if state.enabled { span.badge.ok { "enabled" } } @else { span.badge.off { "disabled" } }
        @match state.missing() {
            _ if state.secrets.is_empty() => {}
            0 => span.badge.ok { "secrets set" },
            n => span.badge.warn title="Set them on the Secrets page" { (n) " secret" @if n > 1 { "s" } " missing" },
        }
        @match state.oauth {
            Some(true) => span.badge.ok { "OAuth connected" },
            Some(false) => span.badge.warn { "OAuth not connected" },
            None => {}
        }
        @if state.error.is_some() { span.badge.bad title=[state.error.as_deref()] { "compile error" } }
    }
}
