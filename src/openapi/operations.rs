//! Paths and their operations → `META.operations`.
//!
//! Each operation becomes one named operation: its path, query and header parameters and its request
//! body become the properties of one JSON-Schema `input`. Path parameters fill the endpoint's
//! `{field}`s; query and header parameters that the default rule would not send right (a query
//! parameter of a method with a body, a header, a name that is not a plain argument, an array in a
//! style other than repeated keys) are declared in the operation's `params`. A body that is an object
//! of plain fields is flattened into the arguments; any other body — an array, a scalar, a composition,
//! or fields that share a name with a parameter — is one argument, `body`, so a collision is visible in
//! the schema rather than resolved silently. What cannot be imported is left out and said in the notes.

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use super::document::Document;
use super::names;
use super::schema::{self, Converter, Direction, clip};
use crate::error::Error;

/// Most operations one server takes: beyond it the script alone would be tens of megabytes (Microsoft
/// Graph's 22 000 operations), more than any tool list can use; a selection of it can be imported.
const MAX_OPERATIONS: usize = 5_000;

/// Methods the declaration layer takes, in the order OpenAPI lists them.
const METHODS: [&str; 6] = ["get", "put", "post", "delete", "head", "patch"];

/// Which operations to import: those with one of `tags` or one of `operations` (an `operationId` or
/// the name it is imported as); every operation when both are empty.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub tags: Vec<String>,
    pub operations: Vec<String>,
}

/// One imported operation.
#[derive(Debug)]
pub struct Imported {
    pub name: String,
    /// Its `META.operations` entry.
    pub declaration: Value,
    /// How its body is sent (`json`, `form`, `multipart`, `text`), when it has one.
    pub encoding: Option<&'static str>,
    /// The header parameters it sends, by their names on the wire.
    pub headers: Vec<String>,
}

/// Where the credential travels (`query`/`header`/`cookie` and its name): no operation asks for it.
pub type Carrier<'a> = Option<&'a (String, String)>;

/// Every selected operation of the document, in document order.
pub fn operations(
    document: &Document,
    selection: &Selection,
    budget: usize,
    carrier: Carrier,
    notes: &mut Vec<String>,
) -> Result<Vec<Imported>, Error> {
    let mut imported = Vec::new();
    let mut matched = HashSet::new();
    let (found, count) = walk(document, budget, notes)?;
    let chosen: Vec<Found> =
        found.into_iter().filter(|f| selected(selection, f.operation, f.id, &f.name, &mut matched)).collect();
    if chosen.len() > MAX_OPERATIONS {
        return Err(Error::InvalidDocument(format!(
            "{} of the document's {count} operations are selected, more than the {MAX_OPERATIONS} one server takes: \
             import part of it with --tag or --operation (tag=… or operation=… over HTTP)",
            chosen.len()
        )));
    }
    for Found { path, method, shared, operation, name, .. } in chosen {
        let what = format!("{} {path} ({name})", method.to_uppercase());
        let converter = Converter::new(document, Direction::Parameter, count);
        match one(converter, &name, method, path, shared, operation, carrier, notes) {
            Ok(Some(op)) => imported.push(op),
            Ok(None) => {}
            Err(error) => notes.push(format!("{what} left out: {}", error.message())),
        }
    }
    let unmatched: Vec<&String> =
        selection.tags.iter().chain(&selection.operations).filter(|wanted| !matched.contains(*wanted)).collect();
    if !unmatched.is_empty() {
        let unmatched: Vec<&str> = unmatched.iter().map(|s| s.as_str()).collect();
        return Err(Error::InvalidDocument(format!("no operation has the tag or id {}", unmatched.join(", "))));
    }
    Ok(imported)
}

/// One operation of the document, named as an import names it.
struct Found<'a> {
    path: &'a str,
    method: &'a str,
    /// The parameters its path item declares for every method.
    shared: Option<&'a Value>,
    operation: &'a Value,
    id: Option<&'a str>,
    name: String,
}

/// Every operation of the document in document order, and how many there are. Names are handed out
/// to all of them, selected or not, so a selection never renames an operation.
fn walk<'a>(document: &'a Document, budget: usize, notes: &mut Vec<String>) -> Result<(Vec<Found<'a>>, usize), Error> {
    let mut names = names::Operations::new(budget);
    let mut found = Vec::new();
    let paths = document.root().get("paths").and_then(Value::as_object).into_iter().flatten();
    let count = paths
        .clone()
        .flat_map(|(_, item)| item.as_object())
        .flatten()
        .filter(|(m, _)| METHODS.contains(&m.as_str()))
        .count();
    for (path, item) in paths {
        let item = document.resolve(item)?.0;
        for (method, operation) in item.as_object().into_iter().flatten() {
            if !METHODS.contains(&method.as_str()) {
                if ["options", "trace"].contains(&method.as_str()) {
                    notes.push(format!("{} {path}: the method is not supported", method.to_uppercase()));
                }
                continue;
            }
            let id = operation.get("operationId").and_then(Value::as_str);
            let name = names.name(id, method, path);
            found.push(Found { path, method, shared: item.get("parameters"), operation, id, name });
        }
    }
    Ok((found, count))
}

