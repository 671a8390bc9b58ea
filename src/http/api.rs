//! The management API under `/api/`: every mutation needs the admin token; reads are open, or need a
//! token when invocation tokens are set ([`super::auth::Reader`]).

use axum::Router;
use axum::routing::{get, post, put};

use super::{AppState, boot, oauth, secrets, servers, webhooks};
use crate::error::Error;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/servers", get(servers::list))
        .route("/servers/{name}", get(servers::show).put(servers::put).delete(servers::remove))
        .route("/servers/{name}/history", get(servers::history))
        .route("/servers/{name}/enable", post(servers::enable))
        .route("/servers/{name}/disable", post(servers::disable))
        .route("/servers/{name}/rollback", post(servers::rollback))
        .route("/secrets", get(secrets::list))
        .route("/secrets/{name}", put(secrets::set).delete(secrets::remove))
        .route("/oauth", get(oauth::list))
        .route("/oauth/{name}", get(oauth::status).delete(oauth::disconnect))
        .route("/oauth/{name}/start", post(oauth::start))
        .route("/boot/export", get(boot::export))
        .route("/boot/import", post(boot::import))
        .route("/webhooks/{name}/events", get(webhooks::events))
        .route("/webhooks/{name}/events/{cid}/replay", post(webhooks::replay))
        .fallback(not_found)
}

async fn not_found() -> Error {
    Error::NotFound("no such management route".into())
}
