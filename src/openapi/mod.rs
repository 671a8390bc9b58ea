//! OpenAPI import: an API's OpenAPI document becomes an ordinary server script.
//!
//! The script is `META` plus the generic `main` every catalog script has (`api::call(global::META, …)`),
//! so an imported server is stored by CID, versioned, hot-reloaded, edited and served over HTTP, the CLI
//! and MCP exactly like a hand-written one — there is nothing "imported" about it once it is written.
//! What the document says lands in the declarations the runtime already reads:
//!
//! * `info` → title, description; `externalDocs` → `docs` ([`mod@self`]);
//! * `servers` → `base_url` and `variables` ([`servers`]);
//! * `securitySchemes` + `security` → `auth`, the secrets, `META.oauth2` ([`security`]);
//! * each operation → one of `META.operations`, its input a plain JSON Schema ([`operations`], with
//!   [`names`] and [`schema`]);
//! * the text of the script ([`writer`]); what a re-import would change ([`diff`]).
//!
//! The document is read once ([`document`]). [`import`] is pure: it reads bytes and writes text. A
//! [`plan::Plan`] is what the CLI and the management API carry out: the script compiled by the runtime,
//! compared with the server it would replace, and bound only when asked — through the same
//! `put_script` as any edit. Nothing here knows HTTP.

pub mod diff;
mod document;
mod names;
pub mod operations;
pub mod plan;
mod schema;
mod security;
mod servers;
mod writer;
pub mod yaml;

use std::path::Path;

use serde_json::{Map, Value, json};

use crate::error::Error;
use crate::meta::Meta;
pub use operations::{Listed, Selection};
pub use plan::Plan;

/// Notes written into the script's header comment; all of them are in [`Import::notes`].
const NOTES_IN_SCRIPT: usize = 20;

/// An import's result: the script, and what the importer left out or chose.
#[derive(Debug)]
pub struct Import {
    pub script: String,
    pub operations: usize,
    pub notes: Vec<String>,
    /// The notes that are warnings: security schemes the runtime cannot use (also in `notes`).
    pub warnings: Vec<String>,
}

/// Turns the document in `bytes` into the script of the server `name`. `directory`, for a document read
/// from a file, is where the files its `$ref`s name are read; without it they are refused.
pub fn import(bytes: &[u8], directory: Option<&Path>, name: &str, selection: &Selection) -> Result<Import, Error> {
    crate::server::validate_name(name).map_err(Error::BadRequest)?;
    let budget = names::budget(name).map_err(Error::BadRequest)?;
    let prefix = names::constant(name);
    let document = document::Document::read(bytes, directory)?;
    let root = document.root();
    let mut notes = Vec::new();
    let base = servers::base(root, &prefix, &mut notes);
    let auth = security::auth(&document, &prefix, &base.url, &mut notes)?;
    let imported = operations::operations(&document, selection, budget, auth.carrier.as_ref(), &mut notes)?;
    let (operations, api) = declared(imported, auth.api.clone(), &mut notes);
    if operations.is_empty() {
        let left_out: Vec<&str> = notes.iter().filter(|n| n.contains("left out")).take(3).map(String::as_str).collect();
        return Err(Error::InvalidDocument(match left_out.is_empty() {
            true => "the document declares no operations (its paths are empty, or select none)".into(),
            false => format!("no operation of the document can be imported: {}", left_out.join("; ")),
        }));
    }
    let info = |key: &str| root.pointer(&format!("/info/{key}")).and_then(Value::as_str).map(str::trim).unwrap_or("");
    let title = Some(info("title")).filter(|t| !t.is_empty()).unwrap_or(name);
    let description =
        Some(info("description")).filter(|d| !d.is_empty()).map_or_else(|| format!("The {title} API."), schema::clip);
    let mut meta = Map::new();
    meta.insert("title".into(), json!(title));
    meta.insert("description".into(), json!(description));
    meta.insert("category".into(), json!("Imported"));
    meta.insert("secrets".into(), json!(auth.secrets));
    if !base.variables.is_empty() {
        meta.insert("variables".into(), Value::Array(base.variables));
    }
    if !auth.auth.is_empty() {
        meta.insert("auth".into(), json!(auth.auth));
    }
    meta.insert("base_url".into(), json!(base.url));
    if let Some(docs) = root.pointer("/externalDocs/url").and_then(Value::as_str).filter(|u| u.starts_with("http")) {
        meta.insert("docs".into(), json!(docs));
    }
    if let Some(oauth2) = auth.oauth2 {
        meta.insert("oauth2".into(), oauth2);
    }
    if !api.is_empty() {
        meta.insert("api".into(), Value::Object(api));
    }
    let count = operations.len();
    meta.insert("operations".into(), Value::Object(operations));
    Meta::from_json(Value::Object(meta.clone()))
        .map_err(|problem| Error::InvalidDocument(format!("the imported declaration does not hold: {problem}")))?;
    let version = info("version");
    let mut header = vec![format!(
        "{title} {version}: imported from its OpenAPI {} document by `switchboard import-openapi`.",
        root.get("openapi").and_then(Value::as_str).unwrap_or_default()
    )];
    header.extend(notes.iter().take(NOTES_IN_SCRIPT).cloned());
    if notes.len() > NOTES_IN_SCRIPT {
        header.push(format!("… and {} more notes.", notes.len() - NOTES_IN_SCRIPT));
    }
    Ok(Import { script: writer::script(&header, &meta), operations: count, notes, warnings: auth.unusable })
}

