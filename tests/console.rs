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
    let list = client().get(server.url("/ui")).header(COOKIE, &cookie).send().await.unwrap().text().await.unwrap();
    assert!(!list.contains("data-testid=\"import-openapi\""), "the import is offered in read-only mode");
    let page = client().get(server.url("/ui/import")).header(COOKIE, &cookie).send().await.unwrap();
    let page = page.text().await.unwrap();
    assert!(page.contains("imports are refused") && !page.contains("data-testid=\"import-read\""), "{page}");
    let session = (cookie.as_str(), csrf.as_str());
    for step in ["operations", "preview", "apply"] {
        let fields = [("name", "pets"), ("file", PETSTORE), ("operation", "list_pets")];
        expect_error(import_step(&server, session, step, &fields).await, 403, "forbidden").await;
    }
    expect_error(server.get("/api/servers/pets").await, 404, "not_found").await;
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
    let pets = common::ok_upstream().await;
    let server = start_with(
        &[],
        &[
            ("LINKED_AUTHORIZE_URL", &authorize),
            ("LINKED_TOKEN_URL", &token),
            ("PETS_BASE_URL", &pets.uri()),
            ("PETS_API_KEY", PETS_KEY),
        ],
    );
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
    // The operation the browser called on the imported server reached the upstream with its key.
    let called: Vec<(String, Option<String>, String)> = pets
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let key = r.headers.get("x-api-key").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
            (r.url.path().to_owned(), r.url.query().map(str::to_owned), key)
        })
        .collect();
    assert_eq!(called, [("/v1/pets".to_owned(), Some("limit=2".to_owned()), PETS_KEY.to_owned())]);
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
    let mut csrf = String::new();
    let mut checked = 0;
    for line in shell.lines() {
        let line = line.replace("localhost:8080", &address);
        if line.starts_with("C=$(") {
            // `grep -om1 '[0-9a-f]\{64\}'` on the page: its first 64 hexadecimal digits are the token.
            let page = client().get(server.url("/ui/import")).header(COOKIE, jar.as_deref().unwrap()).send().await;
            let page = page.unwrap().text().await.unwrap();
            let bytes = page.as_bytes();
            let start = (0..bytes.len().saturating_sub(64))
                .find(|&i| bytes[i..i + 64].iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)))
                .expect("the page carries a token");
            csrf = page[start..start + 64].to_owned();
            assert!(page.contains(&format!("X-CSRF-Token&quot;:&quot;{csrf}")), "the first match is the token");
            continue;
        }
        if !line.starts_with("curl") {
            continue;
        }
        let (command, comment) = line.split_once("# ").unwrap();
        let expected: u16 = comment[..3].parse().unwrap();
        let words: Vec<&str> = command.split_whitespace().collect();
        let target = words.iter().find(|w| w.starts_with(&address)).unwrap();
        let fields = |flag: &str| -> Vec<(String, String)> {
            words
                .windows(2)
                .filter(|pair| pair[0] == flag)
                .map(|pair| {
                    let (key, value) = pair[1].trim_matches('"').split_once('=').unwrap();
                    (key.to_owned(), if value == "$T" { TOKEN.to_owned() } else { value.to_owned() })
                })
                .collect()
        };
        let (form, parts) = (fields("-d"), fields("-F"));
        let post = command.contains("-X POST") || !form.is_empty() || !parts.is_empty();
        let url = format!("http://{target}");
        let mut request = if post { client().post(&url) } else { client().get(&url) };
        if !form.is_empty() {
            request = request.form(&form);
        }
        if !parts.is_empty() {
            let mut multipart = reqwest::multipart::Form::new();
            for (key, value) in parts {
                multipart = match value.strip_prefix('@') {
                    Some(file) => {
                        let bytes = std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
                        multipart.part(key, reqwest::multipart::Part::bytes(bytes).file_name(file.to_owned()))
                    }
                    None => multipart.text(key, value),
                };
            }
            request = request.multipart(multipart);
        }
        if command.contains("-H 'Origin:") {
            request = request.header(ORIGIN, server.base.as_str());
        }
        if command.contains("-H \"X-CSRF-Token: $C\"") {
            request = request.header("x-csrf-token", &csrf);
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
        if comment.contains("the script and what it changes") {
            let preview = answer.text().await.unwrap();
            assert!(preview.contains("data-testid=\"import-script\"") && preview.contains("A new server"), "{preview}");
            expect_error(server.get("/api/servers/pets").await, 404, "not_found").await;
        }
        checked += 1;
    }
    assert_eq!(checked, 5);
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