/// An operation as a person choosing what to import sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The name it is imported as (what a selection names it by).
    pub name: String,
    pub method: String,
    pub path: String,
    pub tags: Vec<String>,
    pub summary: String,
}

/// Every operation of the document, named as [`operations`] would name them.
pub fn listing(document: &Document, budget: usize) -> Result<Vec<Listed>, Error> {
    let (found, _) = walk(document, budget, &mut Vec::new())?;
    let text = |op: &Value, key: &str| op.get(key).and_then(Value::as_str).map(str::trim).unwrap_or("").to_owned();
    Ok(found
        .into_iter()
        .map(|f| Listed {
            tags: f
                .operation
                .get("tags")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            summary: Some(text(f.operation, "summary"))
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| clip(&text(f.operation, "description"))),
            method: f.method.to_uppercase(),
            path: f.path.to_owned(),
            name: f.name,
        })
        .collect())
}

fn selected(
    selection: &Selection,
    operation: &Value,
    id: Option<&str>,
    name: &str,
    matched: &mut HashSet<String>,
) -> bool {
    if selection.tags.is_empty() && selection.operations.is_empty() {
        return true;
    }
    let tags = operation.get("tags").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str);
    let mut hits: Vec<&String> = selection.tags.iter().filter(|t| tags.clone().any(|tag| tag == t.as_str())).collect();
    hits.extend(selection.operations.iter().filter(|o| Some(o.as_str()) == id || o.as_str() == name));
    let any = !hits.is_empty();
    matched.extend(hits.into_iter().cloned());
    any
}

/// What one operation's input is being built from.
struct Input {
    properties: Map<String, Value>,
    required: Vec<String>,
    params: Map<String, Value>,
    taken: HashSet<String>,
    headers: Vec<String>,
}

impl Input {
    /// A name for an argument that no other argument has.
    fn claim(&mut self, wanted: String, place: &str) -> String {
        let mut name = wanted.clone();
        let mut n = 1;
        while self.taken.contains(&name) {
            n += 1;
            name = if n == 2 { format!("{wanted}_{place}") } else { format!("{wanted}_{place}_{n}") };
        }
        self.taken.insert(name.clone());
        name
    }
}

#[allow(clippy::too_many_arguments)]
fn one<'a>(
    mut converter: Converter<'a>,
    name: &str,
    method: &str,
    path: &str,
    shared: Option<&'a Value>,
    operation: &'a Value,
    carrier: Carrier,
    notes: &mut Vec<String>,
) -> Result<Option<Imported>, Error> {
    let what = format!("{} {path} ({name})", method.to_uppercase());
    let document = converter.document();
    let mut input = Input {
        properties: Map::new(),
        required: Vec::new(),
        params: Map::new(),
        taken: HashSet::new(),
        headers: Vec::new(),
    };
    let body = match operation.get("requestBody") {
        Some(body) => Some(document.resolve(body)?.0),
        None => None,
    };
    let has_body = body.is_some() || !["get", "head", "delete"].contains(&method);
    let mut endpoint = if path.starts_with('/') { path.to_owned() } else { format!("/{path}") };
    for parameter in parameters(document, shared, operation.get("parameters"))? {
        parameter_into(&mut input, &mut converter, parameter, &mut endpoint, has_body, carrier, &what, notes)?;
    }
    for field in undeclared_fields(&endpoint) {
        let argument = input.claim(names::argument(&field, true), "path");
        notes.push(format!("{what}: the path's {{{field}}} is not declared: taken as a string"));
        endpoint = endpoint.replace(&format!("{{{field}}}"), &format!("{{{argument}}}"));
        input.properties.insert(argument.clone(), json!({ "type": "string" }));
        input.required.push(argument);
    }
    converter.direction(Direction::Request);
    let (encoding, body_argument) = match body {
        None => (None, None),
        Some(body) => match request_body(&mut input, &mut converter, body)? {
            Some((encoding, argument)) => (Some(encoding), argument),
            None => {
                let media: Vec<&str> = body
                    .get("content")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                    .map(|(k, _)| k.as_str())
                    .collect();
                notes.push(format!("{what} left out: its request body ({}) is not supported", media.join(", ")));
                return Ok(None);
            }
        },
    };
    let mut declaration = json!({
        "description": description(operation, method, path),
        "method": method.to_uppercase(),
        "endpoint": endpoint,
        "input": { "type": "object", "properties": input.properties },
    });
    if !input.required.is_empty() {
        declaration["input"]["required"] = json!(input.required);
    }
    if !input.params.is_empty() {
        declaration["params"] = Value::Object(input.params);
    }
    if let Some(argument) = body_argument {
        declaration["body"] = json!(argument);
    }
    Ok(Some(Imported { name: name.to_owned(), declaration, encoding, headers: input.headers }))
}

