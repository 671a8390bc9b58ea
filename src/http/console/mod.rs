//! The web console under `/ui`: find, try, edit, roll back and connect servers in a browser.
//!
//! Server-rendered HTML (maud) with htmx for partial updates and a CodeMirror bundle for the editor,
//! all embedded in the binary ([`assets`]). The console is one more caller of what exists: it
//! changes the registry through the same `Runtime` operations as `/api/` and runs scripts through
//! [`Runtime::invoke`](crate::runtime::Runtime::invoke), never beside them.
//!
//! Who may use it is decided in [`session`]: the admin token, given once on `/ui/login`, opens a
//! session whose cookie is scoped to `/ui` — invocations live elsewhere, so no script ever receives it,
//! and no script's response may set it. Every mutation carries the session's CSRF token and an `Origin`
//! of this server; read-only mode hides every edit and refuses it.
//!
//! Failures are the one [`Error`](crate::error::Error) type; for a request htmx sent, [`alert`] turns
//! one into a fragment the page shows in place (same status and `type`), for anything else it stays JSON.

mod activity;
mod assets;
mod boot;
mod connect;
mod create;
mod editor;
mod frame;
mod invocations;
mod list;
mod openapi;
mod secrets;
mod server;
mod session;
mod state;
mod try_it;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::error::Error;
use crate::runtime::Runtime;

/// What every console handler reads: the runtime and the open sessions.
pub struct Console {
    pub runtime: Arc<Runtime>,
    sessions: session::Sessions,
}

type State = axum::extract::State<Arc<Console>>;

/// The console's routes, mounted at `/ui`.
pub fn router(runtime: &Arc<Runtime>) -> Router {
    let console = Arc::new(Console { runtime: runtime.clone(), sessions: session::Sessions::default() });
    Router::new()
        .route("/", get(list::page))
        .route("/servers", get(list::rows))
        .route("/new", get(create::page).post(create::create))
        .route("/import", get(openapi::page))
        .route("/import/operations", post(openapi::operations))
        .route("/import/preview", post(openapi::preview))
        .route("/import/apply", post(openapi::apply))
        .route("/login", get(session::form).post(session::login))
        .route("/logout", post(session::logout))
        .route("/assets/{file}", get(assets::serve))
        .route("/servers/{name}", get(server::page))
        .route("/servers/{name}/try", post(try_it::run))
        .route("/servers/{name}/operations/{operation}", post(try_it::operation))
        .route("/servers/{name}/source", post(editor::save))
        .route("/servers/{name}/enabled", post(editor::switch))
        .route("/servers/{name}/diff", get(editor::diff))
        .route("/servers/{name}/rollback", post(editor::rollback))
        .route("/servers/{name}/connect", post(connect::connect))
        .route("/servers/{name}/disconnect", post(connect::disconnect))
        .route("/servers/{name}/events/{cid}/replay", post(connect::replay))
        .route("/invocations", get(invocations::page))
        .route("/secrets", get(secrets::page).post(secrets::set))
        .route("/secrets/{name}", axum::routing::delete(secrets::remove))
        .route("/boot", get(boot::page))
        .route("/boot/export", get(boot::export))
        .route("/boot/diff", post(boot::diff))
        .route("/boot/import", post(boot::import))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(alert))
        // Forms and uploads (a boot image) are held to the runtime's body limit, as `/api/` is.
        .layer(axum::extract::DefaultBodyLimit::max(runtime.settings.max_body))
        .with_state(console)
}

async fn not_found() -> Error {
    Error::NotFound("no such console page".into())
}

/// Turns an error answer to an htmx request into a fragment the page can show where the answer goes.
async fn alert(request: Request, next: Next) -> Response {
    let from_htmx = request.headers().contains_key("hx-request");
    let response = next.run(request).await;
    let Some(error) = response.extensions().get::<Error>().filter(|_| from_htmx) else { return response };
    let status = response.status();
    let markup = maud::html! {
        div.alert role="alert" data-testid="error" data-type=(error.kind()) {
            strong { (error.kind()) } " — " (error.message())
        }
    };
    // htmx swaps error answers too (see the page's htmx-config): into the page's alert area, whatever
    // the request meant to update, so the user sees what went wrong where they look for it.
    let mut fragment =
        (status, [("hx-retarget", "#flash"), ("hx-reswap", "innerHTML")], axum::response::Html(markup.into_string()))
            .into_response();
    if status == StatusCode::UNAUTHORIZED {
        fragment.headers_mut().insert("hx-redirect", axum::http::HeaderValue::from_static("/ui/login"));
    }
    fragment
}

/// The longest start of `text` within `max` bytes that ends on a character boundary.
fn prefix(text: &str, max: usize) -> &str {
    let cut = (0..=max.min(text.len())).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    &text[..cut]
}
