//! Outbound calls through `http` and `api::call` against a mock upstream on 127.0.0.1: what the mock
//! received, and what the caller got, for success, every failure, and retries.

mod common;

use std::time::Duration;

use common::{Server, expect_error, json};
use serde_json::json;
use wiremock::matchers::{body_json, body_string, header, header_exists, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const RAW: &str = r#"const META = #{ title: "Raw", description: "raw http" };
fn main(endpoint, method, data) { http::request(data) }"#;

const SVC: &str = r#"const META = #{
    title: "Svc", description: "an API", secrets: ["SVC_TOKEN"], auth: "bearer",
    base_url: "https://api.invalid/v1",
    api: #{ headers: #{ "X-Version": "2024-01" }, default_endpoint: "/me" },
};
fn main(endpoint, method, data) { api::call(global::META, endpoint, method, data) }"#;

async fn start(mock: &MockServer, servers: &[(&str, &str)], env: &[(&str, &str)]) -> Server {
    let base = format!("{}/v1", mock.uri());
    let mut env = env.to_vec();
    env.push(("SVC_BASE_URL", &base));
    // `raw` declares no host: the operator names the mock for it.
    let origin = mock.uri();
    env.push(("RAW_BASE_URL", &origin));
    env.push(("SVC_TOKEN", "tok_123"));
    Server::start_with(servers, &[], &env)
}

async fn post(server: &Server, name: &str, body: serde_json::Value) -> reqwest::Response {
    server.client.post(server.url(&format!("/{name}"))).json(&body).send().await.unwrap()
}

#[tokio::test]
async fn http_request_sends_what_the_script_asked_for() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/things"))
        .and(query_param("q", "a b"))
        .and(header("x-custom", "yes"))
        .and(body_json(json!({"n": 1})))
        .respond_with(ResponseTemplate::new(201).insert_header("x-reply", "ok").set_body_json(json!({"id": 7})))
        .expect(1)
        .mount(&mock)
        .await;
    let server = start(&mock, &[("raw", RAW)], &[]).await;
    let request = json!({"url": format!("{}/things", mock.uri()), "method": "post",
                          "query": {"q": "a b"}, "headers": {"x-custom": "yes"}, "json": {"n": 1}});
    let (status, body) = json(post(&server, "raw", json!({"data": request})).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], 201);
    assert_eq!(body["json"], json!({"id": 7}));
    assert_eq!(body["body"], r#"{"id":7}"#);
    assert_eq!(body["headers"]["x-reply"], "ok");
}

#[tokio::test]
async fn http_request_sends_forms_text_and_basic_auth() {
    let mock = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/form"))
        .and(header("authorization", "Basic dXNlcjpwYXNz"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string("a=1&b=two+words"))
        .respond_with(ResponseTemplate::new(200).set_body_string("plain"))
        .expect(1)
        .mount(&mock)
        .await;
    Mock::given(method("POST"))
        .and(path("/text"))
        .and(body_string("just text"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&mock)
        .await;
    let server = start(&mock, &[("raw", RAW)], &[]).await;
    let form = json!({"url": format!("{}/form", mock.uri()), "method": "PUT", "basic_auth": ["user", "pass"],
                       "form": {"a": 1, "b": "two words"}});
    let (_, body) = json(post(&server, "raw", json!({"data": form})).await).await;
    assert_eq!(
        (body["status"].as_i64(), body["body"].as_str(), &body["json"]),
        (Some(200), Some("plain"), &json!(null))
    );
    let text = json!({"url": format!("{}/text", mock.uri()), "method": "POST", "body": "just text"});
    let (_, body) = json(post(&server, "raw", json!({"data": text})).await).await;
    assert_eq!(body["status"], 204);
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried_then_succeeds() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .expect(1)
        .mount(&mock)
        .await;
    let server = start(&mock, &[("svc", SVC)], &[]).await;
    let started = std::time::Instant::now();
    let (status, body) = json(server.get("/svc/items").await).await;
    assert_eq!((status, body), (200, json!({"ok": true})));
    assert!(started.elapsed() >= Duration::from_millis(900), "Retry-After was not honoured");
}

#[tokio::test]
async fn three_503s_then_success_is_retried_to_success() {
    let mock = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(503)).up_to_n_times(3).expect(3).mount(&mock).await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"done": 1})))
        .expect(1)
        .mount(&mock)
        .await;
    let server = start(&mock, &[("svc", SVC)], &[]).await;
    let response = server.client.post(server.url("/svc/jobs")).json(&json!({"a": 1})).send().await.unwrap();
    assert_eq!(json(response).await, (200, json!({"done": 1})));
    // Every attempt carried the same body.
    for request in mock.received_requests().await.unwrap() {
        assert_eq!(request.body_json::<serde_json::Value>().unwrap(), json!({"a": 1}));
    }
}

