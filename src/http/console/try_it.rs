//! Try-it: run a server from its page and see what a caller would get — status, duration, the script's
//! CID (`X-Server-Cid`) and the output, pretty-printed. The fields are call style's (`endpoint`,
//! `method`, `data`, parsed by the same code as `POST /{name}`), and a named operation's form is turned
//! into a call by the operation itself; either way the run is an ordinary [`Runtime::invoke`].
//!
//! The request's own headers are not passed on: the console's cookie and CSRF token are nothing a
//! script should see.
//!
//! [`Runtime::invoke`]: crate::runtime::Runtime::invoke

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde_json::{Map, Value};

use super::State;
use super::frame;
use super::session::Actor;
use crate::error::Error;
use crate::http::dispatch::{call_request, form_params};
use crate::invoke::{Invocation, Target};
use crate::meta::Operation;

/// Most output bytes shown on the page; the rest is counted, not sent.
const SHOWN: usize = 256 * 1024;

/// `POST /ui/servers/{name}/try` with `endpoint`, `method`, `data`.
pub async fn run(_: Actor, console: State, Path(name): Path<String>, body: Bytes) -> Result<Response, Error> {
    let invocation = call_request(&name, form_params(&body)?)?;
    Ok(invoke(&console, invocation).await)
}

/// `POST /ui/servers/{name}/operations/{operation}` with the operation's arguments as form fields.
pub async fn operation(
    _: Actor,
    console: State,
    Path((name, operation)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, Error> {
    let server = console.runtime.existing(&name)?;
    let script = server.script.clone()?;
    let op = script
        .meta
        .operations
        .iter()
        .find(|op| op.name == operation)
        .ok_or_else(|| Error::NotFound(format!("'{name}' has no operation '{operation}'")))?;
    let fields: Vec<(String, String)> =
        serde_urlencoded::from_bytes(&body).map_err(|e| Error::BadRequest(format!("malformed form: {e}")))?;
    let call = op.call(&arguments(op, fields)?)?;
    let mut invocation = Invocation::with_method(Target::Name(name), call.method);
    invocation.endpoint = call.endpoint;
    invocation.data = call.data.map_or(crate::engine::Data::None, crate::engine::Data::Value);
    Ok(invoke(&console, invocation).await)
}

/// Form fields as the operation's arguments, typed by its input schema; empty fields are left out.
fn arguments(op: &Operation, fields: Vec<(String, String)>) -> Result<Map<String, Value>, Error> {
    let properties = op.input.get("properties").and_then(Value::as_object);
    let mut arguments = Map::new();
    for (key, text) in fields.into_iter().filter(|(_, text)| !text.is_empty()) {
        let kind = properties.and_then(|p| p.get(&key)).and_then(|p| p.get("type")).and_then(Value::as_str);
        let bad = |what: &str| Error::BadRequest(format!("'{key}' must be {what}"));
        let value = match kind {
            Some("integer") => Value::from(text.trim().parse::<i64>().map_err(|_| bad("an integer"))?),
            Some("number") => serde_json::from_str::<serde_json::Number>(text.trim())
                .map(Value::Number)
                .map_err(|_| bad("a number"))?,
            Some("boolean") => Value::Bool(text == "true"),
            Some("object" | "array") => serde_json::from_str(&text).map_err(|_| bad("JSON"))?,
            _ => Value::String(text),
        };
        arguments.insert(key, value);
    }
    Ok(arguments)
}

async fn invoke(console: &State, mut invocation: Invocation) -> Response {
    // A run from the console is an HTTP call like any other, and is recorded as one.
    invocation.via = crate::store::Via::Http;
    let started = Instant::now();
    let invoked = console.runtime.invoke(invocation).await;
    let elapsed = started.elapsed();
    let cid = invoked.script.as_ref().map(|script| script.cid.to_string());
    let (status, content_type, body) = match invoked.result {
        Ok(reply) => {
            let output = reply.output;
            (output.status, output.content_type.to_str().unwrap_or("").to_owned(), output.body.to_vec())
        }
        Err(error) => (error.status(), "application/json".to_owned(), error.to_json().to_string().into_bytes()),
    };
    let markup = html! {
        div.result {
            div.meta {
                span { "Status " b.{ "status-" (status / 100) } data-testid="try-status" { (status) } }
                span { "Duration " b data-testid="try-duration" { (format!("{:.1} ms", elapsed.as_secs_f64() * 1000.0)) } }
                @if let Some(cid) = &cid { span { "X-Server-Cid " code data-testid="try-cid" { (cid) } } }
                span { code { (content_type) } }
            }
            pre.output { code { (pretty(&content_type, &body)) } }
        }
    };
    frame::fragment(StatusCode::OK, markup)
}

/// The output as a person reads it: JSON indented, text as it is, bytes counted.
fn pretty(content_type: &str, body: &[u8]) -> Markup {
    let text = if content_type.contains("json") {
        serde_json::from_slice::<Value>(body).ok().and_then(|v| serde_json::to_string_pretty(&v).ok())
    } else {
        None
    };
    let text = match text {
        Some(text) => text,
        None => match std::str::from_utf8(body) {
            Ok(text) => text.to_owned(),
            Err(_) => return html! { "(" (body.len()) " bytes of " (content_type) ")" },
        },
    };
    if text.len() <= SHOWN {
        return html! { (text) };
    }
    let shown = super::prefix(&text, SHOWN);
    html! { (shown) "\n… (" (text.len() - shown.len()) " more bytes not shown)" }
}

/// The try-it form and one form per named operation, generated from its JSON-schema input.
pub fn forms(name: &str, operations: &[Operation]) -> Markup {
    html! {
        form hx-post={ "/ui/servers/" (name) "/try" } hx-target="#try-output" {
            div.try-row {
                div {
                    label for="try-method" { "Method" }
                    select #try-method name="method" data-testid="try-method" {
                        @for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] { option { (method) } }
                    }
                }
                div {
                    label for="try-endpoint" { "Endpoint" }
                    input #try-endpoint name="endpoint" placeholder="/path?query" data-testid="try-endpoint";
                }
            }
            label for="try-data" { "Data " span.muted { "(JSON, or text)" } }
            textarea #try-data name="data" placeholder="{\"key\": \"value\"}" data-testid="try-data" {}
            div.actions { button.primary type="submit" data-testid="try-submit" { "Run" } }
        }
        @for op in operations { (operation_form(name, op)) }
        div #try-output data-testid="try-output" aria-live="polite" {}
    }
}

