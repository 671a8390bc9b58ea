//! The HTTP interface: routes assembled in one place, handlers kept short.
//!
//! Every error a handler returns is an [`Error`](crate::error::Error), turned into its JSON form by the
//! one `IntoResponse` implementation (`error.rs`). Invocation handlers only translate HTTP into an
//! [`Invocation`](crate::invoke::Invocation) and the [`Invoked`](crate::invoke::Invoked) back into HTTP.

mod api;
mod auth;
pub mod body;
mod boot;
pub mod browser;
mod console;
mod content;
mod describe;
mod dispatch;
mod error;
mod guard;
mod import;
mod index;
mod invocations;
mod method;
mod metrics;
mod oauth;
mod page;
mod secrets;
mod servers;
mod webhooks;
mod workers;

use std::sync::Arc;

use axum::extract::{FromRequest, Request};
use axum::routing::{get, post};
use axum::{Router, body::Bytes};

use crate::error::Error;
use crate::runtime::Runtime;
use body::read_body;

pub type AppState = Arc<Runtime>;

/// A CID as a header value. Its text is base32 ASCII, so this fails only on a broken invariant, which
/// is reported like any internal error rather than crashing the handler.
fn cid_header(cid: &crate::cid::Cid) -> Result<axum::http::HeaderValue, Error> {
    axum::http::HeaderValue::from_str(cid.text().as_str()).map_err(|e| Error::internal("CID header", e))
}

/// Every route behind the edge ([`guard::Edge`]): the service a connection is served by.
///
/// Every path that is not one of the fixed routes is an invocation (`/{name|cid}` or
/// `/{name|cid}/{*rest}`); the dispatcher reads the path itself rather than through route parameters,
/// which keeps the hot path free of parameter maps, and the edge hands it every path whose first word
/// is not one a fixed route could start with, without the router.
pub fn service(runtime: Arc<Runtime>) -> guard::Edge {
    let policy = browser::Policy::new(&runtime.settings);
    let router = Router::new()
        .route("/", get(index::index))
        .route("/health", get(content::health))
        .route("/metrics", get(metrics::metrics))
        .route("/cid/{cid}", get(content::blob))
        .route("/oauth/{name}/callback", get(oauth::callback))
        .route("/webhooks/{name}", post(webhooks::receive))
        .nest("/api", api::router())
        .nest_service("/mcp", crate::mcp::http::service(&runtime))
        .nest_service("/ui", console::router(&runtime))
        .fallback(dispatch::dispatch)
        .with_state(runtime.clone());
    guard::Edge::new(router, policy, runtime)
}

/// A CID given in a request (path, parameter, header or body), or `bad_request`.
pub fn parse_cid(text: &str) -> Result<crate::cid::Cid, Error> {
    text.parse().map_err(|e| Error::BadRequest(format!("'{text}' is not a CID: {e}")))
}

/// A request body within the runtime's limit, as an extractor.
pub struct LimitedBody(pub Bytes);

impl FromRequest<AppState> for LimitedBody {
    type Rejection = Error;

    async fn from_request(request: Request, state: &AppState) -> Result<LimitedBody, Error> {
        read_body(request.into_body(), state.settings.max_body).await.map(LimitedBody)
    }
}

/// Serves `runtime` on `listener` until ctrl-c or SIGTERM.
pub async fn serve(runtime: Arc<Runtime>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    announce(&runtime, listener.local_addr()?);
    workers::serve(service(runtime), listener, shutdown_signal()).await
}

/// Says who may invoke; warns when that is anyone on the network: every server runs with the
/// operator's secrets for whoever reaches the address.
fn announce(runtime: &Runtime, address: std::net::SocketAddr) {
    match (runtime.settings.invoke_access.is_open(), address.ip().is_loopback()) {
        (false, _) => tracing::info!("invocations: need an invocation token"),
        (true, true) => tracing::info!("invocations: open to every client that reaches {address}"),
        (true, false) => tracing::warn!(
            "invocations: open to every client that reaches {address}, which is not a loopback address: anyone \
             on the network can run every server with its secrets; set --invoke-token (or \
             SWITCHBOARD_INVOKE_TOKENS), or listen on 127.0.0.1"
        ),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
