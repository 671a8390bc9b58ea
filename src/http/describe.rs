//! `GET /{name}` with no parameters: what the server is and how to call it — an HTML form for a
//! browser, JSON for everything else.

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::html;

use crate::engine::Script;
use crate::invoke::Target;
use crate::runtime::Runtime;

pub fn describe(runtime: &Runtime, target: &str, headers: &HeaderMap) -> Response {
    let (script, enabled) = match Target::parse(target) {
        Target::Cid(cid) => match runtime.runner(&cid).and_then(|_| runtime.script(&cid)) {
            Ok(script) => (script, None),
            Err(error) => return error.into_response(),
        },
        _ => match runtime.existing(target) {
            Ok(server) => match &server.script {
                Ok(script) => (script.clone(), Some(server.enabled)),
                Err(error) => return error.clone().into_response(),
            },
            Err(error) => return error.into_response(),
        },
    };
    if super::page::wants_html(headers) {
        form(target, &script)
    } else {
        Json(crate::server::describe(target, &script, enabled)).into_response()
    }
}

/// The page: what the server is, and a form that invokes it (a same-origin POST, which the browser
/// rules admit).
fn form(target: &str, script: &Script) -> Response {
    let meta = &script.meta;
    let body = html! {
        h1 { (meta.title) }
        p { (meta.description) }
        p { "Server " code { (target) } ", script " code { (script.cid) } }
        @if let Some(docs) = crate::docs::web_link(&meta.docs) {
            p { a href=(docs) { "API documentation" } }
        }
        form method="post" action={ "/" (target) } {
            label for="endpoint" { "Endpoint" }
            input id="endpoint" name="endpoint" placeholder="/path?query";
            label for="method" { "Method" }
            select id="method" name="method" {
                @for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
                    option { (method) }
                }
            }
            label for="data" { "Data (JSON or text)" }
            textarea id="data" name="data" {}
            p { button type="submit" { "Invoke" } }
        }
        @if !meta.operations.is_empty() {
            h2 { "Operations" }
            p { "Each is also an MCP tool " code { (target) "__" i { "operation" } } " at " code { "/mcp" } "." }
            @for op in &meta.operations {
                section data-testid="operation" {
                    h3 { code { (op.name) } }
                    p { (op.description) }
                    p { code { (op.method) " " (op.endpoint) } }
                    @let arguments = op.arguments();
                    @if !arguments.is_empty() {
                        ul {
                            @for (argument, required) in arguments {
                                li { code { (argument) } @if required { " (required)" } }
                            }
                        }
                    }
                }
            }
        }
    };
    super::page::page(StatusCode::OK, &meta.title, body)
}
