//! Who may use the console: the admin token, given once, opens a session.
//!
//! * The session lives in a cookie named [`COOKIE`], `HttpOnly` (no page script reads it),
//!   `SameSite=Strict` (no other site's request carries it) and `Path=/ui`: a browser sends it only to
//!   the console, never to an invocation (`/{name}/…`), so no script receives it in its request headers.
//!   A `__Host-` name would need `Path=/` and so reach every script; instead the runtime refuses any
//!   script response that sets a cookie of this name ([`crate::engine::output`]), whatever its path.
//! * The cookie's value is a random token the server keeps only as a hash, with an expiry ([`LIFETIME`]);
//!   sessions are held in memory, so a restart ends them.
//! * Every mutation proves it comes from a console page: the session's CSRF token in `X-CSRF-Token`
//!   (htmx sends it with every request, from the page's `hx-headers`), and an `Origin` that is this
//!   server's own — required, not merely admitted when present. Read-only mode refuses every edit.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header::{COOKIE as COOKIE_HEADER, HOST, LOCATION, ORIGIN, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::html;
use parking_lot::Mutex;
use subtle::ConstantTimeEq;

use super::{Console, State, frame};
use crate::error::Error;

pub use crate::engine::output::CONSOLE_COOKIE as COOKIE;

/// How long a session lasts after login.
pub const LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// Most sessions kept at once; past it, logging in ends the session closest to its end.
const MAX_SESSIONS: usize = 256;

struct Session {
    csrf: String,
    expires: Instant,
}

/// The open sessions, by the hash of their cookie's value.
#[derive(Default)]
pub struct Sessions(Mutex<HashMap<blake3::Hash, Session>>);

fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

impl Sessions {
    /// Opens a session at `now`: the cookie value to send.
    fn open(&self, now: Instant) -> String {
        let token = random_token();
        let mut sessions = self.0.lock();
        sessions.retain(|_, session| session.expires > now);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k)
        {
            sessions.remove(&oldest);
        }
        sessions.insert(blake3::hash(token.as_bytes()), Session { csrf: random_token(), expires: now + LIFETIME });
        token
    }

    /// The CSRF token of the session `token` opened, if it is still open at `now`.
    fn check(&self, token: &str, now: Instant) -> Option<String> {
        let key = blake3::hash(token.as_bytes());
        let mut sessions = self.0.lock();
        match sessions.get(&key) {
            Some(session) if session.expires > now => Some(session.csrf.clone()),
            Some(_) => {
                sessions.remove(&key);
                None
            }
            None => None,
        }
    }

    fn close(&self, token: &str) {
        self.0.lock().remove(&blake3::hash(token.as_bytes()));
    }
}

/// The value of the console's cookie in a request, if it carries one.
fn presented(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE_HEADER)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE).and_then(|rest| rest.strip_prefix('=')))
}

/// A signed-in person reading console pages.
pub struct Viewer {
    pub csrf: String,
    pub read_only: bool,
}

/// Why a request may not go on: pages send the browser to the login form, everything else gets the error.
pub struct Refusal(Response);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        self.0
    }
}

impl FromRequestParts<Arc<Console>> for Viewer {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, console: &Arc<Console>) -> Result<Viewer, Refusal> {
        let session = presented(&parts.headers).and_then(|token| console.sessions.check(token, Instant::now()));
        match session {
            Some(csrf) => Ok(Viewer { csrf, read_only: console.runtime.settings.read_only }),
            None if parts.method == Method::GET && !parts.headers.contains_key("hx-request") => Err(Refusal(
                (StatusCode::SEE_OTHER, [(LOCATION, HeaderValue::from_static("/ui/login"))]).into_response(),
            )),
            None => {
                Err(Refusal(Error::Unauthorized("sign in to the console first (/ui/login)".into()).into_response()))
            }
        }
    }
}

/// A signed-in person acting from a console page: session, CSRF token and own `Origin` checked. Acts
/// that change nothing (try-it runs a server, as any caller may) need only this.
pub struct Actor(pub Viewer);

impl FromRequestParts<Arc<Console>> for Actor {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, console: &Arc<Console>) -> Result<Actor, Refusal> {
        let viewer = Viewer::from_request_parts(parts, console).await?;
        let refuse = |error: Error| Refusal(error.into_response());
        own_origin(&parts.headers, console).map_err(refuse)?;
        let sent = parts.headers.get("x-csrf-token").map(|v| v.as_bytes()).unwrap_or_default();
        if !bool::from(sent.ct_eq(viewer.csrf.as_bytes())) {
            return Err(refuse(Error::Forbidden(
                "the console's CSRF token is missing or wrong: reload the page and try again".into(),
            )));
        }
        Ok(Actor(viewer))
    }
}

/// An [`Actor`] who may change the state: refused in read-only mode.
pub struct Editor;

