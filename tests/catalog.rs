//! The catalog harness: one table, one row per server (`tests/catalog/<name>.json`), and every case run
//! against every row. Each server's `<NAME>_BASE_URL` points at a mock upstream of its own on
//! 127.0.0.1; every case asserts what the mock received (method, path, query, credentials, required
//! headers, body) as well as what the caller got.
//!
//! A row says what a correct request to its service looks like:
//!
//! ```json
//! { "name": "stripe",
//!   "secrets": { "STRIPE_API_KEY": "sk_test_123" },          // every secret the server declares, with test values
//!   "variables": { },                                         // every variable it declares, with test values
//!   "base_path": "",                                          // the path of META.base_url, placeholders filled
//!   "default": { "method": "GET", "path": "/v1/balance" },    // what an empty endpoint calls (optional "body")
//!   "auth": [ { "header": "authorization", "value": "Bearer sk_test_123" } ],  // or "query" / "form" checks
//!   "headers": { },                                           // other headers the service requires
//!   "body": "form",                                           // how POST/PUT data is encoded: "json" or "form"
//!   "sample": "/v1/customers",                               // an endpoint for the GET/POST/PUT/DELETE cases
//!   "oauth": { "grant": "client_credentials", "token": "X_ACCESS_TOKEN",   // only for `auth: "oauth2"`:
//!              "token_path": "/oauth2/token", "client_auth": "body",        // where the token request goes,
//!              "scope": "read", "authorize_url": "https://…" },           // the plain token, scope, code flow
//!   "fallback": { "secret": "GOOGLE_API_KEY", "query": "key" },     // what `META.oauth2.fallback` sends
//!   "signature": { "scheme": "sigv4", "access_key": "…", "secret_key": "…", "region": "…", "service": "s3" },
//!   "xml": true }                                              // a signed service that answers in XML
//! ```
//!
//! A signature (`sigv4`, or `shared_key` with `account` and `key`) is checked by recomputing it from the
//! request as the mock received it, so the method, path, query, signed headers and body all have to be
//! what was signed.
//!
//! `CATALOG_ONLY=stripe,github cargo test --test catalog` runs the cases for some rows only.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Server;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::task::JoinSet;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    name: String,
    secrets: BTreeMap<String, String>,
    /// Variables the server declares, with test values (set in every fixture: they are not credentials).
    #[serde(default)]
    variables: BTreeMap<String, String>,
    base_path: String,
    default: Expected,
    #[serde(default)]
    auth: Vec<AuthCheck>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    body: Encoding,
    sample: String,
    #[serde(default)]
    oauth: Option<OAuthRow>,
    #[serde(default)]
    fallback: Option<FallbackRow>,
    /// A request signature every request must carry (checked by recomputing it from what arrived).
    #[serde(default)]
    signature: Option<Signature>,
    /// The service answers in XML: a body that does not parse as XML is the invalid-response case.
    #[serde(default)]
    xml: bool,
}

/// How a signing service's requests are signed, with the test credentials.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "scheme", rename_all = "snake_case", deny_unknown_fields)]
enum Signature {
    /// AWS Signature Version 4 (S3's flavour: the payload hash in `x-amz-content-sha256`).
    Sigv4 { access_key: String, secret_key: String, region: String, service: String },
    /// Azure Storage's Shared Key.
    SharedKey { account: String, key: String },
}

/// The credential an `oauth2` server sends, as a query parameter, when its grant has nothing to start from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FallbackRow {
    secret: String,
    query: String,
}

