//! OAuth2 and service accounts against real authorization servers on 127.0.0.1:
//!
//! * a small authorization server written here (`Provider`), which counts token requests, issues
//!   short-lived tokens (3 s), rotates refresh tokens and refuses a used one, verifies service-account
//!   assertions with the public key, and doubles as the API: it refuses unknown, revoked and expired
//!   tokens and counts every expired one it is sent;
//! * `oauth2-mock-server` from npm (installed by `scripts/install-peers`) for the browser flow.
//!
//! Every secret the runtime holds is set through the admin API (so it is sealed in the store), and the
//! hygiene test looks for each token and the client secret in the data directory, the logs (at trace)
//! and every response.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use base64::Engine as _;
use common::{Server, expect_error, json};
use serde_json::{Value, json};

const CLIENT_ID: &str = "client-id";
const CLIENT_SECRET: &str = "client-secret-7f3a9c2e41";
const LIFETIME_SECS: u64 = 3;
/// The only authorization code the test provider exchanges.
const GOOD_CODE: &str = "good-code-5d1e";
const PUBLIC_KEY: &str = include_str!("fixtures/rsa-public.pem");
const PRIVATE_KEY: &str = include_str!("fixtures/rsa-private.pem");

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// What the provider has issued and seen.
#[derive(Default)]
struct Ledger {
    issued: u64,
    /// Token requests by grant type, in order.
    requests: Vec<(String, HashMap<String, String>)>,
    /// Valid access tokens and when they expire (Unix ms).
    access: HashMap<String, i64>,
    revoked: HashSet<String>,
    /// Refresh tokens that may still be used (each once).
    refresh: HashSet<String>,
    /// Every token ever issued, to look for leaks.
    every_token: Vec<String>,
    /// API calls: the token each carried, and how many carried an expired one.
    api_calls: Vec<String>,
    expired_received: usize,
    /// Claims of verified assertions.
    assertions: Vec<Value>,
    /// Revocation requests (RFC 7009): their form, and whether the client authenticated.
    revocations: Vec<(HashMap<String, String>, bool)>,
}

#[derive(Clone, Default)]
struct Provider(Arc<Mutex<Ledger>>);

impl Provider {
    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.0.lock().unwrap()
    }

    fn token_requests(&self) -> usize {
        self.ledger().requests.len()
    }

    /// Issues a seeded refresh token, as if the user had connected earlier.
    fn seed_refresh_token(&self) -> String {
        let token = format!("refresh-seed-{}", uuid::Uuid::new_v4());
        let mut ledger = self.ledger();
        ledger.refresh.insert(token.clone());
        ledger.every_token.push(token.clone());
        token
    }

    fn revoke_access_tokens(&self) {
        let mut ledger = self.ledger();
        let all: Vec<String> = ledger.access.keys().cloned().collect();
        ledger.revoked.extend(all);
    }
}

fn issue(ledger: &mut Ledger, with_refresh: bool) -> Response {
    ledger.issued += 1;
    let access = format!("access-{}-{}", ledger.issued, uuid::Uuid::new_v4());
    ledger.access.insert(access.clone(), now_ms() + LIFETIME_SECS as i64 * 1000);
    ledger.every_token.push(access.clone());
    let mut body =
        json!({ "access_token": access, "token_type": "Bearer", "expires_in": LIFETIME_SECS, "scope": "read write" });
    if with_refresh {
        let refresh = format!("refresh-{}-{}", ledger.issued, uuid::Uuid::new_v4());
        ledger.refresh.insert(refresh.clone());
        ledger.every_token.push(refresh.clone());
        body["refresh_token"] = json!(refresh);
    }
    axum::Json(body).into_response()
}

fn refuse(status: StatusCode, error: &str) -> Response {
    (status, axum::Json(json!({ "error": error, "error_description": format!("refused: {error}") }))).into_response()
}

/// The client authenticated with basic auth or with body fields.
fn client_authenticated(headers: &HeaderMap, form: &HashMap<String, String>) -> bool {
    let basic =
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}")));
    let by_header = headers.get("authorization").is_some_and(|v| v == basic.as_str());
    let by_body = form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET);
    by_header || by_body
}

fn verified_assertion(assertion: &str) -> Option<Value> {
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&["AUDIENCE"]);
    validation.validate_aud = false;
    let decoded = jsonwebtoken::decode::<Value>(assertion, &key, &validation).ok()?;
    let mut claims = decoded.claims;
    claims["kid"] = json!(decoded.header.kid);
    Some(claims)
}

