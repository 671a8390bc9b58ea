//! Writes to the registry: concurrent edits leave the served version equal to the stored one, and a
//! boot source never loses work done through the API.

mod common;

use common::{Server, boot_dir, expect_error, json, script};
use serde_json::json;

fn version(n: usize) -> String {
    script("Versioned", &format!("    #{{ version: {n} }}"))
}

async fn put(server: &Server, name: &str, source: &str) -> reqwest::Response {
    let url = server.url(&format!("/api/servers/{name}"));
    server.client.put(url).bearer_auth(server.admin_token()).body(source.to_owned()).send().await.unwrap()
}

async fn post(server: &Server, path: &str, body: serde_json::Value) -> reqwest::Response {
    server.client.post(server.url(path)).bearer_auth(server.admin_token()).json(&body).send().await.unwrap()
}

/// The CID the registry serves for `name` and the CID its stored history ends on.
async fn served_and_stored(server: &Server, name: &str) -> (String, String, String) {
    let (_, shown) = json(server.get(&format!("/api/servers/{name}")).await).await;
    let invoked = server.get(&format!("/{name}/")).await;
    let header = invoked.headers()["x-server-cid"].to_str().unwrap().to_string();
    let history = shown["history"].as_array().unwrap();
    (shown["cid"].as_str().unwrap().to_string(), header, history.last().unwrap()["cid"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn concurrent_puts_leave_the_served_cid_equal_to_the_stored_head() {
    let fillers: Vec<(String, String)> =
        (0..500).map(|i| (format!("filler_{i}"), script("Filler", &format!("{i}")))).collect();
    let servers: Vec<(&str, &str)> = fillers.iter().map(|(n, s)| (n.as_str(), s.as_str())).collect();
    let server = Server::start(&servers);
    assert_eq!(put(&server, "target", &version(0)).await.status(), 200);
    for round in 0..4 {
        let puts = (1..=100).map(|n| {
            let (client, url, token) = (server.client.clone(), server.url("/api/servers/target"), server.admin_token());
            tokio::spawn(async move {
                client.put(url).bearer_auth(token).body(version(round * 1000 + n)).send().await.unwrap().status()
            })
        });
        for put in puts.collect::<Vec<_>>() {
            assert_eq!(put.await.unwrap(), 200);
        }
        let (shown, header, head) = served_and_stored(&server, "target").await;
        assert_eq!(shown, head, "round {round}: the API shows a CID other than the stored head");
        assert_eq!(header, head, "round {round}: invocations run a CID other than the stored head");
    }
}

#[tokio::test]
async fn api_changes_to_a_server_the_boot_source_manages_are_refused_with_its_file() {
    let server = Server::start(&[("managed", &version(1))]);
    let file = server.dir.path().join("boot/scripts/managed.rhai");
    let cid = switchboard::cid::Cid::of(version(1).as_bytes()).to_string();
    let refusals = [
        put(&server, "managed", &version(2)).await,
        post(&server, "/api/servers/managed/disable", json!({})).await,
        post(&server, "/api/servers/managed/rollback", json!({ "cid": cid })).await,
        server
            .client
            .delete(server.url("/api/servers/managed"))
            .bearer_auth(server.admin_token())
            .send()
            .await
            .unwrap(),
    ];
    for response in refusals {
        let error = expect_error(response, 409, "conflict").await;
        assert_eq!(error["file"], file.display().to_string(), "{error}");
    }
    assert_eq!(json(server.get("/managed/").await).await.1, json!({"version": 1}));
}

#[tokio::test]
async fn servers_created_through_the_api_survive_restarts_with_a_boot_source() {
    let mut server = Server::start(&[("managed", &version(1))]);
    assert_eq!(put(&server, "created", &version(7)).await.status(), 200);
    assert_eq!(put(&server, "created", &version(8)).await.status(), 200);
    assert_eq!(post(&server, "/api/servers/created/disable", json!({})).await.status(), 200);
    for _ in 0..2 {
        server = server.restart();
        let (status, shown) = json(server.get("/api/servers/created").await).await;
        assert_eq!(status, 200, "{shown}");
        assert_eq!(shown["cid"], switchboard::cid::Cid::of(version(8).as_bytes()).to_string());
        assert_eq!(shown["enabled"], false);
        assert_eq!(json(server.get("/managed/").await).await.1, json!({"version": 1}));
    }
}

#[tokio::test]
async fn an_implicit_boot_source_keeps_api_work_too() {
    let dir = tempfile::tempdir().unwrap();
    let echo = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/echo.rhai")).unwrap();
    let source = boot_dir(&dir.path().join("boot"), &[("echo", &echo), ("managed", &version(1))]);
    std::fs::rename(&source, dir.path().join("boot/default.boot.json")).unwrap();
    let data = dir.path().join("data");
    let server = Server::spawn(dir, &["serve", "--listen", "127.0.0.1:0", "--data", data.to_str().unwrap()], &[]);
    assert_eq!(put(&server, "created", &version(3)).await.status(), 200);
    expect_error(put(&server, "managed", &version(2)).await, 409, "conflict").await;
    let server = server.restart();
    assert_eq!(json(server.get("/created/").await).await.1, json!({"version": 3}));
    assert_eq!(json(server.get("/managed/").await).await.1, json!({"version": 1}));
}
