//! The edges of the HTTP layer: every error is JSON (but for the requests the HTTP parser refuses
//! before the router runs, listed in SECURITY.md), methods are normalised before a script sees them,
//! numbers are exact or refused, an endpoint cannot climb out of its base path, and undeclared
//! secrets are reported where they were asked for.

mod common;

use common::{Server, expect_error, json, script};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Writes `bytes` on a new connection to `server` and reads until the server closes it or has sent
/// one whole response: (status line, header block, body).
async fn raw(server: &Server, bytes: &[u8]) -> (String, String, String) {
    let address = server.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut received = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let read = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut chunk)).await;
        let Ok(Ok(read)) = read else { break };
        if read == 0 {
            break;
        }
        received.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length =
                head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_owned));
            if length.and_then(|l| l.trim().parse::<usize>().ok()).is_some_and(|l| body.len() >= l) {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&received).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_owned(), headers.to_ascii_lowercase(), body.to_owned())
}

#[tokio::test]
async fn malformed_requests_that_reach_the_router_are_answered_in_json() {
    let server = Server::start(&[]);
    let cases: [(&[u8], &str); 6] = [
        (b"GET /echo/x HTTP/1.1\r\n\r\n", "400"),
        (b"GET /echo/x HTTP/1.0\r\n\r\n", "400"),
        (b"GET /echo/x HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n\r\n", "400"),
        (b"GET http://evil.example/echo/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "403"),
        (b"GET /api/servers/%FF HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "400"),
        (b"POST /echo/ HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n", "400"),
    ];
    for (request, status) in cases {
        let (line, headers, body) = raw(&server, request).await;
        let shown = String::from_utf8_lossy(request);
        assert!(line.contains(&format!(" {status} ")), "{shown}: {line}");
        assert!(headers.contains("content-type: application/json"), "{shown}: {headers}");
        let error: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{shown}: {e}: {body}"));
        assert!(error["error"]["type"].is_string(), "{shown}: {error}");
    }
}

/// What the HTTP parser (hyper) refuses before any of the runtime's code runs: it answers with an
/// empty body and closes the connection. SECURITY.md lists these exceptions; the server goes on.
#[tokio::test]
async fn requests_the_http_parser_refuses_get_its_empty_answer_and_nothing_else() {
    let server = Server::start(&[]);
    let long_target = format!("GET /echo/{} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "a".repeat(70 * 1024));
    let many_headers = format!(
        "GET /echo/ HTTP/1.1\r\nHost: 127.0.0.1\r\n{}\r\n",
        (0..120).map(|i| format!("X-{i}: 1\r\n")).collect::<String>()
    );
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"GET /echo/a b HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_vec(), "400"),
        (b"GET /echo/\x01 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_vec(), "400"),
        (b"GET /echo/\xff HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_vec(), "400"),
        (b"G@T /echo/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_vec(), "400"),
        (b"GET /echo/ HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n".to_vec(), "400"),
        (b"GET /echo/ HTTP/1.1\r\nHost: 127.0.0.1\r\nNo-Colon\r\n\r\n".to_vec(), "400"),
        (b"GET /echo/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX: a\x00b\r\n\r\n".to_vec(), "400"),
        (b"POST /echo/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: x\r\n\r\n".to_vec(), "400"),
        (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03".to_vec(), "400"),
        (long_target.into_bytes(), "414"),
        (many_headers.into_bytes(), "431"),
    ];
    for (request, status) in &cases {
        let (line, headers, body) = raw(&server, request).await;
        let shown: String = String::from_utf8_lossy(request).chars().take(60).collect();
        assert!(line.starts_with(&format!("HTTP/1.1 {status} ")), "{shown}: {line}");
        assert!(headers.contains("connection: close") && body.is_empty(), "{shown}: {headers} {body}");
    }
    assert_eq!(server.get("/echo/").await.status(), 200);
}

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