/// How an `oauth2` server obtains its token when the plain access token (`token`) is not set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct OAuthRow {
    grant: String,
    token: String,
    /// Where its token request goes on the token host (client credentials).
    #[serde(default)]
    token_path: Option<String>,
    #[serde(default)]
    client_auth: Option<String>,
    /// The `scope` the token or authorization request carries.
    #[serde(default)]
    scope: Option<String>,
    /// The provider's authorize URL (code flow).
    #[serde(default)]
    authorize_url: Option<String>,
    /// The user a service account acts for (the assertion's `sub`).
    #[serde(default)]
    subject: Option<String>,
    /// The provider's own `grant_type` (Zoom's `account_credentials`) and further token-request fields.
    #[serde(default)]
    grant_type: Option<String>,
    #[serde(default)]
    params: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    method: String,
    path: String,
    #[serde(default)]
    body: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum AuthCheck {
    Header { header: String, value: String },
    Query { query: String, value: String },
    Form { form: String, value: String },
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Encoding {
    Json,
    Form,
}

fn table() -> Vec<Row> {
    let only: Option<HashSet<String>> =
        std::env::var("CATALOG_ONLY").ok().map(|names| names.split(',').map(|n| n.trim().to_owned()).collect());
    let mut rows: Vec<Row> = std::fs::read_dir(Path::new(ROOT).join("tests/catalog"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .filter(|row: &Row| only.as_ref().is_none_or(|only| only.contains(&row.name)))
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(!rows.is_empty(), "no catalog rows selected");
    rows
}

/// Every row with its own mock upstream, and one switchboard serving the default image with each
/// server's base URL pointing at its mock (and, when `with_secrets`, every secret set).
struct Fixture {
    server: Server,
    rows: Vec<(Row, MockServer)>,
}

async fn fixture(with_secrets: bool) -> Fixture {
    fixture_with(|row, _| match with_secrets {
        true => row.secrets.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        false => Vec::new(),
    })
    .await
}

/// A fixture whose environment adds, for each row, what `extra` says (secrets, URL overrides).
async fn fixture_with(extra: impl Fn(&Row, &MockServer) -> Vec<(String, String)>) -> Fixture {
    let mut rows = Vec::new();
    for row in table() {
        rows.push((row, MockServer::start().await));
    }
    let mut env: Vec<(String, String)> = Vec::new();
    for (row, mock) in &rows {
        env.push((format!("{}_BASE_URL", row.name.to_uppercase()), mock.uri()));
        env.extend(row.variables.iter().map(|(k, v)| (k.clone(), v.clone())));
        env.extend(extra(row, mock));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let boot = format!("{ROOT}/boot/default.boot.json");
    let server = Server::start_default(&["--boot", &boot], &env);
    Fixture { server, rows }
}

/// Runs `case` for every row at once and reports every row that failed.
async fn each_row<F, Fut>(fixture: Fixture, case: F)
where
    F: Fn(reqwest::Client, String, Row, MockServer) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    let mut tasks = JoinSet::new();
    for (row, mock) in fixture.rows {
        let name = row.name.clone();
        let future = case(fixture.server.client.clone(), fixture.server.base.clone(), row, mock);
        tasks.spawn(async move { (name, future.await) });
    }
    let mut failures = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (name, result) = joined.unwrap();
        if let Err(problem) = result {
            failures.push(format!("{name}: {problem}"));
        }
    }
    failures.sort();
    assert!(failures.is_empty(), "{} server(s) failed:\n{}", failures.len(), failures.join("\n"));
}

fn check(condition: bool, problem: impl FnOnce() -> String) -> Result<(), String> {
    if condition { Ok(()) } else { Err(problem()) }
}

async fn received(mock: &MockServer) -> Vec<Request> {
    mock.received_requests().await.unwrap_or_default()
}

/// Asserts that `request` is what the row's service expects: method, path, credentials, required
/// headers, and (when given) query parameters and body.
fn assert_request(
    row: &Row,
    request: &Request,
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    body: Option<&Value>,
) -> Result<(), String> {
    // The endpoint `/` is the API's root: the base URL itself.
    let expected_path = if path == "/" { row.base_path.clone() } else { format!("{}{}", row.base_path, path) };
    let expected_path = if expected_path.is_empty() { "/".to_owned() } else { expected_path };
    check(request.method.as_str() == method, || format!("method {} instead of {method}", request.method))?;
    check(request.url.path() == expected_path, || format!("path {} instead of {expected_path}", request.url.path()))?;
    let pairs: Vec<(String, String)> =
        request.url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    for (key, value) in query {
        check(pairs.iter().any(|(k, v)| k == key && v == value), || format!("query lacks {key}={value}: {pairs:?}"))?;
    }
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&request.body).into_owned().collect();
    for auth in &row.auth {
        match auth {
            AuthCheck::Header { header, value } => {
                let got = request.headers.get(header.as_str()).and_then(|v| v.to_str().ok());
                check(got == Some(value.as_str()), || format!("header {header} is {got:?}, expected {value}"))?;
            }
            AuthCheck::Query { query, value } => {
                check(pairs.iter().any(|(k, v)| k == query && v == value), || {
                    format!("query lacks credential {query}")
                })?;
            }
            AuthCheck::Form { form: field, value } => {
                check(form.iter().any(|(k, v)| k == field && v == value), || {
                    format!("form body lacks credential {field}")
                })?;
            }
        }
    }
    for (header, value) in &row.headers {
        let got = request.headers.get(header.as_str()).and_then(|v| v.to_str().ok());
        check(got == Some(value.as_str()), || format!("header {header} is {got:?}, expected {value}"))?;
    }
    if let Some(signature) = &row.signature {
        check_signature(signature, request)?;
    }
    if let Some(expected) = body {
        match row.body {
            Encoding::Json => {
                let got: Value = serde_json::from_slice(&request.body).map_err(|e| format!("body is not JSON: {e}"))?;
                check(&got == expected, || format!("body {got} instead of {expected}"))?;
            }
            Encoding::Form => {
                for (key, value) in expected.as_object().expect("form bodies are objects") {
                    let text = value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string());
                    check(form.iter().any(|(k, v)| k == key && *v == text), || {
                        format!("form body lacks {key}={text}: {form:?}")
                    })?;
                }
            }
        }
    }
    Ok(())
}

fn header_text<'r>(request: &'r Request, name: &str) -> &'r str {
    request.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn check_signature(signature: &Signature, request: &Request) -> Result<(), String> {
    match signature {
        Signature::Sigv4 { access_key, secret_key, region, service } => {
            check_sigv4(request, access_key, secret_key, region, service)
        }
        Signature::SharedKey { account, key } => check_shared_key(request, account, key),
    }
}

/// Re-signs the request as received, at the time it names, and compares the signatures.
fn check_sigv4(
    request: &Request,
    access_key: &str,
    secret_key: &str,
    region: &str,
    service: &str,
) -> Result<(), String> {
    use aws_sigv4::http_request::{
        PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
        UriPathNormalizationMode, sign,
    };
    use sha2::Digest;
    let authorization = header_text(request, "authorization");
    let prefix = format!("AWS4-HMAC-SHA256 Credential={access_key}/");
    check(authorization.starts_with(&prefix), || format!("authorization {authorization:?}"))?;
    check(authorization.contains(&format!("/{region}/{service}/aws4_request")), || format!("scope {authorization}"))?;
    let hash = hex::encode(sha2::Sha256::digest(&request.body));
    let sent_hash = header_text(request, "x-amz-content-sha256");
    check(sent_hash == hash, || format!("x-amz-content-sha256 {sent_hash:?} is not the body's hash"))?;
    let signed = authorization.split("SignedHeaders=").nth(1).and_then(|r| r.split(',').next()).unwrap_or("");
    check(signed.split(';').any(|h| h == "host") && signed.contains("x-amz-date"), || format!("signed {signed}"))?;
    let headers: Vec<(&str, &str)> = signed.split(';').map(|name| (name, header_text(request, name))).collect();
    let date = chrono::NaiveDateTime::parse_from_str(header_text(request, "x-amz-date"), "%Y%m%dT%H%M%SZ")
        .map_err(|e| format!("x-amz-date: {e}"))?;
    let time = std::time::UNIX_EPOCH + Duration::from_secs(date.and_utc().timestamp() as u64);
    let identity = aws_credential_types::Credentials::new(access_key, secret_key, None, None, "test").into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let signable = SignableRequest::new(
        request.method.as_str(),
        request.url.as_str(),
        headers.into_iter(),
        SignableBody::Bytes(&request.body),
    )
    .map_err(|e| e.to_string())?;
    let (_, expected) = sign(signable, &params).map_err(|e| e.to_string())?.into_parts();
    check(authorization.ends_with(&format!("Signature={expected}")), || {
        format!("the signature does not match the request as received: {authorization}")
    })
}

