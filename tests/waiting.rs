//! Scripts that wait on the network hold no thread: many waits at once, a caller that leaves, a
//! deadline that passes during a wait, computing after waiting, and several requests at once; and the
//! server opens as many files as so many waiting calls need.

mod common;

use std::time::Duration;

use common::{Server, expect_error, json};
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SLOW: &str = r#"const META = #{
    title: "Slow", description: "an API that takes its time", secrets: ["SLOW_TOKEN"], auth: "bearer",
    base_url: "https://slow.invalid",
};
fn main(endpoint, method, data) {
    let answer = api::call(global::META, endpoint, method, data);
    if endpoint == "/then-compute" {
        let n = 0;
        for i in 0..200000 { n += i; }
        answer.sum = n;
    }
    if endpoint == "/then-call" { api::call(global::META, "/after", "GET", ()); }
    if endpoint == "/then-spin" { loop { } }
    answer
}"#;

const FAN: &str = r#"const META = #{
    title: "Fan", description: "several requests at once", base_url: "https://fan.invalid",
};
fn main(endpoint, method, data) {
    let requests = [];
    for p in data.paths { requests.push(#{ url: data.base + p, headers: #{ "x-n": p } }); }
    let answers = [];
    for response in http::parallel(requests) { answers.push(response.json); }
    answers
}"#;

async fn start(mock: &MockServer, servers: &[(&str, &str)]) -> Server {
    let uri = mock.uri();
    Server::start_with(servers, &[], &[("SLOW_BASE_URL", &uri), ("SLOW_TOKEN", "tok_slow"), ("FAN_BASE_URL", &uri)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_scripts_waiting_on_a_slow_upstream_hold_no_threads() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/slow"))
        .and(header("authorization", "Bearer tok_slow"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})).set_delay(Duration::from_secs(2)))
        .mount(&mock)
        .await;
    let server = start(&mock, &[("slow", SLOW)]).await;
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let calls: Vec<_> = (0..1000)
        .map(|_| {
            let request = client.get(server.url("/slow/slow")).send();
            tokio::spawn(async move {
                let response = request.await.unwrap();
                (response.status().as_u16(), response.text().await.unwrap())
            })
        })
        .collect();
    // While (most of) the calls wait on the upstream, count the server's threads.
    let mut most = 0;
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        most = most.max(server.threads());
    }
    for call in calls {
        let (status, body) = call.await.unwrap();
        assert_eq!((status, body.as_str()), (200, r#"{"ok":true}"#));
    }
    assert_eq!(mock.received_requests().await.unwrap().len(), 1000);
    assert!(most < 32, "{most} threads while 1000 scripts waited");
}

#[tokio::test]
async fn a_waiting_script_stops_when_its_caller_leaves() {
    let mock = MockServer::start().await;
    Mock::given(path("/then-call"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})).set_delay(Duration::from_millis(1500)))
        .mount(&mock)
        .await;
    Mock::given(path("/after")).respond_with(ResponseTemplate::new(200).set_body_json(json!({}))).mount(&mock).await;
    let server = start(&mock, &[("slow", SLOW)]).await;
    let gone = server.client.get(server.url("/slow/then-call")).timeout(Duration::from_millis(300)).send().await;
    assert!(gone.is_err(), "the caller was meant to give up first");
    // Long after the upstream answered, the script must not have gone on to its next call.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let paths: Vec<String> = mock.received_requests().await.unwrap().iter().map(|r| r.url.path().to_owned()).collect();
    assert_eq!(paths, ["/then-call"]);
    // The server is fine and serves the next caller.
    let (status, _) = json(server.get("/echo/x").await).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_deadline_that_passes_during_a_wait_is_a_timeout() {
    let mock = MockServer::start().await;
    Mock::given(path("/slow"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})).set_delay(Duration::from_secs(3)))
        .mount(&mock)
        .await;
    let server = start(&mock, &[("slow", SLOW)]).await;
    let response = server.client.get(server.url("/slow/slow")).header("x-timeout-ms", "300").send().await.unwrap();
    let error = expect_error(response, 504, "timeout").await;
    assert!(!error.to_string().contains("tok_slow"));
}

