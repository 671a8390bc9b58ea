//! OpenAPI import as users meet it: the README's example (docs/examples/petstore.yaml imported over the
//! management API and the CLI, then called as MCP tools and over HTTP, with a mock upstream recording
//! what it receives), a re-import showing its difference before it is applied, and documents refused
//! with a clear error that change nothing.

mod common;

use common::{Server, cli, expect_error, json};
use serde_json::{Value, json};
use wiremock::MockServer;

const SPEC: &str = include_str!("../docs/examples/petstore.yaml");
const KEY: &str = "pets-key-8126";

async fn import(server: &Server, query: &str, spec: &str) -> reqwest::Response {
    let url = server.url(&format!("/api/import/openapi?{query}"));
    server.client.post(url).bearer_auth(server.admin_token()).body(spec.to_owned()).send().await.unwrap()
}

async fn tool(server: &Server, name: &str, arguments: Value) -> Value {
    let call = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": { "name": name, "arguments": arguments } });
    let (status, body) = json(server.mcp(call.to_string()).send().await.unwrap()).await;
    assert_eq!((status, &body["result"]["isError"]), (200, &json!(false)), "{body}");
    body["result"].clone()
}

/// The requests the upstream received: method, path and query, the API key, the idempotency key, body.
async fn received(upstream: &MockServer) -> Vec<(String, String, String, String, String)> {
    let header = |r: &wiremock::Request, name: &str| {
        r.headers.get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
    };
    let requests = upstream.received_requests().await.unwrap();
    requests
        .iter()
        .map(|r| {
            let target = format!("{}{}", r.url.path(), r.url.query().map(|q| format!("?{q}")).unwrap_or_default());
            let body = String::from_utf8_lossy(&r.body).into_owned();
            (r.method.to_string(), target, header(r, "x-api-key"), header(r, "idempotency-key"), body)
        })
        .collect()
}

fn pets_server(upstream: &MockServer) -> Server {
    Server::start_with(&[], &[], &[("PETS_BASE_URL", &upstream.uri()), ("PETS_API_KEY", KEY)])
}