/// Recomputes Azure Storage's Shared Key string to sign from the request as received.
fn check_shared_key(request: &Request, account: &str, key: &str) -> Result<(), String> {
    use base64::Engine as _;
    use hmac::Mac;
    let date = header_text(request, "x-ms-date");
    check(httpdate::parse_http_date(date).is_ok(), || format!("x-ms-date {date:?}"))?;
    let length = match header_text(request, "content-length") {
        "0" => "",
        other => other,
    };
    let mut lines = vec![request.method.as_str().to_owned()];
    for name in ["content-encoding", "content-language"] {
        lines.push(header_text(request, name).to_owned());
    }
    lines.push(length.to_owned());
    for name in ["content-md5", "content-type", "date", "if-modified-since", "if-match", "if-none-match"] {
        lines.push(header_text(request, name).to_owned());
    }
    lines.push(header_text(request, "if-unmodified-since").to_owned());
    lines.push(header_text(request, "range").to_owned());
    let mut ms: Vec<(String, String)> = request
        .headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("x-ms-"))
        .map(|(name, value)| (name.as_str().to_owned(), value.to_str().unwrap_or("").trim().to_owned()))
        .collect();
    ms.sort();
    let mut text = lines.join("\n") + "\n";
    for (name, value) in ms {
        text.push_str(&format!("{name}:{value}\n"));
    }
    text.push_str(&format!("/{account}{}", request.url.path()));
    let mut query: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in request.url.query_pairs() {
        query.entry(name.to_lowercase()).or_default().push(value.into_owned());
    }
    for (name, mut values) in query {
        values.sort();
        text.push_str(&format!("\n{name}:{}", values.join(",")));
    }
    let key = base64::engine::general_purpose::STANDARD.decode(key).map_err(|e| e.to_string())?;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).map_err(|e| e.to_string())?;
    mac.update(text.as_bytes());
    let expected = format!(
        "SharedKey {account}:{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    let got = header_text(request, "authorization");
    check(got == expected, || format!("authorization {got:?} is not the Shared Key of the request as received"))
}

async fn respond_with(mock: &MockServer, template: ResponseTemplate) {
    mock.reset().await;
    Mock::given(wiremock::matchers::any()).respond_with(template).mount(mock).await;
}

async fn body_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[tokio::test]
async fn a_missing_secret_is_named_and_nothing_is_sent() {
    each_row(fixture(false).await, |client, base, row, mock| async move {
        respond_with(&mock, ResponseTemplate::new(200).set_body_json(json!({}))).await;
        let (status, body) =
            body_of(client.get(format!("{base}/{}{}", row.name, row.sample)).send().await.unwrap()).await;
        // A server connected through the browser says to connect, after setting what connecting needs.
        let named = match body["error"]["type"].as_str() {
            Some("not_connected") => body["error"]["message"].as_str().unwrap_or_default().split("first set ").nth(1),
            _ => body["error"]["secret"].as_str(),
        };
        let named = named.unwrap_or_default().split(" (").next().unwrap_or_default();
        check(status == 424 && !named.is_empty(), || format!("{status} {body}"))?;
        check(named.split(" or ").all(|n| row.secrets.contains_key(n)), || {
            format!("named {named}, not one of its secrets")
        })?;
        check(received(&mock).await.is_empty(), || "a request was sent without credentials".into())
    })
    .await;
}

#[tokio::test]
async fn an_empty_endpoint_calls_the_default_and_proves_the_credentials() {
    each_row(fixture(true).await, |client, base, row, mock| async move {
        respond_with(&mock, ResponseTemplate::new(200).set_body_json(json!({"me": true}))).await;
        // Call style, no endpoint: the service's default call.
        let (status, body) = body_of(client.get(format!("{base}/{}?method=GET", row.name)).send().await.unwrap()).await;
        check(status == 200 && body == json!({"me": true}), || format!("{status} {body}"))?;
        let requests = received(&mock).await;
        check(requests.len() == 1, || format!("{} requests", requests.len()))?;
        let default = &row.default;
        assert_request(&row, &requests[0], &default.method, &default.path, &[], default.body.as_ref())
    })
    .await;
}

