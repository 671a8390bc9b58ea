//! From a server's `META.oauth2` to a token: templates filled in the invocation that needs the token
//! (so the secrets it reads are masked in whatever that invocation reports), then the grant's request.
//!
//! Grants with a refresh token (`authorization_code`, `refresh_token`) start from the connection in
//! the store, not from memory: another process may have rotated the refresh token since, and a restart
//! must find the one issued last. Renewals take turns under the store's lock ([`Store::lock`]), so that
//! instances sharing a PostgreSQL store present a rotating refresh token once.
//!
//! [`Store::lock`]: crate::store::Store::lock

use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use rhai::EvalAltResult;
use serde::Deserialize;
use serde_json::json;

use super::connection::{self, Connection, fingerprint};
use super::exchange::{self, Endpoint, Exchange};
use super::token::{Token, now_millis};
use crate::engine::Context;
use crate::error::Error;
use crate::meta::oauth2::{Grant, Spec};
use crate::modules::http::parse_url;
use crate::modules::jwt::{Algorithm, Header, rs256};
use crate::modules::native::arg_error;
use crate::modules::services::Services;
use crate::modules::template::{self, fill};

/// The longest lifetime an assertion may ask for (RFC 7523 as Google applies it).
const ASSERTION_LIFETIME: i64 = 3600;
/// The longest a token request may take when the invocation has more time than that.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The fields of a Google-style service-account JSON that the assertion needs.
#[derive(Deserialize)]
struct ServiceAccount {
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    token_uri: Option<String>,
}

/// What the grant starts from beyond the endpoint.
enum Source {
    Client,
    /// The provider's own `grant_type`, given in `params`.
    ProviderGrant,
    Connected,
    Pasted(String),
    Assertion {
        account: ServiceAccount,
        scope: String,
        subject: Option<String>,
    },
}

/// One server's token request, ready to send.
pub struct Credentials {
    pub endpoint: Endpoint,
    /// Where tokens are revoked (RFC 7009), when the server declares it.
    revoke_url: Option<Url>,
    source: Source,
    timeout: Duration,
}

fn filled(template: &str, services: &Services, context: &Context) -> Result<Option<String>, Box<EvalAltResult>> {
    match template.is_empty() {
        true => Ok(None),
        false => fill(template, services, context).map(Some),
    }
}

impl Credentials {
    /// Fills every template of `spec` for `server`. Missing secrets fail here, before anything is sent.
    pub fn resolve(
        services: &Services,
        context: &Context,
        spec: &Spec,
        server: &str,
    ) -> Result<Credentials, Box<EvalAltResult>> {
        let fill = |template: &str| filled(template, services, context);
        let scopes =
            spec.scopes.iter().map(|s| fill(s).map(Option::unwrap_or_default)).collect::<Result<Vec<_>, _>>()?;
        let mut token_url = fill(&template::url(services, context, "TOKEN_URL", &spec.token_url))?;
        let source = match spec.grant {
            Grant::ClientCredentials if spec.custom_grant_type().is_some() => Source::ProviderGrant,
            Grant::ClientCredentials => Source::Client,
            Grant::AuthorizationCode => Source::Connected,
            Grant::RefreshToken => Source::Pasted(fill(&spec.refresh_token)?.unwrap_or_default()),
            Grant::JwtBearer => {
                let json = fill(&spec.service_account)?.unwrap_or_default();
                let account: ServiceAccount = serde_json::from_str(&json).map_err(|_| {
                    arg_error("the service account is not a JSON key with client_email and private_key")
                })?;
                token_url = token_url.or_else(|| account.token_uri.clone());
                let subject = fill(&spec.subject)?;
                Source::Assertion { account, scope: scopes.join(" "), subject }
            }
        };
        let token_url = parse_url(&token_url.ok_or_else(|| arg_error("META.oauth2.token_url is not set"))?)?;
        // A token request carries the client secret: only to a host the server declares.
        crate::modules::egress::check(services, context, &token_url)?;
        let revoke_url = match fill(&template::url(services, context, "REVOKE_URL", &spec.revoke_url))? {
            Some(url) => Some(parse_url(&url)?),
            None => None,
        };
        if let Some(url) = &revoke_url {
            crate::modules::egress::check(services, context, url)?;
        }
        let endpoint = Endpoint {
            server: server.to_owned(),
            token_url,
            client_id: fill(&spec.client_id)?.unwrap_or_default(),
            client_secret: fill(&spec.client_secret)?,
            client_auth: spec.client_auth,
            scopes,
            params: spec
                .params
                .iter()
                .map(|(k, v)| Ok((k.clone(), fill(v)?.unwrap_or_default())))
                .collect::<Result<_, Box<EvalAltResult>>>()?,
        };
        let timeout = context.remaining().min(REQUEST_TIMEOUT);
        Ok(Credentials { endpoint, revoke_url, source, timeout })
    }

    /// A fresh token not equal to `rejected`, by whatever the grant allows.
    pub async fn obtain(&self, services: &Arc<Services>, rejected: Option<&str>) -> Result<Token, Error> {
        let exchange = match &self.source {
            Source::Client => Exchange::ClientCredentials,
            Source::ProviderGrant => Exchange::ProviderGrant,
            Source::Assertion { account, scope, subject } => {
                Exchange::Assertion(self.assertion(account, scope, subject)?)
            }
            Source::Connected | Source::Pasted(_) => return self.refresh(services, rejected).await,
        };
        self.request(services, exchange).await
    }

