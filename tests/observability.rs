//! Observability as an operator sees it: `/metrics` read by Prometheus' own Python parser, invocation
//! records through the admin API, usage and cost, request ids and trace context end to end through a
//! recording upstream on 127.0.0.1, and secrets nowhere in any of it.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Server, expect_error, json};
use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "sk_live_Zq9xDistinctive7731";
const HOOK_SECRET: &str = "whk_Distinctive_4411";

/// A priced API: every request costs 0.5 USD, except `create_thing`'s, which cost 2.
const PRICED: &str = r#"const META = #{
    title: "Priced", description: "a priced API", secrets: ["PRICED_TOKEN"], auth: "bearer",
    base_url: "https://api.invalid/v1",
    operations: #{ create_thing: #{ description: "Create a thing.", method: "POST", endpoint: "/things",
        input: #{ "type": "object", "properties": #{ "name": #{ "type": "string" } } } } },
    pricing: #{ currency: "USD", source: "https://example.com/pricing", per_call: 0.5,
                operations: #{ create_thing: 2.0 } },
};
fn main(endpoint, method, data) { api::call(global::META, endpoint, method, data) }"#;

const FAILING: &str = r#"const META = #{ title: "Failing", description: "always fails" };
fn main(endpoint, method, data) { let x = (); x.nothing() }"#;

const HOOKS: &str = r#"const META = #{
    title: "Hooks", description: "receives events", secrets: ["HOOK_SECRET"],
    webhook: #{ scheme: "github", secret: "HOOK_SECRET" },
};
fn main(endpoint, method, data) { () }
fn webhook(event) { #{ seen: event.id } }"#;

async fn upstream() -> MockServer {
    let mock = MockServer::start().await;
    Mock::given(path("/v1/fail"))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({ "error": "down" })))
        .mount(&mock)
        .await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "ok": true })))
        .mount(&mock)
        .await;
    mock
}

async fn start(mock: &MockServer, extra: &[&str], env: &[(&str, &str)]) -> Server {
    let base = format!("{}/v1", mock.uri());
    let mut env = env.to_vec();
    env.extend([("PRICED_BASE_URL", base.as_str()), ("PRICED_TOKEN", SECRET), ("HOOK_SECRET", HOOK_SECRET)]);
    Server::start_with(&[("priced", PRICED), ("failing", FAILING), ("hooks", HOOKS)], extra, &env)
}

/// The Python `prometheus_client` from the peers' venv (its text parser judges `/metrics`).
fn python() -> Option<std::path::PathBuf> {
    common::python_with("prometheus_client", &[])
}

/// One sample of a scrape: its name, labels and value.
type Sample = (String, BTreeMap<String, String>, f64);

const PARSE: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
print(json.dumps([[s.name, s.labels, s.value] for f in text_string_to_metric_families(sys.stdin.read()) for s in f.samples]))
"#;

/// `/metrics`, parsed by `prometheus_client`'s OpenMetrics parser (which refuses malformed text).
async fn scrape(server: &Server, python: &std::path::Path) -> (String, Vec<Sample>) {
    let response = server.get("/metrics").await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let mut child = std::process::Command::new(python)
        .args(["-c", PARSE])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the parser refused /metrics: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    (text, serde_json::from_slice(&output.stdout).unwrap())
}

/// The sum of the samples named `name` whose labels include `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
        .map(|(_, _, v)| v)
        .sum()
}

fn github_headers(body: &str, delivery: &str) -> Vec<(&'static str, String)> {
    let mut mac = Hmac::<Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    vec![
        ("content-type", "application/json".into()),
        ("x-github-delivery", delivery.into()),
        ("x-hub-signature-256", format!("sha256={}", hex::encode(mac.finalize().into_bytes()))),
    ]
}

async fn deliver(server: &Server, headers: &[(&str, String)], body: &str) -> reqwest::Response {
    let mut request = server.client.post(server.url("/webhooks/hooks")).body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.send().await.unwrap()
}

