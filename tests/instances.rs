//! Several `serve` processes on one PostgreSQL store, as behind a load balancer: what is changed through
//! one is served by all, edits of one server end with one head everywhere, a terminated or lost
//! database is survived, and a webhook delivery posted to two instances runs once.
//!
//! Propagation is asserted as an eventual state with a generous bound (the machine is shared); how fast
//! it is is measured in `bench/run`.

mod common;

use std::time::Duration;

use common::postgres::{Database, Relay};
use common::{Server, expect_error, json, script};

const ADMIN: &str = "instances-admin-token";
const MASTER_KEY: &str = "5eb1f0c3a8d94e2b7c6a1d0e9f8b7a6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a";

/// `count` instances on `store` (given through `$SWITCHBOARD_STORE`), with one admin token and one
/// master key, and `env` besides.
fn instances(store: &str, count: usize, env: &[(&str, &str)]) -> Vec<Server> {
    let mut all =
        vec![("SWITCHBOARD_STORE", store), ("SWITCHBOARD_ADMIN_TOKEN", ADMIN), ("SWITCHBOARD_MASTER_KEY", MASTER_KEY)];
    all.extend_from_slice(env);
    (0..count).map(|_| Server::start_default(&[], &all)).collect()
}

/// Sends `method` to `path` of `server` with the admin token and `body`.
async fn admin(server: &Server, method: reqwest::Method, path: &str, body: String) -> reqwest::Response {
    let request = server.client.request(method, server.url(path)).bearer_auth(ADMIN).body(body);
    request.send().await.unwrap()
}

async fn put_script(server: &Server, name: &str, answer: &str) -> (u16, serde_json::Value) {
    json(admin(server, reqwest::Method::PUT, &format!("/api/servers/{name}"), script(name, answer)).await).await
}

/// What `server` answers at `path`, as text (a failure's body too).
async fn answer(server: &Server, path: &str) -> String {
    server.get(path).await.text().await.unwrap()
}