/// The path item's parameters with the operation's own laid over them (same name and place).
fn parameters<'a>(
    document: &'a Document,
    shared: Option<&'a Value>,
    own: Option<&'a Value>,
) -> Result<Vec<&'a Value>, Error> {
    let mut merged: Vec<&Value> = Vec::new();
    for list in [shared, own].into_iter().flatten().filter_map(Value::as_array) {
        for parameter in list {
            let parameter = document.resolve(parameter)?.0;
            let key = |p: &Value| (p.get("name").cloned(), p.get("in").cloned());
            merged.retain(|earlier| key(earlier) != key(parameter));
            merged.push(parameter);
        }
    }
    Ok(merged)
}

#[allow(clippy::too_many_arguments)]
fn parameter_into<'a>(
    input: &mut Input,
    converter: &mut Converter<'a>,
    parameter: &'a Value,
    endpoint: &mut String,
    has_body: bool,
    carrier: Carrier,
    what: &str,
    notes: &mut Vec<String>,
) -> Result<(), Error> {
    let text = |key: &str| parameter.get(key).and_then(Value::as_str).unwrap_or_default();
    let (wire, place) = (text("name"), text("in"));
    if wire.is_empty() {
        return Ok(());
    }
    if carrier.is_some_and(|(p, n)| p == place && n.eq_ignore_ascii_case(wire)) {
        return Ok(());
    }
    let schema = parameter.get("schema").or_else(|| {
        parameter
            .get("content")
            .and_then(Value::as_object)
            .and_then(|c| c.values().next())
            .and_then(|m| m.get("schema"))
    });
    let mut converted = match schema {
        Some(schema) => converter.convert(schema)?,
        None => json!({ "type": "string" }),
    };
    if let (Some(description), Value::Object(map)) =
        (parameter.get("description").and_then(Value::as_str), &mut converted)
    {
        map.insert("description".into(), json!(schema::clip_to(description, schema::MAX_PROPERTY_DESCRIPTION)));
    }
    let required = parameter.get("required") == Some(&Value::Bool(true));
    let argument = match place {
        "path" => {
            let argument = input.claim(names::argument(wire, true), "path");
            *endpoint = endpoint.replace(&format!("{{{wire}}}"), &format!("{{{argument}}}"));
            input.required.push(argument.clone());
            argument
        }
        "query" => {
            let argument = input.claim(names::argument(wire, false), "query");
            let style = style(text("style"), parameter.get("explode").and_then(Value::as_bool));
            if has_body || argument != wire || style != "form" {
                let mut declared = json!({ "in": "query", "name": wire });
                if style != "form" {
                    declared["style"] = json!(style);
                }
                input.params.insert(argument.clone(), declared);
            }
            argument
        }
        "header" if crate::meta::api::passable(&wire.to_ascii_lowercase()) && !wire.contains(['\r', '\n']) => {
            let argument = input.claim(names::argument(wire, false), "header");
            input.params.insert(argument.clone(), json!({ "in": "header", "name": wire }));
            input.headers.push(wire.to_owned());
            argument
        }
        "header" | "cookie" => {
            notes.push(format!(
                "{what}: the {place} parameter '{wire}' is left out (the runtime sets it, or cannot send it)"
            ));
            return Ok(());
        }
        _ => return Ok(()),
    };
    if required && place != "path" {
        input.required.push(argument.clone());
    }
    input.properties.insert(argument, converted);
    Ok(())
}

/// The query style of a parameter (OpenAPI `style` and `explode`) in the declaration layer's words.
fn style(style: &str, explode: Option<bool>) -> &'static str {
    match (style, explode) {
        ("" | "form", None | Some(true)) => "form",
        ("" | "form", Some(false)) => "comma",
        ("spaceDelimited", _) => "space",
        ("pipeDelimited", _) => "pipe",
        ("deepObject", _) => "deep",
        _ => "form",
    }
}