async fn mcp_call(server: &Server, name: &str, arguments: Value) -> Value {
    let call = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": { "name": name, "arguments": arguments } });
    let (status, body) = json(server.mcp(call.to_string()).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    body["result"].clone()
}

/// The records `query` selects, once `ready` holds for them (records are written in batches, off the
/// invocation path); bounded, so a record that never comes fails the test instead of hanging it.
async fn records_when(server: &Server, query: &str, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let mut last = Vec::new();
    for _ in 0..200 {
        let (status, body) = json(server.admin_get(&format!("/api/invocations?{query}")).await).await;
        assert_eq!(status, 200, "{body}");
        last = body["invocations"].as_array().cloned().unwrap();
        if ready(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the records of ?{query} never became ready: {last:?}");
}

#[tokio::test]
async fn metrics_count_calls_by_entry_point_and_outcome() {
    let Some(python) = python() else { return };
    let mock = upstream().await;
    let server = start(&mock, &[], &[]).await;
    for _ in 0..3 {
        assert_eq!(server.get("/echo/hi").await.status(), 200);
    }
    expect_error(server.get("/no_such_server/x").await, 404, "not_found").await;
    expect_error(server.get("/failing/x").await, 500, "script_error").await;
    expect_error(server.get("/priced/fail").await, 500, "upstream").await;
    assert_eq!(server.get("/priced/things").await.status(), 200);
    let result = mcp_call(&server, "echo", json!({ "endpoint": "/via-mcp" })).await;
    assert_eq!(result["isError"], false, "{result}");
    let result = mcp_call(&server, "failing", json!({})).await;
    assert_eq!(result["isError"], true, "{result}");
    let body = r#"{"action":"opened"}"#;
    assert_eq!(deliver(&server, &github_headers(body, "d-1"), body).await.status(), 200);
    assert_eq!(deliver(&server, &github_headers(body, "d-1"), body).await.status(), 200);
    let mut forged = github_headers(body, "d-2");
    forged[2].1 = format!("sha256={}", "0".repeat(64));
    expect_error(deliver(&server, &forged, body).await, 401, "unauthorized").await;
    // A `switchboard call` beside the server is recorded, but counted by its own process only.
    let output = common::cli(&server.data_dir(), &["call", "echo", "/from-cli"], "");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    let (_, samples) = scrape(&server, &python).await;
    let calls = |labels: &[(&str, &str)]| value(&samples, "switchboard_invocations_total", labels);
    assert_eq!(calls(&[("server", "echo"), ("via", "http"), ("outcome", "ok")]), 3.0);
    assert_eq!(calls(&[("server", "unknown"), ("via", "http"), ("outcome", "not_found")]), 1.0);
    assert_eq!(calls(&[("server", "failing"), ("via", "http"), ("outcome", "script_error")]), 1.0);
    assert_eq!(calls(&[("server", "priced"), ("via", "http"), ("outcome", "upstream")]), 1.0);
    assert_eq!(calls(&[("server", "echo"), ("via", "mcp"), ("outcome", "ok")]), 1.0);
    assert_eq!(calls(&[("server", "failing"), ("via", "mcp"), ("outcome", "script_error")]), 1.0);
    assert_eq!(calls(&[("server", "hooks"), ("via", "webhook"), ("outcome", "ok")]), 1.0);
    assert_eq!(calls(&[("via", "cli")]), 0.0);
    assert_eq!(value(&samples, "switchboard_invocation_duration_seconds_count", &[("server", "echo")]), 4.0);
    let deliveries =
        |result| value(&samples, "switchboard_webhook_deliveries_total", &[("server", "hooks"), ("result", result)]);
    assert_eq!((deliveries("accepted"), deliveries("duplicate"), deliveries("bad_signature")), (1.0, 1.0, 1.0));
    let host = mock.address().to_string();
    let upstream = |status| {
        value(
            &samples,
            "switchboard_upstream_requests_total",
            &[("server", "priced"), ("host", &host), ("status", status)],
        )
    };
    assert_eq!(upstream("2xx"), 1.0);
    // The 500 was not retried (only 429, 502, 503 and 504 are).
    assert_eq!(upstream("5xx"), 1.0);
    assert_eq!(value(&samples, "switchboard_upstream_duration_seconds_count", &[("server", "priced")]), 2.0);
    assert_eq!(value(&samples, "switchboard_invocations_in_flight", &[]), 0.0);
    assert_eq!(value(&samples, "switchboard_servers_loaded", &[]), 4.0);
    assert_eq!(value(&samples, "switchboard_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);
    // The CLI's call is in the records all the same.
    let cli = records_when(&server, "via=cli", |records| !records.is_empty()).await;
    assert_eq!((cli[0]["server"].as_str(), cli[0]["status"].as_u64()), (Some("echo"), Some(200)), "{cli:?}");
}

#[tokio::test]
async fn a_flood_of_unknown_names_and_endpoints_leaves_the_label_set_bounded() {
    let Some(python) = python() else { return };
    let mock = upstream().await;
    let server = start(&mock, &[], &[]).await;
    let paths: Vec<String> = (0..10_000)
        .map(|i| if i % 2 == 0 { format!("/flood{i}/x") } else { format!("/echo/flood{i}?q={i}") })
        .collect();
    let statuses: Vec<u16> = futures_util::stream::iter(paths)
        .map(|path| {
            let (client, url) = (server.client.clone(), server.url(&path));
            async move { client.get(url).send().await.unwrap().status().as_u16() }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert_eq!(statuses.iter().filter(|s| **s == 404).count(), 5_000);
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 5_000);
    let (text, after) = scrape(&server, &python).await;
    assert!(!text.contains("flood"), "a caller-chosen string became a label");
    let calls = |labels: &[(&str, &str)]| value(&after, "switchboard_invocations_total", labels);
    assert_eq!(calls(&[("server", "unknown"), ("outcome", "not_found")]), 5_000.0);
    assert_eq!(calls(&[("server", "echo"), ("outcome", "ok")]), 5_000.0);
    // Two servers (echo and unknown) and two outcomes, whatever the names and endpoints were.
    let servers: std::collections::BTreeSet<&str> =
        after.iter().filter_map(|(_, labels, _)| labels.get("server").map(String::as_str)).collect();
    assert_eq!(servers, ["echo", "unknown"].into(), "{text}");
    let label_sets: std::collections::BTreeSet<(&str, &BTreeMap<String, String>)> = after
        .iter()
        .filter(|(name, _, _)| name == "switchboard_invocations_total")
        .map(|(name, labels, _)| (name.as_str(), labels))
        .collect();
    assert_eq!(label_sets.len(), 2, "{text}");
}

#[tokio::test]
async fn records_follow_success_failure_chaining_and_webhooks() {
    let mock = upstream().await;
    let server = start(&mock, &[], &[]).await;
    let stored = server.get("/echo?data=%7B%22n%22%3A1%7D&store=1").await;
    let output = stored.headers()["x-output-cid"].to_str().unwrap().to_owned();
    let script = stored.headers()["x-server-cid"].to_str().unwrap().to_owned();
    assert_eq!(server.get(&format!("/echo?endpoint=/next&input={output}")).await.status(), 200);
    expect_error(server.get("/failing/x").await, 500, "script_error").await;
    let body = r#"{"action":"closed"}"#;
    let delivered = deliver(&server, &github_headers(body, "d-9"), body).await;
    let request_id = delivered.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(delivered.status(), 200);

    let echo = records_when(&server, "server=echo", |r| r.len() == 2).await;
    let (chained, storing) = (&echo[0], &echo[1]);
    assert_eq!(chained["input_cid"], output.as_str(), "{chained}");
    assert_eq!(storing["output_cid"], output.as_str(), "{storing}");
    for record in &echo {
        assert_eq!((record["cid"].as_str(), record["via"].as_str()), (Some(script.as_str()), Some("http")));
        assert_eq!((record["status"].as_u64(), &record["error_type"]), (Some(200), &Value::Null));
        assert!(record["duration_ms"].as_f64().unwrap() >= 0.0);
        assert_eq!(record["upstream_calls"], 0);
        assert_eq!(record["request_id"].as_str().map(str::len), Some(36), "{record}");
        assert_eq!(record["trace_id"].as_str().map(str::len), Some(32), "{record}");
        for field in ["data", "body", "output", "endpoint"] {
            assert!(record.get(field).is_none(), "a record holds no payload: {record}");
        }
    }
    let failed = records_when(&server, "status=error", |r| !r.is_empty()).await;
    assert_eq!((failed[0]["server"].as_str(), failed[0]["status"].as_u64()), (Some("failing"), Some(500)));
    assert_eq!(failed[0]["error_type"], "script_error");
    assert_eq!(records_when(&server, "status=500&server=failing", |r| r.len() == 1).await.len(), 1);
    assert!(records_when(&server, "status=ok&server=failing", |_| true).await.is_empty());
    let hooks = records_when(&server, "via=webhook", |r| !r.is_empty()).await;
    assert_eq!(
        (hooks[0]["server"].as_str(), hooks[0]["request_id"].as_str()),
        (Some("hooks"), Some(request_id.as_str()))
    );
    // The event links to the invocation that handled it.
    let response = server.client.get(server.url("/api/webhooks/hooks/events")).bearer_auth(server.admin_token());
    let (_, events) = json(response.send().await.unwrap()).await;
    assert_eq!(events["events"][0]["outcome"]["request_id"], request_id.as_str(), "{events}");
    // Newest first, limited, and for the admin only.
    let newest = records_when(&server, "limit=2", |r| r.len() == 2).await;
    assert_eq!(newest[0]["via"], "webhook");
    expect_error(server.get("/api/invocations").await, 401, "unauthorized").await;
    for bad in ["status=maybe", "via=pigeon", "since=yesterday", "limit=-1", "colour=red"] {
        let response =
            server.client.get(server.url(&format!("/api/invocations?{bad}"))).bearer_auth(server.admin_token());
        expect_error(response.send().await.unwrap(), 400, "bad_request").await;
    }
}

#[tokio::test]
async fn usage_and_cost_sum_the_calls_of_a_priced_server() {
    let mock = upstream().await;
    let server = start(&mock, &[], &[]).await;
    let post = |endpoint: &'static str| {
        let request = server.client.post(server.url(&format!("/priced{endpoint}"))).json(&json!({ "name": "x" }));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(post("/things").await, 200);
    assert_eq!(post("/things").await, 200);
    let result = mcp_call(&server, "priced__create_thing", json!({ "name": "y" })).await;
    assert_eq!(result["isError"], false, "{result}");
    assert_eq!(server.get("/priced/things").await.status(), 200);
    assert_eq!(server.get("/priced/fail").await.status(), 500);
    records_when(&server, "server=priced", |r| r.len() == 5).await;

    let response = server.client.get(server.url("/api/usage?server=priced")).bearer_auth(server.admin_token());
    let (status, body) = json(response.send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["usage"],
        json!([
            { "server": "priced", "operation": null, "calls": 2, "errors": 1, "cost": 1.0, "currency": "USD" },
            { "server": "priced", "operation": "create_thing", "calls": 3, "errors": 0, "cost": 6.0, "currency": "USD" },
        ])
    );
    let future = "/api/usage?server=priced&since=2999-01-01T00:00:00Z";
    let (_, body) =
        json(server.client.get(server.url(future)).bearer_auth(server.admin_token()).send().await.unwrap()).await;
    assert_eq!(body["usage"], json!([]));
    if let Some(python) = python() {
        let (_, samples) = scrape(&server, &python).await;
        assert_eq!(value(&samples, "switchboard_cost_total", &[("server", "priced"), ("currency", "USD")]), 7.0);
    }
    // The server's last hour, from the same records.
    let (_, shown) = json(server.get("/api/servers/priced").await).await;
    assert_eq!((shown["stats"]["calls"].as_u64(), shown["stats"]["errors"].as_u64()), (Some(5), Some(1)), "{shown}");
    assert_eq!(shown["stats"]["error_rate"], 0.2);
    assert!(shown["stats"]["p50_ms"].as_f64().unwrap() <= shown["stats"]["p99_ms"].as_f64().unwrap());
}

#[tokio::test]
async fn a_price_for_an_undeclared_operation_is_refused_when_saved() {
    let mock = upstream().await;
    let server = start(&mock, &[], &[]).await;
    let source = PRICED.replace("operations: #{ create_thing: 2.0 }", "operations: #{ delete_thing: 2.0 }");
    let response =
        server.client.put(server.url("/api/servers/mispriced")).bearer_auth(server.admin_token()).body(source).send();
    let error = expect_error(response.await.unwrap(), 422, "invalid_script").await;
    assert!(error["message"].as_str().unwrap().contains("'delete_thing' is not an operation"), "{error}");
}

#[tokio::test]
async fn request_ids_and_trace_context_reach_the_upstream_and_the_record() {
    let mock = upstream().await;
    let server = start(&mock, &[], &[]).await;
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let response = server
        .client
        .get(server.url("/priced/things"))
        .header("x-request-id", "order-42.retry_1")
        .header("traceparent", parent)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "order-42.retry_1");
    let received = mock.received_requests().await.unwrap();
    let sent = received.last().unwrap();
    assert_eq!(sent.headers["x-request-id"], "order-42.retry_1");
    let traceparent = sent.headers["traceparent"].to_str().unwrap();
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!((parts[0], parts[1], parts[3]), ("00", "4bf92f3577b34da6a3ce929d0e0e4736", "01"), "{traceparent}");
    assert!(parts[2].len() == 16 && parts[2] != "00f067aa0ba902b7", "the upstream request has a span of its own");
    let records = records_when(&server, "server=priced", |r| !r.is_empty()).await;
    assert_eq!(records[0]["request_id"], "order-42.retry_1");
    assert_eq!(records[0]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(records[0]["upstream_calls"], 1);
    assert_eq!(records[0]["upstream_bytes"], 11, "{records:?}");

    // An id a caller should not have chosen is replaced, and a broken traceparent starts a new trace.
    let response = server
        .client
        .get(server.url("/priced/things"))
        .header("x-request-id", "x".repeat(65))
        .header("traceparent", "00-zz-00f067aa0ba902b7-01")
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 36);
    let received = mock.received_requests().await.unwrap();
    let sent = received.last().unwrap();
    assert_eq!(sent.headers["x-request-id"], id.as_str());
    assert!(!sent.headers["traceparent"].to_str().unwrap().contains("4bf92f3577b34da6a3ce929d0e0e4736"));
    // MCP calls answer with a request id too.
    let call =
        json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": { "name": "echo", "arguments": {} } });
    let response = server.mcp(call.to_string()).header("x-request-id", "mcp-call-1").send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"], "mcp-call-1");
    let mcp = records_when(&server, "via=mcp", |r| !r.is_empty()).await;
    assert_eq!(mcp[0]["request_id"], "mcp-call-1");
}

#[tokio::test]
async fn no_secret_value_reaches_metrics_records_or_json_logs() {
    let Some(python) = python() else { return };
    let mock = upstream().await;
    // RUST_LOG is honoured when SWITCHBOARD_LOG is not set.
    let server = start(&mock, &["--log-format", "json"], &[("RUST_LOG", "info,switchboard=debug")]).await;
    let called = server.client.get(server.url("/priced/things")).header("x-request-id", "secret-test-1").send();
    assert_eq!(called.await.unwrap().status(), 200);
    assert_eq!(server.get("/priced/fail").await.status(), 500);
    let body = r#"{"action":"opened"}"#;
    assert_eq!(deliver(&server, &github_headers(body, "d-s"), body).await.status(), 200);
    let sent = mock.received_requests().await.unwrap();
    assert_eq!(sent[0].headers["authorization"], format!("Bearer {SECRET}").as_str(), "the secret was used");

    let (metrics, _) = scrape(&server, &python).await;
    let records = records_when(&server, "limit=100", |r| r.len() >= 3).await;
    let records = serde_json::to_string(&records).unwrap();
    let logs = server.logs();
    for (what, text) in [("metrics", &metrics), ("records", &records), ("logs", &logs)] {
        for secret in [SECRET, HOOK_SECRET] {
            assert!(!text.contains(secret), "a secret in the {what}");
        }
    }
    let lines: Vec<Value> = logs
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}")))
        .collect();
    let outbound = lines.iter().find(|line| line["fields"]["message"] == "outbound").expect("an outbound line");
    assert_eq!(outbound["span"]["request_id"], "secret-test-1", "{outbound}");
    let failed = lines.iter().find(|line| line["fields"]["message"] == "invocation failed").expect("a debug line");
    assert!(failed["span"]["request_id"].is_string(), "{failed}");
}

#[tokio::test]
async fn a_metrics_token_closes_metrics_and_records_can_be_off() {
    let mock = upstream().await;
    let server = start(&mock, &["--metrics-token", "scrape-me", "--records-max", "0"], &[]).await;
    expect_error(server.get("/metrics").await, 401, "unauthorized").await;
    let wrong = server.client.get(server.url("/metrics")).bearer_auth("nope").send().await.unwrap();
    expect_error(wrong, 401, "unauthorized").await;
    let scraped = server.client.get(server.url("/metrics")).bearer_auth("scrape-me").send().await.unwrap();
    assert_eq!(scraped.status(), 200);
    assert!(scraped.text().await.unwrap().contains("switchboard_servers_loaded"));
    assert_eq!(server.get("/echo/x").await.status(), 200);
    // Nothing is recorded, and /health stays open.
    assert!(records_when(&server, "", |_| true).await.is_empty());
    assert_eq!(server.get("/health").await.status(), 200);
}

/// The README's section.
fn readme_section() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme.split("\n## Observability\n").nth(1).expect("the README has the section");
    section.split("\n## ").next().unwrap().to_owned()
}

#[tokio::test]
async fn the_readme_lists_every_metric_served_and_its_priced_example_costs_what_it_says() {
    let section = readme_section();
    let source = section.split("```rhai\n").nth(1).unwrap().split("```").next().unwrap();
    let mock = upstream().await;
    let base = format!("{}/v1", mock.uri());
    let env = [("THINGS_BASE_URL", base.as_str()), ("THINGS_TOKEN", SECRET)];
    let server = Server::start_with(&[("things", source)], &[], &env);
    for _ in 0..2 {
        let request = server.client.post(server.url("/things/things")).json(&json!({ "name": "a" }));
        assert_eq!(request.send().await.unwrap().status(), 200);
    }
    assert_eq!(server.get("/things/things/1").await.status(), 200);
    records_when(&server, "server=things", |r| r.len() == 3).await;
    let response = server.client.get(server.url("/api/usage?server=things")).bearer_auth(server.admin_token());
    let (_, body) = json(response.send().await.unwrap()).await;
    let costs: Vec<(Value, Value)> =
        body["usage"].as_array().unwrap().iter().map(|u| (u["operation"].clone(), u["cost"].clone())).collect();
    assert_eq!(costs, [(Value::Null, json!(0.25)), (json!("create_thing"), json!(3.0))]);

    let metrics = server.get("/metrics").await.text().await.unwrap();
    let listed: Vec<&str> = section
        .lines()
        .filter_map(|line| line.strip_prefix("| `switchboard_"))
        .filter_map(|rest| rest.split('`').next())
        .collect();
    assert_eq!(listed.len(), 15, "{listed:?}");
    let families: Vec<&str> =
        listed.iter().map(|name| name.trim_end_matches("_total").trim_end_matches("_info")).collect();
    // A family shows once it has a sample; every one served is in the README's list.
    let served: Vec<&str> = metrics.lines().filter_map(|line| line.strip_prefix("# TYPE switchboard_")).collect();
    assert!(served.len() >= 8, "{metrics}");
    for line in served {
        let family = line.split(' ').next().unwrap();
        assert!(families.contains(&family), "switchboard_{family} is served but not in the README");
    }
}

#[tokio::test]
async fn retention_keeps_the_newest_records() {
    let mock = upstream().await;
    let server = start(&mock, &["--records-max", "3", "--records-max-age-days", "1"], &[]).await;
    for i in 0..10 {
        assert_eq!(server.get(&format!("/echo/{i}?n={i}")).await.status(), 200);
    }
    let last = server.client.get(server.url("/echo/last")).header("x-request-id", "the-last-one").send().await.unwrap();
    assert_eq!(last.status(), 200);
    let kept = records_when(&server, "limit=100", |r| r.len() == 3 && r[0]["request_id"] == "the-last-one").await;
    assert_eq!(kept.len(), 3);
}

#[tokio::test]
async fn the_calls_answered_last_before_a_stop_are_recorded() {
    let mock = upstream().await;
    let mut server = start(&mock, &[], &[]).await;
    let last = server.client.get(server.url("/echo/last")).header("x-request-id", "just-before-the-stop");
    assert_eq!(last.send().await.unwrap().status(), 200);
    assert!(server.terminate().success());
    let store = switchboard::store::SqliteStore::open(&server.data_dir().join("store.sqlite")).unwrap();
    let records = switchboard::store::Store::records(
        &store,
        &switchboard::store::RecordFilter { limit: 10, ..Default::default() },
    )
    .unwrap();
    assert_eq!(records.first().map(|r| r.request_id.as_str()), Some("just-before-the-stop"), "{records:?}");
}

#[tokio::test]
async fn retries_and_reloads_are_counted() {
    let Some(python) = python() else { return };
    let mock = MockServer::start().await;
    Mock::given(path("/v1/flaky"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&mock)
        .await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "ok": true })))
        .mount(&mock)
        .await;
    let server = start(&mock, &[], &[]).await;
    assert_eq!(server.get("/priced/flaky").await.status(), 200);
    let script = server.dir.path().join("boot/scripts/failing.rhai");
    std::fs::write(&script, common::script("Failing", "\"fixed\"")).unwrap();
    let mut samples = Vec::new();
    for _ in 0..200 {
        samples = scrape(&server, &python).await.1;
        if value(&samples, "switchboard_reloads_total", &[("result", "ok")]) >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(value(&samples, "switchboard_reloads_total", &[("result", "ok")]), 1.0);
    assert_eq!(server.get("/failing/x").await.text().await.unwrap(), "fixed");
    assert_eq!(value(&samples, "switchboard_upstream_retries_total", &[("server", "priced")]), 1.0);
    let host = mock.address().to_string();
    let requests = |status| {
        value(
            &samples,
            "switchboard_upstream_requests_total",
            &[("server", "priced"), ("host", &host), ("status", status)],
        )
    };
    assert_eq!((requests("5xx"), requests("2xx")), (1.0, 1.0));
    let records = records_when(&server, "server=priced", |r| !r.is_empty()).await;
    assert_eq!(records[0]["upstream_calls"], 2, "both attempts were sent: {records:?}");
}

#[tokio::test]
async fn a_call_whose_caller_goes_away_is_recorded_as_cancelled() {
    let mock = MockServer::start().await;
    Mock::given(path("/v1/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(30)))
        .mount(&mock)
        .await;
    let server = start(&mock, &[], &[]).await;
    let (_, described) = json(server.admin_get("/api/servers/priced").await).await;
    let gone = server.client.get(server.url("/priced/slow")).timeout(Duration::from_millis(500)).send().await;
    assert!(gone.is_err(), "the call was to outlast its caller: {gone:?}");
    let cancelled = records_when(&server, "server=priced", |r| !r.is_empty()).await;
    assert_eq!(cancelled.len(), 1, "{cancelled:?}");
    let record = &cancelled[0];
    assert_eq!((record["status"].as_u64(), record["error_type"].as_str()), (Some(499), Some("cancelled")), "{record}");
    assert_eq!(record["cid"], described["cid"], "{record}");
    assert_eq!(records_when(&server, "status=499", |r| r.len() == 1).await.len(), 1);
}
