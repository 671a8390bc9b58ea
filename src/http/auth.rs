//! The guards on management: the admin token for every mutation (refused in read-only mode) and for
//! reads of operations data.

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
        let presented =
            parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        match presented {
            // Comparing digests keeps the comparison constant-time (blake3::Hash equality is).
            Some(token) if blake3::hash(token.trim().as_bytes()) == blake3::hash(runtime.admin_token.as_bytes()) => {
                Ok(AdminRead)
            }
            Some(_) => Err(Error::Unauthorized("the admin token is not valid".into())),
            None => Err(Error::Unauthorized("this needs Authorization: Bearer <admin token>".into())),
        }
    }
}