fn operation_form(name: &str, op: &Operation) -> Markup {
    let properties = op.input.get("properties").and_then(Value::as_object);
    html! {
        details.card data-testid="operation" data-operation=(op.name) {
            summary { code { (op.name) } " — " (op.description) " " span.muted { code { (op.method) " " (op.endpoint) } } }
            form hx-post={ "/ui/servers/" (name) "/operations/" (op.name) } hx-target="#try-output" {
                @for (field, required) in op.arguments() {
                    @let schema = properties.and_then(|p| p.get(field));
                    @let id = format!("op-{}-{field}", op.name);
                    label.req[required] for=(id) { (field) }
                    (input(&id, field, required, schema))
                    @if let Some(text) = schema.and_then(|s| s.get("description")).and_then(Value::as_str) {
                        span.muted { (text) }
                    }
                }
                div.actions { button.primary type="submit" data-testid="operation-submit" { "Run " (op.name) } }
            }
        }
    }
}

/// The input for one schema property: a list for an enum or boolean, a number field, JSON for
/// objects and arrays, text otherwise.
fn input(id: &str, field: &str, required: bool, schema: Option<&Value>) -> Markup {
    let kind = schema.and_then(|s| s.get("type")).and_then(Value::as_str).unwrap_or("string");
    let choices = schema.and_then(|s| s.get("enum")).and_then(Value::as_array);
    html! {
        @if let Some(choices) = choices {
            select id=(id) name=(field) required[required] {
                @if !required { option value="" {} }
                @for choice in choices {
                    @let text = choice.as_str().map_or_else(|| choice.to_string(), str::to_owned);
                    option value=(text) { (text) }
                }
            }
        } @else if kind == "boolean" {
            select id=(id) name=(field) required[required] {
                @if !required { option value="" {} }
                option { "true" } option { "false" }
            }
        } @else if kind == "object" || kind == "array" {
            textarea id=(id) name=(field) required[required] placeholder=(if kind == "object" { "{}" } else { "[]" }) {}
        } @else if kind == "integer" || kind == "number" {
            input id=(id) name=(field) type="number" step=(if kind == "integer" { "1" } else { "any" }) required[required];
        } @else {
            input id=(id) name=(field) required[required];
        }
    }
}
