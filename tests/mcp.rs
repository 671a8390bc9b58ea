//! MCP with a real client: rmcp's own (the official Rust SDK) over Streamable HTTP — in both the
//! 2026-07-28 lifecycle and the initialize handshake — and over stdio against `switchboard mcp`.
//! Each flow lists every tool through paging, calls echo, calls a server whose secret is missing,
//! and calls a named operation against a recording mock upstream.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::Server;
use rmcp::model::{CallToolRequestParams, CallToolResult, ClientConfig, PaginatedRequestParams, ProtocolVersion, Tool};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientLifecycleMode, ClientServiceExt, ServiceExt};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

type Client = RunningService<RoleClient, ClientConfig>;

const GITHUB_TOKEN: &str = "ghp_test_token_1234";

async fn http_client(server: &Server, lifecycle: ClientLifecycleMode) -> Client {
    let transport = StreamableHttpClientTransport::from_uri(server.url("/mcp"));
    ClientConfig::default().serve_with_lifecycle(transport, lifecycle).await.expect("the client connects")
}

fn modern() -> ClientLifecycleMode {
    ClientLifecycleMode::Discover { preferred_versions: vec![ProtocolVersion::V_2026_07_28] }
}

/// Every tool, page by page, asserting each page stays within the page size and the cursor moves on.
async fn all_tools(client: &Client) -> Vec<Tool> {
    let mut tools = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = client
            .list_tools(Some(PaginatedRequestParams::default().with_cursor(cursor)))
            .await
            .expect("tools/list answers");
        pages += 1;
        assert!(!page.tools.is_empty() && page.tools.len() <= 100, "page {pages} has {} tools", page.tools.len());
        tools.extend(page.tools);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert!(pages > 1, "the default image's tools span more than one page");
    tools
}

async fn call(client: &Client, name: &str, arguments: Value) -> CallToolResult {
    let params = CallToolRequestParams::new(name.to_owned()).with_arguments(arguments.as_object().cloned().unwrap());
    client.call_tool(params).await.expect("tools/call answers with a result")
}

fn text_of(result: &CallToolResult) -> String {
    serde_json::to_string(&result.content).unwrap()
}

/// A JSON result as the client sees it: its text content parsed (the earlier revisions carry
/// structured content only when it is an object, so the text is what every revision has), and the
/// structured content agreeing with it when present.
fn json_of(result: &CallToolResult) -> Value {
    let text = result.content.first().and_then(|c| c.as_text()).map(|t| t.text.clone()).unwrap_or_default();
    let value: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    if let Some(structured) = &result.structured_content {
        assert_eq!(structured, &value);
    }
    value
}

