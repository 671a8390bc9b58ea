//! `/ui/import`: a new server (or a new version of one) from an OpenAPI document, in three steps —
//! read the document and choose its operations, preview the script and what it changes, apply.
//!
//! Nothing here imports: each step hands the document to [`crate::openapi`] as
//! `POST /api/import/openapi` does — [`contents`] to list what it offers, [`Plan`] to write, compile
//! and compare the script, [`Plan::apply`] to bind it. The document travels with every step (the page
//! keeps it, the server keeps nothing between them), and the apply names the script and the version it
//! replaces as the preview showed them: a document, selection or server that changed in between is
//! refused, so what is applied is what was seen.

use std::collections::BTreeMap;

use axum::extract::Multipart;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use super::State;
use super::assets::PICKER;
use super::frame::{self, Section};
use super::session::{Editor, Viewer};
use crate::error::Error;
use crate::openapi::{Contents, Listed, Plan, Selection, contents};

/// Most of the script a preview shows: an import of a big document is megabytes, which the editor
/// shows whole once it is applied.
const PREVIEW_BYTES: usize = 64 * 1024;

/// `GET /ui/import`.
pub async fn page(viewer: Viewer, console: State) -> Response {
    let limit = console.runtime.settings.max_body / (1024 * 1024);
    let body = html! {
        p.muted { a href="/ui" { "Servers" } " / import" }
        h1 { "New server from an OpenAPI document" }
        p.muted {
            "OpenAPI 3.0 or 3.1, JSON or YAML, self-contained, up to " (limit) " MiB. Each operation becomes a named "
            "operation of the server (an MCP tool " code { "{name}__{operation}" } "); nothing is stored until you apply."
        }
        @if viewer.read_only {
            p.notice { "This server runs read-only: imports are refused." }
        } @else {
            form #import-form.card hx-post="/ui/import/operations" hx-encoding="multipart/form-data"
                 hx-target="#import-operations" {
                label for="import-name" { "Server name" }
                input #import-name name="name" required pattern="[a-z][a-z0-9_]{0,63}" placeholder="petstore"
                      autofocus data-testid="import-name";
                span.muted { "Lower-case letters, digits and _. An existing server of this name gets a new version." }
                label for="import-file" { "Document file" }
                input #import-file type="file" name="file" accept=".json,.yaml,.yml,application/json,application/yaml"
                      data-testid="import-file";
                label for="import-document" { "…or paste it" }
                textarea #import-document name="document" rows="6" spellcheck="false"
                         placeholder="openapi: 3.1.0" data-testid="import-document" {}
                div.actions { button type="submit" data-testid="import-read" { "Read the document" } }
                div #import-operations aria-live="polite" {}
            }
            div #import-preview aria-live="polite" {}
        }
    };
    frame::page(&viewer.csrf, viewer.read_only, Section::Servers, "Import OpenAPI", Some(&PICKER), body)
}

/// One step's form: the server's name, the document, the operations ticked, and (to apply) what the
/// preview showed.
struct Form {
    name: String,
    document: Vec<u8>,
    selection: Selection,
    expect: Option<String>,
    replaces: Option<String>,
}

async fn form(mut multipart: Multipart) -> Result<Form, Error> {
    let bad = |e: axum::extract::multipart::MultipartError| Error::BadRequest(format!("malformed form: {e}"));
    let mut form = Form {
        name: String::new(),
        document: Vec::new(),
        selection: Selection::default(),
        expect: None,
        replaces: None,
    };
    let mut pasted = Vec::new();
    while let Some(field) = multipart.next_field().await.map_err(bad)? {
        match field.name() {
            Some("name") => form.name = field.text().await.map_err(bad)?.trim().to_owned(),
            Some("file") => form.document = field.bytes().await.map_err(bad)?.to_vec(),
            Some("document") => pasted = field.bytes().await.map_err(bad)?.to_vec(),
            Some("operation") => form.selection.operations.push(field.text().await.map_err(bad)?),
            Some("expect") => form.expect = Some(field.text().await.map_err(bad)?),
            Some("replaces") => form.replaces = Some(field.text().await.map_err(bad)?),
            _ => {}
        }
    }
    if form.document.is_empty() {
        form.document = pasted;
    }
    if form.document.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::BadRequest("choose a document file or paste the document".into()));
    }
    if form.name.is_empty() {
        return Err(Error::BadRequest("name the server to import the document as".into()));
    }
    Ok(form)
}

/// `POST /ui/import/operations`: the document's operations, every one ticked, to choose from.
pub async fn operations(_: Editor, console: State, multipart: Multipart) -> Result<Response, Error> {
    let Form { name, document, .. } = form(multipart).await?;
    let read = console.runtime.blocking(move |_| contents(&document, &name)).await?;
    Ok(frame::fragment(StatusCode::OK, picker(&read)))
}

fn picker(contents: &Contents) -> Markup {
    let mut tags: BTreeMap<&str, usize> = BTreeMap::new();
    for tag in contents.operations.iter().flat_map(|op| &op.tags) {
        *tags.entry(tag.as_str()).or_default() += 1;
    }
    let count = contents.operations.len();
    html! {
        div.picker data-testid="import-picker" {
            h3 { (contents.title) " " span.muted { (contents.version) } }
            div.inline {
                input.filter type="search" placeholder="Filter by name, path, summary or tag…" aria-label="Filter operations"
                      data-testid="import-filter";
                button type="button" data-pick="shown" { "Select shown" }
                button type="button" data-pick="none" { "Clear shown" }
            }
            @if !tags.is_empty() {
                div.tags aria-label="Select by tag" {
                    @for (tag, n) in &tags {
                        label.check.tag { input type="checkbox" data-tag=(tag) checked; (tag) span.muted { " " (n) } }
                    }
                }
            }
            p.muted data-testid="import-count" { (count) " of " (count) " selected · " (count) " shown" }
            div.operations {
                table {
                    thead { tr { th {} th { "Operation" } th { "Method and path" } th { "Summary" } } }
                    tbody { @for op in &contents.operations { (row(op)) } }
                }
            }
            div.actions {
                button.primary hx-post="/ui/import/preview" hx-encoding="multipart/form-data" hx-include="#import-form"
                       hx-target="#import-preview" data-testid="import-preview" { "Preview" }
            }
        }
    }
}

