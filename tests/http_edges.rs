//! The edges of the HTTP layer: every error is JSON, methods are normalised before a script sees them,
//! numbers are exact or refused, an endpoint cannot climb out of its base path, and undeclared
//! secrets are reported where they were asked for.

mod common;

use common::{Server, expect_error, json, script};
use serde_json::json;

#[tokio::test]
async fn errors_of_the_http_layer_are_json_named_after_their_status() {
    let server = Server::start(&[]);
    let error =
        expect_error(server.client.patch(server.url("/api/servers")).send().await.unwrap(), 405, "method_not_allowed")
            .await;
    assert!(error["message"].is_string());
    let long = format!("/echo/{}", "a".repeat(20 * 1024));
    expect_error(server.get(&long).await, 414, "uri_too_long").await;
    let mut request = server.client.get(server.url("/echo/"));
    for i in 0..40 {
        request = request.header(format!("x-filler-{i}"), "v".repeat(2000));
    }
    expect_error(request.send().await.unwrap(), 431, "headers_too_large").await;
    expect_error(server.get("/api/servers/%FF%FE").await, 400, "bad_request").await;
    expect_error(server.get("/cid/%FF").await, 400, "bad_request").await;
}

#[tokio::test]
async fn methods_reach_scripts_upper_case_and_bounded() {
    let server = Server::start(&[]);
    let lower = reqwest::Method::from_bytes(b"post").unwrap();
    let response = server.client.request(lower, server.url("/echo/x")).send().await.unwrap();
    assert_eq!(json(response).await.1["method"], "POST");
    let custom = reqwest::Method::from_bytes(b"purge").unwrap();
    assert_eq!(
        json(server.client.request(custom, server.url("/echo/x")).send().await.unwrap()).await.1["method"],
        "PURGE"
    );
    let long = reqwest::Method::from_bytes("X".repeat(100).as_bytes()).unwrap();
    expect_error(server.client.request(long, server.url("/echo/x")).send().await.unwrap(), 400, "bad_request").await;
    let (_, body) = json(server.get("/echo?method=delete").await).await;
    assert_eq!(body["method"], "DELETE");
    expect_error(server.get(&format!("/echo?method={}", "Y".repeat(100))).await, 400, "bad_request").await;
}

#[tokio::test]
async fn integers_beyond_i64_are_refused_not_rounded() {
    let server = Server::start(&[]);
    let post = |body: &'static str| {
        server.client.post(server.url("/echo/x")).header("content-type", "application/json").body(body).send()
    };
    let error = expect_error(post(r#"{"id": 18446744073709551615}"#).await.unwrap(), 400, "bad_request").await;
    assert!(error["message"].as_str().unwrap().contains("18446744073709551615"), "{error}");
    let (_, body) = json(post(r#"{"id": 9223372036854775807, "f": 1.5}"#).await.unwrap()).await;
    assert_eq!(body["data"], json!({"id": 9223372036854775807i64, "f": 1.5}));
    let call = server.client.post(server.url("/echo")).json(&json!({"data": {"n": 99999999999999999999.0}}));
    assert_eq!(call.send().await.unwrap().status(), 200, "a float stays a float");
    let call = server.client.post(server.url("/echo")).body(r#"{"data": {"n": 99999999999999999999}}"#);
    expect_error(call.send().await.unwrap(), 400, "bad_request").await;
}

#[tokio::test]
async fn undeclared_secrets_are_reported_with_line_and_column() {
    let reader = script("Reader", "    let x = 1;\n    secret::get(\"NOT_DECLARED\")");
    let server = Server::start(&[("reader", &reader)]);
    let error = expect_error(server.get("/reader/").await, 500, "script_error").await;
    assert!(error["message"].as_str().unwrap().contains("NOT_DECLARED"), "{error}");
    assert_eq!((error["line"].as_i64(), error["column"].as_i64()), (Some(4), Some(13)), "{error}");
}

#[tokio::test]
async fn an_endpoint_cannot_climb_out_of_the_base_path() {
    let api = "const META = #{ title: \"Api\", description: \"d\", base_url: \"http://127.0.0.1:9/v1\" };\nfn main(endpoint, method, data) { api::call(global::META, endpoint, method, data) }\n";
    let server = Server::start(&[("remote", api)]);
    for endpoint in ["/../admin", "/%2e%2e/admin", "/x/..%2fadmin", "/v1/..\\..\\admin"] {
        let response = server.client.get(server.url("/remote")).query(&[("endpoint", endpoint)]).send().await.unwrap();
        let error = expect_error(response, 400, "bad_request").await;
        assert!(error["message"].as_str().unwrap().contains("climb"), "{endpoint}: {error}");
    }
}
