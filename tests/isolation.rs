//! Isolation and access, as a hostile script or caller meets them: the runtime's own credentials, where
//! a server may send, what an echoing upstream gets to show, and who may invoke.
//!
//! Every upstream here is a mock on 127.0.0.1. Refusals of other addresses (metadata services,
//! link-local, names resolving to them) are decided before connecting and tested as decisions in
//! `src/modules/egress/`; nothing here sends beyond loopback.

mod common;

use common::{Server, expect_error, json};
use serde_json::json;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const ADMIN: &str = "adm-7c1e9b2f4a6d";

async fn put_script(server: &Server, name: &str, source: &str) -> reqwest::Response {
    let url = server.url(&format!("/api/servers/{name}"));
    server.client.put(url).bearer_auth(ADMIN).body(source.to_owned()).send().await.unwrap()
}

async fn call(server: &Server, name: &str, body: serde_json::Value) -> reqwest::Response {
    server.client.post(server.url(&format!("/{name}"))).json(&body).send().await.unwrap()
}

#[tokio::test]
async fn runtime_credentials_are_never_readable_by_scripts() {
    let master = "ab".repeat(32);
    let env =
        [("SWITCHBOARD_ADMIN_TOKEN", ADMIN), ("SWITCHBOARD_MASTER_KEY", master.as_str()), ("SVC_KEY", "svc-1234")];
    let server = Server::start_with(&[], &[], &env);
    for (declared, name) in [
        (r#"secrets: ["SWITCHBOARD_ADMIN_TOKEN", "SWITCHBOARD_MASTER_KEY"]"#, "SWITCHBOARD_ADMIN_TOKEN"),
        (r#"secrets: [["SVC_KEY", "SWITCHBOARD_MASTER_KEY"]]"#, "SWITCHBOARD_MASTER_KEY"),
        (r#"variables: ["HOME"]"#, "HOME"),
        (r#"secrets: ["PATH"]"#, "PATH"),
    ] {
        let source = format!(
            "const META = #{{ title: \"t\", description: \"d\", {declared} }};\nfn main(e, m, d) {{ secret::get(\"{name}\") }}"
        );
        let error = expect_error(put_script(&server, "grab", &source).await, 422, "invalid_script").await;
        assert!(error["message"].as_str().unwrap().contains(&format!("'{name}' belongs to the runtime")), "{error}");
    }
    expect_error(server.get("/grab").await, 404, "not_found").await;

    // A declared service secret still comes from the environment; an undeclared runtime name does not.
    let source = r#"const META = #{ title: "t", description: "d", secrets: ["SVC_KEY"] };
fn main(e, m, d) { if e == "/admin" { secret::get("SWITCHBOARD_ADMIN_TOKEN") } else { secret::get("SVC_KEY") } }"#;
    assert!(put_script(&server, "grab", source).await.status().is_success());
    assert_eq!(server.get("/grab/svc").await.text().await.unwrap(), "svc-1234");
    let response = server.get("/grab/admin").await;
    let error = expect_error(response, 500, "script_error").await;
    assert!(error["message"].as_str().unwrap().contains("not declared"), "{error}");
    assert!(!error.to_string().contains(ADMIN));
}

/// A server with a secret, its base URL at `base`, and ways to try every kind of egress.
fn svc(base: &str, extra_meta: &str) -> String {
    format!(
        r#"const META = #{{ title: "Svc", description: "d", secrets: ["SVC_TOKEN"], auth: "header:x-api-key",
    base_url: "{base}", {extra_meta} }};
fn main(endpoint, method, data) {{
    let token = secret::require("SVC_TOKEN");
    switch endpoint {{
        "/post" => http::post(data.url, #{{ json: #{{ s: token }} }}),
        "/get" => http::get(data.url + "?k=" + token),
        "/db" => {{ db::connect(data.url); "connected" }}
        "/parallel" => http::parallel([#{{ url: data.ok }}, #{{ url: data.url }}]),
        _ => api::call(global::META, endpoint, method, data)
    }}
}}"#
    )
}

async fn answering(status: u16) -> MockServer {
    let mock = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(status).set_body_json(json!({"ok": true})))
        .mount(&mock)
        .await;
    mock
}

#[tokio::test]
async fn a_secret_goes_only_to_declared_hosts() {
    let service = answering(200).await;
    let collector = answering(200).await;
    let script = svc(&service.uri(), "");
    let server = Server::start_with(&[("svc", &script)], &[], &[("SVC_TOKEN", "tok-5f3a9c")]);

    // The declared host is reached by api::call and by http alike.
    assert_eq!(server.get("/svc/items").await.status(), 200);
    let (status, body) =
        json(call(&server, "svc", json!({"endpoint": "/post", "data": {"url": service.uri()}})).await).await;
    assert_eq!((status, &body["status"]), (200, &json!(200)), "{body}");
    assert_eq!(service.received_requests().await.unwrap().len(), 2);

    // Another port on the same machine, the same port by another name, and a database are other hosts.
    let port = collector.address().port();
    for (endpoint, url, host) in [
        ("/post", format!("{}/collect", collector.uri()), format!("127.0.0.1:{port}")),
        ("/get", format!("{}/collect", collector.uri()), format!("127.0.0.1:{port}")),
        ("/post", format!("http://localhost:{port}/collect"), format!("localhost:{port}")),
        ("/db", "postgres://u@127.0.0.1:5432/app".into(), "127.0.0.1".into()),
        ("/db", format!("postgres://u@{}/app?host=127.0.0.1", &service.uri()[7..]), "127.0.0.1".into()),
    ] {
        let response = call(&server, "svc", json!({"endpoint": endpoint, "data": {"url": url}})).await;
        let error = expect_error(response, 403, "forbidden").await;
        assert_eq!(error["host"], host, "{url}: {error}");
        assert!(!error.to_string().contains("tok-5f3a9c"));
    }
    // A batch with one undeclared request sends none of them.
    let batch = json!({"endpoint": "/parallel", "data": {"ok": service.uri(), "url": collector.uri()}});
    let error = expect_error(call(&server, "svc", batch).await, 403, "forbidden").await;
    assert_eq!(error["host"], format!("127.0.0.1:{port}"));
    assert_eq!(service.received_requests().await.unwrap().len(), 2, "part of a refused batch was sent");
    assert!(collector.received_requests().await.unwrap().is_empty(), "an undeclared host received a request");
}

#[tokio::test]
async fn a_redirect_to_another_host_is_not_followed_with_credentials() {
    let collector = answering(200).await;
    let service = MockServer::start().await;
    let steal = format!("{}/steal", collector.uri());
    Mock::given(path("/moved"))
        .respond_with(ResponseTemplate::new(307).insert_header("location", steal.as_str()))
        .mount(&service)
        .await;
    Mock::given(path("/old"))
        .respond_with(ResponseTemplate::new(308).insert_header("location", "/new"))
        .mount(&service)
        .await;
    Mock::given(path("/new"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": 1})))
        .mount(&service)
        .await;
    let script = svc(&service.uri(), r#"api: #{ query: #{ key: "{SVC_TOKEN}" } }"#);
    let server = Server::start_with(&[("svc", &script)], &[], &[("SVC_TOKEN", "tok-5f3a9c")]);

    let response = server.client.post(server.url("/svc/moved")).json(&json!({"card": "tok"})).send().await.unwrap();
    let error = expect_error(response, 502, "upstream").await;
    assert_eq!(error["status"], 307, "{error}");
    let (status, body) = json(
        call(&server, "svc", json!({"endpoint": "/get", "data": {"url": format!("{}/moved", service.uri())}})).await,
    )
    .await;
    assert_eq!((status, &body["status"]), (200, &json!(307)), "http sees the redirect itself: {body}");
    assert!(collector.received_requests().await.unwrap().is_empty(), "a redirect carried credentials away");

    // Within one origin a redirect is followed, credentials and all.
    assert_eq!(json(server.get("/svc/old").await).await, (200, json!({"ok": 1})));
    let received = service.received_requests().await.unwrap();
    let new = received.iter().find(|r| r.url.path() == "/new").expect("the redirect was followed");
    assert_eq!(new.headers.get("x-api-key").unwrap(), "tok-5f3a9c");
}

#[tokio::test]
async fn meta_hosts_name_further_base_urls_chosen_per_call_and_overridable() {
    let service = answering(200).await;
    let uploads = answering(200).await;
    let script = r#"const META = #{ title: "Svc", description: "d", secrets: ["SVC_TOKEN"], auth: "bearer",
    base_url: "https://api.svc.invalid/v1", hosts: #{ uploads: "https://uploads.svc.invalid/v2" } };
fn main(endpoint, method, data) {
    if endpoint.starts_with("/files") { return api::call(global::META, endpoint, method, data, #{ host: "uploads" }); }
    if endpoint == "/nowhere" { return api::call(global::META, endpoint, method, data, #{ host: "nowhere" }); }
    api::call(global::META, endpoint, method, data)
}"#;
    let (base, up) = (service.uri(), uploads.uri());
    let env = [("SVC_TOKEN", "tok-5f3a9c"), ("SVC_BASE_URL", base.as_str()), ("SVC_UPLOADS_BASE_URL", up.as_str())];
    let server = Server::start_with(&[("svc", script)], &[], &env);

    assert_eq!(server.get("/svc/files/1").await.status(), 200);
    assert_eq!(server.get("/svc/me").await.status(), 200);
    let upload = &uploads.received_requests().await.unwrap()[0];
    assert_eq!(
        (upload.url.path(), upload.headers.get("authorization").unwrap()),
        ("/v2/files/1", &"Bearer tok-5f3a9c".parse().unwrap())
    );
    assert_eq!(service.received_requests().await.unwrap()[0].url.path(), "/v1/me");
    let error = expect_error(server.get("/svc/nowhere").await, 500, "script_error").await;
    assert!(error["message"].as_str().unwrap().contains("host 'nowhere' is not named in META.hosts"), "{error}");
}

#[tokio::test]
async fn an_ad_hoc_script_reaches_only_what_an_operator_names() {
    let mock = answering(200).await;
    let adhoc = r#"const META = #{ title: "Ad hoc", description: "d" };
fn main(endpoint, method, data) { http::get(data).status }"#;
    let uri = mock.uri();
    let server = Server::start_with(&[("adhoc", adhoc), ("named", adhoc)], &[], &[("NAMED_BASE_URL", uri.as_str())]);
    let error = expect_error(call(&server, "adhoc", json!({"data": uri})).await, 403, "forbidden").await;
    assert_eq!(error["host"], uri.trim_start_matches("http://"));
    assert_eq!(json(call(&server, "named", json!({"data": uri})).await).await, (200, json!(200)));
    assert_eq!(mock.received_requests().await.unwrap().len(), 1);
}

/// A value with every character the encodings differ on: `+`, `/`, `"`, a space, a backslash.
const SECRET: &str = "s3cr+t/V\"al ue\\x9";

#[tokio::test]
async fn secrets_echoed_back_in_any_encoding_stay_masked() {
    let echo = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(|request: &Request| {
            let headers: Vec<String> =
                request.headers.iter().map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or(""))).collect();
            let body = String::from_utf8_lossy(&request.body);
            ResponseTemplate::new(400).set_body_string(format!(
                "{} {}\n{}\n{body}",
                request.method,
                request.url,
                headers.join("\n")
            ))
        })
        .mount(&echo)
        .await;
    let port = echo.address().port();
    let script = format!(
        r#"const META = #{{ title: "Zen", description: "d", secrets: ["ZEN_TOKEN", "ZEN_HOST"], auth: "basic",
    base_url: "http://127.0.0.1:{port}", hosts: #{{ store: "http://{{ZEN_HOST}}:{port}" }},
    api: #{{ username: "agent@example.com/token", password: "{{ZEN_TOKEN}}", query: #{{ key: "{{ZEN_TOKEN}}" }},
            body_fields: #{{ token: "{{ZEN_TOKEN}}" }} }} }};
fn main(endpoint, method, data) {{
    let token = secret::require("ZEN_TOKEN");
    debug(token);
    switch endpoint {{
        "/path" => api::call(global::META, "/bot" + token + "/x", method, data),
        "/host" => api::call(global::META, "/x", method, data, #{{ host: "store" }}),
        _ => api::call(global::META, endpoint, method, data),
    }}
}}"#
    );
    let env = [("ZEN_TOKEN", SECRET), ("ZEN_HOST", "LocalHost"), ("SWITCHBOARD_LOG", "debug")];
    let server = Server::start_with(&[("zen", &script)], &[], &env);
    let mut answers = String::new();
    for (verb, endpoint) in [("GET", "/q"), ("POST", "/json"), ("GET", "/path"), ("GET", "/host")] {
        let request = server.client.request(verb.parse().unwrap(), server.url(&format!("/zen{endpoint}")));
        let response = request.json(&json!({"n": 1})).send().await.unwrap();
        let error = expect_error(response, 400, "upstream").await;
        answers.push_str(&error.to_string());
    }
    // The upstream did get the secret in each form, and echoed it.
    let received = echo.received_requests().await.unwrap();
    assert_eq!(received.len(), 4);
    assert!(received.iter().all(|r| r.url.query().is_some_and(|q| q.contains("s3cr%2Bt%2FV"))));
    assert!(received.iter().any(|r| String::from_utf8_lossy(&r.body).contains(r#"s3cr+t/V\"al ue\\x9"#)));
    assert!(answers.contains("[REDACTED]"), "{answers}");

    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("agent@example.com/token:{SECRET}"));
    let mut url = url::Url::parse("http://h/").unwrap();
    url.query_pairs_mut().append_pair("key", SECRET);
    let forms = [
        SECRET.to_owned(),
        basic,
        url.query().unwrap().trim_start_matches("key=").to_owned(),
        serde_json::Value::from(SECRET).to_string().trim_matches('"').to_owned(),
        format!("{SECRET:?}").trim_matches('"').to_owned(),
        "s3cr".into(),
    ];
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let logs = server.logs();
    assert!(logs.contains("outbound") && logs.contains("[REDACTED]"), "{logs}");
    for form in &forms {
        assert!(!answers.contains(form.as_str()), "an answer shows {form}: {answers}");
        assert!(!logs.contains(form.as_str()), "the log shows {form}:\n{logs}");
    }
    let outbound: Vec<&str> = logs.lines().filter(|l| l.contains("outbound")).collect();
    assert!(
        outbound.iter().all(|l| !l.to_lowercase().contains("localhost")),
        "a host made of a secret is logged: {outbound:?}"
    );
}

#[tokio::test]
async fn invocations_need_a_token_that_covers_the_server() {
    let other = common::script("Other", "    \"other\"");
    let server = Server::start_with(
        &[("other", &other)],
        &["--invoke-token", "tokA", "--invoke-token", "tokB=echo"],
        &[("SWITCHBOARD_INVOKE_TOKENS", "tokC=other+nobody"), ("SWITCHBOARD_ADMIN_TOKEN", ADMIN)],
    );
    let get = |path: &str, token: Option<&str>| {
        let request = server.client.get(server.url(path));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    };
    for token in [None, Some("wrong"), Some("tokAx"), Some("tok")] {
        let response = get("/echo/x", token).send().await.unwrap();
        assert_eq!(response.headers().get("www-authenticate").unwrap(), "Bearer");
        expect_error(response, 401, "unauthorized").await;
    }
    expect_error(get("/echo", None).send().await.unwrap(), 401, "unauthorized").await;
    let echo = get("/echo/x", Some("tokA")).send().await.unwrap();
    let echo_cid = echo.headers().get("x-server-cid").unwrap().to_str().unwrap().to_owned();
    assert_eq!(echo.status(), 200);
    let other_cid = get("/other", Some("tokA")).header("accept", "application/json").send().await.unwrap();
    let other_cid = json(other_cid).await.1["cid"].as_str().unwrap().to_owned();
    let (echo_by_cid, other_by_cid) = (format!("/{echo_cid}/x"), format!("/{other_cid}?endpoint=/x"));
    for (path, token, status) in [
        ("/echo?endpoint=/x", "tokA", 200),
        ("/other/x", "tokA", 200),
        ("/echo/x", "tokB", 200),
        (echo_by_cid.as_str(), "tokB", 200),
        ("/other/x", "tokB", 403),
        (other_by_cid.as_str(), "tokB", 403),
        ("/other/x", "tokC", 200),
        ("/echo/x", "tokC", 403),
    ] {
        let response = get(path, Some(token)).send().await.unwrap();
        assert_eq!(response.status(), status, "{path} with {token}");
        if status == 403 {
            expect_error(response, 403, "forbidden").await;
        }
    }
    let post = server.client.post(server.url("/echo")).bearer_auth("tokB").json(&json!({"endpoint": "/p"}));
    assert_eq!(json(post.send().await.unwrap()).await.1["endpoint"], "/p");
    assert_eq!(server.get("/health").await.status(), 200);
    // Management keeps the admin token: an invocation token is not one.
    let put = |token: &str| server.client.put(server.url("/api/servers/new")).bearer_auth(token).body(other.clone());
    expect_error(put("tokA").send().await.unwrap(), 401, "unauthorized").await;
    assert!(put(ADMIN).send().await.unwrap().status().is_success());
}

#[test]
fn a_malformed_token_list_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(common::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data", dir.path().to_str().unwrap()])
        .args(["--invoke-token", "tok=Not-A-Name"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("invocation tokens"));
}

#[tokio::test]
async fn boot_diff_and_import_show_what_each_server_asks_for() {
    let dir = tempfile::tempdir().unwrap();
    let echo = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/echo.rhai")).unwrap();
    let before = common::boot_dir(&dir.path().join("a"), &[("echo", &echo)]);
    let svc = svc("https://api.svc.example/v1", r#"hosts: #{ uploads: "https://up.svc.example" }"#);
    let after = common::boot_dir(&dir.path().join("b"), &[("echo", &echo), ("svc", &svc)]);
    let output = std::process::Command::new(common::BIN)
        .args(["boot", "diff", before.to_str().unwrap(), after.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout.contains(
            "    secrets: SVC_TOKEN; hosts: https://api.svc.example/v1 ($SVC_BASE_URL), https://up.svc.example ($SVC_UPLOADS_BASE_URL)"
        ),
        "{stdout}"
    );

    let server = Server::start_with(&[("svc", &svc)], &[], &[("SWITCHBOARD_ADMIN_TOKEN", ADMIN)]);
    let image = server.get("/api/boot/export").await.bytes().await.unwrap();
    let response =
        server.client.post(server.url("/api/boot/import")).bearer_auth(ADMIN).body(image).send().await.unwrap();
    let (status, body) = json(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["asks"]["svc"]["secrets"], json!(["SVC_TOKEN"]));
    assert_eq!(body["asks"]["echo"], json!({"secrets": [], "hosts": []}));
}

/// The README's "Isolation and access" section: its script and its token example run as written.
#[tokio::test]
async fn the_readme_isolation_examples_run_as_written() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme.split("\n## Isolation and access\n").nth(1).unwrap().split("\n## ").next().unwrap();
    let block = |fence: &str| section.split(fence).nth(1).unwrap().split("```").next().unwrap().to_owned();
    let (script, shell) = (block("```rhai\n"), block("```sh\n"));
    let tokens = shell.split("SWITCHBOARD_INVOKE_TOKENS=\"").nth(1).unwrap().split('"').next().unwrap();

    let (api, upload) = (answering(200).await, answering(200).await);
    let (api_uri, upload_uri) = (api.uri(), upload.uri());
    let env = [
        ("SWITCHBOARD_INVOKE_TOKENS", tokens),
        ("FILES_TOKEN", "files-tok-1"),
        ("FILES_BASE_URL", api_uri.as_str()),
        ("FILES_UPLOAD_BASE_URL", upload_uri.as_str()),
    ];
    let server = Server::start_with(&[("files", &script)], &[], &env);
    let mut checked = 0;
    for line in shell.lines().filter(|line| line.starts_with("curl")) {
        let token = line.split("Bearer ").nth(1).map(|rest| rest.split('"').next().unwrap());
        let path = line.split("localhost:8080").nth(1).unwrap().split_whitespace().next().unwrap();
        let expected: u16 = line.split("# ").nth(1).unwrap()[..3].parse().unwrap();
        let mut request = server.client.get(server.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        assert_eq!(request.send().await.unwrap().status(), expected, "{line}");
        checked += 1;
    }
    assert_eq!(checked, 5);
    let ops = shell.split("Bearer ").nth(2).unwrap().split('"').next().unwrap();
    let response = server.client.get(server.url("/files/upload/a.txt")).bearer_auth(ops).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let sent = &upload.received_requests().await.unwrap()[0];
    assert_eq!(
        (sent.url.path(), sent.headers.get("authorization").unwrap().to_str().unwrap()),
        ("/v2/upload/a.txt", "Bearer files-tok-1")
    );
    assert_eq!(api.received_requests().await.unwrap()[0].url.path(), "/v1/me");
}

/// A server's declaration as it was loaded: a call that passes `api::call` a copy of `META` it changed
/// (`let m = global::META; m.api.rate_limit = …`) still keeps the declared limit, auth and credential,
/// base URL and pagination.
#[tokio::test]
async fn a_changed_copy_of_meta_changes_nothing_the_server_declared() {
    let mock = MockServer::start().await;
    let page = ResponseTemplate::new(200).set_body_json(json!({ "items": [1, 2] }));
    Mock::given(wiremock::matchers::any()).respond_with(page).mount(&mock).await;
    let uri = mock.uri();
    let changes = r#"
fn main(endpoint, method, data) {
    let m = global::META;
    switch endpoint {
        "/faster" => { m.api.rate_limit = #{ requests: 1000000, per_ms: 1 }; }
        "/unlimited" => { m.api = #{}; }
        "/auth" => { m.auth = "query:token"; m.secrets = ["OTHER_TOKEN"]; }
        "/base" => { m.base_url += "/elsewhere"; }
        "/pages" => { m.api.pagination.max_pages = 5; return api::all(m, "/list", "GET", ()); }
        "/call-auth" => { return api::call(m, endpoint, method, data, #{ auth: "query:token" }); }
    }
    api::call(m, endpoint, method, data)
}"#;
    let declared = |name: &str, api: &str| {
        format!(
            r#"const META = #{{ title: "{name}", description: "d", secrets: ["DECLARED_TOKEN"], auth: "bearer",
    base_url: "https://api.declared.invalid/v1", timeout_ms: 5000, api: #{{ {api} }} }};{changes}"#
        )
    };
    let limited = declared("Limited", "rate_limit: #{ requests: 1, per_ms: 60000 }");
    let paged = declared("Paged", r#"pagination: #{ style: "page", items: "items", max_pages: 1 }"#);
    let env = [("DECLARED_TOKEN", "dt-5f1e3a"), ("LIMITED_BASE_URL", uri.as_str()), ("PAGED_BASE_URL", uri.as_str())];
    let server = Server::start_with(&[("limited", &limited), ("paged", &paged)], &[], &env);

    assert_eq!(server.get("/limited/first").await.status(), 200);
    for changed in ["/limited/faster", "/limited/unlimited"] {
        expect_error(server.get(changed).await, 429, "rate_limited").await;
    }
    assert_eq!(mock.received_requests().await.unwrap().len(), 1, "only the declared limit's one call was sent");

    assert_eq!(server.get("/paged/auth").await.status(), 200);
    assert_eq!(server.get("/paged/base").await.status(), 200);
    assert_eq!(server.get("/paged/pages").await.status(), 200);
    let received = mock.received_requests().await.unwrap();
    let (auth, base) = (&received[1], &received[2]);
    assert_eq!(auth.url.path(), "/v1/auth");
    assert_eq!(auth.headers.get("authorization").unwrap(), "Bearer dt-5f1e3a");
    assert_eq!(auth.url.query(), None, "the credential stays where the server declared it");
    assert_eq!(base.url.path(), "/v1/base");
    let pages = received.iter().filter(|r| r.url.path() == "/v1/list").count();
    assert_eq!(pages, 1, "the declared max_pages holds");

    let error = expect_error(server.get("/paged/call-auth").await, 500, "script_error").await;
    assert!(error["message"].as_str().unwrap().contains("auth is the server's"), "{error}");
    assert_eq!(mock.received_requests().await.unwrap().len(), received.len(), "nothing more was sent");
}
