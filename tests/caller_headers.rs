//! Caller headers: only the names `META.api.pass_headers` allows reach the API; everything else stays at
//! the gateway, the caller's own `Authorization` included.

mod common;

use common::{Server, json};
use serde_json::json;

const ADMIN: &str = "adm-ch-5e4f3a";

/// The README's Caller headers section: its script, and its two curl lines as written.
#[tokio::test]
async fn allowed_headers_pass_through_and_others_do_not() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme.split("\n### Caller headers\n").nth(1).unwrap().split("\n### ").next().unwrap();
    let block = |fence: &str| section.split(fence).nth(1).unwrap().split("```").next().unwrap().to_owned();
    let (source, shell) = (block("```rhai\n"), block("```sh\n").replace("\\\n", ""));

    let mock = common::ok_upstream().await;
    let uri = mock.uri();
    let env = [("PAYMENTS_KEY", "pay-key-8d7c"), ("PAYMENTS_BASE_URL", uri.as_str())];
    let server = Server::start_with(&[("payments", &source)], &[], &env);
    for line in shell.lines().filter(|line| line.starts_with("curl")) {
        let path = line.split("localhost:8080").nth(1).unwrap().split_whitespace().next().unwrap();
        let mut request = server.client.post(server.url(path)).bearer_auth("caller-token-1");
        for header in line.split("-H '").skip(1).map(|rest| rest.split('\'').next().unwrap()) {
            let (name, value) = header.split_once(": ").unwrap();
            request = request.header(name, value);
        }
        let body = line.split("-d '").nth(1).unwrap().split('\'').next().unwrap().to_owned();
        let (status, answer) = json(request.body(body).send().await.unwrap()).await;
        assert_eq!((status, answer), (200, json!({ "ok": true })), "{line}");
    }
    let received = mock.received_requests().await.unwrap();
    assert_eq!(received.len(), 2);
    for (request, key) in received.iter().zip(["order-1182", "order-1183"]) {
        assert_eq!(request.url.path(), "/v1/charges");
        assert_eq!(request.headers.get("idempotency-key").unwrap(), key);
        assert_eq!(request.headers.get("authorization").unwrap(), "Bearer pay-key-8d7c", "the server's credential");
        assert!(request.headers.get("x-debug").is_none(), "a header not allowed is not forwarded");
        assert_eq!(request.body, b"amount=500");
    }
}

#[tokio::test]
async fn a_server_without_pass_headers_forwards_none_and_a_call_can_narrow_the_list() {
    let mock = common::ok_upstream().await;
    let uri = mock.uri();
    let plain = r#"const META = #{ title: "Plain", description: "d", base_url: "https://plain.invalid" };
fn main(endpoint, method, data) { api::call(global::META, endpoint, method, data) }"#;
    let narrow = r#"const META = #{ title: "Narrow", description: "d", base_url: "https://narrow.invalid",
    api: #{ pass_headers: ["X-A", "X-B"] } };
fn main(endpoint, method, data) { api::call(global::META, endpoint, method, data, #{ pass_headers: ["x-b"] }) }"#;
    let env = [("PLAIN_BASE_URL", uri.as_str()), ("NARROW_BASE_URL", uri.as_str())];
    let server = Server::start_with(&[("plain", plain), ("narrow", narrow)], &[], &env);
    for path in ["/plain/x", "/narrow/y"] {
        let request = server.client.get(server.url(path)).header("X-A", "1").header("X-B", "2");
        assert_eq!(request.send().await.unwrap().status(), 200);
    }
    let received = mock.received_requests().await.unwrap();
    assert!(received[0].headers.get("x-a").is_none() && received[0].headers.get("x-b").is_none());
    assert!(received[1].headers.get("x-a").is_none());
    assert_eq!(received[1].headers.get("x-b").unwrap(), "2");
}

#[tokio::test]
async fn a_caller_header_never_replaces_the_servers_credential() {
    let mock = common::ok_upstream().await;
    let uri = mock.uri();
    let keyed = r#"const META = #{ title: "Keyed", description: "d", secrets: ["KEYED_KEY"], auth: "header:X-Api-Key",
    base_url: "https://keyed.invalid", api: #{ pass_headers: ["X-Api-Key", "X-Trace"] } };
fn main(endpoint, method, data) { api::call(global::META, endpoint, method, data) }"#;
    let env = [("KEYED_KEY", "kk-server-1"), ("KEYED_BASE_URL", uri.as_str())];
    let server = Server::start_with(&[("keyed", keyed)], &[], &env);
    let request = server.client.get(server.url("/keyed/x")).header("X-Api-Key", "caller").header("X-Trace", "t1");
    assert_eq!(request.send().await.unwrap().status(), 200);
    let received = &mock.received_requests().await.unwrap()[0];
    assert_eq!(received.headers.get_all("x-api-key").iter().collect::<Vec<_>>(), ["kk-server-1"]);
    assert_eq!(received.headers.get("x-trace").unwrap(), "t1");
}

#[tokio::test]
async fn pass_headers_may_not_name_what_the_runtime_sets() {
    let server = Server::start_with(&[], &[], &[("SWITCHBOARD_ADMIN_TOKEN", ADMIN)]);
    for (list, says) in [
        (r#"["Authorization"]"#, "may not name Authorization"),
        (r#"["content-type"]"#, "may not name content-type"),
        (r#"["bad header"]"#, "'bad header' is not a header name"),
        (r#""Idempotency-Key""#, "must be an array of header names"),
        (r#"[7]"#, "holds header names"),
    ] {
        let source = format!(
            "const META = #{{ title: \"t\", description: \"d\", api: #{{ pass_headers: {list} }} }};\nfn main(e, m, d) {{ 1 }}"
        );
        let put = server.client.put(server.url("/api/servers/bad")).bearer_auth(ADMIN).body(source);
        let (status, body) = json(put.send().await.unwrap()).await;
        assert_eq!(status, 422, "{list}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(says), "{list}: {body}");
    }
    let bad = server.client.get(server.url("/echo?endpoint=/x&headers=%5B1%5D")).send().await.unwrap();
    assert_eq!(bad.status(), 400);
}