#[tokio::test]
async fn get_post_put_and_delete_reach_the_upstream_as_sent() {
    each_row(fixture(true).await, |client, base, row, mock| async move {
        let url = format!("{base}/{}{}", row.name, row.sample);
        let data = json!({"name": "Ada", "count": 2});
        for method in ["GET", "POST", "PUT", "DELETE"] {
            respond_with(&mock, ResponseTemplate::new(200).set_body_json(json!({"ok": method}))).await;
            let request = match method {
                "GET" => client.get(format!("{url}?limit=2&q=a%20b")),
                "POST" => client.post(&url).json(&data),
                "PUT" => client.put(&url).json(&data),
                _ => client.delete(&url),
            };
            let (status, body) = body_of(request.send().await.unwrap()).await;
            check(status == 200 && body == json!({"ok": method}), || format!("{method}: {status} {body}"))?;
            let requests = received(&mock).await;
            check(requests.len() == 1, || format!("{method}: {} requests", requests.len()))?;
            let (query, body): (&[(&str, &str)], Option<&Value>) = match method {
                "GET" => (&[("limit", "2"), ("q", "a b")], None),
                "POST" | "PUT" => (&[], Some(&data)),
                _ => (&[], None),
            };
            assert_request(&row, &requests[0], method, &row.sample, query, body)
                .map_err(|e| format!("{method}: {e}"))?;
        }
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn upstream_failures_become_the_documented_errors() {
    each_row(fixture(true).await, |client, base, row, mock| async move {
        let url = format!("{base}/{}{}", row.name, row.sample);
        // Each failure comes from a request that was itself correct.
        let sent_correctly = |case: &'static str| {
            let (mock, row) = (&mock, &row);
            async move {
                let requests = received(mock).await;
                let first = requests.first().ok_or_else(|| format!("{case}: nothing was sent"))?;
                assert_request(row, first, "GET", &row.sample, &[], None).map_err(|e| format!("{case}: {e}"))
            }
        };
        respond_with(&mock, ResponseTemplate::new(404).set_body_json(json!({"message": "no such thing"}))).await;
        let (status, body) = body_of(client.get(&url).send().await.unwrap()).await;
        check(status == 404 && body["error"]["type"] == "upstream", || format!("4xx: {status} {body}"))?;
        check(body["error"]["body"].as_str().unwrap_or("").contains("no such thing"), || {
            format!("4xx excerpt: {body}")
        })?;
        sent_correctly("4xx").await?;

        // Refused credentials (a plain token is never renewed): the caller sees the provider's 401.
        respond_with(&mock, ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_token"}))).await;
        let (status, body) = body_of(client.get(&url).send().await.unwrap()).await;
        check(status == 401 && body["error"]["type"] == "upstream", || format!("401: {status} {body}"))?;
        sent_correctly("401").await?;

        let garbage = match row.xml {
            true => ResponseTemplate::new(200).set_body_raw("<ListBucketResult><Name>half", "application/xml"),
            false => ResponseTemplate::new(200).set_body_string("<html>maintenance</html>"),
        };
        respond_with(&mock, garbage).await;
        let (status, body) = body_of(client.get(&url).send().await.unwrap()).await;
        check(status == 502 && body["error"]["type"] == "invalid_response", || {
            format!("invalid JSON: {status} {body}")
        })?;
        sent_correctly("invalid JSON").await?;

        // The deadline leaves room for a declared rate limit (at most a one-second window here) to give
        // this fourth call its slot: the call must time out waiting on the upstream, not on the queue.
        respond_with(&mock, ResponseTemplate::new(200).set_body_json(json!({})).set_delay(Duration::from_secs(3)))
            .await;
        let (status, body) = body_of(client.get(&url).header("x-timeout-ms", "1500").send().await.unwrap()).await;
        check(status == 504 && body["error"]["type"] == "timeout", || format!("timeout: {status} {body}"))?;
        sent_correctly("timeout").await
    })
    .await;
}

#[tokio::test]
async fn a_429_is_retried_and_reported_once_retries_are_spent() {
    each_row(fixture(true).await, |client, base, row, mock| async move {
        let url = format!("{base}/{}{}", row.name, row.sample);
        mock.reset().await;
        Mock::given(wiremock::matchers::any())
            .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "0"))
            .up_to_n_times(1)
            .mount(&mock)
            .await;
        Mock::given(wiremock::matchers::any())
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"after": "retry"})))
            .mount(&mock)
            .await;
        let (status, body) = body_of(client.get(&url).send().await.unwrap()).await;
        check(status == 200 && body == json!({"after": "retry"}), || format!("429 then 200: {status} {body}"))?;
        let requests = received(&mock).await;
        check(requests.len() == 2, || "the 429 was not retried once".into())?;
        for request in &requests {
            assert_request(&row, request, "GET", &row.sample, &[], None).map_err(|e| format!("429 then 200: {e}"))?;
        }

        respond_with(&mock, ResponseTemplate::new(429).insert_header("retry-after", "0")).await;
        let (status, body) = body_of(client.get(&url).send().await.unwrap()).await;
        check(status == 429 && body["error"]["type"] == "rate_limited", || format!("exhausted: {status} {body}"))?;
        check(body["error"]["retry_after"].is_number(), || format!("no retry_after: {body}"))?;
        let requests = received(&mock).await;
        check(requests.len() == 4, || "expected one attempt and three retries".into())?;
        assert_request(&row, &requests[3], "GET", &row.sample, &[], None).map_err(|e| format!("exhausted: {e}"))
    })
    .await;
}

#[tokio::test]
async fn every_server_describes_itself_and_chains_stored_outputs() {
    each_row(fixture(true).await, |client, base, row, mock| async move {
        let (status, description) = body_of(client.get(format!("{base}/{}", row.name)).send().await.unwrap()).await;
        check(status == 200 && description["name"] == row.name, || format!("describe: {status} {description}"))?;
        let page = client
            .get(format!("{base}/{}", row.name))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        check(page.contains(&format!("action=\"/{}\"", row.name)), || "no HTML form".into())?;

        // Store a GET's output, then send it as the data of a POST.
        respond_with(&mock, ResponseTemplate::new(200).set_body_json(json!({"stored": "value"}))).await;
        let response = client.get(format!("{base}/{}?endpoint={}&store=1", row.name, row.sample)).send().await.unwrap();
        let stored = response.headers().get("x-output-cid").map(|v| v.to_str().unwrap().to_owned());
        let stored = stored.ok_or("no X-Output-Cid")?;
        let text = response.text().await.unwrap();
        check(stored == switchboard::cid::Cid::of(text.as_bytes()).to_string(), || {
            "X-Output-Cid is not the output's CID".into()
        })?;
        respond_with(&mock, ResponseTemplate::new(200).set_body_json(json!({"chained": true}))).await;
        let response = client
            .post(format!("{base}/{}{}", row.name, row.sample))
            .header("x-input-cid", &stored)
            .send()
            .await
            .unwrap();
        check(response.status() == 200, || format!("chained call: {}", response.status()))?;
        let requests = received(&mock).await;
        assert_request(&row, &requests[0], "POST", &row.sample, &[], Some(&json!({"stored": "value"})))
    })
    .await;
}