const PETSTORE: &str = include_str!("../docs/examples/petstore.yaml");
const PETS_KEY: &str = "console-pets-key-3b9e";

/// A console change sent as the import's form does: multipart, with the session, its CSRF token and
/// this server's `Origin`.
async fn import_step(
    server: &Server,
    (cookie, csrf): (&str, &str),
    step: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = reqwest::multipart::Form::new();
    for (key, value) in fields {
        form = match *key {
            "file" => form.part("file", reqwest::multipart::Part::text(value.to_string()).file_name("spec.yaml")),
            _ => form.text(key.to_string(), value.to_string()),
        };
    }
    client()
        .post(server.url(&format!("/ui/import/{step}")))
        .header(COOKIE, cookie)
        .header(ORIGIN, server.base.as_str())
        .header("x-csrf-token", csrf)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// The value of `attribute` on the element marked `testid` in `html`.
fn attribute_of(html: &str, testid: &str, attribute: &str) -> String {
    let at = html.find(&format!("data-testid=\"{testid}\"")).unwrap_or_else(|| panic!("no {testid} in {html}"));
    let tag = &html[html[..at].rfind('<').unwrap()..];
    let tag = &tag[..tag.find('>').unwrap()];
    let value = tag.split(&format!(" {attribute}=\"")).nth(1).unwrap_or_else(|| panic!("no {attribute} in {tag}"));
    value[..value.find('"').unwrap()].replace("&quot;", "\"")
}

#[tokio::test]
async fn an_openapi_document_is_read_previewed_and_applied_from_the_console() {
    let upstream = common::ok_upstream().await;
    let server = start_with(&[], &[("PETS_BASE_URL", &upstream.uri()), ("PETS_API_KEY", PETS_KEY)]);
    let (cookie, csrf) = sign_in(&server).await;
    let session = (cookie.as_str(), csrf.as_str());
    let two = [("name", "pets"), ("file", PETSTORE), ("operation", "list_pets"), ("operation", "get_pet")];

    let read = import_step(&server, session, "operations", &[("name", "pets"), ("file", PETSTORE)]).await;
    assert_eq!(read.status(), 200);
    let picker = read.text().await.unwrap();
    let listed: Vec<&str> =
        picker.split("name=\"operation\" value=\"").skip(1).map(|rest| &rest[..rest.find('"').unwrap()]).collect();
    assert_eq!(listed, ["list_pets", "create_pet", "get_pet", "delete_pet"]);
    assert!(picker.contains("data-tag=\"admin\"") && picker.contains("data-tag=\"pets\""), "{picker}");

    // The preview stores nothing; it shows the script and that the server is new.
    let preview = import_step(&server, session, "preview", &two).await;
    assert_eq!(preview.status(), 200);
    let preview = preview.text().await.unwrap();
    assert!(preview.contains("2 operations") && preview.contains("A new server"), "{preview}");
    assert!(preview.contains("&quot;list_pets&quot;: #{") && !preview.contains("&quot;create_pet&quot;"), "{preview}");
    expect_error(server.get("/api/servers/pets").await, 404, "not_found").await;
    let shown: serde_json::Value = serde_json::from_str(&attribute_of(&preview, "import-apply", "hx-vals")).unwrap();
    let cid = shown["expect"].as_str().unwrap().to_owned();
    assert_eq!(shown["replaces"], "");

    // Apply needs what the preview showed: another selection than the one previewed is refused.
    let mut other = two.to_vec();
    other.extend([("expect", cid.as_str()), ("replaces", "")]);
    other[3] = ("operation", "delete_pet");
    expect_error(import_step(&server, session, "apply", &other).await, 400, "bad_request").await;
    expect_error(server.get("/api/servers/pets").await, 404, "not_found").await;
    let mut apply = two.to_vec();
    apply.extend([("expect", cid.as_str()), ("replaces", "")]);
    let applied = import_step(&server, session, "apply", &apply).await;
    assert_eq!(
        (applied.status().as_u16(), applied.headers()["hx-redirect"].to_str().unwrap()),
        (200, "/ui/servers/pets")
    );
    let (_, stored) = common::json(server.get("/api/servers/pets").await).await;
    assert_eq!(stored["cid"], cid.as_str());
    assert_eq!(server.get("/pets/pets?limit=2").await.status(), 200);
    let requests = upstream.received_requests().await.unwrap();
    let sent: Vec<(String, String, String)> = requests
        .iter()
        .map(|r| {
            let target = format!("{}?{}", r.url.path(), r.url.query().unwrap_or_default());
            (r.method.to_string(), target, r.headers["x-api-key"].to_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(sent, [("GET".into(), "/v1/pets?limit=2".into(), PETS_KEY.into())]);

    // A re-import shows what changes; applying it over a server that changed since is refused.
    let all = [("name", "pets"), ("file", PETSTORE), ("operation", "list_pets"), ("operation", "create_pet")];
    let preview = import_step(&server, session, "preview", &all).await.text().await.unwrap();
    let diff = preview.split("data-testid=\"import-diff\">").nth(1).unwrap().split("</pre>").next().unwrap();
    assert_eq!(
        diff,
        "<span class=\"add\">+ create_pet</span><span class=\"del\">- get_pet</span><span class=\"ctx\">~ META.api</span>"
    );
    let shown: serde_json::Value = serde_json::from_str(&attribute_of(&preview, "import-apply", "hx-vals")).unwrap();
    assert_eq!(shown["replaces"], cid.as_str());
    let newer = shown["expect"].as_str().unwrap();
    let mut stale = all.to_vec();
    stale.extend([("expect", newer), ("replaces", "")]);
    expect_error(import_step(&server, session, "apply", &stale).await, 400, "bad_request").await;
    let (_, unchanged) = common::json(server.get("/api/servers/pets").await).await;
    assert_eq!(unchanged["cid"], cid.as_str());
    let mut fresh = all.to_vec();
    fresh.extend([("expect", newer), ("replaces", cid.as_str())]);
    assert_eq!(import_step(&server, session, "apply", &fresh).await.status(), 200);
    let (_, replaced) = common::json(server.get("/api/servers/pets").await).await;
    assert_eq!((replaced["cid"].as_str(), replaced["history"].as_array().map(Vec::len)), (Some(newer), Some(2)));
}

#[tokio::test]
async fn a_refused_import_is_shown_and_stores_nothing() {
    let server = start(&[]);
    let (cookie, csrf) = sign_in(&server).await;
    let session = (cookie.as_str(), csrf.as_str());
    let swagger = "swagger: '2.0'\ninfo: { title: Old, version: '1' }\npaths: {}\n";
    for step in ["operations", "preview", "apply"] {
        let fields = [("name", "old"), ("document", swagger), ("operation", "x"), ("expect", "x"), ("replaces", "")];
        let error = expect_error(import_step(&server, session, step, &fields).await, 422, "invalid_document").await;
        assert!(error["message"].as_str().unwrap().contains("Swagger 2.0"), "{error}");
    }
    let broken = import_step(&server, session, "operations", &[("name", "old"), ("document", "openapi: [3")]).await;
    let error = expect_error(broken, 422, "invalid_document").await;
    assert!(error["message"].as_str().unwrap().contains("neither JSON nor valid YAML"), "{error}");
    let nothing = import_step(&server, session, "operations", &[("name", "old"), ("document", " \n")]).await;
    expect_error(nothing, 400, "bad_request").await;
    let untagged = import_step(&server, session, "preview", &[("name", "pets"), ("file", PETSTORE)]).await;
    expect_error(untagged, 400, "bad_request").await;
    // A scheme the runtime cannot use is said plainly, not among the notes.
    let oidc = PETSTORE
        .replace("- key: []", "- sso: []")
        .replace("securitySchemes:", "securitySchemes:\n    sso: { type: openIdConnect, openIdConnectUrl: 'https://id.example/.well-known/openid-configuration' }")
        .replace("    key: { type: apiKey, in: header, name: X-Api-Key }\n", "");
    assert!(!oidc.contains("X-Api-Key"), "{oidc}");
    let fields = [("name", "sso"), ("document", oidc.as_str()), ("operation", "list_pets")];
    let preview = import_step(&server, session, "preview", &fields).await.text().await.unwrap();
    let warning =
        preview.split("data-testid=\"import-warning\">").nth(1).expect("a warning").split("</div>").next().unwrap();
    assert!(warning.contains("security scheme 'sso' not used: OpenID Connect discovery is not supported"), "{warning}");
    // An htmx request gets the error as a fragment for the page's alert area.
    let fragment = client()
        .post(server.url("/ui/import/operations"))
        .header(COOKIE, &cookie)
        .header(ORIGIN, server.base.as_str())
        .header("x-csrf-token", &csrf)
        .header("hx-request", "true")
        .multipart(reqwest::multipart::Form::new().text("name", "old").text("document", swagger))
        .send()
        .await
        .unwrap();
    assert_eq!((fragment.status().as_u16(), fragment.headers()["hx-retarget"].to_str().unwrap()), (422, "#flash"));
    assert!(fragment.text().await.unwrap().contains("data-type=\"invalid_document\""));
    // Forged: no CSRF token, another origin.
    let forged = |origin: &str, token: &str| {
        client()
            .post(server.url("/ui/import/apply"))
            .header(COOKIE, &cookie)
            .header(ORIGIN, origin)
            .header("x-csrf-token", token)
            .multipart(reqwest::multipart::Form::new().text("name", "pets").text("document", PETSTORE))
            .send()
    };
    expect_error(forged(&server.base, "").await.unwrap(), 403, "forbidden").await;
    expect_error(forged("http://evil.example", &csrf).await.unwrap(), 403, "forbidden").await;
    let servers = server.get("/api/servers").await.text().await.unwrap();
    for name in ["\"old\"", "\"pets\"", "\"sso\""] {
        assert!(!servers.contains(name), "{name} was stored: {servers}");
    }
}

#[tokio::test]
async fn each_server_row_shows_its_calls_and_error_rate_of_the_last_hour() {
    let server = start(&[]);
    let (cookie, _) = sign_in(&server).await;
    admin_put(&server, "/api/servers/flaky", "fn main(e, m, d) { if e == \"/bad\" { throw \"broken\" } e }").await;
    for endpoint in ["/a", "/b", "/c", "/bad"] {
        server.get(&format!("/flaky{endpoint}")).await;
    }
    let row = |page: &str, name: &str| -> String {
        let start = page.find(&format!("data-name=\"{name}\"")).unwrap_or_else(|| panic!("no row {name}"));
        page[start..].split("data-testid=\"server-row\"").next().unwrap().to_owned()
    };
    let mut page = String::new();
    // Records are written off the hot path, in batches.
    for _ in 0..50 {
        page = client().get(server.url("/ui")).header(COOKIE, &cookie).send().await.unwrap().text().await.unwrap();
        if row(&page, "flaky").contains("4 calls") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let flaky = row(&page, "flaky");
    assert!(flaky.contains("4 calls") && flaky.contains("25.0 % errors"), "{flaky}");
    assert!(row(&page, "echo").contains("no calls"));
    let found = client().get(server.url("/ui/servers?q=flaky")).header(COOKIE, &cookie).send().await.unwrap();
    assert!(found.text().await.unwrap().contains("4 calls"), "the search's rows carry it too");
}
