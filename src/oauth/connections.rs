//! The connections an operator manages: each OAuth server's status (`GET /api/oauth/{name}`), all of
//! them at once (`GET /api/oauth`), and disconnecting one (`DELETE /api/oauth/{name}`), which revokes
//! its token at the provider where the server declares a revocation endpoint (RFC 7009). Never a token
//! in what they answer.

use std::sync::Arc;

use serde_json::{Value, json};

use super::connect::{context, registered};
use super::connection;
use super::credentials::{Credentials, error_of};
use super::token::Token;
use crate::engine::Script;
use crate::error::{Error, Result};
use crate::meta::oauth2::{Grant, Spec};
use crate::runtime::Runtime;

/// The OAuth declaration of the registered server `server`.
fn spec_of(server: &str, script: &Script) -> Result<Arc<Spec>> {
    script
        .meta
        .oauth2
        .clone()
        .ok_or_else(|| Error::BadRequest(format!("'{server}' does not use OAuth (its META.auth is not \"oauth2\")")))
}

/// The token the runtime holds for `server`: its stored connection, or the token in memory for grants
/// that keep none.
fn held(runtime: &Runtime, server: &str, script: &Script, spec: &Spec) -> Result<Option<Token>> {
    match spec.grant.keeps_refresh_token() {
        true => Ok(connection::load(&runtime.services, server)?.map(|c| c.token)),
        false => Ok(runtime.services.oauth.cached(server, script.cid)),
    }
}

/// What `GET /api/oauth/{name}` reports: whether the server has what it needs, until when, with which
/// scopes. Never a token.
pub fn status(runtime: &Runtime, server: &str) -> Result<Value> {
    let script = registered(runtime, server)?;
    let spec = spec_of(server, &script)?;
    let token = held(runtime, server, &script, &spec)?;
    let expires_at = token.as_ref().and_then(|t| chrono::DateTime::from_timestamp_millis(t.expires_at()));
    let mut status = json!({
        "server": server,
        "grant": spec.grant.name(),
        "needs_connection": spec.grant == Grant::AuthorizationCode,
        "connected": token.is_some(),
        "expires_at": expires_at.map(|t| t.to_rfc3339()),
        "scopes": token.as_ref().map(|t| t.scopes.clone()).unwrap_or_default(),
        "refreshable": token.as_ref().is_some_and(|t| t.refresh.is_some()),
        "revocable": !spec.revoke_url.is_empty(),
    });
    if token.is_none() && spec.grant == Grant::AuthorizationCode {
        status["connect"] = json!(format!("POST /api/oauth/{server}/start"));
    }
    Ok(status)
}

/// `GET /api/oauth`: the status of every registered server that uses OAuth, by name.
pub fn list(runtime: &Runtime) -> Result<Value> {
    let registry = runtime.servers();
    let mut names: Vec<&String> = registry
        .iter()
        .filter(|(_, server)| server.script.as_ref().is_ok_and(|script| script.meta.oauth2.is_some()))
        .map(|(name, _)| name)
        .collect();
    names.sort();
    let connections = names.into_iter().map(|name| status(runtime, name)).collect::<Result<Vec<_>>>()?;
    Ok(json!({ "connections": connections }))
}

/// `DELETE /api/oauth/{name}`: revokes the held token where the server declares a revocation endpoint,
/// then forgets the connection and every cached token. A revocation the provider refuses, or that
/// cannot reach it, is reported (`revoked: false`, `revocation_error`) and the connection is forgotten
/// all the same: the operator asked for it to be gone from here.
pub async fn disconnect(runtime: Arc<Runtime>, server: String) -> Result<Value> {
    let (token, credentials) = {
        let server = server.clone();
        runtime
            .blocking(move |rt| {
                let script = registered(rt, &server)?;
                let spec = spec_of(&server, &script)?;
                // A connection that no longer opens (another master key) is forgotten all the same.
                let token = held(rt, &server, &script, &spec).unwrap_or_else(|error| {
                    tracing::warn!(target: "switchboard::oauth", %server, "the connection does not open: {}", error.message());
                    None
                });
                let credentials = match (&token, spec.revoke_url.is_empty()) {
                    (Some(_), false) => Some(
                        Credentials::resolve(&rt.services, &context(&server, &script), &spec, &server)
                            .map_err(|e| error_of(*e)),
                    ),
                    _ => None,
                };
                Ok((token, credentials))
            })
            .await?
    };
    let revocation = match (&token, credentials) {
        (Some(token), Some(Ok(credentials))) => credentials.revoke(&runtime.services, token).await,
        (_, Some(Err(error))) => Err(error),
        _ => Ok(false),
    };
    let answer = {
        let server = server.clone();
        runtime.blocking(move |rt| {
            connection::remove(&rt.services, &server)?;
            rt.services.oauth.forget(&server);
            Ok(())
        })
    };
    answer.await?;
    tracing::info!(target: "switchboard::oauth", %server, revoked = matches!(revocation, Ok(true)), "disconnected");
    let mut answer = json!({
        "server": server,
        "disconnected": token.is_some(),
        "revoked": matches!(revocation, Ok(true)),
    });
    if let Err(error) = revocation {
        answer["revocation_error"] = json!(error.message());
    }
    Ok(answer)
}