/// The token request an `oauth2` row's provider expects, or the connection its code flow needs: every
/// secret set except the plain access token, the token URL pointing at the row's mock.
#[tokio::test]
async fn oauth_servers_obtain_their_tokens_as_their_provider_expects() {
    let fixture = fixture_with(|row, mock| match &row.oauth {
        None => Vec::new(),
        Some(oauth) => row
            .secrets
            .iter()
            .filter(|(name, _)| **name != oauth.token)
            .map(|(k, v)| (k.clone(), v.clone()))
            .chain([(format!("{}_TOKEN_URL", row.name.to_uppercase()), mock.uri())])
            .collect(),
    })
    .await;
    let admin = fixture.server.admin_token();
    each_row(fixture, move |client, base, row, mock| {
        let admin = admin.clone();
        async move {
            let Some(oauth) = row.oauth.clone() else { return Ok(()) };
            let token = format!("catalog-token-{}", row.name);
            mock.reset().await;
            Mock::given(wiremock::matchers::method("POST"))
                .and(wiremock::matchers::path(oauth.token_path.clone().unwrap_or_default()))
                .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                    "access_token": token, "token_type": "Bearer", "expires_in": 3600,
                })))
                .mount(&mock)
                .await;
            Mock::given(wiremock::matchers::any())
                .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
                .mount(&mock)
                .await;
            let (status, body) =
                body_of(client.get(format!("{base}/{}{}", row.name, row.sample)).send().await.unwrap()).await;
            match oauth.grant.as_str() {
                "client_credentials" | "refresh_token" | "jwt_bearer" => {
                    check(status == 200 && body == json!({"ok": true}), || format!("{status} {body}"))?;
                    check_token_request(&row, &oauth, &received(&mock).await)?;
                    let requests = received(&mock).await;
                    let api = requests.get(1).ok_or("the API was not called")?;
                    let sent = api.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
                    check(sent.ends_with(&format!(" {token}")), || format!("the API got authorization {sent:?}"))
                }
                "authorization_code" => {
                    check(status == 424 && body["error"]["type"] == "not_connected", || format!("{status} {body}"))?;
                    let start = client.post(format!("{base}/api/oauth/{}/start", row.name)).bearer_auth(&admin);
                    let (status, started) = body_of(start.send().await.unwrap()).await;
                    check(status == 200, || format!("start: {status} {started}"))?;
                    let url = reqwest::Url::parse(started["authorize_url"].as_str().unwrap_or(""))
                        .map_err(|e| e.to_string())?;
                    let expected = oauth.authorize_url.clone().unwrap_or_default();
                    check(url.as_str().starts_with(&format!("{expected}?")), || format!("authorize URL {url}"))?;
                    let query: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
                    let client_id = query.get("client_id").map(String::as_str).unwrap_or("");
                    check(row.secrets.values().any(|v| v == client_id), || format!("client_id {client_id:?}"))?;
                    check(query.get("scope") == oauth.scope.as_ref(), || format!("scope {:?}", query.get("scope")))?;
                    check(received(&mock).await.is_empty(), || "something was sent before connecting".into())
                }
                other => Err(format!("no catalog case for the {other} grant")),
            }
        }
    })
    .await;
}

/// The first request is the token request: its path, grant, scope and client authentication (or, for a
/// service account, its signed assertion).
fn check_token_request(row: &Row, oauth: &OAuthRow, requests: &[Request]) -> Result<(), String> {
    let request = requests.first().ok_or("no token request")?;
    let path = oauth.token_path.clone().unwrap_or_default();
    check(request.method.as_str() == "POST" && request.url.path() == path, || {
        format!("token request {} {}", request.method, request.url.path())
    })?;
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(&request.body).into_owned().collect();
    let grant_type = match oauth.grant.as_str() {
        "jwt_bearer" => return check_assertion(row, oauth, &form),
        other => oauth.grant_type.as_deref().unwrap_or(other),
    };
    check(form.get("grant_type").map(String::as_str) == Some(grant_type), || format!("form {form:?}"))?;
    for (field, value) in &oauth.params {
        check(form.get(field) == Some(value), || format!("token request lacks {field}={value}: {form:?}"))?;
    }
    if grant_type == "refresh_token" {
        let pasted = form.get("refresh_token").is_some_and(|t| row.secrets.values().any(|v| v == t));
        check(pasted, || format!("the refresh token is not the pasted one: {form:?}"))?;
    }
    check(form.get("scope") == oauth.scope.as_ref(), || format!("scope {:?}", form.get("scope")))?;
    let in_body = form.get("client_secret").is_some_and(|s| row.secrets.values().any(|v| v == s));
    let basic = request.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").starts_with("Basic ");
    match oauth.client_auth.as_deref().unwrap_or("basic") {
        "body" => check(in_body && !basic, || "the client secret is not in the body".into()),
        _ => check(basic && !in_body, || "the client is not authenticated with basic auth".into()),
    }
}

/// A service account's token request: the JWT bearer grant with an assertion whose issuer is the
/// account, whose scope is the row's and whose subject is the delegated user, if any.
fn check_assertion(row: &Row, oauth: &OAuthRow, form: &BTreeMap<String, String>) -> Result<(), String> {
    use base64::Engine as _;
    check(form.get("grant_type").map(String::as_str) == Some("urn:ietf:params:oauth:grant-type:jwt-bearer"), || {
        format!("form {form:?}")
    })?;
    let assertion = form.get("assertion").ok_or("no assertion")?;
    let payload = assertion.split('.').nth(1).ok_or("the assertion is not a JWT")?;
    let claims: Value = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or("the assertion's payload is not JSON")?;
    let account = row.secrets.values().find(|v| v.contains("client_email")).ok_or("no service account")?;
    let account: Value = serde_json::from_str(account).map_err(|e| e.to_string())?;
    check(claims["iss"] == account["client_email"], || format!("iss {}", claims["iss"]))?;
    check(claims["scope"].as_str() == oauth.scope.as_deref(), || format!("scope {}", claims["scope"]))?;
    check(claims["sub"].as_str() == oauth.subject.as_deref(), || format!("sub {}", claims["sub"]))
}

