//! MCP as an agent meets it, through the official Python client (`tests/mcp_agent.py`): the default
//! tool list holds the servers that can run, and a tool's arguments are checked against its input
//! schema before anything is sent, so "nothing sent" is what the mock upstream did not receive.

mod common;

use common::Server;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn stripe_mock() -> MockServer {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "id": "pi_1", "amount": 1000 })))
        .mount(&mock)
        .await;
    mock
}

/// The default image with Stripe's key set (and nothing else), listing all tools when `all` says.
fn start(mock: &MockServer, all: bool) -> Server {
    let extra: &[&str] = if all { &["--mcp-all-tools"] } else { &[] };
    Server::start_default(extra, &[("STRIPE_API_KEY", "sk_test_agents"), ("STRIPE_BASE_URL", &mock.uri())])
}

async fn report(python: &std::path::Path, server: &Server) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp_agent.py");
    let output =
        tokio::process::Command::new(python).arg(script).arg("legacy").arg(server.url("/mcp")).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}{stdout}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("no report ({e}): {stdout}"))
}

/// A failed call's error, as the client read it.
fn error_of(call: &Value) -> Value {
    assert_eq!(call["is_error"], true, "{call}");
    serde_json::from_str::<Value>(call["text"].as_str().unwrap()).unwrap()["error"].clone()
}

fn wrong_fields(error: &Value) -> Vec<&str> {
    error["fields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn wrong_arguments_are_refused_naming_each_field_and_nothing_is_sent() {
    let Some(python) = common::python_mcp_client() else { return };
    let mock = stripe_mock().await;
    let server = start(&mock, false);
    let report = report(&python, &server).await;

    let wrong_type = error_of(&report["wrong_type"]);
    assert_eq!((wrong_type["type"].as_str(), wrong_fields(&wrong_type)), (Some("bad_request"), vec!["amount"]));
    assert!(
        wrong_type["message"].as_str().unwrap().contains("amount: \"ten\" is not of type \"integer\""),
        "{wrong_type}"
    );
    let unknown = error_of(&report["unknown"]);
    assert_eq!(wrong_fields(&unknown), vec!["injected"], "{unknown}");
    let mut missing = wrong_fields(&error_of(&report["missing"])).into_iter().map(str::to_owned).collect::<Vec<_>>();
    missing.sort();
    assert_eq!(missing, ["amount", "currency"]);

    // Only the right call reached Stripe, as Stripe takes it.
    assert_eq!(report["right"]["is_error"], false, "{}", report["right"]);
    let received = mock.received_requests().await.unwrap();
    assert_eq!(received.len(), 1, "the refused calls sent nothing");
    assert_eq!(String::from_utf8_lossy(&received[0].body), "amount=1000&currency=usd");
    // A server's own tool holds its arguments to its schema too.
    let method = error_of(&report["server_tool_method"]);
    assert_eq!(wrong_fields(&method), vec!["method"], "{method}");
    assert_eq!(wrong_fields(&error_of(&report["server_tool_unknown"])), vec!["injected"]);
    // The schema the client was given says the same: no argument beyond those it names.
    let input = &report["tools"]["stripe__create_payment_intent"]["input"];
    assert_eq!(input["additionalProperties"], false, "{input}");
}

#[tokio::test]
async fn the_default_list_holds_the_servers_that_can_run_and_a_setting_lists_all() {
    let Some(python) = common::python_mcp_client() else { return };
    let mock = stripe_mock().await;
    let server = start(&mock, false);
    let listed = report(&python, &server).await;
    let names: Vec<&str> = listed["tools"].as_object().unwrap().keys().map(String::as_str).collect();
    for expected in ["echo", "stripe", "stripe__create_payment_intent"] {
        assert!(names.contains(&expected), "{expected} can run: {names:?}");
    }
    for absent in ["slack", "zendesk", "box", "github__list_issues"] {
        assert!(!names.contains(&absent), "{absent} lacks its secrets or connection: {names:?}");
    }

    let all = start(&mock, true);
    let listed_all = report(&python, &all).await;
    let every: Vec<&str> = listed_all["tools"].as_object().unwrap().keys().map(String::as_str).collect();
    assert!(every.len() > names.len() + 100, "{} tools listed with --mcp-all-tools", every.len());
    for expected in ["slack", "zendesk", "box", "github__list_issues", "stripe__create_payment_intent"] {
        assert!(every.contains(&expected), "{expected}");
    }
}

#[tokio::test]
async fn each_server_tool_is_described_from_its_own_meta() {
    let Some(python) = common::python_mcp_client() else { return };
    let mock = stripe_mock().await;
    let server = start(&mock, true);
    let report = report(&python, &server).await;
    let tool = |name: &str| report["tools"][name].clone();
    let text = |name: &str| {
        let tool = tool(name);
        format!(
            "{} {} {}",
            tool["description"], tool["input"]["properties"]["endpoint"], tool["input"]["properties"]["data"]
        )
    };
    for name in ["echo", "zendesk", "postgresql", "slack", "github"] {
        assert!(!text(name).contains("/v1/customers"), "{name} borrows Stripe's example: {}", text(name));
    }
    assert!(text("stripe").contains("/v1/customers"), "{}", text("stripe"));
    assert!(text("zendesk").contains("/users/me.json"), "{}", text("zendesk"));
    assert!(text("github").contains("/repos/{owner}/{repo}"), "{}", text("github"));
    for database in ["postgresql", "mysql"] {
        let described = text(database);
        let example = ["SQL", "POST /", " with data {", "\\\"sql\\\": …", "\\\"params\\\": …"];
        assert!(example.iter().all(|part| described.contains(part)), "{described}");
    }
    // `all_pages` only where a list pages.
    let takes_all_pages = |name: &str| tool(name)["input"]["properties"].get("all_pages").is_some();
    assert!(takes_all_pages("stripe__list_customers") && takes_all_pages("github__list_issues"));
    for name in ["stripe__get_customer", "github__get_repo", "stripe__create_customer", "echo"] {
        assert!(!takes_all_pages(name), "{name}");
    }
}
