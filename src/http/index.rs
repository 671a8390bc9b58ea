//! `GET /`: a small index of what this server offers, so that opening its address shows where to go —
//! a page for a browser, JSON for a client that asks for it (or says nothing), the same links in both.

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde_json::json;

use super::page::{page, wants_html};

/// The links, as (name in the JSON, path, what it is).
const LINKS: [(&str, &str, &str); 4] = [
    ("ui", "/ui", "Web console"),
    ("health", "/health", "Health: the server count and the boot CID"),
    ("servers", "/api/servers", "Catalog: every server, its CID and title (JSON)"),
    ("mcp", "/mcp", "MCP endpoint (Streamable HTTP, POST)"),
];

pub async fn index(headers: HeaderMap) -> Response {
    if !wants_html(&headers) {
        let links: serde_json::Map<_, _> =
            LINKS.iter().map(|(name, path, _)| (name.to_string(), json!(path))).collect();
        let body = json!({ "name": "switchboard", "version": env!("CARGO_PKG_VERSION"), "links": links });
        return Json(body).into_response();
    }
    let body = html! {
        h1 { "Switchboard" }
        p { "Integration servers as Rhai scripts, each invoked at " code { "/{name}" } "." }
        ul { @for (_, path, what) in LINKS { li { a href=(path) { (path) } " — " (what) } } }
    };
    page(StatusCode::OK, "Switchboard", body)
}