/// With neither the plain token nor the service account set, a server with a fallback sends its API
/// key as the row says, and no token request or `Authorization` header goes anywhere.
#[tokio::test]
async fn without_a_token_or_service_account_the_fallback_credential_is_sent() {
    let fixture = fixture_with(|row, _| match &row.fallback {
        None => Vec::new(),
        Some(fallback) => vec![(fallback.secret.clone(), row.secrets[&fallback.secret].clone())],
    })
    .await;
    each_row(fixture, |client, base, row, mock| async move {
        let Some(fallback) = row.fallback.clone() else { return Ok(()) };
        respond_with(&mock, ResponseTemplate::new(200).set_body_json(json!({"public": true}))).await;
        let (status, body) =
            body_of(client.get(format!("{base}/{}{}", row.name, row.sample)).send().await.unwrap()).await;
        check(status == 200 && body == json!({"public": true}), || format!("{status} {body}"))?;
        let requests = received(&mock).await;
        check(requests.len() == 1, || format!("{} requests", requests.len()))?;
        let request = &requests[0];
        let key = &row.secrets[&fallback.secret];
        check(request.url.path().ends_with(&row.sample), || format!("path {}", request.url.path()))?;
        check(request.url.query_pairs().any(|(k, v)| k == fallback.query.as_str() && v == key.as_str()), || {
            format!("query lacks {}: {:?}", fallback.query, request.url.query())
        })?;
        check(request.headers.get("authorization").is_none(), || "an Authorization header was sent".into())
    })
    .await;
}

/// Zoom retired JWT apps: with only their token set, the call says so and nothing is sent.
#[tokio::test]
async fn zoom_with_only_a_jwt_token_says_jwt_apps_are_retired() {
    let fixture = fixture_with(|row, _| match row.name.as_str() {
        "zoom" => vec![("ZOOM_JWT_TOKEN".to_owned(), row.secrets["ZOOM_JWT_TOKEN"].clone())],
        _ => Vec::new(),
    })
    .await;
    each_row(fixture, |client, base, row, mock| async move {
        if row.name != "zoom" {
            return Ok(());
        }
        let (status, body) = body_of(client.get(format!("{base}/zoom/users/me")).send().await.unwrap()).await;
        let message = body["error"]["message"].as_str().unwrap_or_default();
        check(status == 500 && message.contains("retired JWT apps") && message.contains("ZOOM_ACCOUNT_ID"), || {
            format!("{status} {body}")
        })?;
        check(!message.contains(&row.secrets["ZOOM_JWT_TOKEN"]), || "the JWT token was echoed".into())?;
        check(received(&mock).await.is_empty(), || "a request was sent with a retired JWT".into())
    })
    .await;
}

fn boot_entries(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(Path::new(ROOT).join("boot").join(file)).unwrap();
    serde_json::from_str::<Value>(&text).unwrap()["servers"].as_array().unwrap().clone()
}

#[test]
fn every_catalog_server_is_registered_and_enabled_in_both_images() {
    for file in ["default.boot.json", "readonly.boot.json"] {
        let entries = boot_entries(file);
        let mut names = HashSet::new();
        for entry in &entries {
            let name = entry["name"].as_str().unwrap();
            assert!(names.insert(name.to_owned()), "{file}: {name} is listed twice");
            assert!(switchboard::server::validate_name(name).is_ok(), "{file}: {name} is not a valid name");
        }
        for row in table() {
            let entry = entries.iter().find(|e| e["name"] == row.name.as_str());
            let entry = entry.unwrap_or_else(|| panic!("{file} lacks {}", row.name));
            assert_ne!(entry["enabled"], false, "{file}: {} is disabled", row.name);
            assert_eq!(entry["script"], format!("../scripts/{}.rhai", row.name), "{file}: {}", row.name);
        }
    }
}