#[tokio::test]
async fn exhausted_retries_report_the_upstream_error() {
    let mock = MockServer::start().await;
    Mock::given(path("/v1/busy"))
        .respond_with(ResponseTemplate::new(503).set_body_string("overloaded"))
        .expect(4)
        .mount(&mock)
        .await;
    Mock::given(path("/v1/limited"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "0").set_body_string("slow down"))
        .expect(4)
        .mount(&mock)
        .await;
    let server = start(&mock, &[("svc", SVC)], &[]).await;
    let error = expect_error(server.get("/svc/busy").await, 503, "upstream").await;
    assert_eq!((error["status"].as_i64(), error["body"].as_str()), (Some(503), Some("overloaded")));
    let error = expect_error(server.get("/svc/limited").await, 429, "rate_limited").await;
    assert_eq!(error["retry_after"], 1);
}

#[tokio::test]
async fn max_retries_zero_makes_one_attempt() {
    let mock = MockServer::start().await;
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(503)).expect(1).mount(&mock).await;
    let server = start(&mock, &[("raw", RAW)], &[]).await;
    let request = json!({"url": mock.uri(), "max_retries": 0});
    let (_, body) = json(post(&server, "raw", json!({"data": request})).await).await;
    assert_eq!(body["status"], 503);
}

#[tokio::test]
async fn an_api_call_carries_auth_version_header_and_query() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/me"))
        .and(header("authorization", "Bearer tok_123"))
        .and(header("x-version", "2024-01"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "me"})))
        .expect(1)
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/customers"))
        .and(query_param("limit", "3"))
        .and(query_param("email", "a@b.c"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([1, 2, 3])))
        .expect(1)
        .mount(&mock)
        .await;
    let server = start(&mock, &[("svc", SVC)], &[]).await;
    // An empty endpoint is the service's "who am I".
    assert_eq!(json(server.get("/svc?method=GET").await).await, (200, json!({"id": "me"})));
    // Proxy query string passes untouched; GET data becomes query parameters.
    let (status, body) =
        json(server.get("/svc?endpoint=/customers%3Flimit%3D3&data=%7B%22email%22%3A%22a%40b.c%22%7D").await).await;
    assert_eq!((status, body), (200, json!([1, 2, 3])));
}

