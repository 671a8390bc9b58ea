//! The web console (`/ui`): its session, CSRF and Origin rules and read-only mode over plain HTTP, and
//! every page driven in a real browser (Debian's Chromium through Playwright, `tests/console_browser.py`).
//!
//! `cargo test --test console` runs them all; the browser test needs `/usr/bin/chromium` and the
//! `playwright` package in `.peers/venv` (`scripts/install-peers`) and fails under `CI=true` without
//! them. With `CONSOLE_SCREENSHOTS=docs/console` it refreshes the README's screenshots.

mod common;

use common::{Server, expect_error};
use reqwest::header::{COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use reqwest::redirect::Policy;

const TOKEN: &str = "console-admin-token-5d1e";

/// A server with a declared secret and a named operation, created through the API so that it is editable.
const NOTES: &str = r#"const META = #{
    title: "Notes", description: "Keeps notes.", category: "testing",
    secrets: ["NOTES_TOKEN"],
    operations: #{
        get_note: #{ description: "Read a note.", method: "GET", endpoint: "/notes/{id}",
                     input: #{ type: "object", required: ["id"],
                               properties: #{ id: #{ type: "integer" }, verbose: #{ type: "boolean" } } } },
    },
};
fn main(endpoint, method, data) {
    #{ version: 1, endpoint: endpoint, method: method, data: data }
}
"#;

/// A server whose tokens come from the browser's authorization-code flow.
const LINKED: &str = r#"const META = #{
    title: "Linked", description: "An API behind an OAuth connection.", secrets: ["LINKED_CLIENT_SECRET"],
    variables: [#{ name: "LINKED_TENANT", pattern: "[a-z0-9-]{1,30}" }],
    auth: "oauth2", base_url: "https://api.linked.invalid",
    oauth2: #{ grant: "authorization_code", authorize_url: "https://auth.linked.invalid/authorize",
               token_url: "https://auth.linked.invalid/token", client_id: "console-client",
               client_secret: "{LINKED_CLIENT_SECRET}", scopes: ["read"] },
};
fn main(endpoint, method, data) { api::call(global::META, endpoint, method, data) }
"#;

