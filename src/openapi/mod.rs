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

use std::path::Path;

use serde_json::{Map, Value, json};

use crate::error::Error;
use crate::meta::Meta;
pub use operations::Selection;
pub use plan::Plan;

/// Notes written into the script's header comment; all of them are in [`Import::notes`].
const NOTES_IN_SCRIPT: usize = 20;

/// An import's result: the script, and what the importer left out or chose.
#[derive(Debug)]
pub struct Import {
    pub script: String,
    pub operations: usize,
    pub notes: Vec<String>,
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
        let why = notes.iter().rev().take(3).cloned().collect::<Vec<_>>().join("; ");
        return Err(Error::InvalidDocument(format!("the document has no operation that can be imported ({why})")));
    }
    let info = |key: &str| root.pointer(&format!("/info/{key}")).and_then(Value::as_str).map(str::trim).unwrap_or("");
    let title = Some(info("title")).filter(|t| !t.is_empty()).unwrap_or(name);
    let description = Some(info("description")).filter(|d| !d.is_empty()).map_or_else(|| format!("The {title} API."), schema::clip);
    let mut meta = Map::new();
    meta.insert("title".into(), json!(title));
    meta.insert("description".into(), json!(description));
    meta.insert("category".into(), json!("Imported"));
    meta.insert("secrets".into(), json!(auth.secrets));
    if !base.variables.is_empty() {
        meta.insert("variables".into(), Value::Object(base.variables));
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
    Ok(Import { script: writer::script(&header, &meta), operations: count, notes })
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
            notes.push(format!("{} left out: it sends a {} body, the others {body}", op.name, op.encoding.unwrap_or_default()));
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