/// A mock GitHub that records what it receives.
async fn github_mock() -> MockServer {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/octo%20cat/hello/issues"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{ "number": 7, "title": "Bug" }])))
        .mount(&mock)
        .await;
    // Two pages, the first naming the second in `Link` as GitHub does.
    let paged = format!("{}/repos/octo/paged/issues", mock.uri());
    Mock::given(method("GET"))
        .and(path("/repos/octo/paged/issues"))
        .and(wiremock::matchers::query_param("page", "2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{ "number": 3 }])))
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/octo/paged/issues"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([{ "number": 1 }, { "number": 2 }]))
                .insert_header("link", format!("<{paged}?page=2>; rel=\"next\"").as_str()),
        )
        .mount(&mock)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/octocat/hello/issues"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "number": 8 })))
        .mount(&mock)
        .await;
    mock
}

/// Serves the default image listing every tool, whether its server can run or not (the list is long
/// enough to page).
fn start(mock: &MockServer) -> Server {
    Server::start_default(&["--mcp-all-tools"], &[("GITHUB_BASE_URL", &mock.uri()), ("GITHUB_TOKEN", GITHUB_TOKEN)])
}

/// The whole flow one client runs: list, echo, missing secret, named operations.
async fn exercise(client: &Client, mock: &MockServer) {
    let tools = all_tools(client).await;
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(names, sorted, "tools come in a stable, sorted order without duplicates");
    for name in &names {
        assert!(
            (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            "{name} is not a valid tool name"
        );
    }
    for expected in
        ["echo", "stripe", "stripe__create_customer", "github__list_issues", "openai_chat__create_embedding"]
    {
        assert!(names.contains(&expected), "{expected} is listed");
    }

    let echoed = call(client, "echo", json!({ "endpoint": "/v1/x", "method": "post", "data": { "n": 1 } })).await;
    assert_eq!(echoed.is_error, Some(false));
    assert_eq!(json_of(&echoed), json!({ "endpoint": "/v1/x", "method": "POST", "data": { "n": 1 } }));

    let missing = call(client, "stripe__list_customers", json!({ "limit": 3 })).await;
    assert_eq!(missing.is_error, Some(true));
    let text = text_of(&missing);
    assert!(text.contains("missing_secret") && text.contains("STRIPE_API_KEY"), "{text}");

    let unknown = call(client, "no_such_tool", json!({})).await;
    assert_eq!(unknown.is_error, Some(true));
    assert!(text_of(&unknown).contains("not_found"));

    let listed =
        call(client, "github__list_issues", json!({ "owner": "octo cat", "repo": "hello", "state": "open" })).await;
    assert_eq!(listed.is_error, Some(false), "{}", text_of(&listed));
    assert_eq!(json_of(&listed), json!([{ "number": 7, "title": "Bug" }]));
    let schema = |name: &str| tools.iter().find(|t| t.name == name).unwrap().input_schema.clone();
    assert_eq!(schema("github__list_issues")["properties"]["all_pages"]["type"], "boolean");
    assert!(schema("github__create_issue")["properties"].get("all_pages").is_none(), "only lists page");
    assert!(schema("github__get_repo")["properties"].get("all_pages").is_none(), "a read that is not a list");
    assert!(schema("echo")["properties"].get("all_pages").is_none(), "only servers that declare pagination");
    let one = call(client, "github__list_issues", json!({ "owner": "octo", "repo": "paged" })).await;
    assert_eq!(json_of(&one), json!([{ "number": 1 }, { "number": 2 }]));
    let every =
        call(client, "github__list_issues", json!({ "owner": "octo", "repo": "paged", "all_pages": true })).await;
    assert_eq!(json_of(&every), json!([{ "number": 1 }, { "number": 2 }, { "number": 3 }]));
    let created = call(
        client,
        "github__create_issue",
        json!({ "owner": "octocat", "repo": "hello", "title": "Crash", "labels": ["bug"] }),
    )
    .await;
    assert_eq!(json_of(&created), json!({ "number": 8 }));

    let received = mock.received_requests().await.unwrap();
    let get = received.iter().find(|r| r.method.as_str() == "GET").expect("the list call reached the mock");
    assert_eq!(get.url.path(), "/repos/octo%20cat/hello/issues");
    assert_eq!(get.url.query(), Some("state=open"));
    assert_eq!(get.headers.get("authorization").unwrap(), &format!("Bearer {GITHUB_TOKEN}"));
    let post = received.iter().find(|r| r.method.as_str() == "POST").expect("the create call reached the mock");
    assert_eq!(post.url.path(), "/repos/octocat/hello/issues");
    assert_eq!(serde_json::from_slice::<Value>(&post.body).unwrap(), json!({ "title": "Crash", "labels": ["bug"] }));
    assert_eq!(post.headers.get("authorization").unwrap(), &format!("Bearer {GITHUB_TOKEN}"));
}

#[tokio::test]
async fn google_sheets_operations_reach_the_sheets_api() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "updates": { "updatedRows": 1 } })))
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "values": [["a", "1"]] })))
        .mount(&mock)
        .await;
    let base = format!("{}/v4", mock.uri());
    let server =
        Server::start_default(&[], &[("GOOGLE_SHEETS_BASE_URL", &base), ("GOOGLE_ACCESS_TOKEN", "ya29.sheets-test")]);
    let client = http_client(&server, modern()).await;
    let appended = call(
        &client,
        "google_sheets__append_values",
        json!({ "spreadsheet_id": "sheet-1", "range": "Sheet1!A1:B1", "value_input_option": "USER_ENTERED",
                "values": [["a", 1]] }),
    )
    .await;
    assert_eq!(json_of(&appended), json!({ "updates": { "updatedRows": 1 } }), "{}", text_of(&appended));
    let read = call(
        &client,
        "google_sheets__get_values",
        json!({ "spreadsheet_id": "sheet-1", "range": "Sheet1!A1:B1", "valueRenderOption": "FORMULA" }),
    )
    .await;
    assert_eq!(json_of(&read), json!({ "values": [["a", "1"]] }));
    let refused = call(&client, "google_sheets__update_values", json!({ "spreadsheet_id": "sheet-1" })).await;
    assert_eq!(refused.is_error, Some(true));
    assert!(text_of(&refused).contains("bad_request"), "{}", text_of(&refused));

    let received = mock.received_requests().await.unwrap();
    assert_eq!(received.len(), 2, "the refused call sent nothing");
    let post = &received[0];
    assert_eq!(post.url.path(), "/v4/spreadsheets/sheet-1/values/Sheet1%21A1%3AB1:append");
    assert_eq!(post.url.query(), Some("valueInputOption=USER_ENTERED"));
    assert_eq!(serde_json::from_slice::<Value>(&post.body).unwrap(), json!({ "values": [["a", 1]] }));
    let get = &received[1];
    assert_eq!(get.url.path(), "/v4/spreadsheets/sheet-1/values/Sheet1%21A1%3AB1");
    assert_eq!(get.url.query(), Some("valueRenderOption=FORMULA"));
    for request in &received {
        assert_eq!(request.headers.get("authorization").unwrap(), "Bearer ya29.sheets-test");
    }
    client.cancel().await.unwrap();
}