    /// The code flow's last step: the authorization code and the PKCE verifier it was issued for.
    pub async fn exchange_code(
        &self,
        services: &Services,
        code: String,
        verifier: String,
        redirect_uri: String,
    ) -> Result<Token, Error> {
        self.request(services, Exchange::Code { code, verifier, redirect_uri }).await
    }

    /// Revokes `token` at the server's revocation endpoint: its refresh token when it has one (which
    /// ends its access tokens too), else its access token. `false` when the server declares no endpoint.
    pub async fn revoke(&self, services: &Services, token: &Token) -> Result<bool, Error> {
        let Some(url) = &self.revoke_url else { return Ok(false) };
        let (value, hint) = match &token.refresh {
            Some(refresh) => (refresh.as_str(), "refresh_token"),
            None => (token.access.as_str(), "access_token"),
        };
        exchange::revoke(&services.http, &self.endpoint, url, value, hint, self.timeout).await.map(|()| true)
    }

    async fn request(&self, services: &Services, exchange: Exchange) -> Result<Token, Error> {
        exchange::request(&services.http, &self.endpoint, exchange, self.timeout).await
    }

    /// The stored connection's token if it is still good, else a refresh, whose result is stored
    /// before it is returned (a rotated refresh token must never be lost).
    async fn refresh(&self, services: &Arc<Services>, rejected: Option<&str>) -> Result<Token, Error> {
        let server = &self.endpoint.server;
        let seed = match &self.source {
            Source::Pasted(value) => Some(fingerprint(value)),
            _ => None,
        };
        // One renewal at a time across every instance on the store: whoever comes second reads the
        // token the first stored instead of presenting a refresh token that was just rotated away.
        let _turn = {
            let key = format!("oauth-refresh:{server}");
            store_work(services, move |services| services.store.lock(&key)).await?
        };
        // A pasted token that changed since the connection grew from it starts a new connection.
        let stored = {
            let server = server.clone();
            store_work(services, move |services| connection::load(services, &server)).await?
        };
        let stored = stored.filter(|c| c.seed == seed);
        if let Some(stored) = &stored
            && stored.token.fresh()
            && Some(stored.token.access.as_str()) != rejected
        {
            return Ok(stored.token.clone());
        }
        let refresh = match (&stored, &self.source) {
            (Some(Connection { token: Token { refresh: Some(refresh), .. }, .. }), _) => refresh.clone(),
            (_, Source::Pasted(value)) => value.clone(),
            (Some(_), _) => return Err(not_connected(server, "its connection holds no refresh token")),
            (None, _) => return Err(not_connected(server, "it is not connected yet")),
        };
        match self.request(services, Exchange::Refresh(refresh.clone())).await {
            Ok(mut token) => {
                token.refresh = token.refresh.or(Some(refresh));
                let (server, connection) = (server.clone(), Connection { token: token.clone(), seed });
                store_work(services, move |services| connection::save(services, &server, &connection)).await?;
                Ok(token)
            }
            Err(error @ Error::NotConnected { .. }) => {
                let server = server.clone();
                store_work(services, move |services| connection::remove(services, &server)).await?;
                Err(error)
            }
            Err(other) => Err(other),
        }
    }

    /// The RFC 7523 assertion for a service account: `iss` its email, `aud` its token URI, at most an
    /// hour, RS256 with its private key, `kid` its key id, `sub` the delegated user if any.
    fn assertion(&self, account: &ServiceAccount, scope: &str, subject: &Option<String>) -> Result<String, Error> {
        let now = now_millis() / 1000;
        let audience = account.token_uri.clone().unwrap_or_else(|| self.endpoint.token_url.to_string());
        let mut claims = json!({
            "iss": account.client_email, "aud": audience, "iat": now, "exp": now + ASSERTION_LIFETIME,
        });
        if !scope.is_empty() {
            claims["scope"] = json!(scope);
        }
        if let Some(subject) = subject {
            claims["sub"] = json!(subject);
        }
        let mut header = Header::new(Algorithm::RS256);
        header.kid = account.private_key_id.clone();
        rs256(&claims, &account.private_key, &header)
            .map_err(|problem| Error::BadRequest(format!("service account: {problem}")))
    }
}

/// Store work from async code, on the blocking pool: a script's thread drives other scripts too and
/// must not wait on the store's lock.
pub(super) async fn store_work<T: Send + 'static>(
    services: &Arc<Services>,
    work: impl FnOnce(&Services) -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    let services = services.clone();
    tokio::task::spawn_blocking(move || work(&services)).await.map_err(|e| Error::internal("store task", e))?
}

/// `not_connected` for `server`, saying why and how to connect.
pub fn not_connected(server: &str, why: &str) -> Error {
    Error::NotConnected {
        server: server.to_owned(),
        message: format!(
            "'{server}' needs an OAuth connection and {why}: connect it with POST /api/oauth/{server}/start \
             (or `switchboard oauth connect {server}`) and open the authorize_url it returns"
        ),
    }
}

/// A script-side failure as an [`Error`], for flows that run outside a script.
pub fn error_of(error: EvalAltResult) -> Error {
    match error {
        EvalAltResult::ErrorRuntime(value, _) if value.is::<Error>() => value.cast::<Error>(),
        other => Error::BadRequest(other.to_string()),
    }
}
