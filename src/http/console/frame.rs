//! The console's page frame: head, navigation, and the Content-Security-Policy every page is sent with.
//!
//! The policy lets scripts and style sheets come only from this server (the embedded assets), plus
//! style elements carrying this response's nonce (CodeMirror writes its styles at run time and is told
//! the nonce); nothing inline runs, nothing loads from elsewhere, forms post only here, and no page
//! may frame the console. htmx is configured (`htmx-config`) to evaluate nothing, inject no styles,
//! send requests only to this server, and swap error answers so that they show where they happened.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use super::assets::{Asset, HTMX, KEYS, STYLE};

const HTMX_CONFIG: &str = r#"{"allowEval":false,"allowScriptTags":false,"includeIndicatorStyles":false,"selfRequestsOnly":true,"historyCacheSize":0,"responseHandling":[{"code":"204","swap":false},{"code":"[2345]..","swap":true,"error":false}]}"#;

/// The sections of the navigation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Servers,
    Secrets,
    Invocations,
    Boot,
}

/// A full console page for a signed-in person, whose session's CSRF token every htmx request carries.
/// `script` is the page's own script (the CodeMirror bundle, the import picker), if it has one.
pub fn page(
    csrf: &str,
    read_only: bool,
    section: Section,
    title: &str,
    script: Option<&Asset>,
    body: Markup,
) -> Response {
    let csrf = serde_json::json!({ "X-CSRF-Token": csrf }).to_string();
    let link = |target: Section, href: &str, text: &str| {
        html! { a href=(href) aria-current=[(section == target).then_some("page")] { (text) } }
    };
    let content = html! {
        header.top {
            a.brand href="/ui" { "Switchboard" }
            nav {
                (link(Section::Servers, "/ui", "Servers"))
                (link(Section::Secrets, "/ui/secrets", "Secrets"))
                (link(Section::Invocations, "/ui/invocations", "Invocations"))
                (link(Section::Boot, "/ui/boot", "Boot image"))
            }
            @if read_only { span.badge.warn title="Edits are refused" { "read-only" } }
            button.link hx-post="/ui/logout" data-testid="logout" { "Sign out" }
        }
        main { div #flash aria-live="assertive" {} (body) }
    };
    document(StatusCode::OK, title, Some(&csrf), script, content)
}

/// A page outside the signed-in frame (the login form).
pub fn bare(status: StatusCode, title: &str, body: Markup) -> Response {
    document(status, title, None, None, body)
}

fn document(status: StatusCode, title: &str, csrf: Option<&str>, script: Option<&Asset>, content: Markup) -> Response {
    let nonce = hex::encode(rand::random::<[u8; 16]>());
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="htmx-config" content=(HTMX_CONFIG);
                meta name="csp-nonce" content=(nonce);
                title { (title) " · Switchboard" }
                link rel="icon" href="data:,";
                link rel="stylesheet" href=(STYLE.path);
                script src=(HTMX.path) defer {}
                script src=(KEYS.path) defer {}
                @if let Some(script) = script { script src=(script.path) defer {} }
            }
            body hx-headers=[csrf] { (content) }
        }
    };
    let policy = format!(
        "default-src 'none'; script-src 'self'; style-src 'self' 'nonce-{nonce}'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    );
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static("default-src 'none'")),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::REFERRER_POLICY, HeaderValue::from_static("same-origin")),
    ];
    (status, headers, markup.into_string()).into_response()
}

/// A fragment an htmx request swaps into the page.
pub fn fragment(status: StatusCode, markup: Markup) -> Response {
    let headers = [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))];
    (status, headers, axum::response::Html(markup.into_string())).into_response()
}
