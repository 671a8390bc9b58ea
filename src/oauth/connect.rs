//! Connecting a server through the browser: the authorization-code flow with PKCE (S256).
//!
//! [`start`] makes a single-use `state` and a PKCE verifier, keeps them in the store for ten minutes
//! (the verifier sealed, the state only as a digest, both bound to the server and the redirect URI)
//! and returns the provider's authorize URL. The provider sends the browser back to
//! `/oauth/{name}/callback`, where [`finish`] takes the state out of the store (so it can never be
//! used twice), exchanges the code with its verifier and stores the connection. Keeping pending
//! states in the store rather than in memory lets `switchboard oauth connect` start a flow that the
//! running server finishes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use oauth2::basic::BasicClient;
use oauth2::{AuthUrl, ClientId, CsrfToken, PkceCodeChallenge, RedirectUrl, Scope};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::connection::{self, Connection};
use super::credentials::{Credentials, error_of};
use super::token::now_millis;
use crate::engine::{Context, Script};
use crate::error::{Error, Result};
use crate::meta::oauth2::{Grant, Spec};
use crate::modules::template::{self, fill};
use crate::runtime::Runtime;
use crate::store::{Change, Op};

/// How long a started flow may take to come back.
pub const STATE_LIFETIME: Duration = Duration::from_secs(600);

/// What a started flow gives the user.
#[derive(Debug, Serialize, Deserialize)]
pub struct Started {
    pub authorize_url: String,
    pub redirect_uri: String,
    pub expires_in: u64,
}

/// What the store keeps (sealed) about a started flow.
#[derive(Serialize, Deserialize)]
struct Pending {
    verifier: String,
    redirect_uri: String,
}

/// The spec of a server that connects through the browser.
fn code_flow(server: &str, script: &Script) -> Result<Arc<Spec>> {
    match &script.meta.oauth2 {
        Some(spec) if spec.grant == Grant::AuthorizationCode => Ok(spec.clone()),
        Some(spec) => Err(Error::BadRequest(format!(
            "'{server}' uses the {} grant: the runtime obtains its tokens without a browser connection",
            spec.grant.name()
        ))),
        None => Err(Error::BadRequest(format!("'{server}' does not use OAuth (its META.auth is not \"oauth2\")"))),
    }
}

/// The invocation-like context in which a flow fills the server's templates.
pub(super) fn context(server: &str, script: &Arc<Script>) -> Context {
    Context::new(Some(server.to_owned()), script.clone(), Instant::now(), Duration::from_secs(30))
}

/// Where the provider sends the browser back: `{public URL}/oauth/{name}/callback`.
pub fn redirect_uri(public: &str, server: &str) -> String {
    format!("{}/oauth/{server}/callback", public.trim_end_matches('/'))
}

/// The store key of a state: its digest, so the store never holds a usable state.
fn state_key(state: &str) -> String {
    blake3::hash(state.as_bytes()).to_hex().to_string()
}

/// The registered server `name` and its loaded script.
pub(super) fn registered(runtime: &Runtime, name: &str) -> Result<Arc<Script>> {
    runtime.existing(name)?.script.clone()
}

/// Starts connecting the server `name`; `public` is the URL the browser reaches this runtime at.
pub fn start(runtime: &Runtime, server: &str, public: &str) -> Result<Started> {
    let services = &runtime.services;
    let script = &registered(runtime, server)?;
    let spec = code_flow(server, script)?;
    let context = context(server, script);
    let fill = |template: &str| fill(template, services, &context).map_err(|e| error_of(*e));
    let authorize = fill(&template::url(services, &context, "AUTHORIZE_URL", &spec.authorize_url))?;
    let authorize = AuthUrl::new(authorize).map_err(|e| Error::BadRequest(format!("the authorize URL: {e}")))?;
    let redirect_uri = redirect_uri(public, server);
    let redirect =
        RedirectUrl::new(redirect_uri.clone()).map_err(|e| Error::BadRequest(format!("the public URL: {e}")))?;
    let mut random = [0u8; 32];
    rand::rng().fill_bytes(&mut random);
    let state = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let client =
        BasicClient::new(ClientId::new(fill(&spec.client_id)?)).set_auth_uri(authorize).set_redirect_uri(redirect);
    let mut request = client.authorize_url(|| CsrfToken::new(state.clone())).set_pkce_challenge(challenge);
    for scope in &spec.scopes {
        request = request.add_scope(Scope::new(fill(scope)?));
    }
    for (name, value) in &spec.authorize_params {
        request = request.add_extra_param(name.clone(), fill(value)?);
    }
    let (url, _) = request.url();

    let key = state_key(&state);
    let pending = Pending { verifier: verifier.secret().clone(), redirect_uri: redirect_uri.clone() };
    let pending = serde_json::to_string(&pending).map_err(|e| Error::internal("state", e))?;
    let sealed = services.vault.seal(&format!("oauth-state:{key}"), &pending);
    let expires = now_millis() + STATE_LIFETIME.as_millis() as i64;
    let mut change = Change::default();
    change.op(Op::PutOAuthState { key, server: server.to_owned(), sealed, expires });
    services.store.commit(&change)?;
    Ok(Started { authorize_url: url.into(), redirect_uri, expires_in: STATE_LIFETIME.as_secs() })
}

/// Finishes connecting `server` with what the provider sent back. A state that is unknown, used,
/// expired or issued for another server is refused (400), nothing is stored, and a state issued for
/// another server stays usable there.
pub async fn finish(runtime: Arc<Runtime>, server: String, state: String, code: String) -> Result<()> {
    let (credentials, pending) = {
        let server = server.clone();
        runtime.blocking(move |rt| take_state(rt, &server, &state)).await?
    };
    let exchange = credentials.exchange_code(&runtime.services, code, pending.verifier, pending.redirect_uri);
    let token = exchange.await?;
    runtime
        .blocking(move |rt| {
            connection::save(&rt.services, &server, &Connection { token, seed: None })?;
            rt.services.oauth.forget(&server);
            tracing::info!(target: "switchboard::oauth", %server, "connected");
            Ok(())
        })
        .await
}

/// Takes `state` out of the store (so it is never used twice) and prepares the code exchange it allows.
/// Only a state started for `server` is taken: one presented at another server's callback stays.
fn take_state(runtime: &Runtime, server: &str, state: &str) -> Result<(Credentials, Pending)> {
    let services = &runtime.services;
    let key = state_key(state);
    let refused = || Error::BadRequest("this authorization is unknown, already used or expired: start again".into());
    let sealed = services.store.take_oauth_state(&key, server)?.ok_or_else(refused)?;
    let pending: Pending = serde_json::from_str(&services.vault.open(&format!("oauth-state:{key}"), &sealed)?)
        .map_err(|e| Error::internal("state", e))?;
    let script = &registered(runtime, server)?;
    let spec = code_flow(server, script)?;
    let credentials =
        Credentials::resolve(services, &context(server, script), &spec, server).map_err(|e| error_of(*e))?;
    Ok((credentials, pending))
}
