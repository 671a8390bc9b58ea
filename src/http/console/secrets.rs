//! `/ui/secrets`: every secret name — stored, or declared by a server — with whether it is set and which
//! servers ask for it; add, replace and delete. A value goes in and never comes back, not even masked:
//! no page, fragment or error carries one.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::State;
use super::frame::{self, Section};
use super::session::{Editor, Viewer};
use crate::error::Error;
use crate::runtime::Runtime;

/// One name: stored here, set at all (stored or in the environment), and who asks for it.
struct Row {
    stored: bool,
    set: bool,
    asked_by: BTreeSet<String>,
}

fn rows(runtime: &Runtime) -> Result<BTreeMap<String, Row>, Error> {
    let stored: BTreeSet<String> = runtime.secret_names()?.into_iter().collect();
    let secrets = runtime.services.secrets();
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    let mut add = |name: &str, server: Option<&str>| {
        let row = rows.entry(name.to_owned()).or_insert_with(|| Row {
            stored: stored.contains(name),
            set: secrets.get(name).ok().flatten().is_some(),
            asked_by: BTreeSet::new(),
        });
        row.asked_by.extend(server.map(str::to_owned));
    };
    for name in &stored {
        add(name, None);
    }
    for (server, entry) in runtime.servers().iter() {
        for name in entry.script.as_ref().into_iter().flat_map(|s| s.meta.secrets.iter().flatten()) {
            add(name, Some(server));
        }
    }
    Ok(rows)
}

fn table(rows: &BTreeMap<String, Row>, read_only: bool) -> Markup {
    html! {
        table #secrets {
            thead { tr { th { "Name" } th { "State" } th { "Asked for by" } th {} } }
            tbody {
                @for (name, row) in rows {
                    tr data-testid="secret-row" data-name=(name) {
                        td { code { (name) } }
                        td {
                            @if row.stored { span.badge.ok { "set" } }
                            @else if row.set { span.badge.ok title="From the process environment" { "set (environment)" } }
                            @else { span.badge.warn { "missing" } }
                        }
                        td { @for server in &row.asked_by { a href={ "/ui/servers/" (server) } { (server) } " " } }
                        td {
                            @if row.stored && !read_only {
                                button.danger hx-delete={ "/ui/secrets/" (name) } hx-target="#secrets" hx-swap="outerHTML"
                                       hx-confirm={ "Delete the secret " (name) "?" } data-testid="secret-delete" { "Delete" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /ui/secrets`.
pub async fn page(viewer: Viewer, console: State) -> Result<Response, Error> {
    let rows = console.runtime.blocking(rows).await?;
    let body = html! {
        h1 { "Secrets" }
        p.muted { "Values are sealed at rest and never shown again — not here, not masked. A server reads only the secrets its META declares." }
        @if !viewer.read_only {
            section.card {
                h2 { "Add or replace" }
                form.inline #secret-form hx-post="/ui/secrets" hx-target="#secrets" hx-swap="outerHTML" {
                    div {
                        label for="secret-name" { "Name" }
                        input #secret-name name="name" list="secret-names" required pattern="[A-Z][A-Z0-9_]*"
                              autocomplete="off" placeholder="STRIPE_API_KEY" data-testid="secret-name";
                        datalist #secret-names { @for name in rows.keys() { option value=(name) {} } }
                    }
                    div {
                        label for="secret-value" { "Value" }
                        input #secret-value type="password" name="value" required autocomplete="new-password"
                              data-testid="secret-value";
                    }
                    button.primary type="submit" data-testid="secret-save" { "Save" }
                }
            }
        }
        (table(&rows, viewer.read_only))
    };
    Ok(frame::page(&viewer.csrf, viewer.read_only, Section::Secrets, "Secrets", None, body))
}

#[derive(Deserialize)]
pub struct Setting {
    name: String,
    value: String,
}

/// `POST /ui/secrets` with `name` and `value`: the table again (names only), and the form emptied.
pub async fn set(_: Editor, console: State, body: Bytes) -> Result<Response, Error> {
    let setting: Setting = serde_urlencoded::from_bytes(&body)
        .map_err(|_| Error::BadRequest("the form takes a name and a value".into()))?;
    let value = crate::secrets::without_trailing_newline(&setting.value).to_owned();
    let rows = console
        .runtime
        .blocking(move |rt| {
            rt.change_secrets(|secrets| secrets.set(&setting.name, &value))?;
            rows(rt)
        })
        .await?;
    let markup = html! {
        (table(&rows, false))
        input #secret-value hx-swap-oob="true" type="password" name="value" required autocomplete="new-password" data-testid="secret-value";
    };
    Ok(frame::fragment(StatusCode::OK, markup))
}

/// `DELETE /ui/secrets/{name}`.
pub async fn remove(_: Editor, console: State, Path(name): Path<String>) -> Result<Response, Error> {
    let rows = console
        .runtime
        .blocking(move |rt| match rt.change_secrets(|secrets| secrets.remove(&name))? {
            true => rows(rt),
            false => Err(Error::NotFound(format!("no secret named '{name}' in the store"))),
        })
        .await?;
    Ok(frame::fragment(StatusCode::OK, table(&rows, false)))
}