async fn token(
    State(provider): State<Provider>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut ledger = provider.ledger();
    let grant = form.get("grant_type").cloned().unwrap_or_default();
    ledger.requests.push((grant.clone(), form.clone()));
    if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer" {
        return match form.get("assertion").and_then(|a| verified_assertion(a)) {
            Some(claims) => {
                ledger.assertions.push(claims);
                issue(&mut ledger, false)
            }
            None => refuse(StatusCode::BAD_REQUEST, "invalid_grant"),
        };
    }
    if !client_authenticated(&headers, &form) {
        return refuse(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    match grant.as_str() {
        "client_credentials" => issue(&mut ledger, false),
        "account_credentials" if form.get("account_id").map(String::as_str) == Some("acct-42") => {
            issue(&mut ledger, false)
        }
        "refresh_token" => {
            let presented = form.get("refresh_token").cloned().unwrap_or_default();
            match ledger.refresh.remove(&presented) {
                true => issue(&mut ledger, true),
                false => refuse(StatusCode::BAD_REQUEST, "invalid_grant"),
            }
        }
        "authorization_code"
            if form.get("code").map(String::as_str) == Some(GOOD_CODE) && form.contains_key("code_verifier") =>
        {
            issue(&mut ledger, true)
        }
        _ => refuse(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    }
}

/// The revocation endpoint: ends the presented refresh token and every access token, as providers do
/// when a refresh token is revoked.
async fn revoke(
    State(provider): State<Provider>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut ledger = provider.ledger();
    let authenticated = client_authenticated(&headers, &form);
    ledger.revocations.push((form.clone(), authenticated));
    if !authenticated {
        return refuse(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    if let Some(token) = form.get("token") {
        ledger.refresh.remove(token);
        let all: Vec<String> = ledger.access.keys().cloned().collect();
        ledger.revoked.extend(all);
    }
    StatusCode::OK.into_response()
}

/// The API: only a known, unrevoked, unexpired token gets through. `/echo` refuses with the token in
/// its answer, as careless APIs do.
async fn api(State(provider): State<Provider>, uri: axum::http::Uri, headers: HeaderMap) -> Response {
    let mut ledger = provider.ledger();
    let token = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let token = token.unwrap_or_default().to_owned();
    ledger.api_calls.push(token.clone());
    match ledger.access.get(&token).copied() {
        Some(_) if ledger.revoked.contains(&token) => refuse(StatusCode::UNAUTHORIZED, "revoked"),
        Some(expires) if expires <= now_ms() => {
            ledger.expired_received += 1;
            refuse(StatusCode::UNAUTHORIZED, "expired")
        }
        Some(_) if uri.path().ends_with("/echo") => refuse(StatusCode::FORBIDDEN, &format!("forbidden for {token}")),
        Some(_) => axum::Json(json!({ "ok": true })).into_response(),
        None => refuse(StatusCode::UNAUTHORIZED, "unknown token"),
    }
}

async fn start_provider() -> (Provider, String) {
    let provider = Provider::default();
    let app = axum::Router::new()
        .route("/token", post(token))
        .route("/revoke", post(revoke))
        .route("/moved", post(|| async { (StatusCode::TEMPORARY_REDIRECT, [("location", "/token")]) }))
        .fallback(any(api))
        .with_state(provider.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (provider, format!("http://{address}"))
}

/// A server script calling the provider's API with tokens obtained by `oauth2` (a Rhai map literal).
fn oauth_script(title: &str, secrets: &str, oauth2: &str) -> String {
    format!(
        "const META = #{{ title: \"{title}\", description: \"test\", secrets: [{secrets}], auth: \"oauth2\",\n\
         base_url: \"https://api.invalid/api\", oauth2: {oauth2} }};\n\
         fn main(endpoint, method, data) {{ api::call(global::META, endpoint, method, data) }}\n"
    )
}

fn client_credentials_script() -> String {
    oauth_script(
        "CC",
        "\"CC_CLIENT_SECRET\"",
        "#{ grant: \"client_credentials\", token_url: \"https://auth.invalid/token\", client_id: \"client-id\", \
         client_secret: \"{CC_CLIENT_SECRET}\", scopes: [\"read\"] }",
    )
}

fn refresh_script() -> String {
    oauth_script(
        "Rotating",
        "\"ROT_CLIENT_SECRET\", \"ROT_REFRESH_TOKEN\"",
        "#{ grant: \"refresh_token\", token_url: \"https://auth.invalid/token\", client_id: \"client-id\", \
         client_secret: \"{ROT_CLIENT_SECRET}\", client_auth: \"body\", refresh_token: \"{ROT_REFRESH_TOKEN}\" }",
    )
}

/// Points every server's base and token URLs at the provider.
fn urls(names: &[&str], provider: &str) -> Vec<(String, String)> {
    names
        .iter()
        .flat_map(|name| {
            let upper = name.to_uppercase();
            [
                (format!("{upper}_BASE_URL"), provider.to_owned()),
                (format!("{upper}_TOKEN_URL"), format!("{provider}/token")),
            ]
        })
        .collect()
}

fn start(servers: &[(&str, &str)], env: &[(String, String)]) -> Server {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Server::start_with(servers, &[], &env)
}

async fn put_secret(server: &Server, name: &str, value: &str) {
    let response = server
        .client
        .put(server.url(&format!("/api/secrets/{name}")))
        .bearer_auth(server.admin_token())
        .body(value.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
}

async fn call(server: &Server, name: &str) -> (u16, Value) {
    json(server.get(&format!("/{name}/things")).await).await
}

async fn status(server: &Server, name: &str) -> Value {
    let response =
        server.client.get(server.url(&format!("/api/oauth/{name}"))).bearer_auth(server.admin_token()).send().await;
    let (code, body) = json(response.unwrap()).await;
    assert_eq!(code, 200, "{body}");
    body
}

async fn concurrent_calls(server: &Server, name: &str, count: usize) {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..count {
        let (client, url) = (server.client.clone(), server.url(&format!("/{name}/things")));
        set.spawn(async move { json(client.get(url).send().await.unwrap()).await });
    }
    while let Some(result) = set.join_next().await {
        let (status, body) = result.unwrap();
        assert_eq!((status, &body), (200, &json!({ "ok": true })));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forty_concurrent_calls_cost_one_token_request_and_expiry_at_most_one_more() {
    let (provider, base) = start_provider().await;
    let script = client_credentials_script();
    let server = start(&[("cc", &script)], &urls(&["cc"], &base));
    put_secret(&server, "CC_CLIENT_SECRET", CLIENT_SECRET).await;

    concurrent_calls(&server, "cc", 40).await;
    assert_eq!(provider.token_requests(), 1);
    let (grant, form) = provider.ledger().requests[0].clone();
    assert_eq!((grant.as_str(), form.get("scope").map(String::as_str)), ("client_credentials", Some("read")));

    // Past half the token's lifetime it is renewed before use, once for everyone waiting.
    tokio::time::sleep(Duration::from_millis(LIFETIME_SECS * 1000 / 2 + 200)).await;
    concurrent_calls(&server, "cc", 40).await;
    assert_eq!(provider.token_requests(), 2);
    assert_eq!(provider.ledger().expired_received, 0, "the API was sent an expired token");
    assert_eq!(provider.ledger().api_calls.len(), 80);
    // The metrics count the token requests, not the calls that waited for them.
    let metrics = server.get("/metrics").await.text().await.unwrap();
    let refreshes = metrics.lines().find(|line| line.starts_with("switchboard_token_refreshes_total{"));
    assert_eq!(refreshes, Some(r#"switchboard_token_refreshes_total{server="cc",result="ok"} 2"#), "{metrics}");
}

/// Every file under `dir`, read whole.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        match path.is_dir() {
            true => found.extend(files(&path)),
            false => found.push((path.display().to_string(), std::fs::read(&path).unwrap_or_default())),
        }
    }
    found
}

/// Neither `secrets` nor any part of them longer than 12 characters appears in the data directory,
/// the logs or the responses.
fn assert_nowhere(secrets: &[String], data_dir: &Path, logs: &str, responses: &[String]) {
    let files = files(data_dir);
    assert!(files.iter().any(|(name, _)| name.ends_with("store.sqlite")), "no store in {}", data_dir.display());
    for secret in secrets {
        for (name, bytes) in &files {
            assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} is in {name}");
        }
        assert!(!logs.contains(secret.as_str()), "{secret} is in the logs");
        for response in responses {
            assert!(!response.contains(secret.as_str()), "{secret} is in a response: {response}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_token_is_renewed_once_and_a_rotated_refresh_token_survives_a_restart() {
    let (provider, base) = start_provider().await;
    let script = refresh_script();
    let mut env = urls(&["rot"], &base);
    env.push(("SWITCHBOARD_LOG".into(), "trace".into()));
    let server = start(&[("rot", &script)], &env);
    let seed = provider.seed_refresh_token();
    put_secret(&server, "ROT_CLIENT_SECRET", CLIENT_SECRET).await;
    put_secret(&server, "ROT_REFRESH_TOKEN", &seed).await;
    let mut responses = Vec::new();

    let (code, body) = call(&server, "rot").await;
    assert_eq!((code, &body), (200, &json!({ "ok": true })));
    responses.push(body.to_string());
    let (grant, form) = provider.ledger().requests[0].clone();
    assert_eq!((grant.as_str(), form["refresh_token"].as_str()), ("refresh_token", seed.as_str()));
    assert_eq!((form["client_id"].as_str(), form["client_secret"].as_str()), (CLIENT_ID, CLIENT_SECRET));
    let rotated = provider.ledger().every_token.last().cloned().unwrap();

    // A revoked token: the API answers 401, the runtime renews once (with the rotated refresh token)
    // and retries once.
    provider.revoke_access_tokens();
    let api_before = provider.ledger().api_calls.len();
    let (code, body) = call(&server, "rot").await;
    assert_eq!((code, &body), (200, &json!({ "ok": true })));
    responses.push(body.to_string());
    assert_eq!(provider.token_requests(), 2);
    assert_eq!(provider.ledger().api_calls.len(), api_before + 2);
    assert_eq!(provider.ledger().requests[1].1["refresh_token"], rotated);
    let rotated_again = provider.ledger().every_token.last().cloned().unwrap();

    // After a restart the runtime continues from the refresh token issued last, kept in the store.
    let mut logs = server.logs();
    provider.revoke_access_tokens();
    let server = server.restart();
    let (code, body) = call(&server, "rot").await;
    assert_eq!((code, &body), (200, &json!({ "ok": true })), "{}", server.logs());
    responses.push(body.to_string());
    assert_eq!(provider.token_requests(), 3);
    assert_eq!(provider.ledger().requests[2].1["refresh_token"], rotated_again);

    let echoed = expect_error(server.get("/rot/echo").await, 403, "upstream").await;
    assert!(echoed["body"].as_str().unwrap().contains("forbidden for [REDACTED]"), "{echoed}");
    responses.push(echoed.to_string());

    let status = status(&server, "rot").await;
    assert_eq!(status["connected"], true);
    assert_eq!(status["refreshable"], true);
    assert_eq!(status["scopes"], json!(["read", "write"]));
    responses.push(status.to_string());
    logs.push_str(&server.logs());
    assert!(logs.contains("token request"), "trace logs were not captured");

    let mut secrets = provider.ledger().every_token.clone();
    secrets.push(CLIENT_SECRET.to_owned());
    assert_nowhere(&secrets, &server.data_dir(), &logs, &responses);
}

#[tokio::test]
async fn a_used_refresh_token_is_not_connected_and_says_to_connect_again() {
    let (provider, base) = start_provider().await;
    let script = refresh_script();
    let server = start(&[("rot", &script)], &urls(&["rot"], &base));
    put_secret(&server, "ROT_CLIENT_SECRET", CLIENT_SECRET).await;
    put_secret(&server, "ROT_REFRESH_TOKEN", "refresh-never-issued-or-already-used").await;
    let error = expect_error(server.get("/rot/things").await, 424, "not_connected").await;
    assert_eq!(error["server"], "rot");
    assert_eq!(error["connect"], "POST /api/oauth/rot/start");
    assert!(error["message"].as_str().unwrap().contains("invalid_grant"), "{error}");
    assert!(!error.to_string().contains("refresh-never-issued"), "{error}");
    assert_eq!(provider.token_requests(), 1);
    assert!(provider.ledger().api_calls.is_empty(), "the API was called without a token");
    assert_eq!(status(&server, "rot").await["connected"], false);
}

#[tokio::test]
async fn a_service_account_assertion_verifies_with_the_public_key() {
    let (provider, base) = start_provider().await;
    let script = oauth_script(
        "Google-like",
        "\"SA_JSON\"",
        "#{ grant: \"jwt_bearer\", service_account: \"{SA_JSON}\", subject: \"admin@example.test\", \
         scopes: [\"https://www.googleapis.com/auth/drive.readonly\", \"https://www.googleapis.com/auth/gmail.readonly\"] }",
    );
    let server = start(&[("sa", &script)], &[("SA_BASE_URL".into(), base.clone())]);
    let account = json!({
        "type": "service_account", "client_email": "robot@project.iam.gserviceaccount.com",
        "private_key_id": "key-7", "private_key": PRIVATE_KEY, "token_uri": format!("{base}/token"),
    });
    put_secret(&server, "SA_JSON", &account.to_string()).await;
    let (code, body) = call(&server, "sa").await;
    assert_eq!((code, &body), (200, &json!({ "ok": true })));
    let claims = provider.ledger().assertions.first().cloned().expect("a verified assertion");
    assert_eq!(claims["iss"], "robot@project.iam.gserviceaccount.com");
    assert_eq!(claims["aud"], format!("{base}/token"));
    assert_eq!(
        claims["scope"],
        "https://www.googleapis.com/auth/drive.readonly https://www.googleapis.com/auth/gmail.readonly"
    );
    assert_eq!(claims["sub"], "admin@example.test");
    assert_eq!(claims["kid"], "key-7");
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert!(lifetime > 0 && lifetime <= 3600, "{claims}");
}

#[tokio::test]
async fn a_providers_own_grant_type_and_extra_fields_are_sent() {
    let (provider, base) = start_provider().await;
    let script = oauth_script(
        "Zoom-like",
        "\"Z_SECRET\", \"Z_ACCOUNT\"",
        "#{ grant: \"client_credentials\", token_url: \"https://auth.invalid/token\", client_id: \"client-id\", \
         client_secret: \"{Z_SECRET}\", params: #{ grant_type: \"account_credentials\", account_id: \"{Z_ACCOUNT}\" } }",
    );
    let server = start(&[("zoomish", &script)], &urls(&["zoomish"], &base));
    put_secret(&server, "Z_SECRET", CLIENT_SECRET).await;
    put_secret(&server, "Z_ACCOUNT", "acct-42").await;
    let (code, body) = call(&server, "zoomish").await;
    assert_eq!((code, &body), (200, &json!({ "ok": true })));
    let (grant, form) = provider.ledger().requests[0].clone();
    assert_eq!((grant.as_str(), form["account_id"].as_str()), ("account_credentials", "acct-42"));
    assert!(!form.contains_key("client_secret"), "basic client auth must not also send the secret in the body");
}

#[tokio::test]
async fn a_token_endpoint_that_redirects_is_not_followed() {
    let (provider, base) = start_provider().await;
    let script = client_credentials_script();
    let env = [("CC_BASE_URL".to_owned(), base.clone()), ("CC_TOKEN_URL".to_owned(), format!("{base}/moved"))];
    let server = start(&[("cc", &script)], &env);
    put_secret(&server, "CC_CLIENT_SECRET", CLIENT_SECRET).await;
    let error = expect_error(server.get("/cc/things").await, 502, "upstream_unreachable").await;
    assert!(error["message"].as_str().unwrap().contains("do not follow redirects"), "{error}");
    assert_eq!(provider.token_requests(), 0, "the client secret followed the redirect");
}

fn code_flow_script(authorize: &str, token: &str) -> String {
    oauth_script(
        "Code",
        "\"CODE_CLIENT_SECRET\"",
        &format!(
            "#{{ grant: \"authorization_code\", authorize_url: \"{authorize}\", token_url: \"{token}\", \
             revoke_url: \"https://auth.invalid/revoke\", client_id: \"client-id\", \
             client_secret: \"{{CODE_CLIENT_SECRET}}\", scopes: [\"openid\", \"read\"], authorize_params: #{{ access_type: \"offline\" }} }}"
        ),
    )
}

#[tokio::test]
async fn a_server_never_connected_says_how_and_a_forged_state_stores_nothing() {
    let (provider, base) = start_provider().await;
    let script = code_flow_script("https://auth.invalid/authorize", "https://auth.invalid/token");
    let server = start(&[("code", &script)], &urls(&["code"], &base));
    put_secret(&server, "CODE_CLIENT_SECRET", CLIENT_SECRET).await;

    let error = expect_error(server.get("/code/things").await, 424, "not_connected").await;
    assert_eq!(error["connect"], "POST /api/oauth/code/start");
    assert!(error["message"].as_str().unwrap().contains("switchboard oauth connect code"), "{error}");

    let forged = server.get("/oauth/code/callback?state=forged-state&code=stolen-code").await;
    assert_eq!(forged.status(), 400);
    assert!(forged.text().await.unwrap().contains("unknown, already used or expired"));

    assert_eq!(provider.token_requests(), 0, "a code was exchanged for a forged state");
    assert_eq!(status(&server, "code").await["connected"], false);
    assert_eq!(expect_error(server.get("/code/things").await, 424, "not_connected").await["server"], "code");
    let unauthenticated = server.client.post(server.url("/api/oauth/code/start")).send().await.unwrap();
    assert_eq!(unauthenticated.status(), 401);
    assert_eq!(server.get("/api/oauth/code").await.status(), 401);
}

/// The `state` of a code flow started for `name`.
async fn started_state(server: &Server, name: &str) -> String {
    let started = server.client.post(server.url(&format!("/api/oauth/{name}/start"))).bearer_auth(server.admin_token());
    let (code, started) = json(started.send().await.unwrap()).await;
    assert_eq!(code, 200, "{started}");
    let authorize = reqwest::Url::parse(started["authorize_url"].as_str().unwrap()).unwrap();
    authorize.query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned()
}

#[tokio::test]
async fn a_state_presented_at_another_servers_callback_stays_usable_at_its_own() {
    let (provider, base) = start_provider().await;
    let script = code_flow_script("https://auth.invalid/authorize", "https://auth.invalid/token");
    let server = start(&[("code", &script), ("other", &script)], &urls(&["code", "other"], &base));
    put_secret(&server, "CODE_CLIENT_SECRET", CLIENT_SECRET).await;
    let state = started_state(&server, "code").await;

    for wrong in ["other", "echo"] {
        let page = server.get(&format!("/oauth/{wrong}/callback?state={state}&code={GOOD_CODE}")).await;
        assert_eq!(page.status(), 400, "{wrong}");
        assert!(page.text().await.unwrap().contains("unknown, already used or expired"));
    }
    assert_eq!(provider.token_requests(), 0, "a code was exchanged at another server's callback");
    assert_eq!(status(&server, "other").await["connected"], false);

    let page = server.get(&format!("/oauth/code/callback?state={state}&code={GOOD_CODE}")).await;
    assert_eq!(page.status(), 200, "{}", page.text().await.unwrap());
    assert_eq!(status(&server, "code").await["connected"], true);
    assert_eq!(provider.token_requests(), 1);
    // Used now, it is gone.
    assert_eq!(server.get(&format!("/oauth/code/callback?state={state}&code={GOOD_CODE}")).await.status(), 400);
    assert_eq!(provider.token_requests(), 1);
}

/// An authorization-code server before its client secret is set answers what a user must do first:
/// connect, after setting the secret (the README's `not_connected`), not a bare `missing_secret`.
#[tokio::test]
async fn an_oauth_server_before_set_up_is_not_connected_and_says_what_to_set() {
    let (provider, base) = start_provider().await;
    let script = code_flow_script("https://auth.invalid/authorize", "https://auth.invalid/token");
    let server = start(&[("code", &script)], &urls(&["code"], &base));
    let error = expect_error(server.get("/code/things").await, 424, "not_connected").await;
    assert_eq!((&error["server"], &error["connect"]), (&json!("code"), &json!("POST /api/oauth/code/start")));
    let message = error["message"].as_str().unwrap();
    assert!(
        message.starts_with("'code' needs an OAuth connection and it is not connected yet: connect it"),
        "{message}"
    );
    assert!(
        message.contains("first set CODE_CLIENT_SECRET (`switchboard secret set CODE_CLIENT_SECRET`)"),
        "{message}"
    );
    assert_eq!(provider.token_requests(), 0);
}

/// A provider that sends the browser back with an error: a page (not JSON) showing its `error` and
/// `error_description`, escaped, under the pages' policy.
#[tokio::test]
async fn a_provider_refusal_is_a_page_showing_its_error_and_description() {
    let (provider, base) = start_provider().await;
    let script = code_flow_script("https://auth.invalid/authorize", "https://auth.invalid/token");
    let server = start(&[("code", &script)], &urls(&["code"], &base));
    put_secret(&server, "CODE_CLIENT_SECRET", CLIENT_SECRET).await;
    let state = started_state(&server, "code").await;
    let description = "The user denied <b>access</b> & left";
    let query = serde_urlencoded::to_string([
        ("error", "access_denied"),
        ("error_description", description),
        ("state", state.as_str()),
    ])
    .unwrap();
    let page = server.get(&format!("/oauth/code/callback?{query}")).await;
    assert_eq!(page.status(), 400);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert!(page.headers()["content-security-policy"].to_str().unwrap().starts_with("default-src 'none'"));
    let html = page.text().await.unwrap();
    assert!(html.contains("<code>access_denied</code>"), "{html}");
    assert!(html.contains("The user denied &lt;b&gt;access&lt;/b&gt; &amp; left"), "{html}");
    assert!(!html.contains("<b>access</b>") && !html.contains("\"error\""), "{html}");
    assert_eq!(provider.token_requests(), 0);
    assert_eq!(status(&server, "code").await["connected"], false);
}

/// `GET /api/oauth` lists every OAuth server's status; `DELETE /api/oauth/{name}` revokes the refresh
/// token at the provider (RFC 7009, client authenticated) and forgets the connection.
#[tokio::test]
async fn connections_are_listed_and_disconnecting_revokes_at_the_provider() {
    let (provider, base) = start_provider().await;
    let script = code_flow_script("https://auth.invalid/authorize", "https://auth.invalid/token");
    let mut env = urls(&["code", "cc"], &base);
    env.push(("CODE_REVOKE_URL".into(), format!("{base}/revoke")));
    let server = start(&[("code", &script), ("cc", &client_credentials_script())], &env);
    put_secret(&server, "CODE_CLIENT_SECRET", CLIENT_SECRET).await;
    let state = started_state(&server, "code").await;
    let page = server.get(&format!("/oauth/code/callback?state={state}&code={GOOD_CODE}")).await;
    assert_eq!(page.status(), 200);
    assert_eq!(call(&server, "code").await.0, 200);

    assert_eq!(server.get("/api/oauth").await.status(), 401);
    let listed = server.client.get(server.url("/api/oauth")).bearer_auth(server.admin_token()).send().await;
    let (code, listed) = json(listed.unwrap()).await;
    assert_eq!(code, 200, "{listed}");
    let connections = listed["connections"].as_array().unwrap();
    let summary: Vec<(&str, bool, bool)> = connections
        .iter()
        .map(|c| (c["server"].as_str().unwrap(), c["connected"].as_bool().unwrap(), c["revocable"].as_bool().unwrap()))
        .collect();
    assert_eq!(summary, [("cc", false, false), ("code", true, true)]);

    let delete = || server.client.delete(server.url("/api/oauth/code"));
    assert_eq!(delete().send().await.unwrap().status(), 401);
    let (code, answer) = json(delete().bearer_auth(server.admin_token()).send().await.unwrap()).await;
    assert_eq!((code, &answer), (200, &json!({ "server": "code", "disconnected": true, "revoked": true })));
    let (form, authenticated) = provider.ledger().revocations[0].clone();
    assert!(authenticated, "the revocation did not authenticate the client");
    assert_eq!(form["token_type_hint"], "refresh_token");
    assert!(form["token"].starts_with("refresh-"), "{form:?}");
    assert_eq!(status(&server, "code").await["connected"], false);
    assert_eq!(expect_error(server.get("/code/things").await, 424, "not_connected").await["server"], "code");

    // Nothing to revoke a second time.
    let (_, again) = json(delete().bearer_auth(server.admin_token()).send().await.unwrap()).await;
    assert_eq!(again, json!({ "server": "code", "disconnected": false, "revoked": false }));
    assert_eq!(provider.ledger().revocations.len(), 1);

    // A provider that refuses the revocation: said so, and the connection is forgotten all the same.
    let state = started_state(&server, "code").await;
    assert_eq!(server.get(&format!("/oauth/code/callback?state={state}&code={GOOD_CODE}")).await.status(), 200);
    put_secret(&server, "CODE_CLIENT_SECRET", "not-the-client-secret").await;
    let (code, refused) = json(delete().bearer_auth(server.admin_token()).send().await.unwrap()).await;
    assert_eq!((code, &refused["disconnected"], &refused["revoked"]), (200, &json!(true), &json!(false)));
    let why = refused["revocation_error"].as_str().unwrap();
    assert!(why.contains("refused to revoke the token of 'code': invalid_client"), "{why}");
    assert!(!refused.to_string().contains("refresh-"), "a token in the answer: {refused}");
    assert_eq!(status(&server, "code").await["connected"], false);
}

/// `switchboard oauth connect` with nothing listening, or with another admin token, says so.
#[test]
fn oauth_connect_says_when_no_server_answers_or_the_token_differs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin-token"), "not-the-token").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let connect = |url: &str| {
        Command::new(common::BIN)
            .args(["oauth", "connect", "echo", "--public-url", url, "--data-dir"])
            .arg(dir.path())
            .env_remove("SWITCHBOARD_ADMIN_TOKEN")
            .output()
            .unwrap()
    };
    let output = connect(&url);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no Switchboard answers at"), "{output:?}");
    let server = Server::start(&[]);
    let output = connect(&server.base);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("another admin token"), "{output:?}");
}

#[tokio::test]
async fn the_code_flow_connects_through_oauth2_mock_server() {
    let Some(peer) = common::mock_authorization_server().await else { return };
    let api = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(json!({ "me": true })))
        .mount(&api)
        .await;
    let script = code_flow_script("https://auth.invalid/authorize", "https://auth.invalid/token");
    let env = [
        ("MOCKED_BASE_URL".to_owned(), api.uri()),
        ("MOCKED_AUTHORIZE_URL".to_owned(), format!("{}/authorize", peer.base)),
        ("MOCKED_TOKEN_URL".to_owned(), format!("{}/token", peer.base)),
        ("MOCKED_REVOKE_URL".to_owned(), format!("{}/revoke", peer.base)),
    ];
    let server = start(&[("mocked", &script)], &env);
    put_secret(&server, "CODE_CLIENT_SECRET", CLIENT_SECRET).await;

    let started = server.client.post(server.url("/api/oauth/mocked/start")).bearer_auth(server.admin_token()).send();
    let (code, started) = json(started.await.unwrap()).await;
    assert_eq!(code, 200, "{started}");
    let redirect_uri = format!("{}/oauth/mocked/callback", server.base);
    assert_eq!(started["redirect_uri"], redirect_uri.as_str());
    let authorize = reqwest::Url::parse(started["authorize_url"].as_str().unwrap()).unwrap();
    assert!(authorize.as_str().starts_with(&format!("{}/authorize?", peer.base)), "{authorize}");
    let query: HashMap<String, String> = authorize.query_pairs().into_owned().collect();
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["redirect_uri"], redirect_uri);
    assert_eq!((query["scope"].as_str(), query["access_type"].as_str()), ("openid read", "offline"));

    // The browser: the provider redirects straight back with a code.
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let back = browser.get(authorize).send().await.unwrap();
    assert_eq!(back.status(), 302);
    let callback = back.headers()["location"].to_str().unwrap().to_owned();
    assert!(callback.starts_with(&format!("{redirect_uri}?code=")), "{callback}");
    let page = browser.get(&callback).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("'mocked' is connected"));
    assert_eq!(browser.get(&callback).send().await.unwrap().status(), 400, "a state was used twice");

    // `switchboard oauth connect`, from a shell without the server's overrides, has the running server
    // start the flow with its own: the URL leads to the peer, and the redirect URI to the server.
    let cli = Command::new(common::BIN)
        .args(["oauth", "connect", "mocked", "--public-url", &server.base, "--data-dir"])
        .arg(server.data_dir())
        .env_remove("MOCKED_AUTHORIZE_URL")
        .output()
        .unwrap();
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    let printed = String::from_utf8(cli.stdout).unwrap();
    assert!(printed.starts_with(&format!("{}/authorize?", peer.base)), "{printed}");
    let query: HashMap<String, String> =
        reqwest::Url::parse(printed.trim()).unwrap().query_pairs().into_owned().collect();
    assert_eq!(query["redirect_uri"], redirect_uri);
    let back = browser.get(printed.trim()).send().await.unwrap();
    let callback = back.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(browser.get(&callback).send().await.unwrap().status(), 200);

    let status = status(&server, "mocked").await;
    assert_eq!((status["connected"].as_bool(), status["refreshable"].as_bool()), (Some(true), Some(true)), "{status}");
    let (code, body) = call(&server, "mocked").await;
    assert_eq!((code, &body), (200, &json!({ "me": true })));
    let received = api.received_requests().await.unwrap();
    let bearer = received[0].headers["authorization"].to_str().unwrap();
    let payload = bearer.strip_prefix("Bearer ").unwrap().split('.').nth(1).unwrap();
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    let port = peer.base.rsplit(':').next().unwrap();
    assert_eq!(claims["iss"], format!("http://localhost:{port}"), "not a token the peer issued: {claims}");
    assert!(!status.to_string().contains(bearer.trim_start_matches("Bearer ")));

    // Disconnecting revokes at the peer's RFC 7009 endpoint, which answers 200.
    let deleted = server.client.delete(server.url("/api/oauth/mocked")).bearer_auth(server.admin_token()).send();
    let (code, answer) = json(deleted.await.unwrap()).await;
    assert_eq!((code, &answer), (200, &json!({ "server": "mocked", "disconnected": true, "revoked": true })));
    expect_error(server.get("/mocked/things").await, 424, "not_connected").await;
}

#[tokio::test]
async fn client_credentials_work_against_oauth2_mock_server() {
    let Some(peer) = common::mock_authorization_server().await else { return };
    let api = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::header_exists("authorization"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(json!({ "ok": 1 })))
        .mount(&api)
        .await;
    let script = client_credentials_script();
    let env = [("CC_BASE_URL".to_owned(), api.uri()), ("CC_TOKEN_URL".to_owned(), format!("{}/token", peer.base))];
    let server = start(&[("cc", &script)], &env);
    put_secret(&server, "CC_CLIENT_SECRET", CLIENT_SECRET).await;
    for _ in 0..3 {
        assert_eq!(call(&server, "cc").await, (200, json!({ "ok": 1 })));
    }
    let received = api.received_requests().await.unwrap();
    let tokens: HashSet<_> = received.iter().map(|r| r.headers["authorization"].to_str().unwrap().to_owned()).collect();
    assert_eq!(tokens.len(), 1, "one token served all three calls");
    let status = status(&server, "cc").await;
    assert_eq!((status["connected"].as_bool(), status["needs_connection"].as_bool()), (Some(true), Some(false)));
}

/// The README's OAuth section: its script, run with `switchboard call`, its secrets set with
/// `switchboard secret set`, against the provider here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_oauth_example_runs() {
    let (provider, base) = start_provider().await;
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme.split("## OAuth2 and service accounts").nth(1).unwrap();
    let script = section.split("```rhai\n").nth(1).unwrap().split("```").next().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("myapi.rhai"), script).unwrap();
    let (home, data, api) = (dir.path().to_owned(), dir.path().join("data"), base.clone());
    let run = move |args: &[&str], stdin: &str| {
        let mut child = Command::new(common::BIN)
            .args(args)
            .args(["--data-dir", data.to_str().unwrap()])
            .current_dir(&home)
            .env("MYAPI_BASE_URL", &api)
            .env("MYAPI_TOKEN_URL", format!("{api}/token"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let output = tokio::task::spawn_blocking(move || {
        assert!(run(&["secret", "set", "MYAPI_CLIENT_ID"], CLIENT_ID).status.success());
        assert!(run(&["secret", "set", "MYAPI_CLIENT_SECRET"], CLIENT_SECRET).status.success());
        run(&["call", "myapi.rhai", "/things"], "")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(serde_json::from_str::<Value>(&stdout).unwrap(), json!({ "ok": true }));
    assert_eq!(provider.token_requests(), 1);
    assert_eq!(provider.ledger().requests[0].1["scope"], "read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rotating_refresh_token_used_by_two_instances_at_expiry_is_presented_once() {
    let Some(database) = common::postgres::Database::fresh() else { return };
    let (provider, base) = start_provider().await;
    let seed = provider.seed_refresh_token();
    let mut env = urls(&["rot"], &base);
    env.extend([
        ("SWITCHBOARD_STORE".to_owned(), database.url.clone()),
        ("SWITCHBOARD_ADMIN_TOKEN".to_owned(), "shared-admin-token".to_owned()),
        ("SWITCHBOARD_MASTER_KEY".to_owned(), "7d".repeat(32)),
    ]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let instances = [Server::start_default(&[], &env), Server::start_default(&[], &env)];
    let put = |path: String, body: String| {
        let request = instances[0].client.put(instances[0].url(&path)).bearer_auth("shared-admin-token");
        request.body(body).send()
    };
    assert!(put("/api/servers/rot".into(), refresh_script()).await.unwrap().status().is_success());
    assert_eq!(put("/api/secrets/ROT_CLIENT_SECRET".into(), CLIENT_SECRET.into()).await.unwrap().status(), 204);
    assert_eq!(put("/api/secrets/ROT_REFRESH_TOKEN".into(), seed).await.unwrap().status(), 204);
    for server in &instances {
        for _ in 0..600 {
            if server.get("/api/servers/rot").await.status() == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // Three rounds, each past the tokens' renewal point: both instances call at the same moment.
    for _ in 0..3 {
        let (a, b) = tokio::join!(call(&instances[0], "rot"), call(&instances[1], "rot"));
        assert_eq!((a, b), ((200, json!({ "ok": true })), (200, json!({ "ok": true }))));
        tokio::time::sleep(Duration::from_millis(LIFETIME_SECS * 1000 / 2 + 200)).await;
    }
    let presented: Vec<String> =
        provider.ledger().requests.iter().filter_map(|(_, form)| form.get("refresh_token").cloned()).collect();
    let distinct: HashSet<&String> = presented.iter().collect();
    assert_eq!(distinct.len(), presented.len(), "a refresh token was presented twice: {presented:?}");
    assert!(presented.len() >= 3, "every round renewed: {presented:?}");
}
