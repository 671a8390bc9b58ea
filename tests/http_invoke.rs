//! Invocation over HTTP as users see it: both styles, by name and by CID, chaining and storing.

mod common;

use common::{Server, expect_error, json, script};
use serde_json::json;

fn cid_of(text: &str) -> String {
    switchboard::cid::Cid::of(text.as_bytes()).to_string()
}

#[tokio::test]
async fn proxy_style_passes_path_query_method_and_json_body() {
    let server = Server::start(&[]);
    let response = server
        .client
        .post(server.url("/echo/v1/customers/a%2Fb?limit=3&q=x%20y"))
        .header("content-type", "application/json")
        .body(r#"{"email":"a@b.c"}"#)
        .send()
        .await
        .unwrap();
    assert!(response.headers()["x-server-cid"].to_str().unwrap().starts_with("bafkr4i"));
    assert_eq!(response.headers()["content-type"], "application/json");
    let (status, body) = json(response).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"endpoint": "/v1/customers/a%2Fb?limit=3&q=x%20y", "method": "POST", "data": {"email": "a@b.c"}})
    );
}

#[tokio::test]
async fn proxy_style_reads_json_without_a_json_content_type_and_text_otherwise() {
    let server = Server::start(&[]);
    // What `curl -d '{...}'` sends: a form content type with a JSON body.
    let response = server
        .client
        .put(server.url("/echo/x"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(r#"{"a":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(json(response).await.1["data"], json!({"a": 1}));
    let response = server.client.delete(server.url("/echo/")).body("plain words").send().await.unwrap();
    let (_, body) = json(response).await;
    assert_eq!(body, json!({"endpoint": "/", "method": "DELETE", "data": "plain words"}));
}

#[tokio::test]
async fn proxy_style_without_a_body_passes_unit() {
    let server = Server::start(&[]);
    let (_, body) = json(server.get("/echo/ping").await).await;
    assert_eq!(body, json!({"endpoint": "/ping", "method": "GET", "data": null}));
}

#[tokio::test]
async fn call_style_get_takes_query_parameters() {
    let server = Server::start(&[]);
    let (status, body) =
        json(server.get("/echo?endpoint=/v1/x%3Fa%3D1&method=patch&data=%7B%22n%22%3A2%7D").await).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"endpoint": "/v1/x?a=1", "method": "PATCH", "data": {"n": 2}}));
    let (_, body) = json(server.get("/echo?data=just%20text").await).await;
    assert_eq!(body, json!({"endpoint": "", "method": "GET", "data": "just text"}));
}