#[tokio::test]
async fn a_script_computes_after_its_wait() {
    let mock = MockServer::start().await;
    Mock::given(path("/then-compute"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .mount(&mock)
        .await;
    let server = start(&mock, &[("slow", SLOW)]).await;
    let (status, body) = json(server.get("/slow/then-compute").await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"ok": true, "sum": 19_999_900_000_i64}));
}

#[tokio::test]
async fn parallel_requests_come_back_in_order() {
    let mock = MockServer::start().await;
    for (p, delay) in [("/a", 300), ("/b", 0), ("/c", 150)] {
        Mock::given(path(p))
            .and(header("x-n", p))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({ "path": p })).set_delay(Duration::from_millis(delay)),
            )
            .mount(&mock)
            .await;
    }
    let server = start(&mock, &[("fan", FAN)]).await;
    let data = json!({"base": mock.uri(), "paths": ["/a", "/b", "/c"]});
    let response = server.client.post(server.url("/fan")).json(&json!({ "data": data })).send().await;
    let (status, body) = json(response.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!([{"path": "/a"}, {"path": "/b"}, {"path": "/c"}]));
    assert_eq!(mock.received_requests().await.unwrap().len(), 3);
}

#[tokio::test]
async fn scripts_that_compute_without_end_after_their_wait_hold_up_no_one_else() {
    let mock = MockServer::start().await;
    Mock::given(path("/then-spin"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&mock)
        .await;
    let server = start(&mock, &[("slow", SLOW)]).await;
    // More spinners than request workers: at least one worker has one that has waited, whose run can
    // no longer move elsewhere.
    let spinning: Vec<_> = (0..4)
        .map(|_| {
            let request = server.client.get(server.url("/slow/then-spin")).header("x-timeout-ms", "4000").send();
            tokio::spawn(async move { request.await.unwrap() })
        })
        .collect();
    while mock.received_requests().await.unwrap().len() < 4 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..20 {
        let (status, _) = json(server.get("/echo/meanwhile").await).await;
        assert_eq!(status, 200);
    }
    assert!(spinning.iter().all(|call| !call.is_finished()), "echo answered only after the spinning stopped");
    // Each is stopped by whichever limit it reaches first.
    for call in spinning {
        let (status, body) = json(call.await.unwrap()).await;
        let stopped = (status, body["error"]["type"].as_str());
        assert!(stopped == (504, Some("timeout")) || stopped == (500, Some("limit_exceeded")), "{status} {body}");
    }
}

/// The README's open-file example, run as written: the limit it sets, the lines it shows in the log.
#[tokio::test]
async fn serve_raises_its_open_file_limit_and_says_when_the_hard_limit_is_low() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let example = readme.split("raises its limit of\nopen files").nth(1).unwrap();
    let example = example.split("```console\n").nth(1).unwrap().split("```").next().unwrap();
    let mut lines = example.lines();
    let command: Vec<&str> = lines.next().unwrap().strip_prefix("$ ").unwrap().split_whitespace().collect();
    assert_eq!(command[2..], ["switchboard", "serve"]);
    let expected: Vec<&str> = lines.map(|line| line.split_once(' ').unwrap().1).collect();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = ["serve", "--listen", "127.0.0.1:0", "--data", data.to_str().unwrap()];
    let server = Server::spawn_under(&[command[0], command[1], "--"], dir, &args, &[]);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap();
    let open_files: Vec<&str> =
        limits.lines().find(|l| l.starts_with("Max open files")).unwrap().split_whitespace().collect();
    let hard = command[1].rsplit(':').next().unwrap();
    assert_eq!(open_files[3..5], [hard, hard], "{limits}");
    let mut logs = server.logs();
    for _ in 0..100 {
        if expected.iter().all(|line| logs.contains(line)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        logs = server.logs();
    }
    for line in expected {
        assert!(logs.contains(line), "{line}\nnot in\n{logs}");
    }
}