#[test]
fn every_catalog_script_compiles_with_complete_metadata() {
    for row in table() {
        let path: PathBuf = Path::new(ROOT).join(format!("scripts/{}.rhai", row.name));
        let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let output = std::process::Command::new(common::BIN)
            .args(["describe", path.to_str().unwrap()])
            .env("SWITCHBOARD_DATA", tempfile::tempdir().unwrap().path())
            .output()
            .unwrap();
        assert!(output.status.success(), "{}: {}", row.name, String::from_utf8_lossy(&output.stderr));
        let description: Value = serde_json::from_slice(&output.stdout).unwrap();
        let meta = &description["meta"];
        for key in ["title", "description", "category", "auth", "base_url", "docs"] {
            let value = meta[key].as_str().unwrap_or_default();
            assert!(!value.is_empty(), "{}: META.{key} is missing", row.name);
        }
        assert!(meta["docs"].as_str().unwrap().starts_with("https://"), "{}: META.docs is not a link", row.name);
        let declared: HashSet<String> = meta["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s.as_array().cloned().unwrap_or_else(|| vec![s.clone()]))
            .map(|s| s.as_str().unwrap().to_owned())
            .collect();
        let tested: HashSet<String> = row.secrets.keys().cloned().collect();
        assert_eq!(declared, tested, "{}: the row tests other secrets than META declares", row.name);
        let variables: HashSet<String> =
            meta["variables"].as_array().into_iter().flatten().map(|v| v.as_str().unwrap().to_owned()).collect();
        assert_eq!(
            variables,
            row.variables.keys().cloned().collect(),
            "{}: the row sets other variables than META declares",
            row.name
        );
        let lines = source.lines().filter(|l| !l.trim().is_empty()).count();
        assert!(lines <= 60, "{}: {lines} lines; shared needs belong in the native helper", row.name);
    }
}

#[test]
fn the_catalog_page_is_current() {
    let output = std::process::Command::new(common::BIN)
        .args(["servers", "--markdown"])
        .env("SWITCHBOARD_DATA", tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let page = std::fs::read_to_string(Path::new(ROOT).join("docs/servers.md")).unwrap_or_default();
    assert!(
        page == String::from_utf8_lossy(&output.stdout),
        "docs/servers.md is out of date: regenerate it with `cargo run -- servers --markdown > docs/servers.md`"
    );
}

/// One row's server alone: its own mock as the base URL, its variables, the secrets `keep` admits and
/// `extra` (which overrides; an empty value leaves the name unset).
async fn single(name: &str, keep: impl Fn(&str) -> bool, extra: &[(&str, &str)]) -> (Server, Row, MockServer) {
    let text = std::fs::read_to_string(Path::new(ROOT).join(format!("tests/catalog/{name}.json"))).unwrap();
    let row: Row = serde_json::from_str(&text).unwrap();
    let mock = MockServer::start().await;
    let mut env: Vec<(String, String)> = vec![(format!("{}_BASE_URL", name.to_uppercase()), mock.uri())];
    env.extend(row.variables.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.extend(row.secrets.iter().filter(|(k, _)| keep(k)).map(|(k, v)| (k.clone(), v.clone())));
    env.retain(|(k, _)| !extra.iter().any(|(name, _)| name == k));
    env.extend(extra.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (k.to_string(), v.to_string())));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Server::start_default(&["--boot", &format!("{ROOT}/boot/default.boot.json")], &env);
    (server, row, mock)
}

fn ok(result: Result<(), String>) {
    if let Err(problem) = result {
        panic!("{problem}");
    }
}

#[tokio::test]
async fn s3_objects_travel_as_raw_bytes_and_listings_come_back_as_json() {
    let (server, row, mock) = single("aws_s3", |_| true, &[]).await;
    let signature = row.signature.clone().unwrap();
    // A text body is the object itself, byte for byte, under a signature that covers it.
    respond_with(&mock, ResponseTemplate::new(200).insert_header("etag", "\"e1\"")).await;
    let put = server.client.put(server.url("/aws_s3/catalog-bucket/notes/raw.txt")).body("hello, S3 {not json}");
    assert_eq!(put.header("content-type", "text/plain").send().await.unwrap().status(), 200);
    let requests = received(&mock).await;
    assert_eq!((requests[0].method.as_str(), requests[0].url.path()), ("PUT", "/catalog-bucket/notes/raw.txt"));
    assert_eq!(requests[0].body, b"hello, S3 {not json}");
    ok(check_signature(&signature, &requests[0]));

    let bytes = vec![0u8, 159, 146, 150, 255];
    respond_with(&mock, ResponseTemplate::new(200).set_body_raw(bytes.clone(), "application/octet-stream")).await;
    let response = server.client.get(server.url("/aws_s3/catalog-bucket/photo.bin")).send().await.unwrap();
    assert_eq!(response.headers()["content-type"], "application/octet-stream");
    assert_eq!(response.bytes().await.unwrap().to_vec(), bytes);

    let listing = r#"<?xml version="1.0" encoding="UTF-8"?>
        <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>catalog-bucket</Name>
        <Prefix>notes/</Prefix><KeyCount>1</KeyCount><IsTruncated>false</IsTruncated>
        <Contents><Key>notes/a.txt</Key><Size>5</Size><ETag>"e1"</ETag></Contents></ListBucketResult>"#;
    respond_with(&mock, ResponseTemplate::new(200).set_body_raw(listing, "application/xml")).await;
    let url = server.url("/aws_s3/catalog-bucket?list-type=2&prefix=notes/");
    let (status, body) = body_of(server.client.get(url).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ListBucketResult"]["Contents"], json!([{"Key": "notes/a.txt", "Size": "5", "ETag": "\"e1\""}]));
    let requests = received(&mock).await;
    ok(assert_request(&row, &requests[0], "GET", "/catalog-bucket", &[("list-type", "2"), ("prefix", "notes/")], None));

    let error = "<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>";
    respond_with(&mock, ResponseTemplate::new(404).set_body_raw(error, "application/xml")).await;
    let (status, body) =
        body_of(server.client.get(server.url("/aws_s3/catalog-bucket/gone")).send().await.unwrap()).await;
    assert_eq!((status, body["error"]["type"].as_str()), (404, Some("upstream")), "{body}");
    assert!(body["error"]["body"].as_str().unwrap().contains("NoSuchKey"), "{body}");
    assert!(!body.to_string().contains(&row.secrets["AWS_SECRET_ACCESS_KEY"]));
}

/// The first request line a client sends to a proxy on 127.0.0.1, answered with a refusal: where the
/// request was going, without anything leaving the machine.
async fn proxied_destination(listener: tokio::net::TcpListener) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut socket, _) = listener.accept().await.unwrap();
    let mut buffer = vec![0u8; 4096];
    let n = socket.read(&mut buffer).await.unwrap();
    socket.write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n").await.unwrap();
    String::from_utf8_lossy(&buffer[..n]).lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn s3_addresses_a_bucket_virtual_hosted_unless_its_name_has_a_dot() {
    for (bucket, host) in [
        ("catalog-bucket", "catalog-bucket.s3.eu-west-1.amazonaws.com:443"),
        ("catalog.bucket", "s3.eu-west-1.amazonaws.com:443"),
    ] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = format!("http://{}", listener.local_addr().unwrap());
        // Without the base-URL override the request heads for AWS itself: only the proxy sees it.
        let extra = [
            ("AWS_S3_BASE_URL", ""),
            ("AWS_S3_PATH_STYLE", "false"),
            ("HTTPS_PROXY", proxy.as_str()),
            ("NO_PROXY", "example.invalid"),
        ];
        let (server, _, mock) = single("aws_s3", |_| true, &extra).await;
        let seen = tokio::spawn(proxied_destination(listener));
        let url = server.url(&format!("/aws_s3/{bucket}/notes/a.txt"));
        let (status, body) = body_of(server.client.get(url).send().await.unwrap()).await;
        assert_eq!(status, 502, "{body}");
        assert_eq!(seen.await.unwrap(), format!("CONNECT {host} HTTP/1.1"));
        assert!(received(&mock).await.is_empty());
    }
}

