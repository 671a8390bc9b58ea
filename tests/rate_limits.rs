//! Outbound rate limits: a declared `META.api.rate_limit` queues calls instead of failing them, and an
//! upstream's `X-RateLimit-Remaining: 0` or `Retry-After` makes later calls wait. The mock records when
//! each request arrived; assertions are on those arrival times against the limit, never on how fast
//! anything ran.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Server, expect_error, json};
use serde_json::json;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const ADMIN: &str = "adm-rl-4c2d9e";

/// A mock that records each request's arrival, and answers with `answer(n)` for the n-th (0-based).
async fn recording(
    answer: impl Fn(usize) -> ResponseTemplate + Send + Sync + 'static,
) -> (MockServer, Arc<Mutex<Vec<Instant>>>) {
    let mock = MockServer::start().await;
    let arrivals: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let seen = arrivals.clone();
    Mock::given(wiremock::matchers::any())
        .respond_with(move |_: &Request| {
            let mut seen = seen.lock().unwrap();
            seen.push(Instant::now());
            answer(seen.len() - 1)
        })
        .mount(&mock)
        .await;
    (mock, arrivals)
}

fn script(api: &str) -> String {
    format!(
        r#"const META = #{{ title: "Limited", description: "d", base_url: "https://api.limited.invalid/v1",
    timeout_ms: 5000, api: #{{ {api} }} }};
fn main(endpoint, method, data) {{ api::call(global::META, endpoint, method, data) }}"#
    )
}

#[tokio::test]
async fn a_declared_limit_queues_calls_and_never_exceeds_it() {
    let (mock, arrivals) = recording(|n| ResponseTemplate::new(200).set_body_json(json!({ "n": n }))).await;
    let uri = mock.uri();
    let source = script("rate_limit: #{ requests: 3, per_ms: 400 }");
    let server = Server::start_with(&[("limited", &source)], &[], &[("LIMITED_BASE_URL", uri.as_str())]);
    let paths: Vec<String> = (0..9).map(|i| format!("/limited/item/{i}")).collect();
    let responses = futures_util::future::join_all(paths.iter().map(|path| server.get(path))).await;
    for response in responses {
        assert_eq!(response.status(), 200, "every call succeeds: none is refused for the limit");
    }
    let mut times = arrivals.lock().unwrap().clone();
    assert_eq!(times.len(), 9);
    times.sort();
    // No window of 400 ms holds more than 3 arrivals. The limit counts sends; what the mock sees also
    // carries the way from send to arrival through both sides' schedulers, which on a loaded machine
    // takes tens of milliseconds: that much is allowed, a bunching of sends is not.
    for i in 3..times.len() {
        let gap = times[i] - times[i - 3];
        assert!(gap >= Duration::from_millis(340), "requests {} and {i} arrived {gap:?} apart", i - 3);
    }
}

#[tokio::test]
async fn upstream_hints_make_later_calls_wait() {
    // The first answer says no requests remain for 1 s; the second is a 429 asking for 1 s more.
    let (mock, arrivals) = recording(|n| match n {
        0 => ResponseTemplate::new(200)
            .set_body_json(json!({ "n": 0 }))
            .insert_header("x-ratelimit-remaining", "0")
            .insert_header("x-ratelimit-reset", "1"),
        1 => ResponseTemplate::new(429).insert_header("retry-after", "1"),
        n => ResponseTemplate::new(200).set_body_json(json!({ "n": n })),
    })
    .await;
    let uri = mock.uri();
    let source = script("max_retries: 0");
    let server = Server::start_with(&[("limited", &source)], &[], &[("LIMITED_BASE_URL", uri.as_str())]);
    assert_eq!(json(server.get("/limited/a").await).await, (200, json!({ "n": 0 })));
    expect_error(server.get("/limited/b").await, 429, "rate_limited").await;
    assert_eq!(json(server.get("/limited/c").await).await, (200, json!({ "n": 2 })));
    let times = arrivals.lock().unwrap().clone();
    assert_eq!(times.len(), 3);
    assert!(times[1] - times[0] >= Duration::from_millis(950), "waited for the reset: {:?}", times[1] - times[0]);
    assert!(times[2] - times[1] >= Duration::from_millis(950), "waited for Retry-After: {:?}", times[2] - times[1]);
}