/// `{field}`s of the endpoint that are not yet arguments' names.
fn undeclared_fields(endpoint: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut rest = endpoint;
    while let Some(open) = rest.find('{') {
        let Some(length) = rest[open..].find('}') else { break };
        let field = &rest[open + 1..open + length];
        if names::argument(field, true) != field || field.is_empty() {
            fields.push(field.to_owned());
        }
        rest = &rest[open + length + 1..];
    }
    fields
}

/// The request body into the input: flattened fields, or one `body` argument. `None` when no media
/// type of the body can be sent.
fn request_body<'a>(
    input: &mut Input,
    converter: &mut Converter<'a>,
    body: &'a Value,
) -> Result<Option<(&'static str, Option<String>)>, Error> {
    let content = body.get("content").and_then(Value::as_object);
    let Some((encoding, media)) = content.and_then(|content| {
        let of = |media: &str| encoding(media);
        ["json", "form", "multipart", "text"]
            .into_iter()
            .find_map(|wanted| content.iter().find(|(m, _)| of(m) == Some(wanted)).map(|(_, media)| (wanted, media)))
    }) else {
        return Ok(None);
    };
    let required = body.get("required") == Some(&Value::Bool(true));
    let mut schema = match media.get("schema") {
        Some(schema) => converter.convert(schema)?,
        None => json!({}),
    };
    if encoding == "multipart" {
        file_parts(&mut schema);
    }
    let flat = encoding != "text"
        && schema.get("type").is_none_or(|t| t == "object")
        && ["allOf", "anyOf", "oneOf"].iter().all(|k| schema.get(k).is_none())
        && schema.get("properties").and_then(Value::as_object).is_some_and(|properties| {
            !properties.is_empty()
                && properties.keys().all(|k| names::argument(k, false) == *k && !input.taken.contains(k))
        });
    if !flat {
        let argument = input.claim("body".into(), "request");
        if required {
            input.required.push(argument.clone());
        }
        input.properties.insert(argument.clone(), schema);
        return Ok(Some((encoding, Some(argument))));
    }
    let fields = schema.get("required").and_then(Value::as_array).cloned().unwrap_or_default();
    if let Some(Value::Object(properties)) = schema.get_mut("properties").map(std::mem::take) {
        for (name, property) in properties {
            input.taken.insert(name.clone());
            input.properties.insert(name, property);
        }
    }
    if required {
        input.required.extend(fields.iter().filter_map(Value::as_str).map(str::to_owned));
    }
    Ok(Some((encoding, None)))
}

/// How a media type is sent, if the runtime can send it.
fn encoding(media: &str) -> Option<&'static str> {
    let media = media.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    match media.as_str() {
        "application/json" | "*/*" => Some("json"),
        m if m.ends_with("+json") || (m.starts_with("application/") && m.contains("json")) => Some("json"),
        "application/x-www-form-urlencoded" => Some("form"),
        "multipart/form-data" | "multipart/mixed" => Some("multipart"),
        m if m.starts_with("text/") => Some("text"),
        _ => None,
    }
}

/// In a multipart body, a binary field is a file part: `#{ filename, content_type, data }`.
fn file_parts(schema: &mut Value) {
    let Some(Value::Object(properties)) = schema.get_mut("properties") else { return };
    for property in properties.values_mut() {
        let binary =
            |s: &Value| s.get("format").and_then(Value::as_str).is_some_and(|f| f == "binary" || f == "base64");
        if binary(property) {
            let description = property.get("description").cloned().unwrap_or(json!("A file."));
            *property = json!({
                "type": "object", "description": description, "required": ["data"],
                "properties": { "filename": { "type": "string" }, "content_type": { "type": "string" },
                                "data": { "type": "string", "description": "The file's content." } },
            });
        }
    }
}

/// The operation's summary, else its description, else its method and path.
fn description(operation: &Value, method: &str, path: &str) -> String {
    let text = |key: &str| operation.get(key).and_then(Value::as_str).map(str::trim).filter(|t| !t.is_empty());
    let mut description = match (text("summary"), text("description")) {
        (Some(summary), Some(more)) if more != summary => format!("{}. {more}", summary.trim_end_matches('.')),
        (Some(summary), _) => summary.to_owned(),
        (None, Some(more)) => more.to_owned(),
        (None, None) => format!("{} {path}", method.to_uppercase()),
    };
    if operation.get("deprecated") == Some(&Value::Bool(true)) {
        description.insert_str(0, "Deprecated. ");
    }
    clip(&description)
}