#[tokio::test]
async fn the_readme_example_imports_a_spec_and_calls_its_operations() {
    let upstream = common::ok_upstream().await;
    let server = pets_server(&upstream);
    let (status, imported) = json(import(&server, "name=pets&apply=true", SPEC).await).await;
    assert_eq!(status, 200, "{imported}");
    assert_eq!((imported["operations"].as_u64(), &imported["applied"]), (Some(4), &json!(true)), "{imported}");
    assert_eq!(imported["difference"], Value::Null, "a new server has nothing to differ from");
    let (_, shown) = json(server.get("/api/servers/pets").await).await;
    assert_eq!(shown["cid"], imported["cid"]);
    assert_eq!(shown["meta"]["variables"], json!([{ "name": "PETS_REGION", "default": "eu" }]));

    let listed = tool(&server, "pets__list_pets", json!({ "limit": 2, "tags": ["cat", "dog"] })).await;
    assert_eq!(listed["structuredContent"], json!({ "ok": true }));
    tool(&server, "pets__create_pet", json!({ "name": "Rex", "kind": "dog", "Idempotency-Key": "once-1" })).await;
    tool(&server, "pets__get_pet", json!({ "petId": "p/1" })).await;
    let proxied = server.client.delete(server.url("/pets/pets/p2")).send().await.unwrap();
    assert_eq!(proxied.status(), 200);
    let key = KEY.to_owned();
    assert_eq!(
        received(&upstream).await,
        [
            ("GET".into(), "/v1/pets?limit=2&tags=cat%2Cdog".into(), key.clone(), String::new(), String::new()),
            ("POST".into(), "/v1/pets".into(), key.clone(), "once-1".into(), r#"{"kind":"dog","name":"Rex"}"#.into()),
            ("GET".into(), "/v1/pets/p%2F1".into(), key.clone(), String::new(), String::new()),
            ("DELETE".into(), "/v1/pets/p2".into(), key, String::new(), String::new()),
        ]
    );
}

#[tokio::test]
async fn a_reimport_shows_what_changes_and_applies_only_when_asked() {
    let upstream = common::ok_upstream().await;
    let server = pets_server(&upstream);
    let (_, first) = json(import(&server, "name=pets&apply=true", SPEC).await).await;
    let newer = SPEC
        .replace("operationId: deletePet", "operationId: adoptPet")
        .replace("- { name: limit, in: query, schema: { type: integer, maximum: 100 } }", "- { name: limit, in: query, schema: { type: integer, maximum: 50 } }")
        .replace("  /pets/{petId}:\n", "  /pets/{petId}/photo:\n    get:\n      operationId: getPhoto\n      parameters:\n        - { name: petId, in: path, required: true, schema: { type: string } }\n      responses: { '200': { description: ok } }\n  /pets/{petId}:\n");
    let (status, planned) = json(import(&server, "name=pets", &newer).await).await;
    assert_eq!(status, 200, "{planned}");
    assert_eq!(
        planned["difference"],
        json!({ "added": ["adopt_pet", "get_photo"], "removed": ["delete_pet"], "changed": ["list_pets"], "meta": [] })
    );
    assert_eq!(planned["applied"], false);
    let (_, shown) = json(server.get("/api/servers/pets").await).await;
    assert_eq!(shown["cid"], first["cid"], "a plan changes nothing");
    let (_, applied) = json(import(&server, "name=pets&apply=true", &newer).await).await;
    let (_, shown) = json(server.get("/api/servers/pets").await).await;
    assert_eq!(shown["cid"], applied["cid"]);
    assert_eq!(shown["history"].as_array().map(Vec::len), Some(2), "both versions are in the history");
}

#[tokio::test]
async fn documents_that_cannot_be_imported_are_refused_clearly_and_change_nothing() {
    let upstream = common::ok_upstream().await;
    let server = pets_server(&upstream);
    let swagger = r#"{"swagger": "2.0", "info": {"title": "Old", "version": "1"}, "paths": {}}"#;
    let error = expect_error(import(&server, "name=old&apply=true", swagger).await, 422, "invalid_document").await;
    assert!(error["message"].as_str().unwrap().contains("Swagger 2.0"), "{error}");
    let bundled = SPEC.replace("$ref: '#/components/schemas/Pet'", "$ref: 'pet.yaml#/Pet'");
    let error = expect_error(import(&server, "name=pets&apply=true", &bundled).await, 422, "invalid_document").await;
    assert!(error["message"].as_str().unwrap().contains("must be self-contained"), "{error}");
    expect_error(import(&server, "apply=true", SPEC).await, 400, "bad_request").await;
    expect_error(import(&server, "name=api&apply=true", SPEC).await, 400, "bad_request").await;
    let anonymous = server.client.post(server.url("/api/import/openapi?name=pets&apply=true")).body(SPEC).send();
    expect_error(anonymous.await.unwrap(), 401, "unauthorized").await;
    expect_error(server.get("/api/servers/pets").await, 404, "not_found").await;
    expect_error(server.get("/api/servers/old").await, 404, "not_found").await;
}

#[test]
fn the_cli_writes_applies_and_compares() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/examples/petstore.yaml");
    let out = dir.path().join("pets.rhai");
    let written = cli(&data, &["import-openapi", spec, "--name", "pets", "--out", out.to_str().unwrap()], "");
    assert!(written.status.success(), "{}", String::from_utf8_lossy(&written.stderr));
    let script = std::fs::read_to_string(&out).unwrap();
    assert!(script.contains("auth: \"header:X-Api-Key\"") && script.contains("\"list_pets\": #{"), "{script}");

    let applied = cli(&data, &["import-openapi", spec, "--name", "pets", "--apply"], "");
    let stderr = String::from_utf8_lossy(&applied.stderr);
    assert!(applied.status.success() && stderr.contains("bound 'pets' to bafkr4i"), "{stderr}");
    let newer = dir.path().join("newer.yaml");
    std::fs::write(&newer, SPEC.replace("operationId: deletePet", "operationId: removePet")).unwrap();
    let planned = cli(&data, &["import-openapi", newer.to_str().unwrap(), "--name", "pets"], "");
    let stderr = String::from_utf8_lossy(&planned.stderr);
    assert!(stderr.contains("changes to the server 'pets':\n+ remove_pet\n- delete_pet\n"), "{stderr}");
    let swagger = dir.path().join("swagger.json");
    std::fs::write(&swagger, r#"{"swagger": "2.0"}"#).unwrap();
    let refused = cli(&data, &["import-openapi", swagger.to_str().unwrap(), "--name", "old", "--apply"], "");
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("invalid_document"));
}

