//! The HTML pages the runtime serves itself (the index, a server's describe page, the OAuth callback's
//! answer): one frame, one style sheet, one Content-Security-Policy.
//!
//! The pages run no script and load nothing: the policy allows only the inline style sheet below (by
//! its hash), forms posting back to this server, and no framing by another page — so even a value that
//! slipped past escaping could neither run nor send anything elsewhere. Links a script declares are
//! shown only when they are http(s) ([`crate::docs::web_link`]).

use std::sync::LazyLock;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use sha2::Digest as _;

const STYLE: &str = "body{font:15px system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem}\
                     label{display:block;margin:.8rem 0 .2rem}input,select,textarea{width:100%;font:inherit}\
                     textarea{height:8rem;font-family:monospace}code{font-size:.85em}";

static POLICY: LazyLock<HeaderValue> = LazyLock::new(|| {
    let digest = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(STYLE));
    let policy = format!(
        "default-src 'none'; style-src 'sha256-{digest}'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    );
    HeaderValue::from_str(&policy).unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
});

/// Whether the client asked for HTML (a browser): it then gets a page where others get JSON.
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|accept| accept.contains("text/html"))
}

/// A page with `title` and `body`, sent with the policy.
pub fn page(status: StatusCode, title: &str, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · Switchboard" }
                style { (PreEscaped(STYLE)) }
            }
            body { (body) }
        }
    };
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
        (header::CONTENT_SECURITY_POLICY, POLICY.clone()),
    ];
    (status, headers, markup.into_string()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_the_style_sheet_and_nothing_to_run() {
        let policy = POLICY.to_str().unwrap();
        assert!(policy.starts_with("default-src 'none'; style-src 'sha256-"), "{policy}");
        assert!(!policy.contains("script-src") && !policy.contains("unsafe"), "{policy}");
    }
}
