//! `GET /{name}` with no parameters: what the server is and how to call it — an HTML form for a
//! browser, JSON for everything else.

use axum::Json;
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, html};

use crate::engine::Script;
use crate::invoke::Target;
use crate::runtime::Runtime;

pub fn describe(runtime: &Runtime, target: &str, headers: &HeaderMap) -> Response {
    let (script, enabled) = match Target::parse(target) {
        Target::Cid(cid) => match runtime.script(&cid) {
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
    let wants_html =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|accept| accept.contains("text/html"));
    if wants_html {
        form(target, &script).into_response()
    } else {
        Json(crate::server::describe(target, &script, enabled)).into_response()
    }
}

fn form(target: &str, script: &Script) -> Html<String> {
    let meta = &script.meta;
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (meta.title) " · Switchboard" }
                style { "body{font:15px system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem}"
                        "label{display:block;margin:.8rem 0 .2rem}input,select,textarea{width:100%;font:inherit}"
                        "textarea{height:8rem;font-family:monospace}code{font-size:.85em}" }
            }
            body {
                h1 { (meta.title) }
                p { (meta.description) }
                p { "Server " code { (target) } ", script " code { (script.cid) } }
                @if !meta.docs.is_empty() {
                    p { a href=(meta.docs) { "API documentation" } }
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
            }
        }
    };
    Html(page.into_string())
}