#[tokio::test]
async fn call_style_post_takes_a_json_object_or_a_form() {
    let server = Server::start(&[]);
    let response = server
        .client
        .post(server.url("/echo"))
        .json(&json!({"endpoint": "/e", "method": "DELETE", "data": [1, "two"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(json(response).await.1, json!({"endpoint": "/e", "method": "DELETE", "data": [1, "two"]}));
    let response = server
        .client
        .post(server.url("/echo"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("endpoint=%2Fform&method=POST&data=%5B1%5D")
        .send()
        .await
        .unwrap();
    assert_eq!(json(response).await.1, json!({"endpoint": "/form", "method": "POST", "data": [1]}));
    let response = server.client.post(server.url("/echo")).send().await.unwrap();
    assert_eq!(json(response).await.1, json!({"endpoint": "", "method": "GET", "data": null}));
}

#[tokio::test]
async fn call_style_refuses_unknown_and_malformed_parameters() {
    let server = Server::start(&[]);
    let error = expect_error(server.get("/echo?endpont=/x").await, 400, "bad_request").await;
    assert!(error["message"].as_str().unwrap().contains("endpont"));
    expect_error(server.get("/echo?method=NOT%20A%20METHOD").await, 400, "bad_request").await;
    expect_error(server.get("/echo?timeout_ms=soon").await, 400, "bad_request").await;
    let response = server.client.post(server.url("/echo")).body(r#"{"endpoint": "/x""#).send().await.unwrap();
    expect_error(response, 400, "bad_request").await;
}

#[tokio::test]
async fn a_server_is_invoked_by_its_cid_in_both_styles() {
    let server = Server::start(&[]);
    let cid = server.get("/echo/").await.headers()["x-server-cid"].to_str().unwrap().to_string();
    let echo = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/echo.rhai")).unwrap();
    assert_eq!(cid, cid_of(&echo));
    let response = server.get(&format!("/{cid}/by/cid")).await;
    assert_eq!(response.headers()["x-server-cid"], cid.as_str());
    assert_eq!(json(response).await.1["endpoint"], "/by/cid");
    let (_, body) = json(server.get(&format!("/{cid}?endpoint=/call")).await).await;
    assert_eq!(body["endpoint"], "/call");
}

#[tokio::test]
async fn get_without_parameters_describes_the_server() {
    let server = Server::start(&[]);
    let (status, body) = json(server.get("/echo").await).await;
    assert_eq!(status, 200);
    assert_eq!(body["name"], "echo");
    assert_eq!(body["meta"]["title"], "Echo");
    assert!(body["cid"].as_str().unwrap().starts_with("bafkr4i"));

    let response = server.client.get(server.url("/echo")).header("accept", "text/html,*/*").send().await.unwrap();
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let page = response.text().await.unwrap();
    assert!(page.contains("<form method=\"post\" action=\"/echo\">"), "{page}");
    assert!(page.contains("<h1>Echo</h1>"));
}

#[tokio::test]
async fn the_html_form_posts_back_as_a_call() {
    let server = Server::start(&[]);
    // Exactly what a browser submits from the form: every field, the empty ones included.
    let response = server
        .client
        .post(server.url("/echo"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("endpoint=&method=GET&data=")
        .send()
        .await
        .unwrap();
    assert_eq!(json(response).await.1, json!({"endpoint": "", "method": "GET", "data": null}));
}

#[tokio::test]
async fn an_output_is_stored_and_chained_as_input() {
    let server = Server::start(&[]);
    let response = server.get("/echo?endpoint=/first&data=%7B%22n%22%3A1%7D&store=1").await;
    let stored = response.headers()["x-output-cid"].to_str().unwrap().to_string();
    let first = response.text().await.unwrap();
    assert_eq!(stored, cid_of(&first));

    // The stored output is content: immutable, named by its CID.
    let blob = server.get(&format!("/cid/{stored}")).await;
    assert_eq!(blob.headers()["etag"], format!("\"{stored}\"").as_str());
    assert!(blob.headers()["cache-control"].to_str().unwrap().contains("immutable"));
    assert_eq!(blob.text().await.unwrap(), first);

    // Call style: input= makes it the data.
    let (_, body) = json(server.get(&format!("/echo?endpoint=/second&input={stored}")).await).await;
    assert_eq!(body["data"], serde_json::from_str::<serde_json::Value>(&first).unwrap());

    // Proxy style: the headers do the same, and the output can be stored again.
    let response = server
        .client
        .get(server.url("/echo/third?q=1"))
        .header("x-input-cid", &stored)
        .header("x-store-output", "1")
        .send()
        .await
        .unwrap();
    let again = response.headers()["x-output-cid"].to_str().unwrap().to_string();
    let (_, body) = json(response).await;
    assert_eq!(body["endpoint"], "/third?q=1");
    assert_eq!(body["data"]["endpoint"], "/first");
    assert_eq!(again, cid_of(&body.to_string()));
}

#[tokio::test]
async fn an_envelope_sets_status_content_type_and_headers() {
    let page = script(
        "Page",
        r#"#{ output: "<b>hi</b>", content_type: "text/html", status: 201, headers: #{ "x-extra": "yes" } }"#,
    );
    let server = Server::start(&[("page", &page)]);
    let response = server.get("/page/").await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["content-type"], "text/html");
    assert_eq!(response.headers()["x-extra"], "yes");
    assert!(response.headers().contains_key("x-server-cid"));
    assert_eq!(response.text().await.unwrap(), "<b>hi</b>");
}

#[tokio::test]
async fn a_string_result_is_text() {
    let hello = script("Hello", r#""hello " + method"#);
    let server = Server::start(&[("hello", &hello)]);
    let response = server.get("/hello/").await;
    assert_eq!(response.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(response.text().await.unwrap(), "hello GET");
}

#[tokio::test]
async fn health_and_the_server_list_answer() {
    let server = Server::start(&[]);
    let (status, body) = json(server.get("/health").await).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (_, body) = json(server.get("/api/servers").await).await;
    assert_eq!(body["servers"][0]["name"], "echo");
    assert_eq!(body["servers"][0]["enabled"], true);
    let (_, body) = json(server.get("/api/servers/echo").await).await;
    assert_eq!(body["meta"]["title"], "Echo");
    assert_eq!(body["history"][0]["origin"], "boot");
}

#[tokio::test]
async fn the_embedded_image_serves_echo_on_a_fresh_data_directory() {
    let server = Server::start_default(&[], &[]);
    let (status, body) = json(server.get("/echo/fresh").await).await;
    assert_eq!((status, body["endpoint"].as_str()), (200, Some("/fresh")));
}

/// `GET /` is a small index: JSON for a client (what curl gets), a page for a browser, the same links.
#[tokio::test]
async fn the_root_is_an_index_linking_the_console_health_and_catalog() {
    let server = Server::start(&[]);
    let (status, index) = json(server.get("/").await).await;
    assert_eq!(status, 200);
    assert_eq!(index["name"], "switchboard");
    assert_eq!(
        index["links"],
        serde_json::json!({ "ui": "/ui", "health": "/health", "servers": "/api/servers", "mcp": "/mcp" })
    );
    let asked = server.client.get(server.url("/")).header("accept", "application/json").send().await.unwrap();
    assert_eq!(json(asked).await.1, index);
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let shown = readme.split("curl localhost:8080/\n# ").nth(1).unwrap().lines().next().unwrap();
    let mut shown: serde_json::Value = serde_json::from_str(shown).unwrap();
    shown["version"] = index["version"].clone();
    assert_eq!(shown, index, "the README's index is not what GET / answers");
    for (name, path) in [("health", "/health"), ("servers", "/api/servers")] {
        assert_eq!(server.get(index["links"][name].as_str().unwrap()).await.status(), 200, "{path}");
    }

    let page = server.client.get(server.url("/")).header("accept", "text/html,*/*;q=0.8").send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert!(page.headers().contains_key("content-security-policy"));
    let html = page.text().await.unwrap();
    for path in ["/ui", "/health", "/api/servers"] {
        assert!(html.contains(&format!("<a href=\"{path}\">")), "{html}");
    }
    let post = server.client.post(server.url("/")).send().await.unwrap();
    assert_eq!(post.status(), 405);
}