/// Lists in the query go as each provider's document declares them: Asana's `opt_fields` comma-joined,
/// Jira's `fields` and HubSpot's `properties` as repeated keys.
#[tokio::test]
async fn list_arguments_reach_the_query_as_each_api_reads_them() {
    let mock = MockServer::start().await;
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(200).set_body_json(json!({}))).mount(&mock).await;
    let uri = mock.uri();
    let env = [
        ("ASANA_BASE_URL", uri.as_str()),
        ("ASANA_ACCESS_TOKEN", "asana-test"),
        ("JIRA_BASE_URL", uri.as_str()),
        ("JIRA_API_TOKEN", "jira-test"),
        ("JIRA_EMAIL", "a@example.com"),
        ("JIRA_DOMAIN", "example.atlassian.net"),
        ("HUBSPOT_BASE_URL", uri.as_str()),
        ("HUBSPOT_ACCESS_TOKEN", "hubspot-test"),
    ];
    let server = Server::start_default(&[], &env);
    let client = http_client(&server, modern()).await;
    let calls = [
        ("asana__get_task", json!({ "task_gid": "12", "opt_fields": ["name", "due_on"] })),
        ("jira__get_issue", json!({ "issue_key": "ABC-1", "fields": ["summary", "status"] })),
        ("hubspot__get_contact", json!({ "contact_id": "7", "properties": ["email", "firstname"] })),
    ];
    for (tool, arguments) in calls {
        let result = call(&client, tool, arguments).await;
        assert_ne!(result.is_error, Some(true), "{tool}: {}", text_of(&result));
    }
    let refused = call(&client, "jira__get_issue", json!({ "issue_key": "ABC-1", "fields": "summary,status" })).await;
    assert!(text_of(&refused).contains("fields"), "a comma-joined string is not a list: {}", text_of(&refused));

    let received: Vec<(String, Option<String>)> = mock
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| (r.url.path().to_owned(), r.url.query().map(str::to_owned)))
        .collect();
    let query = |s: &str| Some(s.to_owned());
    assert_eq!(
        received,
        [
            ("/api/1.0/tasks/12".to_owned(), query("opt_fields=name%2Cdue_on")),
            ("/rest/api/3/issue/ABC-1".to_owned(), query("fields=summary&fields=status")),
            ("/crm/v3/objects/contacts/7".to_owned(), query("properties=email&properties=firstname")),
        ]
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn rmcp_client_on_the_2026_07_28_revision() {
    let mock = github_mock().await;
    let server = start(&mock);
    let client = http_client(&server, modern()).await;
    assert_eq!(client.peer_info().map(|info| info.protocol_version.clone()), Some(ProtocolVersion::V_2026_07_28));
    exercise(&client, &mock).await;
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn rmcp_client_with_the_initialize_handshake() {
    let mock = github_mock().await;
    let server = start(&mock);
    let client = http_client(&server, ClientLifecycleMode::Initialize).await;
    let version = client.peer_info().map(|info| info.protocol_version.clone()).unwrap();
    assert!(version.has_initialize(), "{version}");
    exercise(&client, &mock).await;
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn rmcp_client_over_stdio() {
    let mock = github_mock().await;
    // A serve on the same data directory seeds it, then the stdio server reads it.
    let server = start(&mock);
    let mut command = tokio::process::Command::new(common::BIN);
    command
        .args(["mcp", "--all-tools", "--data", server.data_dir().to_str().unwrap()])
        .env("GITHUB_BASE_URL", mock.uri())
        .env("GITHUB_TOKEN", GITHUB_TOKEN)
        .stderr(std::process::Stdio::null());
    let transport = TokioChildProcess::new(command).unwrap();
    let client = ClientConfig::default().serve(transport).await.expect("the stdio server answers initialize");
    exercise(&client, &mock).await;

    // A change made through the running serve reaches the stdio server's tool list.
    let token = server.admin_token();
    let source = common::script("Fresh", "#{ fresh: true }");
    let response = server
        .client
        .put(server.url("/api/servers/fresh"))
        .bearer_auth(token.trim())
        .body(source)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut seen = false;
    for _ in 0..100 {
        if client.list_all_tools().await.unwrap().iter().any(|tool| tool.name == "fresh") {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "the stdio server's tool list follows the store");
    let fresh = call(&client, "fresh", json!({})).await;
    assert_eq!(fresh.structured_content, Some(json!({ "fresh": true })));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn the_tool_list_follows_edits_and_disabling() {
    let server = Server::start(&[]);
    let client = http_client(&server, modern()).await;
    let names = |tools: Vec<Tool>| tools.into_iter().map(|t| t.name.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(names(client.list_all_tools().await.unwrap()), BTreeSet::from(["echo".to_owned()]));

    let source = "const META = #{ title: \"Shop\", description: \"d\", operations: #{ \
        get_item: #{ description: \"One item.\", endpoint: \"/items/{id}\", \
        input: #{ \"type\": \"object\", \"properties\": #{ id: #{ \"type\": \"string\" } }, \"required\": [\"id\"] } } } };\n\
        fn main(endpoint, method, data) { #{ endpoint: endpoint, method: method } }";
    let token = server.admin_token();
    let put = server.client.put(server.url("/api/servers/shop")).bearer_auth(token.trim()).body(source);
    assert_eq!(put.send().await.unwrap().status(), 200);
    let listed = names(client.list_all_tools().await.unwrap());
    assert_eq!(listed, BTreeSet::from(["echo", "shop", "shop__get_item"].map(String::from)));
    let item = call(&client, "shop__get_item", json!({ "id": "a/b" })).await;
    assert_eq!(item.structured_content, Some(json!({ "endpoint": "/items/a%2Fb", "method": "GET" })));
    let without = call(&client, "shop__get_item", json!({})).await;
    assert_eq!(without.is_error, Some(true));
    assert!(text_of(&without).contains("bad_request") && text_of(&without).contains("id: is required"));

    let disable = server.client.post(server.url("/api/servers/shop/disable")).bearer_auth(token.trim());
    assert_eq!(disable.send().await.unwrap().status(), 200);
    assert_eq!(names(client.list_all_tools().await.unwrap()), BTreeSet::from(["echo".to_owned()]));
    client.cancel().await.unwrap();
}

/// A raw JSON-RPC POST to /mcp with the given extra headers.
async fn post(server: &Server, headers: &[(&str, &str)]) -> reqwest::Response {
    let body = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "t", "version": "1" } } });
    let mut request = server.mcp(body.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn foreign_origins_and_hosts_are_refused_with_the_json_error() {
    let server = Server::start_with(&[], &["--allowed-origin", "https://app.example.com"], &[]);
    let refused = post(&server, &[("origin", "https://evil.example")]).await;
    let error = common::expect_error(refused, 403, "forbidden").await;
    assert!(error["message"].as_str().unwrap().contains("evil.example"));
    common::expect_error(post(&server, &[("host", "evil.example")]).await, 403, "forbidden").await;

    for allowed in [vec![], vec![("origin", "https://app.example.com")]] {
        let (status, body) = common::json(post(&server, &allowed).await).await;
        assert_eq!(status, 200, "{allowed:?}: {body}");
        assert_eq!(body["result"]["serverInfo"]["name"], "switchboard");
    }
    let same_origin = server.base.clone();
    assert_eq!(post(&server, &[("origin", &same_origin)]).await.status(), 200);

    let get = server.client.get(server.url("/mcp")).send().await.unwrap();
    assert_eq!(get.headers()["allow"], "POST");
    let error = common::expect_error(get, 405, "method_not_allowed").await;
    assert!(error["message"].as_str().unwrap().contains("Method Not Allowed"));
}

/// A raw JSON-RPC POST of `body` to /mcp; the JSON-RPC error it answers, with the HTTP status.
async fn rpc_error(server: &Server, body: String) -> (u16, Value) {
    let (status, body) = common::json(server.mcp(body).send().await.unwrap()).await;
    assert_eq!((&body["jsonrpc"], &body["id"]), (&json!("2.0"), &Value::Null), "{body}");
    (status, body["error"].clone())
}

#[tokio::test]
async fn bodies_that_are_not_json_rpc_get_json_rpc_errors() {
    let server = Server::start(&[]);
    for malformed in ["{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": ", "not json", "{\"a\": 1,}", ""] {
        let (status, error) = rpc_error(&server, malformed.to_owned()).await;
        assert_eq!((status, error["code"].as_i64()), (400, Some(-32700)), "{malformed:?}: {error}");
        assert!(error["message"].as_str().unwrap().starts_with("Parse error"), "{error}");
    }
    for invalid in
        [r#"[1, 2]"#, r#"{"jsonrpc": "2.0", "id": 1}"#, r#"{"jsonrpc": "1.0", "id": 1, "method": "tools/list"}"#]
    {
        let (status, error) = rpc_error(&server, invalid.to_owned()).await;
        assert_eq!((status, error["code"].as_i64()), (400, Some(-32600)), "{invalid}: {error}");
    }
    // Arguments nested 5 000 deep: a clear refusal naming the bound, before anything runs.
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let call = format!(
        r#"{{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {{"name": "echo", "arguments": {{"data": {deep}}}}}}}"#
    );
    let (status, error) = rpc_error(&server, call).await;
    assert_eq!((status, error["code"].as_i64()), (400, Some(-32600)), "{error}");
    assert!(error["message"].as_str().unwrap().contains("deeper than 127 levels"), "{error}");
    // Just within the bound, the call runs.
    let data = format!("{}{}", "[".repeat(120), "]".repeat(120));
    let call = json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/call",
                       "params": { "name": "echo", "arguments": { "data": serde_json::from_str::<Value>(&data).unwrap() } } });
    let (status, body) = common::json(server.mcp(call.to_string()).send().await.unwrap()).await;
    assert_eq!((status, &body["result"]["isError"]), (200, &json!(false)), "{body}");
}

/// Runs tests/mcp_client.py and returns its report.
async fn python_report(python: &std::path::Path, mode: &str, target: &[&str], mock: &MockServer) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp_client.py");
    let output = tokio::process::Command::new(python)
        .arg(script)
        .arg(mode)
        .args(target)
        .env("GITHUB_BASE_URL", mock.uri())
        .env("GITHUB_TOKEN", GITHUB_TOKEN)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{mode} {target:?}: {}{stdout}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("no report ({e}): {stdout}"))
}

/// What the Python client saw, and what the mock received from its named-operation call.
async fn check_python_report(report: &Value, mock: &MockServer) {
    assert!(report["pages"].as_u64().unwrap() > 1, "{}", report["pages"]);
    let tools: Vec<&str> = report["tools"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    let unique: BTreeSet<&str> = tools.iter().copied().collect();
    assert_eq!(unique.len(), tools.len(), "paging neither repeats nor skips");
    for expected in ["echo", "stripe__get_balance", "github__list_issues", "notion__query_data_source"] {
        assert!(unique.contains(expected), "{expected} is listed");
    }
    assert_eq!(report["echo"]["is_error"], false);
    let echoed: Value = serde_json::from_str(report["echo"]["text"].as_str().unwrap()).unwrap();
    assert_eq!(echoed, json!({ "endpoint": "/v1/x", "method": "POST", "data": { "n": 1 } }));
    assert_eq!(report["missing_secret"]["is_error"], true);
    let error: Value = serde_json::from_str(report["missing_secret"]["text"].as_str().unwrap()).unwrap();
    assert_eq!(error["error"]["type"], "missing_secret");
    assert_eq!(error["error"]["secret"], "STRIPE_API_KEY");
    assert_eq!(report["operation"]["is_error"], false, "{}", report["operation"]);
    let issues: Value = serde_json::from_str(report["operation"]["text"].as_str().unwrap()).unwrap();
    assert_eq!(issues, json!([{ "number": 7, "title": "Bug" }]));

    let received = mock.received_requests().await.unwrap();
    assert_eq!(received.len(), 1, "one upstream call for one operation call");
    assert_eq!(received[0].method.as_str(), "GET");
    assert_eq!(received[0].url.path(), "/repos/octo%20cat/hello/issues");
    assert_eq!(received[0].url.query(), Some("state=open"));
    assert_eq!(received[0].headers.get("authorization").unwrap(), &format!("Bearer {GITHUB_TOKEN}"));
}

#[tokio::test]
async fn python_client_over_streamable_http_in_both_modes() {
    let Some(python) = common::python_mcp_client() else { return };
    for (mode, version) in [("2026-07-28", "2026-07-28"), ("legacy", "2025-11-25")] {
        let mock = github_mock().await;
        let server = start(&mock);
        let url = server.url("/mcp");
        let report = python_report(&python, mode, &["http", &url], &mock).await;
        assert_eq!(report["protocol_version"], version);
        check_python_report(&report, &mock).await;
    }
}

#[tokio::test]
async fn python_client_over_stdio() {
    let Some(python) = common::python_mcp_client() else { return };
    for mode in ["legacy", "2026-07-28"] {
        let mock = github_mock().await;
        let server = start(&mock);
        let data = server.data_dir();
        let report = python_report(&python, mode, &["stdio", common::BIN, data.to_str().unwrap()], &mock).await;
        check_python_report(&report, &mock).await;
    }
}

/// The fenced blocks of the README's MCP section, as (language, text).
fn readme_mcp_blocks() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("\n## MCP\n").expect("the README has an MCP section");
    let section = &readme[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |end| end + 3)];
    let mut blocks = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if let Some(language) = line.strip_prefix("```").filter(|l| !l.is_empty()) {
            let text: Vec<&str> = lines.by_ref().take_while(|l| !l.starts_with("```")).collect();
            blocks.push((language.to_owned(), text.join("\n")));
        }
    }
    blocks
}

