//! The guards on management: the admin token for every mutation (refused in read-only mode) and for
//! reads of operations data; with invocation tokens set, a token for reads of the state as well.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::AppState;
use crate::error::Error;

/// Proof that a request may change the registry: extracting it checks read-only mode (403) and the
/// `Authorization: Bearer <admin token>` header (401).
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, runtime: &AppState) -> Result<Admin, Error> {
        if runtime.settings.read_only {
            return Err(Error::Forbidden("this server runs read-only: management changes are refused".into()));
        }
        AdminRead::from_request_parts(parts, runtime).await.map(|_| Admin)
    }
}

/// Proof that a request may read operations data (OAuth status): the admin token, in read-only mode too.
pub struct AdminRead;

impl FromRequestParts<AppState> for AdminRead {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, runtime: &AppState) -> Result<AdminRead, Error> {
        match presented(parts) {
            Some(token) if is_admin(runtime, token) => Ok(AdminRead),
            Some(_) => Err(Error::Unauthorized("the admin token is not valid".into())),
            None => Err(Error::Unauthorized("this needs Authorization: Bearer <admin token>".into())),
        }
    }
}

/// Proof that a request may read the state — stored blobs (`/cid/…`: outputs, webhook bodies), the
/// servers and their scripts, secret names, the exported image. Open while invocation is open (anyone
/// who may run the servers may see them); with invocation tokens set, any valid invocation token or
/// the admin token, so that a caller who may not invoke cannot read what invocations stored either.
pub struct Reader;

impl FromRequestParts<AppState> for Reader {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, runtime: &AppState) -> Result<Reader, Error> {
        let access = &runtime.settings.invoke_access;
        let token = presented(parts);
        if access.is_open() || token.is_some_and(|token| is_admin(runtime, token)) {
            return Ok(Reader);
        }
        access.grant(token).map(|_| Reader).map_err(|_| {
            Error::Unauthorized("with invocation tokens set, reads need Authorization: Bearer <token>".into())
        })
    }
}

/// The bearer token a request presents.
fn presented(parts: &Parts) -> Option<&str> {
    crate::access::bearer(parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()))
}

/// Whether `token` is the admin token. Comparing digests keeps the comparison constant-time
/// (blake3::Hash equality is).
pub(super) fn is_admin(runtime: &crate::runtime::Runtime, token: &str) -> bool {
    blake3::hash(token.as_bytes()) == blake3::hash(runtime.admin_token.as_bytes())
}
