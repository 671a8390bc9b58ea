//! Secrets: least privilege in scripts, the admin-guarded API, the CLI, encryption at rest, and a leak
//! hunt through every way an invocation can fail.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{BIN, Server, expect_error, json, script};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const READER: &str = r#"const META = #{ title: "Reader", description: "d", secrets: ["DECLARED", ["ALT_ONE", "ALT_TWO"]] };
fn main(endpoint, method, data) {
    switch endpoint {
        "/get" => secret::get(data),
        "/require" => secret::require(data),
        _ => throw "unknown endpoint",
    }
}"#;

async fn put_secret(server: &Server, name: &str, value: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = server.client.put(server.url(&format!("/api/secrets/{name}"))).body(value.to_owned());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn a_script_reads_only_what_it_declared() {
    let server =
        Server::start_with(&[("reader", READER)], &[], &[("UNDECLARED", "from-env"), ("ALT_TWO", "alt-value")]);
    let get =
        |name: &str| server.client.post(server.url("/reader")).json(&json!({"endpoint": "/get", "data": name})).send();
    let require = |name: &str| {
        server.client.post(server.url("/reader")).json(&json!({"endpoint": "/require", "data": name})).send()
    };

    let error = expect_error(get("UNDECLARED").await.unwrap(), 500, "script_error").await;
    assert!(error["message"].as_str().unwrap().contains("not declared"), "{error}");
    assert!(!error.to_string().contains("from-env"));

    assert_eq!(json(get("DECLARED").await.unwrap()).await, (200, json!(null)));
    let error = expect_error(require("DECLARED").await.unwrap(), 424, "missing_secret").await;
    assert_eq!(error["secret"], "DECLARED");

    // An alternative is declared too, and the environment provides it.
    assert_eq!(require("ALT_TWO").await.unwrap().text().await.unwrap(), "alt-value");
}

#[tokio::test]
async fn secrets_set_through_the_api_are_used_at_once_and_listed_by_name_only() {
    let server = Server::start(&[("reader", READER)]);
    let token = server.admin_token();
    assert_eq!(put_secret(&server, "DECLARED", "v4lue-from-api\n", Some(&token)).await.status(), 204);
    let response = server
        .client
        .post(server.url("/reader"))
        .json(&json!({"endpoint": "/require", "data": "DECLARED"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "v4lue-from-api");

    let listing = server.get("/api/secrets").await.text().await.unwrap();
    assert_eq!(serde_json::from_str::<serde_json::Value>(&listing).unwrap(), json!({"secrets": ["DECLARED"]}));

    // At rest the value is sealed: the store file does not contain it.
    let store = std::fs::read(server.data_dir().join("store.sqlite")).unwrap();
    let wal = std::fs::read(server.data_dir().join("store.sqlite-wal")).unwrap_or_default();
    for bytes in [store, wal] {
        assert!(!bytes.windows(14).any(|w| w == b"v4lue-from-api"), "the secret is stored in the clear");
    }

    let delete = server.client.delete(server.url("/api/secrets/DECLARED")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(delete.status(), 204);
    let delete = server.client.delete(server.url("/api/secrets/DECLARED")).bearer_auth(&token).send().await.unwrap();
    expect_error(delete, 404, "not_found").await;
}

#[tokio::test]
async fn the_secret_api_needs_the_admin_token_and_a_valid_name() {
    let server = Server::start(&[]);
    expect_error(put_secret(&server, "KEY", "v", None).await, 401, "unauthorized").await;
    expect_error(put_secret(&server, "KEY", "v", Some("wrong")).await, 401, "unauthorized").await;
    expect_error(put_secret(&server, "lower-case", "v", Some(&server.admin_token())).await, 400, "bad_request").await;
    let delete = server.client.delete(server.url("/api/secrets/KEY")).send().await.unwrap();
    expect_error(delete, 401, "unauthorized").await;
}

#[tokio::test]
async fn names_that_belong_to_the_runtime_or_the_host_are_refused_and_nothing_is_stored() {
    let server = Server::start(&[]);
    let token = server.admin_token();
    for name in ["SWITCHBOARD_ADMIN_TOKEN", "SWITCHBOARD_MASTER_KEY", "SWITCHBOARD_NEW", "PATH", "LD_PRELOAD"] {
        let error = expect_error(put_secret(&server, name, "v", Some(&token)).await, 400, "bad_request").await;
        assert!(error["message"].as_str().unwrap().contains("belongs to the runtime or the host"), "{error}");
    }
    let (_, listed) =
        json(server.client.get(server.url("/api/secrets")).bearer_auth(&token).send().await.unwrap()).await;
    assert_eq!(listed["secrets"], json!([]));
    assert_eq!(put_secret(&server, "SWITCHBOARDS_KEY", "v", Some(&token)).await.status(), 204);
}

#[test]
fn an_empty_admin_token_in_the_environment_is_refused_at_start_up() {
    for empty in ["", "   "] {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data", dir.path().join("data").to_str().unwrap()])
            .env("SWITCHBOARD_ADMIN_TOKEN", empty)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Its first line is "listening" if it started; end of output if it refused.
        let mut first = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut first).unwrap();
        if !first.is_empty() {
            let _ = child.kill();
        }
        let output = child.wait_with_output().unwrap();
        assert!(first.is_empty(), "it started: {first}");
        assert_eq!(output.status.code(), Some(1), "{output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("SWITCHBOARD_ADMIN_TOKEN is set but empty"), "{stderr}");
    }
}

#[tokio::test]
async fn the_admin_token_can_come_from_the_environment() {
    let server = Server::start_with(&[], &[], &[("SWITCHBOARD_ADMIN_TOKEN", "env-token-123")]);
    assert_eq!(put_secret(&server, "KEY", "v", Some("env-token-123")).await.status(), 204);
    assert!(!server.data_dir().join("admin-token").exists());
}

#[tokio::test]
async fn read_only_mode_refuses_changes_and_keeps_serving() {
    let server = Server::start_with(&[], &["--read-only"], &[]);
    expect_error(put_secret(&server, "KEY", "v", Some(&server.admin_token())).await, 403, "forbidden").await;
    assert_eq!(server.get("/echo/still-serving").await.status(), 200);
}

#[test]
fn the_cli_sets_lists_and_removes_secrets_reading_values_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], stdin: &str| common::cli(dir.path(), args, stdin);
    assert!(run(&["secret", "set", "CLI_KEY"], "cli-value\n").status.success());
    let listed = run(&["secret", "list"], "");
    assert_eq!(String::from_utf8_lossy(&listed.stdout), "CLI_KEY\n");
    assert!(!String::from_utf8_lossy(&listed.stdout).contains("cli-value"));

    let file = dir.path().join("show.rhai");
    std::fs::write(
        &file,
        r#"const META = #{ title: "Show", description: "d", secrets: ["CLI_KEY"] };
fn main(endpoint, method, data) { secret::require("CLI_KEY").len() }"#,
    )
    .unwrap();
    let shown = run(&["call", file.to_str().unwrap()], "");
    assert_eq!(String::from_utf8_lossy(&shown.stdout), "9\n");

    assert!(run(&["secret", "rm", "CLI_KEY"], "").status.success());
    assert_eq!(run(&["secret", "rm", "CLI_KEY"], "").status.code(), Some(1));
    assert_eq!(run(&["secret", "set", "bad name"], "x").status.code(), Some(2));
}

/// Every way an invocation can fail, with a known secret in play; the value must show up nowhere:
/// not in responses, not in the log at debug level.
#[tokio::test]
async fn a_secret_value_leaks_into_no_response_and_no_log_line() {
    const VALUE: &str = "sk_live_Zq8TopSecretValue42";
    let mock = MockServer::start().await;
    // An upstream that echoes what it received, credentials included, in its error body.
    Mock::given(path("/v1/echo-error"))
        .respond_with(|request: &wiremock::Request| {
            let auth = request.headers.get("authorization").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
            ResponseTemplate::new(401).set_body_string(format!("bad credentials: {auth} for {}", request.url))
        })
        .mount(&mock)
        .await;
    Mock::given(path("/v1/not-json"))
        .respond_with(ResponseTemplate::new(200).set_body_string(format!("token={VALUE}")))
        .mount(&mock)
        .await;
    Mock::given(path("/v1/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/limited"))
        .respond_with(ResponseTemplate::new(429).set_body_string(VALUE))
        .mount(&mock)
        .await;

    let leaky = r#"const META = #{ title: "Leaky", description: "d", secrets: ["LEAKY_TOKEN"], auth: "query:key", base_url: "https://api.invalid/v1",
    hosts: #{ closed: "http://127.0.0.1:9" } };
fn main(endpoint, method, data) {
    let token = secret::require("LEAKY_TOKEN");
    switch endpoint {
        "/throw" => throw "failed with " + token,
        "/print" => { print("token is " + token); debug(token); token.len() }
        "/bad-call" => token.no_such_method(),
        "/path" => http::get("http://127.0.0.1:9/" + token),
        _ => api::call(global::META, endpoint, method, data, #{ max_retries: 0 }),
    }
}"#;
    let base = format!("{}/v1", mock.uri());
    let server = Server::start_with(
        &[("leaky", leaky)],
        &[],
        &[("LEAKY_BASE_URL", &base), ("LEAKY_TOKEN", VALUE), ("SWITCHBOARD_LOG", "debug")],
    );
    let mut seen = Vec::new();
    for endpoint in ["/throw", "/print", "/bad-call", "/path", "/echo-error", "/not-json", "/limited", "/slow"] {
        let response = server
            .client
            .get(server.url(&format!("/leaky{endpoint}")))
            .header("x-timeout-ms", "1000")
            .send()
            .await
            .unwrap();
        let status = response.status();
        let headers = format!("{:?}", response.headers());
        let body = response.text().await.unwrap();
        assert!(!body.contains(VALUE) && !headers.contains(VALUE), "{endpoint} leaked: {status} {body}");
        seen.push(format!("{endpoint}: {status} {body}"));
    }
    // The failures really happened (this is not a test of nothing).
    let all = seen.join("\n");
    for expected in [
        "script_error",
        "upstream_unreachable",
        "\"upstream\"",
        "invalid_response",
        "rate_limited",
        "timeout",
        "[REDACTED]",
    ] {
        assert!(all.contains(expected), "expected {expected} among:\n{all}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logs = server.logs();
    assert!(logs.contains("token is [REDACTED]"), "print was not logged (masked)");
    assert!(!logs.contains(VALUE), "the log leaked the secret:\n{logs}");
    // The upstream did receive the credential: it was used, just never shown.
    let received = mock.received_requests().await.unwrap();
    assert!(received.iter().any(|r| r.url.query().is_some_and(|q| q.contains(VALUE))));
}

/// A secret with the characters URL encodings disagree on (a space, `%`, `- . _ ~`), JSON escapes
/// (`"`, `\`) and a non-ASCII letter, written by the runtime's own encoders and echoed back by an
/// upstream — a JSON body echoed inside a JSON string is escaped twice.
#[tokio::test]
async fn a_secret_is_masked_in_every_form_the_runtime_encodes_it_in() {
    const VALUE: &str = "zq9 pass%word-x.y_z~1\"\\é";
    let mock = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(|request: &wiremock::Request| {
            let body = String::from_utf8_lossy(&request.body).into_owned();
            ResponseTemplate::new(400).set_body_json(json!({ "url": request.url.to_string(), "body": body }))
        })
        .mount(&mock)
        .await;
    let script = format!(
        r#"const META = #{{ title: "Enc", description: "d", secrets: ["ENC_KEY"], base_url: "{}" }};
fn main(endpoint, method, data) {{
    let key = secret::require("ENC_KEY");
    let encoded = url::encode(key);
    print("encoded " + encoded + " query " + url::query(#{{ k: key }}));
    switch endpoint {{
        "/path" => api::call(global::META, "/k/" + encoded + "?k=" + encoded, "GET", ()),
        "/json" => api::call(global::META, "/j", "POST", #{{ key: key }}),
        "/throw" => throw "refused " + encoded + " " + json::stringify(json::stringify(key)),
        _ => ()
    }}
}}"#,
        mock.uri()
    );
    let env = [("ENC_KEY", VALUE), ("SWITCHBOARD_LOG", "debug")];
    let server = Server::start_with(&[("enc", &script)], &[], &env);
    let mut answers = String::new();
    for (endpoint, status, kind) in
        [("/path", 400, "upstream"), ("/json", 400, "upstream"), ("/throw", 500, "script_error")]
    {
        let error = expect_error(server.get(&format!("/enc{endpoint}")).await, status, kind).await;
        answers.push_str(&error.to_string());
    }
    let once = serde_json::Value::from(VALUE).to_string();
    let twice = serde_json::Value::from(once.clone()).to_string();
    const COMPONENT: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    let component = percent_encoding::utf8_percent_encode(VALUE, COMPONENT).to_string();
    let query: String = url::form_urlencoded::byte_serialize(VALUE.as_bytes()).collect();
    // The upstream did get and echo the encoded forms: the answers would show them unmasked.
    let received = mock.received_requests().await.unwrap();
    assert!(received.iter().any(|r| r.url.path().contains(&component)), "{received:?}");
    assert!(answers.matches("[REDACTED]").count() >= 3, "{answers}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logs = server.logs();
    assert!(logs.contains("encoded [REDACTED] query k=[REDACTED]"), "{logs}");
    for form in [VALUE, &component, &query, once.trim_matches('"'), twice.trim_matches('"'), "zq9"] {
        assert!(!answers.contains(form), "an answer shows {form}: {answers}");
        assert!(!logs.contains(form), "the log shows {form}:\n{logs}");
    }
}

#[test]
fn helper_scripts_compose_encodings_and_digests() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("helpers.rhai");
    std::fs::write(
        &file,
        script(
            "Helpers",
            r#"#{
    b64: base64::encode("hello"), unb64: base64::decode("aGVsbG8"), b64url: base64::encode_url(hex::decode("fbff")),
    hex: hex::encode("hi"), sha: hex::encode(crypto::sha256("abc")),
    hmac: hex::encode(crypto::hmac_sha256("key", "The quick brown fox jumps over the lazy dog")),
    hmac1: hex::encode(crypto::hmac_sha1("key", "The quick brown fox jumps over the lazy dog")),
    url: url::encode("a b&c/d"), unurl: url::decode("a%20b"), query: url::query(#{ a: 1, b: "x y" }),
    json: json::stringify(json::parse("{\"a\":[1,2]}")), uuid: uuid::v4().len(),
    rfc: time::rfc3339(0), parsed: time::parse("1970-01-02T00:00:00Z"), now: time::unix() > 1700000000,
}"#,
        ),
    )
    .unwrap();
    let output =
        Command::new(BIN).args(["call", file.to_str().unwrap()]).env("SWITCHBOARD_DATA", dir.path()).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        value,
        json!({
            "b64": "aGVsbG8=", "unb64": "hello", "b64url": "-_8", "hex": "6869",
            "sha": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "hmac": "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8",
            "hmac1": "de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9",
            "url": "a%20b%26c%2Fd", "unurl": "a b", "query": "a=1&b=x+y", "json": "{\"a\":[1,2]}",
            "uuid": 36, "rfc": "1970-01-01T00:00:00Z", "parsed": 86400, "now": true,
        })
    );
}

/// An empty body is taken for a slip and stores nothing, unless asked for with `?allow_empty=1`.
#[tokio::test]
async fn an_empty_value_is_refused_unless_asked_for() {
    let server = Server::start(&[]);
    let token = server.admin_token();
    assert_eq!(put_secret(&server, "KEPT", "good", Some(&token)).await.status(), 204);
    for empty in ["", "\n"] {
        let error = expect_error(put_secret(&server, "KEPT", empty, Some(&token)).await, 400, "bad_request").await;
        assert!(error["message"].as_str().unwrap().contains("?allow_empty=1"), "{error}");
    }
    let request = server.client.put(server.url("/api/secrets/EMPTY?allow_empty=1")).bearer_auth(&token).body("");
    assert_eq!(request.send().await.unwrap().status(), 204);
    let (_, listed) = json(server.get("/api/secrets").await).await;
    assert_eq!(listed["secrets"], serde_json::json!(["EMPTY", "KEPT"]));
}
