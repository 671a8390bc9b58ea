//! Token requests: one POST to a token endpoint, sent through the runtime's one HTTP client.
//!
//! The standard grants (client credentials, authorization code with PKCE, refresh) go through the
//! `oauth2` crate, whose HTTP trait is adapted here to the shared reqwest client. Two grants it cannot
//! express are built by hand as one form POST each: the RFC 7523 assertion grant (service accounts)
//! and a provider's own `grant_type` (Zoom's `account_credentials`), which the crate must not override.
//! Redirects are never followed on a token request, and no response outgrows [`MAX_RESPONSE`].

use std::borrow::Cow;
use std::time::{Duration, Instant};

use base64::Engine as _;
use oauth2::basic::{BasicClient, BasicErrorResponse, BasicErrorResponseType, BasicTokenResponse};
use oauth2::http::{HeaderValue, Method, StatusCode, header};
use oauth2::{
    AuthType, AuthorizationCode, ClientId, ClientSecret, HttpRequest, HttpResponse, PkceCodeVerifier, RedirectUrl,
    RefreshToken, RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use reqwest::Url;

use super::token::Token;
use crate::error::Error;
use crate::meta::oauth2::ClientAuth;
use crate::modules::http::HttpClient;

/// Largest token response read.
const MAX_RESPONSE: usize = 64 * 1024;

/// A token endpoint and the client's credentials for it, every template filled.
#[derive(Clone)]
pub struct Endpoint {
    /// The server the tokens are for (named in errors).
    pub server: String,
    pub token_url: Url,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub client_auth: ClientAuth,
    pub scopes: Vec<String>,
    /// Extra token-request fields (`grant_type` among them for a provider's own grant).
    pub params: Vec<(String, String)>,
}

/// What is exchanged for a token.
pub enum Exchange {
    ClientCredentials,
    Code {
        code: String,
        verifier: String,
        redirect_uri: String,
    },
    Refresh(String),
    /// An RFC 7523 assertion; client credentials, if any, are not sent.
    Assertion(String),
    /// The provider's own `grant_type`, given in `params`.
    ProviderGrant,
}

/// Why the HTTP round trip itself failed.
#[derive(Debug, thiserror::Error)]
pub enum Transport {
    #[error("did not answer within {0} ms")]
    Timeout(u128),
    #[error("{0}")]
    Failed(String),
}

/// Sends one token request through the shared client: no redirects, a bounded body.
async fn transport(http: &HttpClient, request: HttpRequest, timeout: Duration) -> Result<HttpResponse, Transport> {
    let (parts, body) = request.into_parts();
    let url = Url::parse(&parts.uri.to_string()).map_err(|e| Transport::Failed(e.to_string()))?;
    http.refuse_redirects(&url);
    let started = Instant::now();
    let sent =
        http.client().request(parts.method, url.clone()).headers(parts.headers).body(body).timeout(timeout).send();
    let failed = |e: reqwest::Error| match e.is_timeout() {
        true => Transport::Timeout(timeout.as_millis()),
        false => Transport::Failed(e.without_url().to_string()),
    };
    let mut response = sent.await.map_err(failed)?;
    let status = response.status();
    tracing::info!(target: "switchboard::oauth", host = url.host_str().unwrap_or(""), path = url.path(), status = status.as_u16(), duration_ms = started.elapsed().as_millis() as u64, "token request");
    if status.is_redirection() {
        return Err(Transport::Failed(format!("answered {status}: token requests do not follow redirects")));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(failed)? {
        if body.len() + chunk.len() > MAX_RESPONSE {
            return Err(Transport::Failed(format!("sent a response larger than {MAX_RESPONSE} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    let mut answer = HttpResponse::new(body);
    *answer.status_mut() = status;
    *answer.headers_mut() = std::mem::take(response.headers_mut());
    Ok(answer)
}

/// A client id and secret sent as HTTP basic authentication.
type Basic<'a> = (&'a str, &'a str);

type Outcome = Result<BasicTokenResponse, RequestTokenError<Transport, BasicErrorResponse>>;

/// Exchanges `exchange` at `endpoint` for a token, within `timeout`.
pub async fn request(
    http: &HttpClient,
    endpoint: &Endpoint,
    exchange: Exchange,
    timeout: Duration,
) -> Result<Token, Error> {
    // Each request owns its (cheap) client handle, so the futures borrow nothing and stay `Send`.
    let send = |request: HttpRequest| {
        let http = http.clone();
        async move { transport(&http, request, timeout).await }
    };
    let scopes = || endpoint.scopes.iter().cloned().map(Scope::new);
    let client = BasicClient::new(ClientId::new(endpoint.client_id.clone()))
        .set_token_uri(TokenUrl::from_url(endpoint.token_url.clone()))
        .set_auth_type(match endpoint.client_auth {
            ClientAuth::Basic => AuthType::BasicAuth,
            ClientAuth::Body => AuthType::RequestBody,
        });
    let client = match &endpoint.client_secret {
        Some(secret) => client.set_client_secret(ClientSecret::new(secret.clone())),
        None => client,
    };
    let extra = endpoint.params.iter().map(|(k, v)| (Cow::from(k.as_str()), Cow::from(v.as_str())));
    let outcome: Outcome = match exchange {
        Exchange::ClientCredentials => {
            let request = client.exchange_client_credentials().add_scopes(scopes());
            extra.fold(request, |r, (k, v)| r.add_extra_param(k, v)).request_async(&send).await
        }
        Exchange::Code { code, verifier, redirect_uri } => {
            let redirect = RedirectUrl::new(redirect_uri).map_err(|e| Error::internal("redirect URI", e))?;
            let client = client.set_redirect_uri(redirect);
            let request =
                client.exchange_code(AuthorizationCode::new(code)).set_pkce_verifier(PkceCodeVerifier::new(verifier));
            extra.fold(request, |r, (k, v)| r.add_extra_param(k, v)).request_async(&send).await
        }
        Exchange::Refresh(refresh) => {
            let refresh = RefreshToken::new(refresh);
            let request = client.exchange_refresh_token(&refresh);
            extra.fold(request, |r, (k, v)| r.add_extra_param(k, v)).request_async(&send).await
        }
        Exchange::Assertion(assertion) => {
            let fields = vec![
                ("grant_type".to_owned(), "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned()),
                ("assertion".to_owned(), assertion),
            ];
            form_post(&send, &endpoint.token_url, fields, None).await
        }
        Exchange::ProviderGrant => {
            let (fields, basic) = provider_grant(endpoint);
            form_post(&send, &endpoint.token_url, fields, basic).await
        }
    };
    let requested = endpoint.scopes.clone();
    outcome.map(|response| token(response, requested)).map_err(|e| refused(&endpoint.server, &endpoint.token_url, e))
}

/// The fields of a provider's own grant (`params`, with its `grant_type`), the scopes, and the client's
/// credentials in the body or as basic auth.
fn provider_grant(endpoint: &Endpoint) -> (Vec<(String, String)>, Option<Basic<'_>>) {
    let mut fields = endpoint.params.clone();
    if !endpoint.scopes.is_empty() {
        fields.push(("scope".into(), endpoint.scopes.join(" ")));
    }
    let secret = endpoint.client_secret.as_deref().unwrap_or("");
    match endpoint.client_auth {
        ClientAuth::Basic => (fields, Some((endpoint.client_id.as_str(), secret))),
        ClientAuth::Body => {
            fields.push(("client_id".into(), endpoint.client_id.clone()));
            fields.push(("client_secret".into(), secret.to_owned()));
            (fields, None)
        }
    }
}

/// A form POST to `url`, with the client's credentials as basic authentication when `basic` says so.
fn form_request(url: &Url, fields: &[(String, String)], basic: Option<Basic<'_>>) -> Result<HttpRequest, String> {
    let body = serde_urlencoded::to_string(fields).map_err(|e| e.to_string())?;
    let mut request = HttpRequest::new(body.into_bytes());
    *request.method_mut() = Method::POST;
    *request.uri_mut() = url.as_str().parse().map_err(|_| "bad token URL".to_string())?;
    let headers = request.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
    headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    if let Some((id, secret)) = basic {
        let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", encode(id), encode(secret)));
        let value = HeaderValue::from_str(&format!("Basic {credentials}"))
            .map_err(|_| "client credentials are not header-safe".to_string())?;
        headers.insert(header::AUTHORIZATION, value);
    }
    Ok(request)
}

/// A token request the `oauth2` crate cannot make: one form POST, answered like any token request.
async fn form_post<F, Fut>(send: &F, url: &Url, fields: Vec<(String, String)>, basic: Option<Basic<'_>>) -> Outcome
where
    F: Fn(HttpRequest) -> Fut,
    Fut: std::future::Future<Output = Result<HttpResponse, Transport>>,
{
    let request = form_request(url, &fields, basic).map_err(RequestTokenError::Other)?;
    let response = send(request).await.map_err(RequestTokenError::Request)?;
    let body = response.body().as_slice();
    match response.status() {
        StatusCode::OK => serde_json::from_slice(body)
            .map_err(|_| RequestTokenError::Other("the answer is not a token response".into())),
        status => Err(serde_json::from_slice(body).map_or_else(
            |_| RequestTokenError::Other(format!("answered {status}")),
            RequestTokenError::ServerResponse,
        )),
    }
}

/// Revokes `token` at `url` (RFC 7009): one form POST with the token, its type as a hint and the
/// client's credentials as for a token request. The provider answers 200 whether or not it knew the
/// token; anything else is its refusal, reported briefly (never with the body, which may echo the token).
pub async fn revoke(
    http: &HttpClient,
    endpoint: &Endpoint,
    url: &Url,
    token: &str,
    hint: &str,
    timeout: Duration,
) -> Result<(), Error> {
    let mut fields = vec![("token".to_owned(), token.to_owned()), ("token_type_hint".to_owned(), hint.to_owned())];
    let secret = endpoint.client_secret.as_deref().unwrap_or("");
    let basic = match (endpoint.client_auth, &endpoint.client_secret) {
        (ClientAuth::Basic, Some(_)) => Some((endpoint.client_id.as_str(), secret)),
        (ClientAuth::Basic, None) | (ClientAuth::Body, _) => {
            fields.push(("client_id".into(), endpoint.client_id.clone()));
            if endpoint.client_secret.is_some() {
                fields.push(("client_secret".into(), secret.to_owned()));
            }
            None
        }
    };
    let host = url.host_str().unwrap_or("the revocation endpoint").to_owned();
    let request = form_request(url, &fields, basic).map_err(|e| Error::internal("revocation request", e))?;
    let response = transport(http, request, timeout).await.map_err(|e| match e {
        Transport::Timeout(ms) => {
            Error::Timeout(format!("the revocation endpoint {host} did not answer within {ms} ms"))
        }
        Transport::Failed(message) => Error::UpstreamUnreachable(format!("revocation endpoint {host}: {message}")),
    })?;
    if response.status() == StatusCode::OK {
        return Ok(());
    }
    let code = serde_json::from_slice::<serde_json::Value>(response.body())
        .ok()
        .and_then(|body| body.get("error").and_then(|e| e.as_str()).map(|e| e.chars().take(64).collect::<String>()));
    Err(Error::Upstream {
        status: response.status().as_u16(),
        upstream: host.clone(),
        message: format!(
            "{host} refused to revoke the token of '{}': {}",
            endpoint.server,
            code.as_deref().unwrap_or("no reason given")
        ),
        body: String::new(),
    })
}

fn token(response: BasicTokenResponse, requested: Vec<String>) -> Token {
    let scopes = response.scopes().map(|s| s.iter().map(|s| s.to_string()).collect()).unwrap_or(requested);
    Token::new(
        response.access_token().secret().clone(),
        response.refresh_token().map(|r| r.secret().clone()),
        response.expires_in(),
        scopes,
    )
}

/// A refused token request as users see it. `invalid_grant` means the grant itself is gone (revoked,
/// expired, already used): the server must be connected again. Provider messages are kept short and
/// never include the response body, which may echo what was sent.
fn refused(server: &str, url: &Url, error: RequestTokenError<Transport, BasicErrorResponse>) -> Error {
    let host = url.host_str().unwrap_or("the token endpoint");
    match error {
        RequestTokenError::ServerResponse(response) if *response.error() == BasicErrorResponseType::InvalidGrant => {
            Error::NotConnected {
                server: server.to_owned(),
                message: format!(
                    "{host} refused the stored grant of '{server}' (invalid_grant: revoked, expired or already used): \
                     connect it again with POST /api/oauth/{server}/start (or `switchboard oauth connect {server}`), \
                     or store a new refresh token for it"
                ),
            }
        }
        RequestTokenError::ServerResponse(response) => {
            let description: String =
                response.error_description().map(|d| d.chars().take(200).collect()).unwrap_or_default();
            Error::Upstream {
                status: 400,
                upstream: host.to_owned(),
                message: format!("{host} refused the token request for '{server}': {}", response.error()),
                body: description,
            }
        }
        RequestTokenError::Request(Transport::Timeout(ms)) => {
            Error::Timeout(format!("the token endpoint {host} did not answer within {ms} ms"))
        }
        RequestTokenError::Request(Transport::Failed(message)) => {
            Error::UpstreamUnreachable(format!("token endpoint {host}: {message}"))
        }
        RequestTokenError::Parse(..) => {
            Error::InvalidResponse(format!("the token endpoint {host} sent an answer that is not a token response"))
        }
        RequestTokenError::Other(message) => Error::InvalidResponse(format!("token endpoint {host}: {message}")),
    }
}