/// A server receiving Standard Webhooks.
const HOOKS: &str = r#"const META = #{
    title: "Hooks", description: "Receives events.", secrets: ["HOOKS_SECRET"],
    webhook: #{ scheme: "standard", secret: "HOOKS_SECRET" },
};
fn main(endpoint, method, data) { () }
fn webhook(event) { #{ seen: event.id } }
"#;

fn start(extra: &[&str]) -> Server {
    start_with(extra, &[])
}

fn start_with(extra: &[&str], env: &[(&str, &str)]) -> Server {
    let mut env = env.to_vec();
    env.push(("SWITCHBOARD_ADMIN_TOKEN", TOKEN));
    let server = Server::start_default(extra, &env);
    let _ = rustls::crypto::ring::default_provider().install_default();
    server
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(Policy::none()).build().unwrap()
}

async fn admin_put(server: &Server, path: &str, body: &str) {
    let put = server.client.put(server.url(path)).bearer_auth(TOKEN).body(body.to_owned()).send().await.unwrap();
    assert!(put.status().is_success(), "{path}: {}", put.text().await.unwrap());
}

/// Delivers one signed Standard Webhooks event to `hooks`.
async fn deliver_event(server: &Server, key: &[u8]) {
    use base64::Engine as _;
    use hmac::Mac as _;
    let (id, at, body) = (
        "msg_console_1",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(),
        r#"{"type":"ping"}"#,
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("{id}.{at}.{body}").as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let answer = server
        .client
        .post(server.url("/webhooks/hooks"))
        .header("webhook-id", id)
        .header("webhook-timestamp", at.to_string())
        .header("webhook-signature", format!("v1,{signature}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{}", answer.text().await.unwrap());
}

/// Signs in; returns the session cookie (`name=value`) and the page's CSRF token.
async fn sign_in(server: &Server) -> (String, String) {
    let answer = client()
        .post(server.url("/ui/login"))
        .header(ORIGIN, server.base.as_str())
        .form(&[("token", TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 303);
    let cookie = answer.headers()[SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    let page = client().get(server.url("/ui")).header(COOKIE, &cookie).send().await.unwrap().text().await.unwrap();
    let marker = "X-CSRF-Token&quot;:&quot;";
    let start = page.find(marker).expect("the page carries its CSRF token") + marker.len();
    (cookie, page[start..start + 64].to_owned())
}

#[tokio::test]
async fn login_takes_the_admin_token_and_scopes_its_cookie_to_the_console() {
    let server = start(&[]);
    let page = client().get(server.url("/ui")).send().await.unwrap();
    assert_eq!((page.status().as_u16(), page.headers()[LOCATION].to_str().unwrap()), (303, "/ui/login"));
    let form = |token: &'static str| client().post(server.url("/ui/login")).form(&[("token", token)]);
    let wrong = form("nope").header(ORIGIN, server.base.as_str()).send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get(SET_COOKIE).is_none());
    expect_error(form(TOKEN).send().await.unwrap(), 403, "forbidden").await;
    expect_error(form(TOKEN).header(ORIGIN, "http://evil.example").send().await.unwrap(), 403, "forbidden").await;
    let right = form(TOKEN).header(ORIGIN, server.base.as_str()).send().await.unwrap();
    assert_eq!(right.status(), 303);
    let cookie = right.headers()[SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with("switchboard_console="), "{cookie}");
    for attribute in ["Path=/ui", "HttpOnly", "SameSite=Strict", "Max-Age=28800"] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    let session = cookie.split(';').next().unwrap();
    let page = client().get(server.url("/ui")).header(COOKIE, session).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(policy.contains("script-src 'self'") && !policy.contains("unsafe"), "{policy}");
    assert!(page.text().await.unwrap().contains("data-testid=\"server-search\""));
}

#[tokio::test]
async fn a_mutation_needs_the_csrf_token_and_an_origin_of_this_server() {
    let server = start(&[]);
    let (cookie, csrf) = sign_in(&server).await;
    let set = |origin: &str, token: &str| {
        client()
            .post(server.url("/ui/secrets"))
            .header(COOKIE, &cookie)
            .header(ORIGIN, origin)
            .header("x-csrf-token", token)
            .form(&[("name", "FORGED"), ("value", "x")])
    };
    expect_error(set(&server.base, "").send().await.unwrap(), 403, "forbidden").await;
    expect_error(set(&server.base, &"0".repeat(64)).send().await.unwrap(), 403, "forbidden").await;
    expect_error(set("http://evil.example", &csrf).send().await.unwrap(), 403, "forbidden").await;
    let no_origin = client()
        .post(server.url("/ui/secrets"))
        .header(COOKIE, &cookie)
        .header("x-csrf-token", &csrf)
        .form(&[("name", "FORGED"), ("value", "x")]);
    expect_error(no_origin.send().await.unwrap(), 403, "forbidden").await;
    let names = server.get("/api/secrets").await.text().await.unwrap();
    assert!(!names.contains("FORGED"), "{names}");
    let own = set(&server.base, &csrf).send().await.unwrap();
    assert_eq!(own.status(), 200);
    let table = own.text().await.unwrap();
    assert!(table.contains("FORGED") && !table.contains(">x<"), "the value never comes back: {table}");
    // A refused change answers its JSON error, or for htmx the same type as a fragment for the alert area.
    let bad = |htmx: bool| {
        let request = set(&server.base, &csrf).form(&[("name", "lower_case"), ("value", "x")]);
        if htmx { request.header("hx-request", "true") } else { request }
    };
    expect_error(bad(false).send().await.unwrap(), 400, "bad_request").await;
    let fragment = bad(true).send().await.unwrap();
    assert_eq!((fragment.status().as_u16(), fragment.headers()["hx-retarget"].to_str().unwrap()), (400, "#flash"));
    assert!(fragment.text().await.unwrap().contains("data-type=\"bad_request\""));
    let signed_out = client().post(server.url("/ui/secrets")).header(ORIGIN, server.base.as_str()).send();
    expect_error(signed_out.await.unwrap(), 401, "unauthorized").await;
}

#[tokio::test]
async fn read_only_mode_hides_edits_and_refuses_them() {
    let server = start(&["--read-only"]);
    let (cookie, csrf) = sign_in(&server).await;
    let page = client().get(server.url("/ui/servers/echo")).header(COOKIE, &cookie).send().await.unwrap();
    let page = page.text().await.unwrap();
    assert!(page.contains("read-only") && page.contains("data-testid=\"try-submit\""), "try-it stays");
    for hook in ["data-testid=\"save\"", "data-testid=\"enable-toggle\"", "data-testid=\"rollback\""] {
        assert!(!page.contains(hook), "{hook} is shown in read-only mode");
    }
    let save = client()
        .post(server.url("/ui/servers/echo/source"))
        .header(COOKIE, &cookie)
        .header(ORIGIN, server.base.as_str())
        .header("x-csrf-token", &csrf)
        .form(&[("source", "fn main(e, m, d) { 1 }")])
        .send()
        .await
        .unwrap();
    expect_error(save, 403, "forbidden").await;
    let ran = client()
        .post(server.url("/ui/servers/echo/try"))
        .header(COOKIE, &cookie)
        .header(ORIGIN, server.base.as_str())
        .header("x-csrf-token", &csrf)
        .form(&[("endpoint", "/still-runs")])
        .send()
        .await
        .unwrap();
    assert_eq!(ran.status(), 200);
    assert!(ran.text().await.unwrap().contains("/still-runs"));
}

#[tokio::test]
async fn no_script_response_sets_the_console_session() {
    let server = start(&[]);
    let script = "fn main(e, m, d) { #{ output: \"hi\", headers: #{ \"Set-Cookie\": \"switchboard_console=forged; Path=/ui\" } } }";
    let put =
        server.client.put(server.url("/api/servers/cookies")).bearer_auth(TOKEN).body(script).send().await.unwrap();
    assert_eq!(put.status(), 200);
    let answer = server.get("/cookies/x").await;
    assert!(answer.headers().get(SET_COOKIE).is_none());
    expect_error(answer, 500, "script_error").await;
}

#[tokio::test]
async fn assets_are_embedded_under_their_content_hash_and_cached_for_good() {
    let server = start(&[]);
    let (cookie, _) = sign_in(&server).await;
    let page = client().get(server.url("/ui/servers/echo")).header(COOKIE, &cookie).send().await.unwrap();
    let page = page.text().await.unwrap();
    let paths: Vec<String> = page
        .split("\"/ui/assets/")
        .skip(1)
        .map(|rest| format!("/ui/assets/{}", &rest[..rest.find('"').unwrap()]))
        .collect();
    let mut names: Vec<&str> =
        paths.iter().map(|p| p.split('/').next_back().unwrap().split('.').next().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["console", "console", "editor", "htmx"], "{paths:?}");
    for path in &paths {
        let asset = client().get(server.url(path)).send().await.unwrap();
        assert_eq!(asset.status(), 200, "{path}");
        assert_eq!(asset.headers()["cache-control"], "public, max-age=31536000, immutable");
        let bytes = asset.bytes().await.unwrap();
        let hash = blake3::hash(&bytes).to_hex();
        assert!(path.contains(&hash[..16]), "{path} names its content");
    }
    expect_error(client().get(server.url("/ui/assets/editor.0000.js")).send().await.unwrap(), 404, "not_found").await;
}

/// The browser and its driver: Playwright in the peers' venv and Debian's Chromium.
fn browser() -> Option<std::path::PathBuf> {
    common::python_with("playwright", &["/usr/bin/chromium"])
}

#[tokio::test]
async fn the_console_works_in_a_real_browser() {
    let Some(python) = browser() else { return };
    let Some(provider) = common::mock_authorization_server().await else { return };
    let (authorize, token) = (format!("{}/authorize", provider.base), format!("{}/token", provider.base));
    let server = start_with(&[], &[("LINKED_AUTHORIZE_URL", &authorize), ("LINKED_TOKEN_URL", &token)]);
    admin_put(&server, "/api/servers/notes", NOTES).await;
    admin_put(&server, "/api/servers/linked", LINKED).await;
    admin_put(&server, "/api/secrets/LINKED_CLIENT_SECRET", "client-secret").await;
    admin_put(&server, "/api/servers/hooks", HOOKS).await;
    let key = b"console-webhook-signing-key";
    use base64::Engine as _;
    let secret = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(key));
    admin_put(&server, "/api/secrets/HOOKS_SECRET", &secret).await;
    deliver_event(&server, key).await;
    let shots = match std::env::var("CONSOLE_SCREENSHOTS") {
        Ok(dir) => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir),
        Err(_) => server.dir.path().join("screenshots"),
    };
    std::fs::create_dir_all(&shots).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/console_browser.py");
    let output = tokio::process::Command::new(python)
        .args([script, &server.base, TOKEN, shots.to_str().unwrap()])
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
    eprintln!("console in the browser: {report}");
    assert_eq!(report["refusals"], serde_json::json!({ "no_csrf": 403, "foreign_origin": 403, "wrong_csrf": 403 }));
    assert_eq!(report["foreign_requests"], serde_json::json!([]));
    assert_eq!(report["console_errors"], serde_json::json!([]));
    assert_eq!(report["responses_with_secret"], 0);
    assert!(report["list"]["rows"].as_u64().unwrap() >= 100);
    assert!(!server.logs().contains("s3cr3t-value-never-shown-7f2a"));
}

/// The README's "Web console" section: its curl lines, run as written against a server (with its
/// address in place of localhost:8080), answer what their comments say.
#[tokio::test]
async fn the_readme_console_examples_run_as_written() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme.split("\n## Web console\n").nth(1).unwrap().split("\n## ").next().unwrap();
    let shell = section.split("```sh\n").nth(1).unwrap().split("```").next().unwrap();
    let server = start(&[]);
    let address = server.base.trim_start_matches("http://").to_owned();
    let mut jar: Option<String> = None;
    let mut checked = 0;
    for line in shell.lines().filter(|line| line.starts_with("curl")) {
        let line = line.replace("localhost:8080", &address);
        let (command, comment) = line.split_once("# ").unwrap();
        let expected: u16 = comment[..3].parse().unwrap();
        let words: Vec<&str> = command.split_whitespace().collect();
        let target = words.iter().find(|w| w.starts_with(&address)).unwrap();
        let fields: Vec<(String, String)> = words
            .windows(2)
            .filter(|pair| pair[0] == "-d")
            .map(|pair| {
                let (key, value) = pair[1].trim_matches('"').split_once('=').unwrap();
                (key.to_owned(), if value == "$T" { TOKEN.to_owned() } else { value.to_owned() })
            })
            .collect();
        let post = command.contains("-X POST") || !fields.is_empty();
        let url = format!("http://{target}");
        let mut request = if post { client().post(&url).form(&fields) } else { client().get(&url) };
        if command.contains("-H 'Origin:") {
            request = request.header(ORIGIN, server.base.as_str());
        }
        if let (true, Some(cookie)) = (command.contains("-b jar"), &jar) {
            request = request.header(COOKIE, cookie);
        }
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status().as_u16(), expected, "{line}");
        if command.contains("-c jar") {
            jar = Some(answer.headers()[SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned());
        }
        if let Some(to) = comment.split("to ").nth(1).and_then(|rest| rest.split([',', ' ']).next()) {
            assert_eq!(answer.headers()[LOCATION], to, "{line}");
        }
        checked += 1;
    }
    assert_eq!(checked, 4);
}

#[tokio::test]
async fn the_invocations_page_lists_records_filtered_by_server() {
    let server = start(&[]);
    let (cookie, _) = sign_in(&server).await;
    assert_eq!(server.get("/echo/hello").await.status(), 200);
    let page = |query: &'static str| {
        client().get(server.url(&format!("/ui/invocations{query}"))).header(COOKIE, &cookie).send()
    };
    let mut listed = String::new();
    for _ in 0..50 {
        listed = page("?server=echo&via=http&status=ok").await.unwrap().text().await.unwrap();
        if listed.contains("data-testid=\"invocation-row\"") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(listed.contains("href=\"/ui/servers/echo\"") && listed.contains("href=\"/cid/bafkr4i"), "{listed}");
    let other = page("?server=notes").await.unwrap().text().await.unwrap();
    assert!(!other.contains("data-testid=\"invocation-row\""));
    expect_error(page("?status=sometimes").await.unwrap(), 400, "bad_request").await;
}