impl FromRequestParts<Arc<Console>> for Editor {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, console: &Arc<Console>) -> Result<Editor, Refusal> {
        let Actor(viewer) = Actor::from_request_parts(parts, console).await?;
        if viewer.read_only {
            let refusal = Error::Forbidden("this server runs read-only: the console shows, it does not change".into());
            return Err(Refusal(refusal.into_response()));
        }
        Ok(Editor)
    }
}

/// A console mutation must say it comes from this server's own pages: an `Origin` of the host it was
/// sent to, or of `--public-url`. The browser rules admit more (`--allowed-origin`, or no `Origin`
/// at all for programs); the console's forms are only ever sent from its own pages.
fn own_origin(headers: &HeaderMap, console: &Console) -> Result<(), Error> {
    let origin = headers.get(ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_ascii_lowercase);
    let host = headers.get(HOST).and_then(|v| v.to_str().ok()).map(str::to_ascii_lowercase).unwrap_or_default();
    let public = console.runtime.settings.public_url.as_ref().map(|url| url.origin().ascii_serialization());
    let own = origin.as_deref().is_some_and(|origin| {
        origin == format!("http://{host}") || origin == format!("https://{host}") || Some(origin) == public.as_deref()
    });
    if own {
        Ok(())
    } else {
        Err(Error::Forbidden("a console change must come from a console page (its Origin is not this server)".into()))
    }
}

/// The cookie that opens (`token`) or ends (`None`) a session.
fn cookie(console: &Console, token: Option<&str>) -> HeaderValue {
    let secure = console.runtime.settings.public_url.as_ref().is_some_and(|url| url.scheme() == "https");
    let (value, age) = match token {
        Some(token) => (token, LIFETIME.as_secs()),
        None => ("", 0),
    };
    let text = format!(
        "{COOKIE}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={age}{}",
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("switchboard_console=; Max-Age=0"))
}

/// `GET /ui/login`.
pub async fn form() -> Response {
    login_page(StatusCode::OK, None)
}

fn login_page(status: StatusCode, problem: Option<&str>) -> Response {
    let body = html! {
        main.login {
            h1 { "Switchboard" }
            p.muted { "Sign in with the admin token: " code { "$SWITCHBOARD_ADMIN_TOKEN" } ", or the file "
                      code { "admin-token" } " in the data directory." }
            @if let Some(problem) = problem { div.alert role="alert" data-testid="error" { (problem) } }
            form method="post" action="/ui/login" {
                label for="token" { "Admin token" }
                input #token type="password" name="token" autocomplete="current-password" required autofocus
                      data-testid="login-token";
                button.primary type="submit" data-testid="login-submit" { "Sign in" }
            }
        }
    };
    frame::bare(status, "Sign in", body)
}

/// `POST /ui/login` with the form field `token`: a session cookie and the server list, or 401.
pub async fn login(console: State, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let console = console.0;
    if let Err(error) = own_origin(&headers, &console) {
        return error.into_response();
    }
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let token = fields.iter().find(|(key, _)| key == "token").map(|(_, value)| value.as_str()).unwrap_or_default();
    if !super::super::auth::is_admin(&console.runtime, token) {
        tracing::warn!("console: a sign-in with a wrong token");
        return login_page(StatusCode::UNAUTHORIZED, Some("That is not the admin token."));
    }
    let session = console.sessions.open(Instant::now());
    let headers = [(LOCATION, HeaderValue::from_static("/ui")), (SET_COOKIE, cookie(&console, Some(&session)))];
    (StatusCode::SEE_OTHER, headers).into_response()
}

/// `POST /ui/logout`: the session ends here and in the browser.
pub async fn logout(_: Actor, console: State, headers: HeaderMap) -> Response {
    if let Some(token) = presented(&headers) {
        console.sessions.close(token);
    }
    let headers = [
        (SET_COOKIE, cookie(&console, None)),
        (axum::http::HeaderName::from_static("hx-redirect"), HeaderValue::from_static("/ui/login")),
    ];
    (StatusCode::OK, headers).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_opens_checks_expires_and_closes() {
        let sessions = Sessions::default();
        let start = Instant::now();
        let token = sessions.open(start);
        let csrf = sessions.check(&token, start + Duration::from_secs(60)).expect("open");
        assert_ne!(csrf, token);
        assert_eq!(sessions.check("not-a-session", start), None);
        assert_eq!(sessions.check(&token, start + LIFETIME), None, "expired at its lifetime");
        assert_eq!(sessions.check(&token, start), None, "an expired session is gone for good");
        let again = sessions.open(start);
        sessions.close(&again);
        assert_eq!(sessions.check(&again, start), None);
    }

    #[test]
    fn only_the_console_cookie_is_read() {
        let mut headers = HeaderMap::new();
        headers.append(COOKIE_HEADER, "a=1; switchboard_console_x=2".parse().unwrap());
        headers.append(COOKIE_HEADER, format!("b=2; {COOKIE}=abc").parse().unwrap());
        assert_eq!(presented(&headers), Some("abc"));
    }
}
