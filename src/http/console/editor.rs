//! The script editor and the server's versions: save (compiled first — a refused save shows its error
//! at its line and column, and the old version keeps serving), enable and disable, a diff between any
//! two versions of the history, and rollback to one. Every change is the `Runtime` operation `/api/`
//! uses, so the console follows the same rules (a server the boot source manages is edited in its file).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use similar::{ChangeTag, TextDiff};

use super::State;
use super::frame;
use super::session::{Editor, Viewer};
use crate::cid::Cid;
use crate::error::Error;
use crate::http::parse_cid;
use crate::store::{Binding, Origin};

/// The editor: a textarea that `editor.js` turns into CodeMirror (it works as a plain textarea too).
pub fn editor(name: &str, source: &str, read_only: bool, managed: Option<&std::path::Path>) -> Markup {
    html! {
        @if let Some(file) = managed {
            p.muted { "The boot source manages this server: edit " code { (file.display()) } " and it reloads." }
        }
        @if read_only || managed.is_some() {
            pre.output { code data-testid="source" { (source) } }
        } @else {
            form hx-post={ "/ui/servers/" (name) "/source" } hx-target="#save-result" {
                textarea.code name="source" data-editor spellcheck="false" aria-label="Script source"
                         data-testid="editor" { (source) }
                div.actions {
                    button.primary type="submit" data-testid="save" { "Save" }
                    span.muted { span.kbd { "Ctrl" } "/" span.kbd { "⌘" } " + " span.kbd { "S" } " saves · compiled first; the running version serves until then" }
                }
                div #save-result aria-live="polite" {}
            }
        }
    }
}

/// The enable/disable switch.
pub fn toggle(name: &str, enabled: bool) -> Markup {
    html! {
        button hx-post={ "/ui/servers/" (name) "/enabled" } hx-vals={ "{\"enabled\":\"" (!enabled) "\"}" }
               data-testid="enable-toggle" aria-pressed=(enabled) {
            @if enabled { "Disable" } @else { "Enable" }
        }
    }
}