#[tokio::test]
async fn azure_blob_signs_with_the_account_key_and_puts_block_blobs() {
    // Without a connection string: the account and key secrets.
    let (server, row, mock) = single("azure_blob", |name| name != "AZURE_STORAGE_CONNECTION_STRING", &[]).await;
    let key = row.secrets["AZURE_STORAGE_KEY"].clone();
    let signature = Signature::SharedKey { account: row.secrets["AZURE_STORAGE_ACCOUNT"].clone(), key };
    respond_with(&mock, ResponseTemplate::new(201)).await;
    let put = server.client.put(server.url("/azure_blob/catalog/raw.txt")).body("hello, Azure");
    assert_eq!(put.header("content-type", "text/plain").send().await.unwrap().status(), 200);
    let put = server.client.put(server.url("/azure_blob/newcontainer?restype=container")).send().await.unwrap();
    assert_eq!(put.status(), 200);
    let requests = received(&mock).await;
    assert_eq!(requests[0].body, b"hello, Azure");
    assert_eq!(header_text(&requests[0], "x-ms-blob-type"), "BlockBlob");
    assert_eq!(header_text(&requests[1], "x-ms-blob-type"), "", "a container is not a blob");
    for request in &requests {
        assert_eq!(header_text(request, "x-ms-version"), row.headers["x-ms-version"]);
        ok(check_signature(&signature, request));
    }

    let listing = r#"<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="https://otheracct.blob.core.windows.net/" ContainerName="catalog">
        <Blobs><Blob><Name>raw.txt</Name><Properties><Content-Length>12</Content-Length></Properties></Blob></Blobs>
        <NextMarker /></EnumerationResults>"#;
    respond_with(&mock, ResponseTemplate::new(200).set_body_raw(listing, "application/xml")).await;
    let url = server.url("/azure_blob/catalog?restype=container&comp=list");
    let (status, body) = body_of(server.client.get(url).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    let results = &body["EnumerationResults"];
    assert_eq!(results["@ContainerName"], "catalog");
    assert_eq!(results["Blobs"]["Blob"], json!([{"Name": "raw.txt", "Properties": {"Content-Length": "12"}}]));
    ok(check_signature(&signature, &received(&mock).await[0]));

    let error = "<?xml version=\"1.0\"?><Error><Code>AuthenticationFailed</Code><Message>Server failed to authenticate the request.</Message></Error>";
    respond_with(&mock, ResponseTemplate::new(403).set_body_raw(error, "application/xml")).await;
    let (status, body) =
        body_of(server.client.get(server.url("/azure_blob/catalog/raw.txt")).send().await.unwrap()).await;
    assert_eq!((status, body["error"]["type"].as_str()), (403, Some("upstream")), "{body}");
    assert!(body["error"]["body"].as_str().unwrap().contains("AuthenticationFailed"), "{body}");
}

/// The public half of the test key in the Snowflake row, and its fingerprint as `openssl` computes it
/// (`openssl rsa -pubout -outform DER | openssl dgst -sha256 -binary | base64`).
const SNOWFLAKE_PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAwPU/FgDvsiFdUJKoZWga
oPwNlkPm4XKm2pzI7o3hj5aH9OmME30kS3Fzct/ztlfeMYKLSdBHRJen8TSPY/h4
M9tiRFQvYL9a0tyOI++Qoli4+leN0MUWMelSecEphpm1natGUEdEVQGyo7td/tjp
t+Wlgt2ai+X/JftqBGkU3VnG4Pi1NwoniX8gnAkcv5LpS7K1Sl6N+LYfwZLqYtTa
gFHIU6fGq/yTrIAKx6TP3KB/FOygcPMmqoibklVIHkwu7cohGUdtR29gPGgq7urY
FV4VBdXzoGNIKFadNNMXIj8lhaES1cZAELiPQ0GK6KMuuxm/me1471LAIs7bFP6H
IQIDAQAB
-----END PUBLIC KEY-----
";
const SNOWFLAKE_FINGERPRINT: &str = "SHA256:kzIUIV0jV4Wjiv2MfmWgQb/LYHqlxjO4ZqBplLcJQNc=";

#[tokio::test]
async fn snowflake_without_a_token_signs_a_key_pair_jwt_for_the_account_and_user() {
    let (server, _, mock) = single("snowflake", |name| name != "SNOWFLAKE_TOKEN", &[]).await;
    respond_with(&mock, ResponseTemplate::new(200).set_body_json(json!({"statementHandle": "01b2"}))).await;
    let statement = json!({"statement": "SELECT ? AS n", "bindings": {"1": {"type": "FIXED", "value": "7"}}});
    let response = server.client.post(server.url("/snowflake/api/v2/statements")).json(&statement).send().await;
    let (status, body) = body_of(response.unwrap()).await;
    assert_eq!((status, body), (200, json!({"statementHandle": "01b2"})));
    let requests = received(&mock).await;
    let request = &requests[0];
    assert_eq!(header_text(request, "x-snowflake-authorization-token-type"), "KEYPAIR_JWT");
    let token = header_text(request, "authorization").strip_prefix("Bearer ").expect("a bearer token");
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(SNOWFLAKE_PUBLIC_KEY.as_bytes()).unwrap();
    let claims =
        jsonwebtoken::decode::<Value>(token, &key, &jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256))
            .expect("a JWT signed by the row's key")
            .claims;
    assert_eq!(claims["iss"], format!("MYORG-CATALOG.ADA.{SNOWFLAKE_FINGERPRINT}"));
    assert_eq!(claims["sub"], "MYORG-CATALOG.ADA");
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert!(lifetime > 0 && lifetime <= 3600, "a key-pair JWT lives at most an hour: {lifetime}");
    // A statement without a warehouse runs in SNOWFLAKE_WAREHOUSE.
    let mut expected = statement.clone();
    expected["warehouse"] = json!("COMPUTE_WH");
    assert_eq!(serde_json::from_slice::<Value>(&request.body).unwrap(), expected);
}
