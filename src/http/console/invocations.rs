//! `/ui/invocations`: the recent invocation records, filtered by server, status and caller kind, each
//! linking to the server's page and to its script version and input/output blobs (`/cid/…`).

use std::collections::HashMap;

use axum::extract::Query;
use axum::response::Response;
use maud::html;

use super::State;
use super::frame::{self, Section};
use super::session::Viewer;
use crate::error::Error;
use crate::store::{RecordFilter, StatusFilter, Via};

/// Most records one page shows.
const SHOWN: usize = 200;

/// `GET /ui/invocations[?server=&status=ok|error|CODE&via=http|mcp|webhook|cli]`.
pub async fn page(
    viewer: Viewer,
    console: State,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Error> {
    let given = |key: &str| query.get(key).filter(|v| !v.is_empty()).cloned();
    let filter = RecordFilter {
        server: given("server"),
        status: given("status").map(|s| s.parse::<StatusFilter>()).transpose().map_err(Error::BadRequest)?,
        via: given("via").map(|v| v.parse::<Via>()).transpose().map_err(Error::BadRequest)?,
        limit: SHOWN,
        ..RecordFilter::default()
    };
    let records = console.runtime.blocking(move |rt| rt.store.records(&filter)).await?;
    let when = |at: i64| {
        chrono::DateTime::from_timestamp_millis(at).map_or_else(String::new, |t| t.format("%H:%M:%S%.3f").to_string())
    };
    let cid_link = |cid: &Option<crate::cid::Cid>| html! { @if let Some(cid) = cid { a href={ "/cid/" (cid) } { code { "…" (&cid.to_string()[47..]) } } } };
    let body = html! {
        h1 { "Invocations" }
        p.muted { "The newest " (SHOWN) " records: never a payload or a secret." }
        form.inline method="get" action="/ui/invocations" {
            div { label for="f-server" { "Server" } input #f-server name="server" value=[given("server")]; }
            div { label for="f-status" { "Status" } input #f-status name="status" placeholder="ok, error or 404" value=[given("status")]; }
            div { label for="f-via" { "Caller" } select #f-via name="via" {
                option value="" { "any" }
                @for via in Via::ALL { option selected[given("via").as_deref() == Some(via.as_str())] { (via.as_str()) } }
            } }
            button type="submit" { "Filter" }
        }
        table {
            thead { tr { th { "Time" } th { "Server" } th { "Via" } th { "Status" } th { "Duration" } th { "Upstream" } th { "Script" } th { "In / out" } } }
            tbody {
                @for record in &records {
                    tr data-testid="invocation-row" {
                        td { (when(record.time)) }
                        td { @if let Some(server) = &record.server { a href={ "/ui/servers/" (server) } { (server) } } }
                        td { (record.via.as_str()) }
                        td { (record.status) @if let Some(kind) = &record.error_type { " " span.badge.bad { (kind) } } }
                        td { (format!("{:.1} ms", record.duration_ms)) }
                        td { (record.upstream_calls) " · " (record.upstream_bytes) " B" }
                        td { (cid_link(&record.cid)) }
                        td { (cid_link(&record.input_cid)) " " (cid_link(&record.output_cid)) }
                    }
                }
                @if records.is_empty() { tr { td.empty colspan="8" { "No invocation matches." } } }
            }
        }
    };
    Ok(frame::page(&viewer.csrf, viewer.read_only, Section::Invocations, "Invocations", None, body))
}
