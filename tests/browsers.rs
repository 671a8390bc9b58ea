//! What a web page can make the gateway do: nothing, unless it is the gateway's own page or an origin
//! the operator allowed. Requests here carry the headers a browser would send (`Origin`,
//! `Sec-Fetch-Site`, a `Host` naming an attacker's domain after DNS rebinding); every one goes to
//! 127.0.0.1, and what the mock upstream received says whether a script ran.

mod common;

use common::{Server, expect_error, json, script};
use serde_json::json;
use wiremock::MockServer;

const STRIPE: &str = include_str!("../scripts/stripe.rhai");
const STRIPE_KEY: &str = "sk_test_browser_4242";

/// The Stripe server, pointed at a mock, with its key set; `extra` are more `serve` flags.
async fn stripe(extra: &[&str]) -> (MockServer, Server) {
    let mock = common::ok_upstream().await;
    let uri = mock.uri();
    let env =
        [("STRIPE_API_KEY", STRIPE_KEY), ("STRIPE_WEBHOOK_SECRET", "whsec_browser"), ("STRIPE_BASE_URL", uri.as_str())];
    let server = Server::start_with(&[("stripe", STRIPE)], extra, &env);
    (mock, server)
}

/// The refund form an attacker's page submits (`application/x-www-form-urlencoded`, as browsers send).
fn refund_form(server: &Server, headers: &[(&str, &str)]) -> reqwest::RequestBuilder {
    let mut request = server
        .client
        .post(server.url("/stripe"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("endpoint=/v1/refunds&method=POST&data=%7B%22charge%22%3A%22ch_1%22%7D");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request
}

async fn received(mock: &MockServer) -> Vec<(String, String, String)> {
    let requests = mock.received_requests().await.unwrap();
    requests
        .iter()
        .map(|r| {
            let auth = r.headers.get("authorization").map_or("", |v| v.to_str().unwrap()).to_owned();
            (r.method.to_string(), r.url.path().to_owned(), auth)
        })
        .collect()
}

#[tokio::test]
async fn a_page_from_another_origin_runs_nothing() {
    let (mock, server) = stripe(&[]).await;
    let foreign: [&[(&str, &str)]; 5] = [
        &[("origin", "http://evil.example")],
        &[("origin", "http://evil.example"), ("sec-fetch-site", "cross-site")],
        &[("origin", "null")],
        // No Origin: an <img>, <script> or link navigation says where it comes from only here.
        &[("sec-fetch-site", "cross-site")],
        &[("sec-fetch-site", "same-site")],
    ];
    for headers in foreign {
        let error = expect_error(refund_form(&server, headers).send().await.unwrap(), 403, "forbidden").await;
        let message = error["message"].as_str().unwrap();
        assert!(message.contains("another origin") && message.contains("--allowed-origin"), "{headers:?}: {message}");
    }
    // A text/plain POST (a "simple" request, sent without a preflight) and a link that invokes by GET.
    let text = server
        .client
        .post(server.url("/stripe/v1/refunds"))
        .header("origin", "http://evil.example")
        .header("content-type", "text/plain")
        .body("charge=ch_1");
    expect_error(text.send().await.unwrap(), 403, "forbidden").await;
    let link = server
        .client
        .get(server.url("/stripe?endpoint=/v1/refunds&method=POST"))
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "navigate");
    expect_error(link.send().await.unwrap(), 403, "forbidden").await;
    assert_eq!(received(&mock).await, [], "a foreign page reached the API");

    // The describe page's own try-it form: Origin is the page's, the fetch is same-origin.
    let own = server.base.clone();
    let try_it = refund_form(&server, &[("origin", &own), ("sec-fetch-site", "same-origin")]);
    assert_eq!(try_it.send().await.unwrap().status(), 200);
    // curl and other programs send neither header.
    assert_eq!(refund_form(&server, &[]).send().await.unwrap().status(), 200);
    // Typed into the address bar or opened from a bookmark.
    let typed = server.client.get(server.url("/stripe/v1/balance")).header("sec-fetch-site", "none");
    assert_eq!(typed.send().await.unwrap().status(), 200);
    let bearer = format!("Bearer {STRIPE_KEY}");
    assert_eq!(
        received(&mock).await,
        [
            ("POST".to_owned(), "/v1/refunds".to_owned(), bearer.clone()),
            ("POST".to_owned(), "/v1/refunds".to_owned(), bearer.clone()),
            ("GET".to_owned(), "/v1/balance".to_owned(), bearer),
        ]
    );
}

#[tokio::test]
async fn a_page_from_another_origin_changes_nothing() {
    let server = Server::start(&[]);
    let token = server.admin_token();
    let source = script("Planted", "42");
    let put = |origin: &str| {
        server.client.put(server.url("/api/servers/planted")).bearer_auth(token.trim()).header("origin", origin)
    };
    expect_error(put("http://evil.example").body(source.clone()).send().await.unwrap(), 403, "forbidden").await;
    let secret = server
        .client
        .put(server.url("/api/secrets/PLANTED"))
        .bearer_auth(token.trim())
        .header("sec-fetch-site", "cross-site")
        .body("x");
    expect_error(secret.send().await.unwrap(), 403, "forbidden").await;
    expect_error(server.get("/api/servers/planted").await, 404, "not_found").await;
    assert_eq!(json(server.get("/api/secrets").await).await.1["secrets"], json!([]));
    // The same change from the server's own origin goes through.
    let own = server.base.clone();
    assert_eq!(put(&own).body(source).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn an_allowed_origin_may_call_and_the_oauth_callback_and_webhooks_keep_their_own_proof() {
    let (mock, server) = stripe(&["--allowed-origin", "https://app.example.com"]).await;
    let allowed = [("origin", "https://app.example.com"), ("sec-fetch-site", "cross-site")];
    assert_eq!(refund_form(&server, &allowed).send().await.unwrap().status(), 200);
    assert_eq!(received(&mock).await.len(), 1);
    let other_port = [("origin", "https://app.example.com:8443")];
    expect_error(refund_form(&server, &other_port).send().await.unwrap(), 403, "forbidden").await;

    // A provider sends the browser back to the callback from its own site; the state decides.
    let callback = server
        .client
        .get(server.url("/oauth/stripe/callback?state=unknown&code=c"))
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "navigate");
    let response = callback.send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("was not connected"));
    // A forged webhook from a page is refused by its missing signature, not run.
    let webhook = server.client.post(server.url("/webhooks/stripe")).header("origin", "http://evil.example").body("{}");
    expect_error(webhook.send().await.unwrap(), 401, "unauthorized").await;
    assert_eq!(received(&mock).await.len(), 1);
}

/// A request with `host` as its `Host` header.
fn with_host(server: &Server, method: reqwest::Method, path: &str, host: &str) -> reqwest::RequestBuilder {
    server.client.request(method, server.url(path)).header("host", host)
}

#[tokio::test]
async fn every_route_checks_the_host_against_dns_rebinding() {
    let server = Server::start(&[]);
    let cid = server.get("/echo/").await.headers()["x-server-cid"].to_str().unwrap().to_owned();
    let routes = [
        (reqwest::Method::GET, "/echo/x".to_owned()),
        (reqwest::Method::GET, "/echo?endpoint=/x".to_owned()),
        (reqwest::Method::GET, "/echo".to_owned()),
        (reqwest::Method::GET, format!("/{cid}/x")),
        (reqwest::Method::GET, format!("/cid/{cid}")),
        (reqwest::Method::GET, "/api/servers".to_owned()),
        (reqwest::Method::GET, "/api/boot/export".to_owned()),
        (reqwest::Method::GET, "/health".to_owned()),
        (reqwest::Method::POST, "/mcp".to_owned()),
        (reqwest::Method::POST, "/webhooks/echo".to_owned()),
        (reqwest::Method::GET, "/oauth/echo/callback".to_owned()),
        (reqwest::Method::GET, "/no/such/route".to_owned()),
    ];
    for (method, path) in &routes {
        for host in ["evil.example", "evil.example:80", "127.0.0.1.evil.example", "localhost."] {
            let response = with_host(&server, method.clone(), path, host).send().await.unwrap();
            let error = expect_error(response, 403, "forbidden").await;
            assert!(error["message"].as_str().unwrap().contains("--allowed-host"), "{method} {path} {host}: {error}");
        }
    }
    let port = server.base.rsplit(':').next().unwrap().to_owned();
    for host in
        [format!("127.0.0.1:{port}"), format!("localhost:{port}"), format!("LOCALHOST:{port}"), format!("[::1]:{port}")]
    {
        let response = with_host(&server, reqwest::Method::GET, "/echo/x", &host).send().await.unwrap();
        assert_eq!(response.status(), 200, "{host}");
    }
}

#[tokio::test]
async fn allowed_hosts_and_the_public_url_admit_their_names() {
    let extra = ["--allowed-host", "gw.internal", "--allowed-host", "api.example.com:8443"];
    let server = Server::start_with(&[], &[&extra[..], &["--public-url", "https://hooks.example.com"]].concat(), &[]);
    for (host, status) in [
        ("gw.internal", 200),
        ("gw.internal:9000", 200),
        ("api.example.com:8443", 200),
        ("api.example.com", 403),
        ("api.example.com:443", 403),
        ("hooks.example.com", 200),
        ("evil.example", 403),
    ] {
        let response = with_host(&server, reqwest::Method::GET, "/echo/x", host).send().await.unwrap();
        assert_eq!(response.status(), status, "{host}");
    }
    // The same names, and only those, reach /mcp (whose transport checks Host too).
    for (host, status) in [("gw.internal", 200), ("hooks.example.com", 200), ("evil.example", 403)] {
        let body = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {} });
        let response = server.mcp(body.to_string()).header("host", host).send().await.unwrap();
        assert_eq!(response.status(), status, "/mcp {host}");
    }
}

