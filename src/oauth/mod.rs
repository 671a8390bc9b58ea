//! OAuth2 and service-account tokens, obtained and renewed by the runtime (`auth: "oauth2"`).
//!
//! A server declares in `META.oauth2` ([`Spec`], read and checked with the rest of `META`) how its
//! tokens are obtained; scripts never see a token request. `api::call` hands an `oauth2` request to [`send`], which attaches a token and, on a
//! 401, renews it once and retries once. Around that:
//!
//! * [`credentials`] fills the templates of `META.oauth2` in the invocation that needs a token and runs
//!   the grant; [`exchange`] sends token requests through the one HTTP client.
//! * [`tokens`] caches tokens in memory and keeps one token request in flight per server.
//! * [`connection`] keeps what must outlive the process (refresh tokens), sealed in the store.
//! * [`connect`] is the browser flow that creates a connection (authorization code with PKCE);
//!   [`connections`] reports them and disconnects one (revoking its token where the provider can).
//!
//! The token manager is async: a script waits for it as for any outbound call, suspending its fiber
//! (`engine::wait`) without holding a thread.

pub mod connect;
pub mod connection;
pub mod connections;
mod credentials;
mod exchange;
mod token;
pub mod tokens;

use std::sync::Arc;

use reqwest::header::{AUTHORIZATION, HeaderValue};
use rhai::EvalAltResult;

pub use credentials::{error_of, not_connected};
pub use token::Token;

use crate::engine::{Context, raise, wait};
use crate::error::Error;
use crate::meta::oauth2::{Grant, Spec};
use crate::modules::http::{Incoming, Outgoing};
use crate::modules::native::arg_error;
use crate::modules::secret;
use crate::modules::services::Services;
use crate::modules::template;
use credentials::Credentials;

/// Sends `request` for an `oauth2` server with its token as `Authorization: <scheme> <token>` (scheme
/// `Bearer` unless the server says otherwise). A 401 renews the token once and retries once. A plain
/// access token the user stored (`META.oauth2.access_token`) is sent as is and never renewed.
pub fn send(
    services: &Arc<Services>,
    context: &Arc<Context>,
    mut request: Outgoing,
    scheme: Option<String>,
) -> Result<Incoming, Box<EvalAltResult>> {
    let spec = context.script.meta.oauth2.clone().ok_or_else(|| arg_error("auth \"oauth2\" needs META.oauth2"))?;
    let server = context.server.clone().ok_or_else(|| arg_error("an oauth2 server runs only under its name"))?;
    let scheme = scheme.unwrap_or_else(|| "Bearer".into());
    let plain = match spec.access_token.is_empty() {
        true => None,
        false => secret::read(services, context, &spec.access_token)?,
    };
    if let Some(token) = plain {
        authorize(&mut request, &scheme, &token)?;
        return services.http.send(request, context);
    }
    let token = match services.oauth.cached(&server, context.script.cid) {
        Some(token) => token,
        None => obtain(services, context, &spec, &server, None).map_err(|e| or_plain(*e, &spec.access_token))?,
    };
    context.reveal(&token.access);
    authorize(&mut request, &scheme, &token.access)?;
    let response = services.http.send(request.clone(), context)?;
    if response.status != reqwest::StatusCode::UNAUTHORIZED {
        return Ok(response);
    }
    let renewed = obtain(services, context, &spec, &server, Some(token.access))?;
    authorize(&mut request, &scheme, &renewed.access)?;
    services.http.send(request, context)
}

