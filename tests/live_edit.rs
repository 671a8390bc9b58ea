//! Live editing over the management API, and hot reload from watched files: swaps are atomic, broken
//! scripts never replace working ones, and every binding is kept as history.

mod common;

use std::time::{Duration, Instant};

use common::{Server, expect_error, json, script};
use serde_json::json;

fn version(n: usize) -> String {
    script("Versioned", &format!("    #{{ version: {n} }}"))
}

async fn put(server: &Server, name: &str, source: &str) -> reqwest::Response {
    server
        .client
        .put(server.url(&format!("/api/servers/{name}")))
        .bearer_auth(server.admin_token())
        .body(source.to_owned())
        .send()
        .await
        .unwrap()
}

async fn post(server: &Server, path: &str, body: Option<serde_json::Value>) -> reqwest::Response {
    let mut request = server.client.post(server.url(path)).bearer_auth(server.admin_token());
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

/// Polls `check` until it holds or a generous deadline passes (this waits for a file watcher; it
/// measures nothing).
async fn eventually(mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn a_put_compiles_stores_and_binds_with_history() {
    let server = Server::start(&[]);
    let (status, body) = json(put(&server, "versioned", &version(1)).await).await;
    assert_eq!(status, 200, "{body}");
    let first = body["cid"].as_str().unwrap().to_string();
    assert_eq!(first, switchboard::cid::Cid::of(version(1).as_bytes()).to_string());
    assert_eq!(json(server.get("/versioned/").await).await.1, json!({"version": 1}));

    let (_, body) = json(put(&server, "versioned", &version(2)).await).await;
    let second = body["cid"].as_str().unwrap().to_string();
    let response = server.get("/versioned/").await;
    assert_eq!(response.headers()["x-server-cid"], second.as_str());
    assert_eq!(json(response).await.1, json!({"version": 2}));

    let (_, history) = json(server.get("/api/servers/versioned/history").await).await;
    let cids: Vec<&str> = history["history"].as_array().unwrap().iter().map(|h| h["cid"].as_str().unwrap()).collect();
    assert_eq!(cids, vec![first.as_str(), second.as_str()]);
    assert!(history["history"].as_array().unwrap().iter().all(|h| h["origin"] == "api" && h["at"].is_number()));
}

#[tokio::test]
async fn a_broken_script_is_refused_with_its_position_and_nothing_changes() {
    let server = Server::start(&[]);
    assert_eq!(put(&server, "versioned", &version(1)).await.status(), 200);
    let broken =
        "const META = #{ title: \"B\", description: \"d\" };\nfn main(endpoint, method, data) {\n    let = 1;\n}";
    let error = expect_error(put(&server, "versioned", broken).await, 422, "invalid_script").await;
    assert_eq!((error["line"].as_i64(), error["column"].as_i64()), (Some(3), Some(9)), "{error}");
    assert_eq!(json(server.get("/versioned/").await).await.1, json!({"version": 1}));
    let (_, history) = json(server.get("/api/servers/versioned/history").await).await;
    assert_eq!(history["history"].as_array().unwrap().len(), 1);
    expect_error(put(&server, "Bad-Name", &version(1)).await, 400, "bad_request").await;
    expect_error(put(&server, "api", &version(1)).await, 400, "bad_request").await;
}

#[tokio::test]
async fn changes_need_the_token_and_read_only_refuses_them() {
    let server = Server::start(&[]);
    let response = server.client.put(server.url("/api/servers/x")).body(version(1)).send().await.unwrap();
    expect_error(response, 401, "unauthorized").await;
    let response = server.client.post(server.url("/api/servers/echo/disable")).send().await.unwrap();
    expect_error(response, 401, "unauthorized").await;
    let read_only = Server::start_with(&[], &["--read-only"], &[]);
    expect_error(put(&read_only, "x", &version(1)).await, 403, "forbidden").await;
    expect_error(post(&read_only, "/api/servers/echo/disable", None).await, 403, "forbidden").await;
    let response = read_only
        .client
        .delete(read_only.url("/api/servers/echo"))
        .bearer_auth(read_only.admin_token())
        .send()
        .await
        .unwrap();
    expect_error(response, 403, "forbidden").await;
    assert_eq!(read_only.get("/echo/").await.status(), 200);
}

#[tokio::test]
async fn disable_enable_delete_and_rollback() {
    // Created through the API: a server the boot source manages is edited through its file instead.
    let server = Server::start(&[]);
    put(&server, "versioned", &version(1)).await;
    let first = server.get("/versioned/").await.headers()["x-server-cid"].to_str().unwrap().to_string();
    put(&server, "versioned", &version(2)).await;

    assert_eq!(json(post(&server, "/api/servers/versioned/disable", None).await).await.1["enabled"], false);
    expect_error(server.get("/versioned/").await, 404, "not_found").await;
    assert_eq!(json(post(&server, "/api/servers/versioned/enable", None).await).await.1["enabled"], true);
    assert_eq!(json(server.get("/versioned/").await).await.1, json!({"version": 2}));

    // Rollback to the first CID is one call.
    let (status, body) =
        json(post(&server, "/api/servers/versioned/rollback", Some(json!({"cid": first}))).await).await;
    assert_eq!((status, body["cid"].as_str()), (200, Some(first.as_str())), "{body}");
    assert_eq!(json(server.get("/versioned/").await).await.1, json!({"version": 1}));
    let unknown = switchboard::cid::Cid::of(b"never bound").to_string();
    expect_error(
        post(&server, "/api/servers/versioned/rollback", Some(json!({"cid": unknown}))).await,
        400,
        "bad_request",
    )
    .await;

    // Delete keeps the history, so the name can come back by rollback.
    let response = server
        .client
        .delete(server.url("/api/servers/versioned"))
        .bearer_auth(server.admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    expect_error(server.get("/versioned/").await, 404, "not_found").await;
    let (_, history) = json(server.get("/api/servers/versioned/history").await).await;
    assert_eq!(history["history"].as_array().unwrap().len(), 3);
    assert_eq!(post(&server, "/api/servers/versioned/rollback", Some(json!({"cid": first}))).await.status(), 200);
    assert_eq!(json(server.get("/versioned/").await).await.1, json!({"version": 1}));
}

#[tokio::test]
async fn a_hundred_swaps_under_load_fail_no_request() {
    let server = Server::start(&[]);
    assert_eq!(put(&server, "versioned", &version(0)).await.status(), 200);
    let valid: std::collections::HashSet<String> =
        (0..=100).map(|n| serde_json::json!({"version": n}).to_string()).collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (client, url, stop) = (server.client.clone(), server.url("/versioned/"), stop.clone());
        clients.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let response = client.get(&url).send().await.unwrap();
                seen.push((response.status().as_u16(), response.text().await.unwrap()));
            }
            seen
        }));
    }
    for n in 1..=100 {
        assert_eq!(put(&server, "versioned", &version(n)).await.status(), 200);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for client in clients {
        for (status, body) in client.await.unwrap() {
            total += 1;
            assert_eq!(status, 200, "{body}");
            assert!(valid.contains(&body), "a response from no version: {body}");
        }
    }
    assert!(total > 100, "the clients ran only {total} requests");
    assert_eq!(json(server.get("/versioned/").await).await.1, json!({"version": 100}));
}