#[tokio::test]
async fn upstream_failures_map_to_the_documented_errors() {
    let mock = MockServer::start().await;
    Mock::given(path("/v1/missing"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"error": "no such customer"})))
        .mount(&mock)
        .await;
    Mock::given(path("/v1/html"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>oops</html>"))
        .mount(&mock)
        .await;
    Mock::given(path("/v1/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)).set_body_json(json!({})))
        .mount(&mock)
        .await;
    Mock::given(path("/v1/huge"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![b'x'; 11 * 1024 * 1024]))
        .mount(&mock)
        .await;
    Mock::given(path("/v1/empty")).respond_with(ResponseTemplate::new(204)).mount(&mock).await;
    Mock::given(path("/v1/refused"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": "invalid api key"})))
        .mount(&mock)
        .await;
    let server = start(&mock, &[("svc", SVC)], &[]).await;

    // The API's 401 names the API and says whose credentials it refused; the gateway's own 401
    // (`unauthorized`, with `WWW-Authenticate`) is another thing.
    let response = server.get("/svc/refused").await;
    assert!(response.headers().get("www-authenticate").is_none());
    let error = expect_error(response, 401, "upstream").await;
    assert_eq!(error["upstream"], "127.0.0.1");
    assert!(error["message"].as_str().unwrap().contains("not the caller's access to Switchboard"), "{error}");

    let error = expect_error(server.get("/svc/missing").await, 404, "upstream").await;
    assert_eq!((&error["status"], &error["upstream"]), (&json!(404), &json!("127.0.0.1")));
    assert!(error["body"].as_str().unwrap().contains("no such customer"));
    let error = expect_error(server.get("/svc/html").await, 502, "invalid_response").await;
    assert!(error["message"].as_str().unwrap().contains("<html>oops"));
    let response = server.client.get(server.url("/svc/slow")).header("x-timeout-ms", "500").send().await.unwrap();
    expect_error(response, 504, "timeout").await;
    let error = expect_error(server.get("/svc/huge").await, 502, "invalid_response").await;
    assert!(error["message"].as_str().unwrap().contains("larger than"));
    let response = server.get("/svc/empty").await;
    assert_eq!((response.status().as_u16(), response.text().await.unwrap()), (200, "null".to_string()));
}

#[tokio::test]
async fn a_refused_connection_is_upstream_unreachable() {
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/v1", unused.local_addr().unwrap());
    drop(unused);
    let server = Server::start_with(&[("svc", SVC)], &[], &[("SVC_BASE_URL", &base), ("SVC_TOKEN", "tok_123")]);
    let error = expect_error(server.get("/svc/x").await, 502, "upstream_unreachable").await;
    assert!(error["message"].as_str().unwrap().contains("127.0.0.1"));
}

#[tokio::test]
async fn a_missing_secret_is_named_and_nothing_is_sent() {
    let mock = MockServer::start().await;
    Mock::given(wiremock::matchers::any()).respond_with(ResponseTemplate::new(200)).expect(0).mount(&mock).await;
    let base = format!("{}/v1", mock.uri());
    let server = Server::start_with(&[("svc", SVC)], &[], &[("SVC_BASE_URL", &base)]);
    let error = expect_error(server.get("/svc/x").await, 424, "missing_secret").await;
    assert_eq!(error["secret"], "SVC_TOKEN");
}

#[tokio::test]
async fn auth_schemes_put_credentials_where_each_service_wants_them() {
    let mock = MockServer::start().await;
    let script = |auth: &str, api: &str| {
        format!(
            r#"const META = #{{ title: "A", description: "d", secrets: ["SVC_TOKEN", "SVC_EMAIL", "SVC_DOMAIN"],
                auth: "{auth}", base_url: "https://{{SVC_DOMAIN}}/api", api: #{{ {api} }} }};
                fn main(endpoint, method, data) {{ api::call(global::META, endpoint, method, data) }}"#
        )
    };
    let basic = script("basic", r#"username: "{SVC_EMAIL}/token", password: "{SVC_TOKEN}""#);
    let header_key = script("header:X-Api-Key", r#"scheme: "Key""#);
    let query_key = script("query:api_key", "");
    let form_key = script("form:api_key", r#"body: "form""#);
    Mock::given(path("/api/basic"))
        .and(header("authorization", "Basic bWVAeC5pby90b2tlbjp0b2tfMTIz"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!("basic")))
        .expect(1)
        .mount(&mock)
        .await;
    Mock::given(path("/api/header"))
        .and(header("x-api-key", "Key tok_123"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!("header")))
        .expect(1)
        .mount(&mock)
        .await;
    Mock::given(path("/api/query"))
        .and(query_param("api_key", "tok_123"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!("query")))
        .expect(1)
        .mount(&mock)
        .await;
    Mock::given(path("/api/form"))
        .and(body_string("api_key=tok_123&monitor=5"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!("form")))
        .expect(1)
        .mount(&mock)
        .await;
    // The domain secret is a bare host: the helper adds the scheme.
    let domain = mock.uri().trim_start_matches("http://").to_string();
    let servers = [
        ("basic", basic.as_str()),
        ("hdr", header_key.as_str()),
        ("qry", query_key.as_str()),
        ("frm", form_key.as_str()),
    ];
    let env = [("SVC_TOKEN", "tok_123"), ("SVC_EMAIL", "me@x.io"), ("SVC_DOMAIN", domain.as_str())];
    // Bare hosts become https: point the servers at the plain-HTTP mock through their base-URL variables.
    let mut all_env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    for name in ["BASIC", "HDR", "QRY", "FRM"] {
        all_env.push((format!("{name}_BASE_URL"), format!("{}/api", mock.uri())));
    }
    let env_refs: Vec<(&str, &str)> = all_env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Server::start_with(&servers, &[], &env_refs);
    // Each upstream answers a JSON string, which the server returns as text.
    assert_eq!(server.get("/basic/basic").await.text().await.unwrap(), "basic");
    assert_eq!(server.get("/hdr/header").await.text().await.unwrap(), "header");
    assert_eq!(server.get("/qry/query").await.text().await.unwrap(), "query");
    let response = server.client.post(server.url("/frm/form")).json(&json!({"monitor": 5})).send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "form");
}

#[tokio::test]
async fn the_base_url_template_is_filled_from_secrets() {
    let mock = MockServer::start().await;
    Mock::given(path("/store/admin/products.json"))
        .and(header_exists("authorization"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"products": []})))
        .expect(1)
        .mount(&mock)
        .await;
    let shop = r#"const META = #{ title: "Shop", description: "d", secrets: ["SHOP_TOKEN", "SHOP_URL"], auth: "bearer",
        base_url: "{SHOP_URL}/admin" };
        fn main(endpoint, method, data) { api::call(global::META, endpoint, method, data) }"#;
    let url = format!("{}/store", mock.uri());
    let server = Server::start_with(&[("shop", shop)], &[], &[("SHOP_TOKEN", "t"), ("SHOP_URL", &url)]);
    assert_eq!(json(server.get("/shop/products.json").await).await, (200, json!({"products": []})));
}

#[tokio::test]
async fn an_endpoint_cannot_send_credentials_to_another_host() {
    let mock = MockServer::start().await;
    let server = start(&mock, &[("svc", SVC)], &[]).await;
    let error = expect_error(server.get("/svc?endpoint=https://evil.example/steal").await, 400, "bad_request").await;
    assert!(error["message"].as_str().unwrap().contains("must be a path"));
    assert!(mock.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn each_attempt_is_logged_without_query_values_headers_or_bodies() {
    let mock = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(503)).up_to_n_times(1).mount(&mock).await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200).set_body_json(json!({}))).mount(&mock).await;
    let server = start(&mock, &[("svc", SVC)], &[]).await;
    let response = server
        .client
        .post(server.url("/svc/log/me?query_value=qv_987"))
        .json(&json!({"body_value": "bv_654"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = server.logs();
    let lines: Vec<&str> = logs.lines().filter(|l| l.contains("outbound")).collect();
    assert_eq!(lines.len(), 2, "{logs}");
    assert!(
        lines[0].contains("method=POST")
            && lines[0].contains("path=/v1/log/me")
            && lines[0].contains("status=503")
            && lines[0].contains("attempt=1"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("status=200") && lines[1].contains("attempt=2") && lines[1].contains("duration_ms"),
        "{}",
        lines[1]
    );
    for secret in ["qv_987", "bv_654", "tok_123"] {
        assert!(!logs.contains(secret), "{secret} leaked into the log");
    }
    let received: Vec<Request> = mock.received_requests().await.unwrap();
    assert_eq!(received[0].url.query(), Some("query_value=qv_987"));
}

#[tokio::test]
async fn defaults_fixed_body_fields_body_credentials_and_declared_variables() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/acct-42/graphql"))
        .and(body_json(json!({"key": "tok_123", "format": "json", "query": "{ me { id } }"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"me": 1})))
        .expect(1)
        .mount(&mock)
        .await;
    Mock::given(method("POST"))
        .and(path("/acct-42/graphql"))
        .and(body_json(json!({"key": "tok_123", "format": "json", "query": "{ other }"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"other": 2})))
        .expect(1)
        .mount(&mock)
        .await;
    let script = r#"const META = #{ title: "G", description: "d", secrets: ["SVC_TOKEN"], variables: ["SVC_ACCOUNT"],
        auth: "json:key", base_url: "https://api.invalid/{SVC_ACCOUNT}/graphql",
        api: #{ default_method: "POST", default_data: #{ query: "{ me { id } }" }, body_fields: #{ format: "json" } } };
        fn main(endpoint, method, data) { api::call(global::META, endpoint, method, data) }"#;
    let server = Server::start_with(
        &[("gql", script)],
        &[],
        &[("GQL_BASE_URL", &mock.uri()), ("SVC_TOKEN", "tok_123"), ("SVC_ACCOUNT", "acct-42")],
    );
    // A bare call is the default call: a POST of the default query.
    assert_eq!(json(server.get("/gql?method=GET").await).await, (200, json!({"me": 1})));
    // Proxy style to the API's root, with data of its own.
    let response = server.client.post(server.url("/gql/")).json(&json!({"query": "{ other }"})).send().await.unwrap();
    assert_eq!(json(response).await, (200, json!({"other": 2})));

    // A variable the script did not declare cannot be read through a template.
    let sneaky = r#"const META = #{ title: "S", description: "d", auth: "none", base_url: "https://{HOME}/x" };
        fn main(endpoint, method, data) { api::call(global::META, endpoint, method, data) }"#;
    let server = Server::start_with(&[("sneaky", sneaky)], &[], &[]);
    let error = expect_error(server.get("/sneaky/x").await, 500, "script_error").await;
    assert!(error["message"].as_str().unwrap().contains("not declared"), "{error}");
}

/// A `form:` credential travels in the body of a POST, and in the query of a GET (which has no body),
/// never nowhere.
#[tokio::test]
async fn a_form_credential_goes_in_the_query_of_a_get() {
    let mock = MockServer::start().await;
    Mock::given(wiremock::matchers::any()).respond_with(ResponseTemplate::new(200)).mount(&mock).await;
    let script = r#"const META = #{ title: "Form", description: "d", secrets: ["FORM_KEY"], auth: "form:api_key",
    base_url: "https://form.invalid/v1", api: #{ body: "form" } };
fn main(endpoint, method, data) { api::call(global::META, endpoint, method, data) }"#;
    let uri = mock.uri();
    let env = [("FORM_KEY", "fk-6a5b4c"), ("FORM_BASE_URL", uri.as_str())];
    let server = Server::start_with(&[("form", script)], &[], &env);
    assert_eq!(server.get("/form/items?n=1").await.status(), 200);
    let posted = server.client.post(server.url("/form/items")).json(&json!({ "n": 2 })).send().await.unwrap();
    assert_eq!(posted.status(), 200);
    let received = mock.received_requests().await.unwrap();
    let query: Vec<(String, String)> = received[0].url.query_pairs().into_owned().collect();
    assert_eq!(query, [("n".to_owned(), "1".to_owned()), ("api_key".to_owned(), "fk-6a5b4c".to_owned())]);
    assert_eq!(received[1].url.query(), None);
    assert_eq!(String::from_utf8_lossy(&received[1].body), "api_key=fk-6a5b4c&n=2");
}

/// A credential is a value, never a template: braces in it go out as they are.
#[tokio::test]
async fn a_query_credential_with_braces_is_sent_verbatim() {
    let mock = MockServer::start().await;
    Mock::given(wiremock::matchers::any()).respond_with(ResponseTemplate::new(200)).mount(&mock).await;
    let script = r#"const META = #{ title: "Key", description: "d", secrets: ["KEY_SECRET"], auth: "query:key",
    base_url: "https://key.invalid", api: #{ query: #{ v: "2" } } };
fn main(endpoint, method, data) { api::call(global::META, endpoint, method, data) }"#;
    let uri = mock.uri();
    let env = [("KEY_SECRET", "k{KEY_SECRET}z"), ("KEY_BASE_URL", uri.as_str())];
    let server = Server::start_with(&[("key", script)], &[], &env);
    assert_eq!(server.get("/key/x").await.status(), 200);
    let received = &mock.received_requests().await.unwrap()[0];
    let query: Vec<(String, String)> = received.url.query_pairs().into_owned().collect();
    assert_eq!(query, [("v".to_owned(), "2".to_owned()), ("key".to_owned(), "k{KEY_SECRET}z".to_owned())]);
}

/// An upstream's JSON, in its own key order and spacing: what the runtime would never write itself.
const UPSTREAM_JSON: &str = r#"{"z": 1, "a": [1, 2.50], "n": {"deep": true}}"#;

/// A mock upstream answering every GET with `body` as JSON, byte for byte.
async fn answering(body: &str) -> MockServer {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body.to_owned(), "application/json"))
        .mount(&mock)
        .await;
    mock
}

#[tokio::test]
async fn upstream_json_returned_untouched_goes_out_as_it_came_and_a_changed_copy_as_changed() {
    let mock = answering(UPSTREAM_JSON).await;
    let call = "api::call(global::META, endpoint, method, data)";
    let bodies = [
        ("untouched", call.to_owned()),
        ("branch", format!("if endpoint != \"\" {{ {call} }} else {{ () }}")),
        ("changed", format!("let r = {call}; r.extra = 1; r")),
        ("returned", format!("let r = {call}; r.extra = 1; return r;")),
        ("through_fn", format!("touched({call})")),
        ("method", format!("{call}.touch()")),
        ("part", format!("{call}.n")),
        ("merged", format!("{call} + #{{ extra: 1 }}")),
        ("dropped", format!("{call}; #{{ fresh: true }}")),
    ];
    let scripts: Vec<(String, String)> = bodies
        .iter()
        .map(|(name, body)| {
            let script = format!(
                r#"const META = #{{ title: "P", description: "d", base_url: "https://api.invalid" }};
fn touched(x) {{ x.extra = 1; x }}
fn touch() {{ this.extra = 1; this }}
fn main(endpoint, method, data) {{ {body} }}"#
            );
            (name.to_string(), script)
        })
        .collect();
    let servers: Vec<(&str, &str)> = scripts.iter().map(|(n, s)| (n.as_str(), s.as_str())).collect();
    let bases: Vec<(String, String)> =
        bodies.iter().map(|(name, _)| (format!("{}_BASE_URL", name.to_uppercase()), mock.uri())).collect();
    let env: Vec<(&str, &str)> = bases.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Server::start_with(&servers, &[], &env);
    let text = |name: &'static str| {
        let server = &server;
        async move {
            let response = server.get(&format!("/{name}/x")).await;
            assert_eq!(response.status(), 200, "{name}");
            assert_eq!(response.headers()["content-type"], "application/json", "{name}");
            response.text().await.unwrap()
        }
    };
    assert_eq!(text("untouched").await, UPSTREAM_JSON);
    assert_eq!(text("branch").await, UPSTREAM_JSON);
    let changed = json!({"z": 1, "a": [1, 2.5], "n": {"deep": true}, "extra": 1});
    for name in ["changed", "returned", "through_fn", "method", "merged"] {
        let body = text(name).await;
        assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap(), changed, "{name}: {body}");
    }
    assert_eq!(text("part").await, r#"{"deep":true}"#);
    assert_eq!(text("dropped").await, r#"{"fresh":true}"#);
}

#[tokio::test]
async fn upstream_json_shaped_as_an_envelope_stays_an_envelope() {
    let mock = answering(r#"{"output": "<p>hi</p>", "content_type": "text/html", "status": 201}"#).await;
    let server = start(&mock, &[("svc", SVC)], &[]).await;
    let response = server.get("/svc/page").await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["content-type"], "text/html");
    assert_eq!(response.text().await.unwrap(), "<p>hi</p>");
}

#[tokio::test]
async fn upstream_json_nested_past_the_output_bound_never_goes_out() {
    let mock = answering(&format!("{}{}", "[".repeat(200), "]".repeat(200))).await;
    let server = start(&mock, &[("svc", SVC)], &[]).await;
    let error = expect_error(server.get("/svc/deep").await, 502, "invalid_response").await;
    assert!(error["message"].as_str().unwrap().contains("not JSON"), "{error}");
}

#[tokio::test]
async fn a_secret_an_upstream_echoes_in_an_error_is_masked_after_a_passed_through_success() {
    let mock = MockServer::start().await;
    Mock::given(path("/v1/ok"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(UPSTREAM_JSON, "application/json"))
        .mount(&mock)
        .await;
    Mock::given(path("/v1/echo"))
        .respond_with(|request: &Request| {
            let authorization = request.headers.get("authorization").map(|v| v.to_str().unwrap().to_owned());
            ResponseTemplate::new(400).set_body_json(json!({ "you_sent": authorization }))
        })
        .mount(&mock)
        .await;
    let server = start(&mock, &[("svc", SVC)], &[]).await;
    assert_eq!(server.get("/svc/ok").await.text().await.unwrap(), UPSTREAM_JSON);
    let error = expect_error(server.get("/svc/echo").await, 400, "upstream").await;
    let body = error["body"].as_str().unwrap();
    assert!(body.contains("[REDACTED]") && !body.contains("tok_123"), "{body}");
}