/// The history: every binding, newest first, each with rollback, and a diff between any two.
pub fn history(name: &str, current: &Cid, history: &[Binding], read_only: bool) -> Markup {
    let newest: Vec<&Binding> = history.iter().rev().collect();
    let when = |at: i64| {
        chrono::DateTime::from_timestamp_millis(at)
            .map_or_else(String::new, |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
    };
    let older = newest.get(1).map_or(current.to_string(), |b| b.cid.to_string());
    html! {
        h2 { "History" }
        table {
            thead { tr { th { "Version" } th { "Bound" } th { "By" } th {} } }
            tbody {
                @for binding in &newest {
                    tr data-testid="history-row" data-cid=(binding.cid) {
                        td { code { (short(&binding.cid)) } @if binding.cid == *current { " " span.badge.ok { "current" } } }
                        td { (when(binding.at)) }
                        td { (binding.origin) }
                        td {
                            @if binding.cid != *current && !read_only {
                                button hx-post={ "/ui/servers/" (name) "/rollback" } hx-vals={ "{\"cid\":\"" (binding.cid) "\"}" }
                                       hx-confirm="Serve this version again?" data-testid="rollback" { "Roll back to this" }
                            }
                        }
                    }
                }
            }
        }
        form.inline hx-get={ "/ui/servers/" (name) "/diff" } hx-target="#diff-output" {
            div { label for="diff-from" { "From" } (versions("diff-from", "from", &newest, &older)) }
            div { label for="diff-to" { "To" } (versions("diff-to", "to", &newest, &current.to_string())) }
            button type="submit" data-testid="diff" { "Compare" }
        }
        div #diff-output {}
    }
}

fn versions(id: &str, field: &str, newest: &[&Binding], selected: &str) -> Markup {
    let mut seen = std::collections::HashSet::new();
    html! {
        select id=(id) name=(field) {
            @for binding in newest.iter().filter(|b| seen.insert(b.cid)) {
                option value=(binding.cid) selected[binding.cid.to_string() == selected] { (short(&binding.cid)) " · " (binding.origin) }
            }
        }
    }
}

/// A CID as people compare them: its last twelve characters (the first seven are the same for all).
fn short(cid: &Cid) -> String {
    let text = cid.to_string();
    format!("…{}", &text[text.len().saturating_sub(12)..])
}

/// `POST /ui/servers/{name}/source` with the field `source`: compiled, stored and bound, or the
/// compile error at its line and column with nothing changed.
pub async fn save(_: Editor, console: State, Path(name): Path<String>, body: Bytes) -> Result<Response, Error> {
    let fields: HashMap<String, String> =
        serde_urlencoded::from_bytes(&body).map_err(|e| Error::BadRequest(format!("malformed form: {e}")))?;
    let source = fields.get("source").cloned().ok_or_else(|| Error::BadRequest("the form lacks 'source'".into()))?;
    let bound = name.clone();
    let saved = console.runtime.blocking(move |rt| {
        let cid = rt.put_script(&bound, source.as_bytes(), Origin::Api)?;
        Ok((cid, rt.history(&bound)?))
    });
    match saved.await {
        Ok((cid, history)) => {
            tracing::info!(server = %name, %cid, "bound from the console");
            Ok(frame::fragment(
                StatusCode::OK,
                html! {
                    div.notice data-testid="saved" { "Saved and live: " code { (cid) } }
                    section.card #history hx-swap-oob="true" { (self::history(&name, &cid, &history, false)) }
                    code #server-cid data-testid="server-cid" hx-swap-oob="true" { (cid) }
                },
            ))
        }
        Err(Error::InvalidScript { message, at }) => {
            let markup = html! {
                div.alert role="alert" data-testid="compile-error" data-line=[at.line] data-column=[at.column] {
                    strong { "Not saved: " } (message)
                    @if let (Some(line), Some(column)) = (at.line, at.column) { " — line " (line) ", column " (column) }
                    br; span.muted { "The running version is unchanged." }
                }
            };
            Ok(frame::fragment(StatusCode::UNPROCESSABLE_ENTITY, markup))
        }
        Err(error) => Err(error),
    }
}

/// Reloads the page the request came from: the state it shows has changed as a whole.
fn reload() -> Response {
    (StatusCode::OK, [("hx-refresh", HeaderValue::from_static("true"))]).into_response()
}

/// `POST /ui/servers/{name}/enabled` with `enabled=true|false`.
pub async fn switch(_: Editor, console: State, Path(name): Path<String>, body: Bytes) -> Result<Response, Error> {
    let fields: HashMap<String, String> =
        serde_urlencoded::from_bytes(&body).map_err(|e| Error::BadRequest(format!("malformed form: {e}")))?;
    let enabled = match fields.get("enabled").map(String::as_str) {
        Some("true") => true,
        Some("false") => false,
        _ => return Err(Error::BadRequest("enabled is true or false".into())),
    };
    console.runtime.blocking(move |rt| rt.set_enabled(&name, enabled)).await?;
    Ok(reload())
}

/// `POST /ui/servers/{name}/rollback` with `cid`: bind the name back to a version of its history.
pub async fn rollback(_: Editor, console: State, Path(name): Path<String>, body: Bytes) -> Result<Response, Error> {
    let fields: HashMap<String, String> =
        serde_urlencoded::from_bytes(&body).map_err(|e| Error::BadRequest(format!("malformed form: {e}")))?;
    let cid = parse_cid(fields.get("cid").map_or("", String::as_str))?;
    console.runtime.blocking(move |rt| rt.rollback(&name, &cid)).await?;
    Ok(reload())
}

/// `GET /ui/servers/{name}/diff?from=CID&to=CID`: the change between two versions of the history.
pub async fn diff(
    _: Viewer,
    console: State,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Error> {
    let from = parse_cid(query.get("from").map_or("", String::as_str))?;
    let to = parse_cid(query.get("to").map_or("", String::as_str))?;
    let (before, after) = console
        .runtime
        .blocking(move |rt| {
            let history = rt.history(&name)?;
            for cid in [&from, &to] {
                if !history.iter().any(|binding| binding.cid == *cid) {
                    return Err(Error::BadRequest(format!("{cid} is not in the history of '{name}'")));
                }
            }
            let text = |cid: &Cid| rt.blob(cid).map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
            Ok((text(&from)?, text(&to)?))
        })
        .await?;
    let diff = TextDiff::from_lines(&before, &after);
    let markup = html! {
        @if before == after { p.muted data-testid="diff-output" { "The two versions are the same." } }
        @else {
            pre.diff data-testid="diff-output" {
                @for group in diff.grouped_ops(3) {
                    @for op in group {
                        @for change in diff.iter_changes(&op) {
                            @match change.tag() {
                                ChangeTag::Delete => span.del { "- " (change.value().trim_end_matches('\n')) },
                                ChangeTag::Insert => span.add { "+ " (change.value().trim_end_matches('\n')) },
                                ChangeTag::Equal => span.ctx { "  " (change.value().trim_end_matches('\n')) },
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(frame::fragment(StatusCode::OK, markup))
}