/// Whether `spec` can authenticate without its fallback: `None` when its plain access token or the
/// grant's own credential (service account, refresh token, client id) is set, else the secrets that
/// would do, for a `missing_secret` error.
pub fn lacking(services: &Services, context: &Context, spec: &Spec) -> Result<Option<String>, Box<EvalAltResult>> {
    if !spec.access_token.is_empty() && secret::read(services, context, &spec.access_token)?.is_some() {
        return Ok(None);
    }
    let own = match spec.grant {
        Grant::JwtBearer => &spec.service_account,
        Grant::RefreshToken => &spec.refresh_token,
        Grant::ClientCredentials | Grant::AuthorizationCode => &spec.client_id,
    };
    match template::fill(own, services, context) {
        Ok(_) => Ok(None),
        Err(error) => match credentials::error_of(*error) {
            Error::MissingSecret { name, .. } if spec.access_token.is_empty() => Ok(Some(name)),
            Error::MissingSecret { name, .. } => Ok(Some(format!("{} or {name}", spec.access_token))),
            other => Err(raise(other)),
        },
    }
}

/// A token for `server` through the cache (one request in flight per server), recorded for masking
/// (the one renewed after a 401 is then masked too). The script waits for it without holding its
/// thread.
fn obtain(
    services: &Arc<Services>,
    context: &Context,
    spec: &Spec,
    server: &str,
    rejected: Option<String>,
) -> Result<Token, Box<EvalAltResult>> {
    let credentials = match Credentials::resolve(services, context, spec, server) {
        Ok(credentials) => credentials,
        Err(error) => return Err(before_set_up(services, spec, server, *error)),
    };
    let (services, server, script) = (services.clone(), server.to_owned(), context.script.cid);
    let token = wait(async move {
        let fetch = || credentials.obtain(&services, rejected.as_deref());
        services.oauth.get(&server, script, rejected.as_deref(), fetch).await
    })?
    .map_err(raise)?;
    context.reveal(&token.access);
    Ok(token)
}

/// A server connected through the browser whose client credentials are not set yet, and which has no
/// connection: `not_connected`, saying to set them and then connect — what a user must do first is
/// connect, and a bare `missing_secret` would not say so.
fn before_set_up(services: &Arc<Services>, spec: &Spec, server: &str, error: EvalAltResult) -> Box<EvalAltResult> {
    let missing = match (spec.grant, error) {
        (Grant::AuthorizationCode, EvalAltResult::ErrorRuntime(value, _)) if value.is::<Error>() => {
            match value.cast::<Error>() {
                Error::MissingSecret { name, .. } => name,
                other => return raise(other),
            }
        }
        (_, other) => return other.into(),
    };
    let stored = {
        let (services, server) = (services.clone(), server.to_owned());
        wait(async move { credentials::store_work(&services, move |s| connection::load(s, &server)).await })
    };
    match stored {
        Ok(Ok(None)) => {
            let first = missing.split(" or ").next().unwrap_or(&missing).to_owned();
            let plain = match spec.access_token.is_empty() {
                true => String::new(),
                false => format!(" (or set {} to send an access token of your own)", spec.access_token),
            };
            let first_set = |message: &str| {
                format!(
                    "{message}; first set {missing} (`switchboard secret set {first}`), which connecting needs{plain}"
                )
            };
            raise(not_connected(server, "it is not connected yet").map_text(first_set))
        }
        Ok(Ok(Some(_))) => raise(Error::missing_secret(missing)),
        Ok(Err(error)) => raise(error),
        Err(error) => error,
    }
}

/// A missing client credential also names the plain access token that would do instead.
fn or_plain(error: EvalAltResult, plain: &str) -> Box<EvalAltResult> {
    match error {
        EvalAltResult::ErrorRuntime(value, _) if !plain.is_empty() && value.is::<Error>() => {
            match value.cast::<Error>() {
                Error::MissingSecret { name, .. } => raise(Error::missing_secret(format!("{plain} or {name}"))),
                other => raise(other),
            }
        }
        other => other.into(),
    }
}

fn authorize(request: &mut Outgoing, scheme: &str, token: &str) -> Result<(), Box<EvalAltResult>> {
    let mut value = HeaderValue::from_str(&format!("{scheme} {token}")).map_err(|_| {
        raise(Error::InvalidResponse("the token endpoint issued a token that is not header-safe".into()))
    })?;
    value.set_sensitive(true);
    request.headers.insert(AUTHORIZATION, value);
    Ok(())
}