fn row(op: &Listed) -> Markup {
    let search = format!("{} {} {} {} {}", op.name, op.method, op.path, op.summary, op.tags.join(" ")).to_lowercase();
    let tags = serde_json::to_string(&op.tags).unwrap_or_default();
    html! {
        tr data-testid="import-operation" data-name=(op.name) data-tags=(tags) data-search=(search) {
            td { input type="checkbox" name="operation" value=(op.name) checked aria-label={ "Import " (op.name) }; }
            td { code { (op.name) } }
            td { span.method { (op.method) } " " code { (op.path) } }
            td.muted { (op.summary) }
        }
    }
}

/// `POST /ui/import/preview`: the script the ticked operations make and what it changes.
pub async fn preview(_: Editor, console: State, multipart: Multipart) -> Result<Response, Error> {
    let Form { name, document, selection, .. } = form(multipart).await?;
    let plan = console.runtime.blocking(move |rt| Plan::new(rt, &document, None, &name, &selected(selection)?)).await?;
    Ok(frame::fragment(StatusCode::OK, planned(&plan)))
}

/// The console always names the operations it imports: none ticked is a mistake, not "all".
fn selected(selection: Selection) -> Result<Selection, Error> {
    match selection.operations.is_empty() {
        true => Err(Error::BadRequest("tick at least one operation to import".into())),
        false => Ok(selection),
    }
}

fn planned(plan: &Plan) -> Markup {
    let script = &plan.import.script;
    let shown = super::prefix(script, PREVIEW_BYTES);
    // A security scheme the runtime cannot use is not an error (the API may work without it, or the
    // operator adds auth by hand), but it must not hide among the notes.
    let warnings = plan.import.warnings.as_slice();
    let notes: Vec<&String> = plan.import.notes.iter().filter(|note| !warnings.contains(note)).collect();
    let vals = serde_json::json!({ "expect": plan.cid.to_string(), "replaces": plan.replaces.as_ref().map(ToString::to_string).unwrap_or_default() });
    html! {
        section.card data-testid="import-plan" {
            h2 { "Preview" }
            p {
                (plan.import.operations) " operations · script " code data-testid="import-cid" { (plan.cid) }
                @if let Some(replaces) = &plan.replaces { " · replaces " code { (replaces) } }
            }
            @match &plan.difference {
                None => p { "A new server, served at " code { "/" (plan.name) "/…" } "." },
                Some(difference) if difference.is_empty() => {
                    p data-testid="import-diff" { "The server " (plan.name) " already runs this script's declarations: nothing changes." }
                }
                Some(difference) => {
                    h3 { "Changes to " (plan.name) }
                    pre.diff data-testid="import-diff" {
                        @for line in difference.to_string().lines() {
                            @let class = match line.chars().next() { Some('+') => "add", Some('-') => "del", _ => "ctx" };
                            span class=(class) { (line) }
                        }
                    }
                }
            }
            @for warning in warnings {
                div.warning role="status" data-testid="import-warning" {
                    (warning) ": the server sends no credentials of this kind; declare " code { "auth" }
                    " in its META after applying if the API needs them."
                }
            }
            @if !notes.is_empty() {
                details {
                    summary { (notes.len()) @if notes.len() == 1 { " note" } @else { " notes" } " from the import" }
                    ul.notes { @for note in &notes { li { (note) } } }
                }
            }
            h3 { "Script" }
            pre.output.script data-testid="import-script" { (shown) }
            @if shown.len() < script.len() {
                p.muted { "… " (script.len() - shown.len()) " more bytes: the editor shows the whole script once applied." }
            }
            div.actions {
                button.primary hx-post="/ui/import/apply" hx-encoding="multipart/form-data" hx-include="#import-form"
                       hx-vals=(vals.to_string()) data-testid="import-apply" {
                    @if plan.replaces.is_some() { "Apply to " (plan.name) } @else { "Create " (plan.name) }
                }
            }
        }
    }
}

/// `POST /ui/import/apply`: binds the script the preview showed and opens the server's page.
pub async fn apply(_: Editor, console: State, multipart: Multipart) -> Result<Response, Error> {
    let Form { name, document, selection, expect, replaces } = form(multipart).await?;
    let bound = name.clone();
    console
        .runtime
        .blocking(move |rt| {
            let plan = Plan::new(rt, &document, None, &bound, &selected(selection)?)?;
            if expect.as_deref() != Some(plan.cid.to_string().as_str()) {
                return Err(Error::BadRequest(
                    "the document or the operations ticked changed since the preview: preview again".into(),
                ));
            }
            let now = plan.replaces.as_ref().map(ToString::to_string).unwrap_or_default();
            if replaces.unwrap_or_default() != now {
                return Err(Error::BadRequest(format!(
                    "the server '{bound}' changed since the preview: preview again to see what this import changes now"
                )));
            }
            plan.apply(rt)
        })
        .await?;
    let target = HeaderValue::from_str(&format!("/ui/servers/{name}")).map_err(|e| Error::internal("redirect", e))?;
    Ok((StatusCode::OK, [("hx-redirect", target)]).into_response())
}