/// What a block promises to print: its `# → …` comment lines.
fn promised(block: &str) -> Vec<&str> {
    block.lines().filter_map(|line| line.trim().strip_prefix("# → ")).collect()
}

#[tokio::test]
async fn the_readme_mcp_examples_run() {
    let server = Server::start_default(&[], &[]);
    let address = server.base.trim_start_matches("http://").to_owned();
    let blocks = readme_mcp_blocks();
    let languages: Vec<&str> = blocks.iter().map(|(language, _)| language.as_str()).collect();
    assert_eq!(languages, ["sh", "sh", "python", "json", "rhai", "sh"]);
    for (language, block) in &blocks {
        let runnable = block.replace("localhost:8080", &address);
        let output = match language.as_str() {
            "sh" => std::process::Command::new("bash").args(["-c", &runnable]).output().unwrap(),
            "python" => match common::python_mcp_client() {
                Some(python) => std::process::Command::new(python).args(["-c", &runnable]).output().unwrap(),
                None => continue,
            },
            "json" => {
                check_desktop_configuration(&server, block).await;
                continue;
            }
            _ => continue,
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{block}\n{}", String::from_utf8_lossy(&output.stderr));
        for expected in promised(block) {
            assert!(stdout.contains(expected), "the example should print {expected}:\n{block}\nprinted: {stdout}");
        }
    }
}

/// The desktop configuration's command line serves MCP over stdio (its data directory replaced).
async fn check_desktop_configuration(server: &Server, block: &str) {
    let config: Value = serde_json::from_str(block).expect("the configuration is JSON");
    let entry = &config["mcpServers"]["switchboard"];
    assert_eq!(entry["command"], "switchboard");
    let mut args: Vec<String> =
        entry["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()).collect();
    assert_eq!(args[..2], ["mcp", "--data"]);
    args[2] = server.data_dir().to_str().unwrap().to_owned();
    let mut command = tokio::process::Command::new(common::BIN);
    command.args(&args).stderr(std::process::Stdio::null());
    let client = ClientConfig::default().serve(TokioChildProcess::new(command).unwrap()).await.unwrap();
    assert!(client.list_all_tools().await.unwrap().iter().any(|tool| tool.name == "echo"));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn the_2026_07_28_headers_must_agree_with_the_body() {
    let server = Server::start(&[]);
    let meta = json!({ "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {} });
    let send = |headers: Vec<(&'static str, &'static str)>, params: Value| {
        let body = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params });
        let mut request = server
            .client
            .post(server.url("/mcp"))
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .json(&body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send()
    };
    let call = json!({ "name": "echo", "arguments": {}, "_meta": meta });
    let (status, body) =
        common::json(send(vec![("mcp-method", "tools/call"), ("mcp-name", "echo")], call.clone()).await.unwrap()).await;
    assert_eq!((status, body["result"]["resultType"].as_str()), (200, Some("complete")), "{body}");
    for (headers, params, expected) in [
        (vec![("mcp-method", "tools/call"), ("mcp-name", "stripe")], call.clone(), "Mcp-Name"),
        (vec![("mcp-name", "echo")], call.clone(), "Mcp-Method"),
        (vec![("mcp-method", "tools/call"), ("mcp-name", "echo")], json!({ "name": "echo" }), "_meta"),
    ] {
        let (status, body) = common::json(send(headers, params).await.unwrap()).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(expected), "{expected}: {body}");
    }
}

#[tokio::test]
async fn a_2026_07_28_stdio_client_hears_of_changes_through_its_subscription() {
    let server = Server::start(&[]);
    let mut command = tokio::process::Command::new(common::BIN);
    command.args(["mcp", "--data", server.data_dir().to_str().unwrap()]).stderr(std::process::Stdio::null());
    let client = ClientConfig::default()
        .serve_with_lifecycle(TokioChildProcess::new(command).unwrap(), modern())
        .await
        .expect("the stdio server answers without initialize");
    let filter = rmcp::model::SubscriptionFilter::builder().tools_list_changed().build();
    let mut subscription = client.listen(filter).await.expect("subscriptions/listen is acknowledged");
    assert_eq!(subscription.acknowledged().tools_list_changed, Some(true));

    let token = server.admin_token();
    let put =
        server.client.put(server.url("/api/servers/late")).bearer_auth(token.trim()).body(common::script("Late", "1"));
    assert_eq!(put.send().await.unwrap().status(), 200);
    // A deadline only so that a broken build fails instead of hanging; the notice comes within a poll.
    let notice = tokio::time::timeout(Duration::from_secs(60), subscription.next()).await.expect("a notice");
    assert!(matches!(notice, Ok(Some(rmcp::model::ServerNotification::ToolListChangedNotification(_)))), "{notice:?}");
    assert!(client.list_all_tools().await.unwrap().iter().any(|tool| tool.name == "late"));
    drop(subscription);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn with_invocation_tokens_mcp_needs_one_and_lists_only_what_it_covers() {
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    let other = common::script("Other", "1");
    let tokens = ["--invoke-token", "tok_all", "--invoke-token", "tok_echo=echo"];
    let server = Server::start_with(&[("other", &other)], &tokens, &[]);
    let refused = post(&server, &[]).await;
    assert_eq!(refused.headers()["www-authenticate"], "Bearer");
    common::expect_error(refused, 401, "unauthorized").await;
    common::expect_error(post(&server, &[("authorization", "Bearer tok_wrong")]).await, 401, "unauthorized").await;

    let connect = |token: &str| {
        let config = StreamableHttpClientTransportConfig::with_uri(server.url("/mcp")).auth_header(token.to_owned());
        ClientConfig::default().serve_with_lifecycle(StreamableHttpClientTransport::from_config(config), modern())
    };
    let limited = connect("tok_echo").await.expect("the client connects with its token");
    let names: Vec<String> =
        limited.list_tools(None).await.unwrap().tools.into_iter().map(|t| t.name.to_string()).collect();
    assert_eq!(names, ["echo"]);
    let result = call(&limited, "echo", json!({ "endpoint": "/x" })).await;
    assert_ne!(result.is_error, Some(true), "{}", text_of(&result));
    let refused = call(&limited, "other", json!({})).await;
    assert_eq!(refused.is_error, Some(true));
    assert!(text_of(&refused).contains("forbidden"), "{}", text_of(&refused));

    let unlimited = connect("tok_all").await.expect("the client connects with its token");
    let names: Vec<String> =
        unlimited.list_tools(None).await.unwrap().tools.into_iter().map(|t| t.name.to_string()).collect();
    assert_eq!(names, ["echo", "other"]);
}