#[tokio::test]
async fn with_invocation_tokens_reads_need_a_token_too() {
    let server = Server::start_with(&[], &["--invoke-token", "tok-all,tok-echo=echo"], &[]);
    let admin = server.admin_token();
    let stored = server.client.post(server.url("/echo/x")).header("x-store-output", "1").bearer_auth("tok-echo");
    let response = stored.send().await.unwrap();
    let output = response.headers()["x-output-cid"].to_str().unwrap().to_owned();
    let reads = [
        format!("/cid/{output}"),
        "/api/boot/export".to_owned(),
        "/api/servers".to_owned(),
        "/api/servers/echo".to_owned(),
        "/api/servers/echo/history".to_owned(),
        "/api/secrets".to_owned(),
    ];
    for path in &reads {
        let error = expect_error(server.get(path).await, 401, "unauthorized").await;
        assert!(error["message"].as_str().unwrap().contains("token"), "{path}: {error}");
        let wrong = server.client.get(server.url(path)).bearer_auth("tok-wrong").send().await.unwrap();
        expect_error(wrong, 401, "unauthorized").await;
        for token in ["tok-all", "tok-echo", admin.trim()] {
            let response = server.client.get(server.url(path)).bearer_auth(token).send().await.unwrap();
            assert_eq!(response.status(), 200, "{path} with {token}");
        }
    }
    assert_eq!(server.get("/health").await.status(), 200);
}

