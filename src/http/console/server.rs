//! `/ui/servers/{name}`: one server — what it is and declares, try-it, its script in the editor, its
//! history.

use axum::extract::Path;
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{Markup, html};

use super::assets::EDITOR;
use super::frame::{self, Section};
use super::session::Viewer;
use super::{State, activity, connect, editor, list, state, try_it};
use crate::error::Error;
use crate::meta::Meta;

/// `GET /ui/servers/{name}`.
pub async fn page(
    viewer: Viewer,
    console: State,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let server = console.runtime.existing(&name)?;
    let lookup = name.clone();
    let (state, source, history) = console
        .runtime
        .blocking(move |rt| {
            let server = rt.existing(&lookup)?;
            let source = String::from_utf8_lossy(&rt.blob(&server.cid)?).into_owned();
            Ok((state::of(rt, &server), source, rt.history(&lookup)?))
        })
        .await?;
    let meta = server.script.as_ref().ok().map(|script| script.meta.clone());
    let oauth = connect::oauth_card(&console, &name, meta.as_ref(), viewer.read_only).await?;
    let activity = activity::card(&console, &name).await?;
    let webhooks = connect::webhook_card(&console, &headers, &name, meta.as_ref(), viewer.read_only).await?;
    let managed = console.runtime.managed.file(&name);
    let title = meta.as_ref().map_or(name.clone(), |m| m.title.clone());
    let body = html! {
        p.muted { a href="/ui" { "Servers" } " / " (name) }
        div.heading {
            div {
                h1 { (title) }
                p { (list::badges(&state)) }
            }
            @if !viewer.read_only && managed.is_none() { (editor::toggle(&name, state.enabled)) }
        }
        @if let Some(meta) = &meta { p { (meta.description) } }
        @if let Some(error) = &state.error { div.alert data-testid="load-error" { (error) } }
        div.grid {
            div {
                section.card { (about(&name, &server.cid, meta.as_ref(), &state)) }
            }
            section.card {
                h2 { "Try it" }
                (try_it::forms(&name, meta.as_ref().map_or(&[][..], |m| &m.operations[..])))
            }
        }
        section.card #activity { (activity) }
        @if let Some(card) = oauth { section.card #oauth { (card) } }
        @if let Some(card) = webhooks { section.card #webhooks { (card) } }
        section.card {
            h2 { "Script" }
            (editor::editor(&name, &source, viewer.read_only, managed.as_deref()))
        }
        section.card #history { (editor::history(&name, &server.cid, &history, viewer.read_only || managed.is_some())) }
    };
    Ok(frame::page(
        &viewer.csrf,
        viewer.read_only,
        Section::Servers,
        &title,
        (!viewer.read_only).then_some(&*EDITOR),
        body,
    ))
}

/// What the server is: name, script CID, category, docs, how to call it, and what it declares.
fn about(name: &str, cid: &crate::cid::Cid, meta: Option<&Meta>, state: &state::State) -> Markup {
    html! {
        h2 { "About" }
        dl.facts {
            dt { "Name" } dd { code { (name) } }
            dt { "Script" } dd { code #server-cid data-testid="server-cid" { (cid) } }
            @if let Some(meta) = meta {
                @if !meta.category.is_empty() { dt { "Category" } dd { (meta.category) } }
                @if let Some(docs) = crate::docs::web_link(&meta.docs) {
                    dt { "Docs" } dd { a href=(docs) rel="noreferrer noopener" target="_blank" { (docs) } }
                }
            }
            dt { "Call" } dd { code { "/" (name) "/{endpoint}" } }
        }
        @if let Some(meta) = meta { (declares(name, meta, state)) }
    }
}

/// What the server asks for: its secrets (set or missing, never a value) and the hosts it may reach.
fn declares(name: &str, meta: &Meta, state: &state::State) -> Markup {
    let asks = crate::server::asks(name, meta);
    html! {
        h3 { "Secrets" }
        @if state.secrets.is_empty() { p.muted { "None declared." } }
        ul {
            @for secret in &state.secrets {
                li data-testid="declared-secret" {
                    code { (secret.names.join(" | ")) } " "
                    @if secret.set { span.badge.ok { "set" } } @else { span.badge.warn { a href="/ui/secrets" { "missing" } } }
                }
            }
        }
        h3 { "Hosts" }
        @match asks["hosts"].as_array() {
            Some(hosts) if !hosts.is_empty() => ul { @for host in hosts { li { code { (host.as_str().unwrap_or_default()) } } } },
            _ => p.muted { "None declared: this server reaches only what an operator names for it." },
        }
        @if !meta.variables.is_empty() {
            h3 { "Variables" }
            ul { @for variable in &meta.variables { li { code { (variable) } } } }
        }
    }
}