/// Waits, within a bound that only keeps a broken build from hanging, until `server` answers `expected` at
/// `path`.
async fn served(server: &Server, path: &str, expected: &str) {
    for _ in 0..600 {
        if answer(server, path).await == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} never answered {expected} at {path}: {}", server.base, answer(server, path).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn what_is_changed_through_one_instance_is_served_by_every_other() {
    let Some(database) = Database::fresh() else { return };
    let cluster = instances(&database.url, 3, &[]);
    let (status, _) = put_script(&cluster[0], "greet", "\"v1\"").await;
    assert_eq!(status, 200);
    for server in &cluster {
        served(server, "/greet/now", "v1").await;
    }
    let with_secret = "const META = #{ title: \"Greet\", description: \"greets\", secrets: [\"GREETING_KEY\"] };
fn main(endpoint, method, data) { \"v2 \" + secret::get(\"GREETING_KEY\") }";
    let put = admin(&cluster[1], reqwest::Method::PUT, "/api/servers/greet", with_secret.into()).await;
    assert!(put.status().is_success());
    let stored = admin(&cluster[2], reqwest::Method::PUT, "/api/secrets/GREETING_KEY", "k-1".into()).await;
    assert!(stored.status().is_success());
    for server in &cluster {
        served(server, "/greet/now", "v2 k-1").await;
    }
    // History and blobs are shared: a rollback through the third instance to the first version.
    let (_, history) = json(cluster[2].get("/api/servers/greet/history").await).await;
    let first = history["history"][0]["cid"].as_str().unwrap().to_owned();
    let rollback = serde_json::json!({ "cid": first }).to_string();
    assert!(
        admin(&cluster[2], reqwest::Method::POST, "/api/servers/greet/rollback", rollback).await.status().is_success()
    );
    for server in &cluster {
        served(server, "/greet/now", "v1").await;
    }
}

/// What `server` answers an admin GET of `path` with, once `ready` holds for it; bounded, so that a
/// broken build fails instead of hanging.
async fn admin_get_when(
    server: &Server,
    path: &str,
    ready: impl Fn(u16, &serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut last = (0, serde_json::Value::Null);
    for _ in 0..600 {
        last = json(admin(server, reqwest::Method::GET, path, String::new()).await).await;
        if ready(last.0, &last.1) {
            return last.1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} never answered as expected at {path}: {last:?}", server.base);
}

/// What `server` answers an admin GET of `path` with, which must succeed.
async fn admin_json(server: &Server, path: &str) -> serde_json::Value {
    admin_get_when(server, path, |status, _| status == 200).await
}

#[tokio::test(flavor = "multi_thread")]
async fn invocations_served_by_every_instance_are_listed_and_summed_by_any() {
    let Some(database) = Database::fresh() else { return };
    let cluster = instances(&database.url, 2, &[]);
    let (status, _) = put_script(&cluster[0], "counted", "\"ok\"").await;
    assert_eq!(status, 200);
    // Waited for through the management API, which records no invocation.
    admin_json(&cluster[1], "/api/servers/counted").await;
    for (server, path) in [(&cluster[0], "/counted/a"), (&cluster[0], "/counted/b"), (&cluster[1], "/counted/c")] {
        assert_eq!(answer(server, path).await, "ok");
    }
    // Each instance writes its records in batches, off the invocation path: wait for all of them.
    let listed = admin_get_when(&cluster[1], "/api/invocations?server=counted", |status, body| {
        status == 200 && body["invocations"].as_array().is_some_and(|records| records.len() >= 3)
    })
    .await;
    let records = listed["invocations"].as_array().unwrap();
    assert_eq!(records.len(), 3, "the records of both instances, read through the second: {listed}");
    assert!(records.iter().all(|r| r["server"] == "counted" && r["status"] == 200 && r["via"] == "http"), "{listed}");
    let mut request_ids: Vec<&str> = records.iter().map(|r| r["request_id"].as_str().unwrap()).collect();
    request_ids.sort();
    request_ids.dedup();
    assert_eq!(request_ids.len(), 3, "{listed}");
    // The first instance reads the same table, and sums it.
    assert_eq!(admin_json(&cluster[0], "/api/invocations?server=counted").await, listed);
    let usage = admin_json(&cluster[0], "/api/usage?server=counted").await;
    assert_eq!(
        usage["usage"],
        serde_json::json!([
            { "server": "counted", "operation": null, "calls": 3, "errors": 0, "cost": 0.0, "currency": null }
        ])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_edits_of_one_server_through_two_instances_end_with_one_head_everywhere() {
    let Some(database) = Database::fresh() else { return };
    let cluster = instances(&database.url, 2, &[]);
    let answers: Vec<String> = (0..10).map(|i| format!("\"v{i}\"")).collect();
    let edits = answers.iter().enumerate().map(|(i, answer)| put_script(&cluster[i % 2], "contested", answer));
    for (status, body) in futures_util::future::join_all(edits).await {
        assert_eq!(status, 200, "{body}");
    }
    let (_, history) = json(cluster[0].get("/api/servers/contested/history").await).await;
    let head = history["history"].as_array().unwrap().last().unwrap()["cid"].as_str().unwrap().to_owned();
    for server in &cluster {
        for _ in 0..600 {
            let (_, shown) = json(server.get("/api/servers/contested").await).await;
            if shown["cid"] == head {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (_, shown) = json(server.get("/api/servers/contested").await).await;
        assert_eq!(shown["cid"], head, "{} serves another head than the history's last", server.base);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn after_every_connection_is_terminated_instances_reconnect_and_serve_edits_made_meanwhile() {
    let Some(database) = Database::fresh() else { return };
    let cluster = instances(&database.url, 3, &[]);
    put_script(&cluster[0], "survivor", "\"before\"").await;
    for server in &cluster {
        served(server, "/survivor/now", "before").await;
    }
    common::postgres::terminate_connections(database.name());
    // The first edit may meet a connection that has not noticed yet: it is refused, never half-made.
    let mut edited = false;
    for _ in 0..100 {
        let (status, body) = put_script(&cluster[1], "survivor", "\"after\"").await;
        if status == 200 {
            edited = true;
            break;
        }
        assert_eq!((status, body["error"]["type"].as_str()), (503, Some("unavailable")), "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(edited, "the edit never went through after the reconnect");
    for server in &cluster {
        served(server, "/survivor/now", "after").await;
    }
}

/// A server that receives GitHub deliveries signed with `HOOK_SECRET` and reports each to `HOOK_BASE_URL`.
const HOOK: &str =
    "const META = #{ title: \"Hook\", description: \"receives GitHub events\", secrets: [\"HOOK_SECRET\"],
    auth: \"none\", base_url: \"http://127.0.0.1:9\", webhook: #{ scheme: \"github\", secret: \"HOOK_SECRET\" } };
fn main(endpoint, method, data) { () }
fn webhook(event) { api::call(global::META, \"/ran\", \"POST\", event); #{ handled: event.id } }";

fn github_signature(secret: &str, body: &str) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test(flavor = "multi_thread")]
async fn one_webhook_delivery_posted_to_two_instances_at_once_runs_once() {
    let Some(database) = Database::fresh() else { return };
    let upstream = common::ok_upstream().await;
    let uri = upstream.uri();
    let cluster = instances(&database.url, 2, &[("HOOK_SECRET", "hook-secret"), ("HOOK_BASE_URL", &uri)]);
    assert!(admin(&cluster[0], reqwest::Method::PUT, "/api/servers/hook", HOOK.into()).await.status().is_success());
    served(&cluster[1], "/hook/x", "null").await;
    let body = r#"{"action":"opened","number":7}"#;
    let deliver = |server: &Server| {
        let request = server.client.post(server.url("/webhooks/hook"));
        request
            .header("content-type", "application/json")
            .header("X-GitHub-Delivery", "delivery-0001")
            .header("X-Hub-Signature-256", github_signature("hook-secret", body))
            .body(body)
            .send()
    };
    let (a, b) = tokio::join!(deliver(&cluster[0]), deliver(&cluster[1]));
    let (a, b) = (json(a.unwrap()).await, json(b.unwrap()).await);
    assert_eq!((a.0, b.0), (200, 200), "{} {}", a.1, b.1);
    let duplicates = [&a.1, &b.1].iter().filter(|answer| answer["duplicate"] == true).count();
    assert_eq!(duplicates, 1, "one copy is told it is a duplicate: {} {}", a.1, b.1);
    let ran = upstream.received_requests().await.unwrap();
    assert_eq!(ran.iter().filter(|r| r.url.path() == "/ran").count(), 1, "the handler ran once");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_its_database_an_instance_answers_invocations_refuses_mutations_and_recovers() {
    let Some(database) = Database::fresh() else { return };
    let relay = Relay::start().await;
    let direct = instances(&database.url, 1, &[("HOOK_SECRET", "hook-secret")]);
    let relayed = instances(&relay.url(&database), 1, &[("HOOK_SECRET", "hook-secret")]);
    let (direct, relayed) = (&direct[0], &relayed[0]);
    assert!(admin(direct, reqwest::Method::PUT, "/api/servers/hook", HOOK.into()).await.status().is_success());
    put_script(direct, "steady", "\"one\"").await;
    // Changes are heard in the order they were committed: once `steady` is served, so is `hook`.
    served(relayed, "/steady/now", "one").await;

    relay.cut();
    assert_eq!(answer(relayed, "/steady/now").await, "one", "served from memory");
    let refused = expect_error(
        admin(relayed, reqwest::Method::PUT, "/api/servers/steady", script("steady", "\"two\"")).await,
        503,
        "unavailable",
    )
    .await;
    assert!(refused["message"].as_str().unwrap().contains(database.name()), "{refused}");
    let body = r#"{"zen":"ping"}"#;
    let delivery = relayed
        .client
        .post(relayed.url("/webhooks/hook"))
        .header("content-type", "application/json")
        .header("X-GitHub-Delivery", "delivery-during-outage")
        .header("X-Hub-Signature-256", github_signature("hook-secret", body))
        .body(body);
    expect_error(delivery.send().await.unwrap(), 503, "unavailable").await;
    // Edited meanwhile through an instance that still reaches the database.
    put_script(direct, "steady", "\"three\"").await;

    let _relay = relay.resume().await;
    served(relayed, "/steady/now", "three").await;
    let (status, body) = put_script(relayed, "steady", "\"four\"").await;
    assert_eq!(status, 200, "{body}");
    served(direct, "/steady/now", "four").await;
}

/// The README's example as written, on a fresh database, free ports and a directory of its own; its last
/// line (the comment) is what it prints last. The half-second pause becomes a wait for the edit (the
/// machine is shared: how fast it propagates is measured in `bench/run`).
#[test]
fn the_readme_runs_three_instances_on_one_database() {
    let Some(database) = Database::fresh() else { return };
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme.split("\n## Running several instances\n").nth(1).expect("the README has the section");
    let example = section.split("```sh\n").nth(1).unwrap().split("```").next().unwrap();
    let (commands, printed) = example.trim_end().rsplit_once("\n# ").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("scripts")).unwrap();
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/echo.rhai"), dir.path().join("scripts/echo.rhai"))
        .unwrap();
    let mut script = commands
        .replace("createdb switchboard\n", "")
        .replace("postgres://postgres@127.0.0.1:5432/switchboard", &database.url)
        .replace("switchboard serve", &format!("{} serve", common::BIN))
        .replace("sleep 0.5\n", "until curl -sf 127.0.0.1:8083/hello/world >/dev/null; do sleep 0.2; done\n");
    for port in [8081, 8082, 8083] {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        script = script.replace(&port.to_string(), &free.to_string());
    }
    let output = std::process::Command::new("timeout")
        .args(["300", "bash", "-c", &format!("trap 'kill $(jobs -p) 2>/dev/null' EXIT\n{script}")])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.trim_end().ends_with(printed), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_starting_at_once_on_a_new_store_seed_it_once() {
    let Some(database) = Database::fresh() else { return };
    let url = database.url.clone();
    let starting: Vec<_> = (0..3)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let env = [
                    ("SWITCHBOARD_STORE", url.as_str()),
                    ("SWITCHBOARD_ADMIN_TOKEN", ADMIN),
                    ("SWITCHBOARD_MASTER_KEY", MASTER_KEY),
                ];
                Server::start_default(&[], &env)
            })
        })
        .collect();
    let cluster: Vec<Server> = starting.into_iter().map(|started| started.join().unwrap()).collect();
    let (_, history) = json(cluster[2].get("/api/servers/echo/history").await).await;
    assert_eq!(
        history["history"].as_array().unwrap().len(),
        1,
        "the embedded image was imported more than once: {history}"
    );
}