#[tokio::test]
async fn without_tokens_reads_stay_open() {
    let server = Server::start(&[]);
    for path in ["/api/servers", "/api/servers/echo", "/api/secrets", "/api/boot/export"] {
        assert_eq!(server.get(path).await.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn pages_carry_a_content_security_policy_and_links_are_http_only() {
    let hostile = "const META = #{ title: \"Docs\", description: \"d\", docs: \"javascript:alert(document.domain)\" };\nfn main(endpoint, method, data) { 1 }\n";
    let fine = "const META = #{ title: \"Docs\", description: \"d\", docs: \"https://docs.example.com/api\" };\nfn main(endpoint, method, data) { 1 }\n";
    let server = Server::start(&[("hostile", hostile), ("fine", fine)]);
    let page = |name: &str| server.client.get(server.url(&format!("/{name}"))).header("accept", "text/html").send();
    let response = page("hostile").await.unwrap();
    assert_eq!(response.status(), 200);
    let policy = response.headers()["content-security-policy"].to_str().unwrap().to_owned();
    for directive in ["default-src 'none'", "form-action 'self'", "frame-ancestors 'none'", "base-uri 'none'"] {
        assert!(policy.contains(directive), "{policy}");
    }
    assert!(!policy.contains("script-src"), "the pages run no script: {policy}");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let html = response.text().await.unwrap();
    assert!(html.contains("form method=\"post\" action=\"/hostile\""), "the try-it form is there");
    assert!(!html.to_ascii_lowercase().contains("javascript:"), "{html}");
    let html = page("fine").await.unwrap().text().await.unwrap();
    assert!(html.contains("href=\"https://docs.example.com/api\""), "{html}");

    // The OAuth callback's page, and the JSON answers, are not sniffed either.
    let callback = server.get("/oauth/echo/callback").await;
    assert!(callback.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    for path in ["/echo/x", "/api/servers", "/health", "/nope/x"] {
        assert_eq!(server.get(path).await.headers()["x-content-type-options"], "nosniff", "{path}");
    }
}

/// Waits (bounded) until the server has logged a line containing `text`.
async fn logged(server: &Server, text: &str) -> String {
    for _ in 0..200 {
        if server.logs().contains(text) {
            return server.logs();
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("never logged {text:?}: {}", server.logs());
}

/// `serve` on every address of the machine. Nothing is sent to it: only its start-up log is read.
fn on_every_address(extra: &[&str]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut args = vec!["serve", "--listen", "0.0.0.0:0", "--data", data.to_str().unwrap()];
    args.extend_from_slice(extra);
    Server::spawn(dir, &args, &[])
}

#[tokio::test]
async fn serving_beyond_loopback_without_tokens_warns_at_start_up() {
    let open = on_every_address(&[]);
    let logs = logged(&open, "invocations:").await;
    let warning = logs.lines().find(|l| l.contains("WARN")).unwrap_or_else(|| panic!("no warning: {logs}"));
    assert!(warning.contains("0.0.0.0") && warning.contains("--invoke-token"), "{warning}");
    let guarded = on_every_address(&["--invoke-token", "t"]);
    assert!(!logged(&guarded, "invocations:").await.contains("WARN"));
    let loopback = Server::start(&[]);
    assert!(!logged(&loopback, "invocations:").await.contains("WARN"));
}

/// The README's "Browsers: Host and Origin" section: its `serve` flags and its curl lines, as written.
#[tokio::test]
async fn the_readme_browser_examples_run_as_written() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme.split("\n### Browsers: Host and Origin\n").nth(1).expect("the section").split("\n## ").next();
    let block = section.unwrap().split("```sh\n").nth(1).unwrap().split("```").next().unwrap();
    let serve = block.lines().next().unwrap().strip_prefix("switchboard serve ").unwrap();
    let server = Server::start_with(&[], &serve.split_whitespace().collect::<Vec<_>>(), &[]);
    let mut checked = 0;
    for line in block.lines().filter(|line| line.starts_with("curl ")) {
        let (command, expected) = line.split_once("# ").unwrap();
        let words = shell_words(command);
        let mut request = server.client.get(server.url("/"));
        let (mut headers, mut data) = (Vec::new(), None);
        let mut words = words.iter().skip(1);
        while let Some(word) = words.next() {
            match word.as_str() {
                "-H" => headers.push(words.next().unwrap().split_once(": ").unwrap()),
                "-d" => data = words.next(),
                target => {
                    let path = target.strip_prefix("localhost:8080").unwrap();
                    request = match data {
                        Some(_) => server.client.post(server.url(path)),
                        None => server.client.get(server.url(path)),
                    };
                }
            }
        }
        for (name, value) in headers {
            request = request.header(name, value);
        }
        if let Some(form) = data {
            request = request.header("content-type", "application/x-www-form-urlencoded").body(form.clone());
        }
        let status: u16 = expected[..3].parse().unwrap();
        let response = request.send().await.unwrap();
        if status == 200 {
            assert_eq!(response.status(), 200, "{line}");
        } else {
            expect_error(response, status, expected[4..].trim()).await;
        }
        checked += 1;
    }
    assert_eq!(checked, 6);
}

/// A shell line split into words, honouring single quotes (all the README's lines use).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = vec![String::new()];
    let mut quoted = false;
    for c in line.trim().chars() {
        match c {
            '\'' => quoted = !quoted,
            ' ' if !quoted => {
                if !words.last().unwrap().is_empty() {
                    words.push(String::new());
                }
            }
            c => words.last_mut().unwrap().push(c),
        }
    }
    words
}