/// What a document offers, for choosing what to import: its title and every operation, named as an
/// import as the server `name` would name them.
#[derive(Debug)]
pub struct Contents {
    pub title: String,
    pub version: String,
    pub operations: Vec<Listed>,
}

/// Reads the document in `bytes` (self-contained, as one sent over HTTP) without importing it.
pub fn contents(bytes: &[u8], name: &str) -> Result<Contents, Error> {
    crate::server::validate_name(name).map_err(Error::BadRequest)?;
    let budget = names::budget(name).map_err(Error::BadRequest)?;
    let document = document::Document::read(bytes, None)?;
    let info = |key: &str| {
        document.root().pointer(&format!("/info/{key}")).and_then(Value::as_str).unwrap_or("").trim().to_owned()
    };
    let operations = operations::listing(&document, budget)?;
    if operations.is_empty() {
        return Err(Error::InvalidDocument("the document declares no operations (its paths are empty)".into()));
    }
    Ok(Contents { title: info("title"), version: info("version"), operations })
}

/// The operations as `META.operations` and the `META.api` they need: the body encoding most of them
/// use (an operation sending another is left out: a server sends one) and the headers they pass.
fn declared(
    imported: Vec<operations::Imported>,
    mut api: Map<String, Value>,
    notes: &mut Vec<String>,
) -> (Map<String, Value>, Map<String, Value>) {
    let encodings = imported.iter().filter_map(|op| op.encoding);
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for encoding in encodings {
        match counts.iter_mut().find(|(e, _)| *e == encoding) {
            Some((_, n)) => *n += 1,
            None => counts.push((encoding, 1)),
        }
    }
    let body = counts.iter().max_by_key(|(_, n)| *n).map_or("json", |(e, _)| *e);
    if body != "json" {
        api.insert("body".into(), json!(body));
    }
    let mut operations = Map::new();
    let mut headers: Vec<String> = Vec::new();
    for op in imported {
        if op.encoding.is_some_and(|e| e != body) {
            notes.push(format!(
                "{} left out: it sends a {} body, the others {body}",
                op.name,
                op.encoding.unwrap_or_default()
            ));
            continue;
        }
        if let Err(problem) = crate::meta::operations::parse(Some(&json!({ &op.name: &op.declaration }))) {
            notes.push(format!("{} left out: {problem}", op.name));
            continue;
        }
        for header in op.headers {
            if !headers.iter().any(|h| h.eq_ignore_ascii_case(&header)) {
                headers.push(header);
            }
        }
        operations.insert(op.name, op.declaration);
    }
    if !headers.is_empty() {
        api.insert("pass_headers".into(), json!(headers));
    }
    (operations, api)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(script: &str) -> crate::engine::Script {
        let engine = crate::engine::ScriptEngine::new(Default::default(), |_| {});
        engine.compile(script.as_bytes()).unwrap_or_else(|e| panic!("{}", e.message()))
    }

    #[test]
    fn the_example_document_becomes_a_server_that_loads() {
        let spec = include_bytes!("../../docs/examples/petstore.yaml");
        let imported = import(spec, None, "pets", &Selection::default()).unwrap();
        let meta = load(&imported.script).meta;
        assert_eq!((meta.title.as_str(), meta.auth.as_str()), ("Petstore", "header:X-Api-Key"));
        assert_eq!(meta.base_url, "https://{PETS_REGION}.petstore.example/v1");
        let names: Vec<&str> = meta.operations.iter().map(|op| op.name.as_str()).collect();
        assert_eq!(names, ["create_pet", "delete_pet", "get_pet", "list_pets"]);
        let create = &meta.operations[0];
        assert!(create.input["properties"].get("id").is_none(), "readOnly left out of the request");
        assert_eq!(meta.api.pass_headers, ["idempotency-key"]);
        let only_admin = Selection { tags: vec!["admin".into()], operations: vec!["getPet".into()] };
        let imported = import(spec, None, "pets", &only_admin).unwrap();
        let names: Vec<String> = load(&imported.script).meta.operations.into_iter().map(|op| op.name).collect();
        assert_eq!(names, ["delete_pet", "get_pet"]);
        let unknown = import(spec, None, "pets", &Selection { tags: vec!["nope".into()], ..Selection::default() });
        assert!(unknown.unwrap_err().message().contains("no operation has the tag or id nope"));
    }

    #[test]
    fn the_contents_name_operations_as_the_import_does() {
        let spec = include_bytes!("../../docs/examples/petstore.yaml");
        let read = contents(spec, "pets").unwrap();
        assert_eq!((read.title.as_str(), read.version.as_str()), ("Petstore", "1.0.0"));
        let listed: Vec<(&str, &str, &str, &[String])> = read
            .operations
            .iter()
            .map(|op| (op.name.as_str(), op.method.as_str(), op.path.as_str(), &op.tags[..]))
            .collect();
        let (pets, admin) = (["pets".to_owned()], ["admin".to_owned()]);
        assert_eq!(
            listed,
            [
                ("list_pets", "GET", "/pets", &pets[..]),
                ("create_pet", "POST", "/pets", &pets[..]),
                ("get_pet", "GET", "/pets/{petId}", &pets[..]),
                ("delete_pet", "DELETE", "/pets/{petId}", &admin[..]),
            ]
        );
        assert_eq!(read.operations[0].summary, "List pets");
        // Every name listed selects its operation, and only it.
        for op in &read.operations {
            let one = Selection { operations: vec![op.name.clone()], ..Selection::default() };
            assert_eq!(import(spec, None, "pets", &one).unwrap().operations, 1, "{}", op.name);
        }
        assert!(contents(b"swagger: '2.0'", "pets").unwrap_err().message().contains("Swagger 2.0"));
        assert_eq!(contents(spec, "Pets").unwrap_err().kind(), "bad_request");
    }

    #[test]
    fn a_selection_is_held_to_the_operations_one_server_takes() {
        let paths: Map<String, Value> =
            (0..5_001).map(|i| (format!("/t/{i}"), json!({ "get": { "operationId": format!("get{i}") } }))).collect();
        let document = json!({ "openapi": "3.0.3", "info": { "title": "Wide", "version": "1" }, "paths": paths });
        let bytes = document.to_string();
        let every: Vec<String> =
            contents(bytes.as_bytes(), "wide").unwrap().operations.into_iter().map(|op| op.name).collect();
        let all = Selection { operations: every.clone(), ..Selection::default() };
        let refused = import(bytes.as_bytes(), None, "wide", &all).unwrap_err();
        assert!(
            refused.message().starts_with("5001 of the document's 5001 operations are selected"),
            "{}",
            refused.message()
        );
        assert!(import(bytes.as_bytes(), None, "wide", &Selection::default()).is_err());
        let two = Selection { operations: every[..2].to_vec(), ..Selection::default() };
        assert_eq!(import(bytes.as_bytes(), None, "wide", &two).unwrap().operations, 2);
    }

    #[test]
    fn deep_and_wide_schemas_still_make_a_script_that_loads() {
        let mut deep = serde_json::json!({ "type": "string" });
        for level in 0..40 {
            deep = match level % 3 {
                0 => json!({ "type": "object", "properties": { "a": deep, "b": { "type": "integer" } } }),
                1 => json!({ "type": "array", "items": deep }),
                _ => json!({ "allOf": [deep, { "type": "object" }], "default": { "x": { "y": { "z": [1] } } } }),
            };
        }
        let paths: Map<String, Value> = (0..50)
            .map(|i| {
                let body = json!({ "required": true, "content": { "application/json": { "schema": deep } } });
                (format!("/things/{i}"), json!({ "post": { "operationId": format!("make{i}"), "requestBody": body } }))
            })
            .collect();
        let document = json!({ "openapi": "3.1.0", "info": { "title": "Deep", "version": "1" }, "paths": paths });
        let imported = import(document.to_string().as_bytes(), None, "deep", &Selection::default()).unwrap();
        assert_eq!(load(&imported.script).meta.operations.len(), 50);
        assert!(imported.script.len() < 2_000_000, "{} bytes", imported.script.len());
    }
}
