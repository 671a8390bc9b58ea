//! Bad input over HTTP: every case answers with its documented error type and status, within its
//! limit, and the server keeps serving everyone else meanwhile.

mod common;

use std::time::{Duration, Instant};

use common::{Server, expect_error, json, script};

#[tokio::test]
async fn an_unknown_server_is_not_found() {
    let server = Server::start(&[]);
    let error = expect_error(server.get("/nobody/x").await, 404, "not_found").await;
    assert!(error["message"].as_str().unwrap().contains("nobody"));
    expect_error(server.get("/nobody?endpoint=/x").await, 404, "not_found").await;
    expect_error(server.get("/nobody").await, 404, "not_found").await;
    let error = expect_error(server.get("/ecoh/x").await, 404, "not_found").await;
    assert_eq!(error["message"], "no server named 'ecoh': did you mean 'echo'?");
    expect_error(server.get("/api/nothing").await, 404, "not_found").await;
}

#[tokio::test]
async fn an_unknown_cid_is_not_found_and_a_malformed_one_is_a_bad_request() {
    let server = Server::start(&[]);
    let absent = switchboard::cid::Cid::of(b"never stored").to_string();
    expect_error(server.get(&format!("/{absent}/x")).await, 404, "not_found").await;
    expect_error(server.get(&format!("/cid/{absent}")).await, 404, "not_found").await;
    expect_error(server.get("/cid/bafkr4inotacid").await, 400, "bad_request").await;
    expect_error(server.get("/echo?input=bafkr4inotacid").await, 400, "bad_request").await;
    let response = server.client.get(server.url("/echo/x")).header("x-input-cid", "nope").send().await.unwrap();
    expect_error(response, 400, "bad_request").await;
    expect_error(server.get(&format!("/echo?input={absent}")).await, 404, "not_found").await;
}

#[tokio::test]
async fn a_body_declared_json_that_does_not_parse_is_a_bad_request() {
    let server = Server::start(&[]);
    let response = server
        .client
        .post(server.url("/echo/x"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    expect_error(response, 400, "bad_request").await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused() {
    let server = Server::start_with(&[], &["--max-body", "1024"], &[]);
    let response = server.client.post(server.url("/echo/x")).body(vec![b'a'; 4096]).send().await.unwrap();
    expect_error(response, 413, "payload_too_large").await;
    let response = server.client.post(server.url("/echo")).body(vec![b'{'; 4096]).send().await.unwrap();
    expect_error(response, 413, "payload_too_large").await;
    // Within the limit, the same route works.
    let response = server.client.post(server.url("/echo/x")).body(vec![b'a'; 512]).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_script_error_reports_server_cid_line_and_column() {
    let broken = script("Broken", "    let x = 1;\n    x.no_such_method()");
    let server = Server::start(&[("broken", &broken)]);
    let response = server.get("/broken/").await;
    let cid = response.headers()["x-server-cid"].to_str().unwrap().to_string();
    let error = expect_error(response, 500, "script_error").await;
    assert_eq!(error["server"], "broken");
    assert_eq!(error["cid"], cid.as_str());
    assert_eq!(error["line"], 4);
    assert_eq!(error["column"], 7);
}

#[tokio::test]
async fn an_endless_loop_is_stopped_and_everyone_else_is_served_meanwhile() {
    let spin = script("Spin", "    loop {}");
    let server = Server::start(&[("spin", &spin)]);
    let spinning = {
        let client = server.client.clone();
        let url = server.url("/spin/");
        tokio::spawn(async move { client.get(url).header("x-timeout-ms", "3000").send().await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    // While the loop runs, echo keeps answering.
    for _ in 0..20 {
        let (status, _) = json(server.get("/echo/meanwhile").await).await;
        assert_eq!(status, 200);
    }
    assert!(!spinning.is_finished(), "echo answered only after the loop stopped");
    let response = spinning.await.unwrap();
    let (status, body) = json(response).await;
    assert!(
        (status, body["error"]["type"].as_str()) == (500, Some("limit_exceeded"))
            || (status, body["error"]["type"].as_str()) == (504, Some("timeout")),
        "{status} {body}"
    );
}

#[tokio::test]
async fn the_wall_clock_limit_answers_timeout() {
    // Enough operations that only the clock can stop it within the test.
    let slow = script("Slow", "    let n = 0;\n    loop { n += 1; }");
    let server = Server::start(&[("slow", &slow)]);
    let started = Instant::now();
    let error = expect_error(server.get("/slow?timeout_ms=150").await, 504, "timeout").await;
    assert!(error["message"].as_str().unwrap().contains("150 ms"));
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn endless_recursion_and_huge_values_hit_their_limits() {
    let recurse = "const META = #{ title: \"R\", description: \"d\" };\nfn down(n) { down(n + 1) }\nfn main(endpoint, method, data) { down(0) }";
    let string = script("S", "    let s = \"x\";\n    loop { s += s; }");
    let array = script("A", "    let a = [];\n    loop { a += [1, 2, 3, 4, 5, 6, 7, 8]; }");
    let server = Server::start(&[("recurse", recurse), ("string", &string), ("array", &array)]);
    let error = expect_error(server.get("/recurse/").await, 500, "limit_exceeded").await;
    assert_eq!(error["limit"], "call_depth");
    let error = expect_error(server.get("/string/").await, 500, "limit_exceeded").await;
    assert_eq!(error["limit"], "size");
    let error = expect_error(server.get("/array/").await, 500, "limit_exceeded").await;
    assert_eq!(error["limit"], "size");
    // The runtime is unharmed.
    assert_eq!(server.get("/echo/").await.status(), 200);
}

#[tokio::test]
async fn a_cid_that_names_data_rather_than_a_bound_script_is_not_found() {
    let server = Server::start(&[]);
    let response = server.get("/echo?endpoint=/x&store=1").await;
    let stored = response.headers()["x-output-cid"].to_str().unwrap().to_string();
    let error = expect_error(server.get(&format!("/{stored}/run")).await, 404, "not_found").await;
    assert!(error["message"].as_str().unwrap().contains("an operator bound"), "{error}");
}