#[tokio::test]
async fn a_slot_beyond_the_deadline_fails_at_once_without_sending() {
    let (mock, arrivals) = recording(|_| ResponseTemplate::new(200).set_body_json(json!({}))).await;
    let uri = mock.uri();
    let source = script("rate_limit: #{ requests: 1, per_ms: 60000 }");
    let server = Server::start_with(&[("limited", &source)], &[], &[("LIMITED_BASE_URL", uri.as_str())]);
    assert_eq!(server.get("/limited/first").await.status(), 200);
    let error = expect_error(server.get("/limited/second").await, 429, "rate_limited").await;
    assert!(error["message"].as_str().unwrap().contains("rate limit leaves no slot"), "{error}");
    assert!(error["retry_after"].as_u64().unwrap() >= 55, "{error}");
    assert_eq!(arrivals.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn bad_rate_limits_are_refused_when_the_script_is_saved() {
    let server = Server::start_with(&[], &[], &[("SWITCHBOARD_ADMIN_TOKEN", ADMIN)]);
    for (limit, says) in [
        ("rate_limit: #{ requests: 0, per_ms: 1000 }", "'requests' must be a whole number from 1"),
        ("rate_limit: #{ requests: 10 }", "'per_ms' is required"),
        ("rate_limit: #{ requests: 10, per_ms: 1000, burst: 3 }", "unknown key 'burst'"),
        ("rate_limit: 10", "META.api.rate_limit must be a map"),
    ] {
        let put = server.client.put(server.url("/api/servers/bad")).bearer_auth(ADMIN).body(script(limit));
        let (status, body) = json(put.send().await.unwrap()).await;
        assert_eq!(status, 422, "{limit}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(says), "{limit}: {body}");
    }
    let per_call = r#"const META = #{ title: "t", description: "d", base_url: "https://x.invalid" };
fn main(e, m, d) { api::call(global::META, e, m, d, #{ rate_limit: #{ requests: 1, per_ms: 10 } }) }"#;
    let put = server.client.put(server.url("/api/servers/percall")).bearer_auth(ADMIN).body(per_call);
    assert!(put.send().await.unwrap().status().is_success());
    let error = expect_error(server.get("/percall/x").await, 500, "script_error").await;
    assert!(error["message"].as_str().unwrap().contains("rate_limit is the server's"), "{error}");
}

/// The README's rate-limit section: its script, ten calls at once, three per second at the API.
#[tokio::test]
async fn the_readme_rate_limit_example_runs_as_written() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme.split("\n### Outbound rate limits\n").nth(1).unwrap().split("\n### ").next().unwrap();
    let source = section.split("```rhai\n").nth(1).unwrap().split("```").next().unwrap();
    let path = section.split("`curl localhost:8080").nth(1).unwrap().split('`').next().unwrap();
    let (mock, arrivals) = recording(|n| ResponseTemplate::new(200).set_body_json(json!({ "n": n }))).await;
    let uri = mock.uri();
    let env = [("NOTES_TOKEN", "nt-7e6d5c"), ("NOTES_BASE_URL", uri.as_str())];
    let server = Server::start_with(&[("notes", source)], &[], &env);
    let responses = futures_util::future::join_all((0..10).map(|_| server.get(path))).await;
    assert!(responses.iter().all(|r| r.status() == 200));
    let mut times = arrivals.lock().unwrap().clone();
    times.sort();
    assert_eq!(times.len(), 10);
    for i in 3..times.len() {
        assert!(times[i] - times[i - 3] >= Duration::from_millis(970), "{:?}", times[i] - times[i - 3]);
    }
    let received = mock.received_requests().await.unwrap();
    assert!(received.iter().all(|r| r.url.path() == "/v1/notes/1"));
}