#[tokio::test]
async fn a_saved_file_is_served_a_broken_one_is_not_and_the_source_is_followed() {
    let server = Server::start(&[("versioned", &version(1))]);
    let scripts = server.dir.path().join("boot/scripts");
    let versioned = |server: &Server| {
        let (client, url) = (server.client.clone(), server.url("/versioned/"));
        async move { client.get(url).send().await.unwrap().text().await.unwrap() }
    };

    std::fs::write(scripts.join("versioned.rhai"), version(2)).unwrap();
    assert!(eventually(async || versioned(&server).await == r#"{"version":2}"#).await, "the edit was not served");

    // A broken save: the old version keeps serving, and the error is shown with its position.
    std::fs::write(
        scripts.join("versioned.rhai"),
        "const META = #{ title: \"V\", description: \"d\" };\nfn main(endpoint, method, data) { !!! }",
    )
    .unwrap();
    let shown =
        eventually(async || json(server.get("/api/servers/versioned").await).await.1["last_error"].is_object()).await;
    assert!(shown, "the compile error was not shown");
    let (_, details) = json(server.get("/api/servers/versioned").await).await;
    assert_eq!(details["last_error"]["type"], "invalid_script");
    assert_eq!(details["last_error"]["line"], 2);
    assert_eq!(versioned(&server).await, r#"{"version":2}"#);

    // Fixed: served, the error cleared, the history says where it came from.
    std::fs::write(scripts.join("versioned.rhai"), version(3)).unwrap();
    assert!(eventually(async || versioned(&server).await == r#"{"version":3}"#).await);
    let (_, details) = json(server.get("/api/servers/versioned").await).await;
    assert!(details["last_error"].is_null(), "{details}");
    assert_eq!(details["history"].as_array().unwrap().last().unwrap()["origin"], "file");

    // A server added to the source appears; one taken out goes.
    std::fs::write(scripts.join("extra.rhai"), version(7)).unwrap();
    let source = server.dir.path().join("boot/boot.json");
    let mut boot: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&source).unwrap()).unwrap();
    boot["servers"].as_array_mut().unwrap().retain(|s| s["name"] != "versioned");
    boot["servers"].as_array_mut().unwrap().push(json!({"name": "extra", "script": "scripts/extra.rhai"}));
    std::fs::write(&source, serde_json::to_string(&boot).unwrap()).unwrap();
    assert!(eventually(async || server.get("/extra/").await.status() == 200).await, "the added server did not appear");
    assert!(eventually(async || server.get("/versioned/").await.status() == 404).await, "the removed server stayed");
}

/// The README's live-editing section as written: its script, the answers it shows (history shape and
/// time format included), disable, rollback and delete.
#[tokio::test]
async fn the_readme_live_editing_example_runs_as_written() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme.split("\n## Live editing and hot reload\n").nth(1).unwrap();
    let source = section.split("cat > mine.rhai <<'EOF'\n").nth(1).unwrap().split("\nEOF\n").next().unwrap();
    let shown = |after: &str| -> serde_json::Value {
        let line = section.split(after).nth(1).unwrap().lines().find(|l| l.starts_with("# ")).unwrap();
        serde_json::from_str(line.strip_prefix("# ").unwrap()).unwrap()
    };
    let keys = |value: &serde_json::Value| value.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    let server = Server::start(&[]);

    let (status, bound) = json(put(&server, "mine", source).await).await;
    assert_eq!(status, 200, "{bound}");
    assert_eq!(keys(&bound), keys(&shown("@mine.rhai localhost:8080/api/servers/mine")));
    let cid = bound["cid"].as_str().unwrap().to_owned();
    assert_eq!(json(server.get("/mine/x").await).await, (200, json!({ "hello": "/x" })));

    assert_eq!(post(&server, "/api/servers/mine/disable", None).await.status(), 200);
    expect_error(server.get("/mine/x").await, 404, "not_found").await;
    assert_eq!(post(&server, "/api/servers/mine/enable", None).await.status(), 200);

    let (_, history) = json(server.get("/api/servers/mine/history").await).await;
    let documented = shown("curl localhost:8080/api/servers/mine/history");
    assert_eq!(keys(&history), keys(&documented));
    assert_eq!(history["name"], documented["name"]);
    let (entry, example) = (&history["history"][0], &documented["history"][0]);
    assert_eq!(keys(entry), keys(example));
    assert_eq!((&entry["cid"], &entry["origin"]), (&json!(cid), &example["origin"]));
    // Milliseconds since the epoch, as documented: 13 digits from 2001 to 2286, seconds would have 10.
    let (at, shown_at) = (entry["at"].as_i64().unwrap(), example["at"].as_i64().unwrap());
    assert_eq!((at.to_string().len(), shown_at.to_string().len()), (13, 13));

    let rolled = post(&server, "/api/servers/mine/rollback", Some(json!({ "cid": cid }))).await;
    assert_eq!(rolled.status(), 200);
    let deleted = server.client.delete(server.url("/api/servers/mine")).bearer_auth(server.admin_token()).send();
    assert!(deleted.await.unwrap().status().is_success());
    let (_, history) = json(server.get("/api/servers/mine/history").await).await;
    assert_eq!(history["history"].as_array().unwrap().len(), 2, "the history stays: {history}");
}

/// A gateway version: its declared base URL, a header and a secret-filled one, as every call sends them.
fn gateway(base: &str, version: &str) -> String {
    format!(
        r#"const META = #{{ title: "Gateway", description: "d", secrets: ["GW_TOKEN"], auth: "bearer",
    base_url: "{base}", api: #{{ headers: #{{ "X-Version": "{version}", "X-Key": "k-{{GW_TOKEN}}" }} }} }};
fn main(endpoint, method, data) {{ api::call(global::META, endpoint, method, data) }}"#
    )
}

/// A mock upstream answering every request with `{"ok": true}`.
async fn answering() -> wiremock::MockServer {
    let mock = wiremock::MockServer::start().await;
    let ok = wiremock::ResponseTemplate::new(200).set_body_json(json!({"ok": true}));
    wiremock::Mock::given(wiremock::matchers::any()).respond_with(ok).mount(&mock).await;
    mock
}

/// What the last request a mock received carried: its version header and credential.
async fn last_seen(mock: &wiremock::MockServer) -> Option<(String, String, String)> {
    let requests = mock.received_requests().await.unwrap();
    let last = requests.last()?;
    let header = |name: &str| last.headers.get(name).map_or(String::new(), |v| v.to_str().unwrap().to_owned());
    Some((header("x-version"), header("authorization"), header("x-key")))
}

#[tokio::test]
async fn what_a_version_prepares_follows_edits_rollback_and_secret_changes() {
    let (first, second) = (answering().await, answering().await);
    let server = Server::start_with(&[], &[], &[("GW_TOKEN", "tok-one")]);
    let (_, v1) = json(put(&server, "gw", &gateway(&first.uri(), "1")).await).await;
    let call = async || json(server.get("/gw/items").await).await;
    let seen = |version: &str, token: &str| Some((version.to_owned(), format!("Bearer {token}"), format!("k-{token}")));
    assert_eq!(call().await, (200, json!({"ok": true})));
    assert_eq!(last_seen(&first).await, seen("1", "tok-one"));

    // A new version: another host (admitted now, the old one no longer) and another header.
    assert_eq!(put(&server, "gw", &gateway(&second.uri(), "2")).await.status(), 200);
    assert_eq!(call().await.0, 200);
    assert_eq!(last_seen(&second).await, seen("2", "tok-one"));
    assert_eq!(first.received_requests().await.unwrap().len(), 1);

    // A secret set while it runs: the next call sends it, in the credential and in the template.
    let response = server
        .client
        .put(server.url("/api/secrets/GW_TOKEN"))
        .bearer_auth(server.admin_token())
        .body("tok-two")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    assert_eq!(call().await.0, 200);
    assert_eq!(last_seen(&second).await, seen("2", "tok-two"));

    // Rollback: the first version's host and header again.
    let rollback = post(&server, "/api/servers/gw/rollback", Some(json!({"cid": v1["cid"]}))).await;
    assert_eq!(rollback.status(), 200);
    assert_eq!(call().await.0, 200);
    assert_eq!(last_seen(&first).await, seen("1", "tok-two"));
    assert_eq!(second.received_requests().await.unwrap().len(), 2);
}

/// The operator's `<NAME>_BASE_URL` set in the followed boot source while the server runs: the calls
/// after the reload go there, and back to the declared host when the variable is taken out.
#[tokio::test]
async fn a_base_url_variable_changed_while_serving_moves_the_next_calls() {
    let (declared, operator) = (answering().await, answering().await);
    let script = gateway(&format!("{}/v1", declared.uri()), "1");
    let server = Server::start_with(&[("gw", &script)], &[], &[("GW_TOKEN", "tok")]);
    let count = async |mock: &wiremock::MockServer| mock.received_requests().await.unwrap().len();
    let call = async || json(server.get("/gw/items").await).await;
    assert_eq!(call().await, (200, json!({"ok": true})));
    assert_eq!(count(&declared).await, 1);

    let source = server.dir.path().join("boot/boot.json");
    let mut boot: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&source).unwrap()).unwrap();
    boot["variables"] = json!({ "GW_BASE_URL": operator.uri() });
    std::fs::write(&source, serde_json::to_string(&boot).unwrap()).unwrap();
    assert!(
        eventually(async || call().await.0 == 200 && count(&operator).await > 0).await,
        "the override was not followed"
    );
    let (before, sent) = (count(&declared).await, count(&operator).await);
    assert_eq!(call().await.0, 200);
    assert_eq!((count(&declared).await, count(&operator).await), (before, sent + 1));
    // An override naming only scheme and host keeps the declared path.
    let requests = operator.received_requests().await.unwrap();
    assert_eq!(requests.last().unwrap().url.path(), "/v1/items");

    boot.as_object_mut().unwrap().remove("variables");
    std::fs::write(&source, serde_json::to_string(&boot).unwrap()).unwrap();
    let back = eventually(async || {
        let before = count(&declared).await;
        call().await.0 == 200 && count(&declared).await > before
    })
    .await;
    assert!(back, "the declared base URL did not come back");
    let sent = count(&operator).await;
    assert_eq!(call().await.0, 200);
    assert_eq!(count(&operator).await, sent);
}