/// `--store` names the store an import is bound in and compared with, as for every command that opens
/// it: on a PostgreSQL store, from a data directory that does not exist yet, the plan is still compared
/// with the server the database holds.
#[test]
fn the_cli_imports_into_the_store_it_is_given() {
    let Some(database) = common::postgres::Database::fresh() else { return };
    let dir = tempfile::tempdir().unwrap();
    let import = |data: &str, spec: &str| {
        let args = ["import-openapi", spec, "--name", "pets", "--store", database.url.as_str()];
        let key = ("SWITCHBOARD_MASTER_KEY", "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0");
        let output = std::process::Command::new(common::BIN)
            .args(args)
            .args((data == "first").then_some("--apply"))
            .env("SWITCHBOARD_DATA", dir.path().join(data))
            .env(key.0, key.1)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let applied = import("first", concat!(env!("CARGO_MANIFEST_DIR"), "/docs/examples/petstore.yaml"));
    assert!(applied.contains("bound 'pets' to bafkr4i"), "{applied}");
    let newer = dir.path().join("newer.yaml");
    std::fs::write(&newer, SPEC.replace("operationId: deletePet", "operationId: removePet")).unwrap();
    let planned = import("second", newer.to_str().unwrap());
    assert!(planned.contains("changes to the server 'pets':\n+ remove_pet\n- delete_pet\n"), "{planned}");
}

/// GitHub's REST description (`@octokit/openapi`, installed by `scripts/install-peers`): over a thousand
/// operations imported by the CLI into a running server's data directory, then listed as MCP tools page
/// by page, every one once.
#[tokio::test]
async fn githubs_description_imports_and_its_tools_list_in_pages() {
    let spec =
        concat!(env!("CARGO_MANIFEST_DIR"), "/.peers/node/node_modules/@octokit/openapi/generated/api.github.com.json");
    if !std::path::Path::new(spec).exists() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{spec} is missing: run scripts/install-peers");
        eprintln!("skipped: {spec} is missing (scripts/install-peers)");
        return;
    }
    let server = Server::start_with(&[], &[], &[("GH_TOKEN", "gh-test-token")]);
    let imported = cli(&server.data_dir(), &["import-openapi", spec, "--name", "gh", "--apply"], "");
    assert!(imported.status.success(), "{}", String::from_utf8_lossy(&imported.stderr));
    let mut listed = None;
    for _ in 0..200 {
        if server.get("/api/servers/gh").await.status() == 200 {
            listed = Some(());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(listed.is_some(), "the running server never saw the imported server");
    let (mut tools, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let params = cursor.as_ref().map_or(json!({}), |c| json!({ "cursor": c }));
        let request = json!({ "jsonrpc": "2.0", "id": pages, "method": "tools/list", "params": params });
        let (_, body) = json(server.mcp(request.to_string()).send().await.unwrap()).await;
        let page = body["result"]["tools"].as_array().cloned().unwrap_or_default();
        assert!(!page.is_empty() && page.len() <= 100, "page {pages}: {body}");
        tools.extend(page.into_iter().filter_map(|t| t["name"].as_str().map(str::to_owned)));
        pages += 1;
        match body["result"]["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let github: Vec<&String> = tools.iter().filter(|t| t.starts_with("gh__")).collect();
    assert!(github.len() > 1_000, "{} GitHub tools", github.len());
    assert!(github.iter().all(|t| t.len() <= 64));
    let unique: std::collections::BTreeSet<&String> = tools.iter().collect();
    assert_eq!(unique.len(), tools.len(), "every tool once");
    assert!(tools.contains(&"gh__repos_get".to_owned()), "operationId repos/get becomes repos_get");
}
