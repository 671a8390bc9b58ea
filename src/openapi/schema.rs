//! OpenAPI schemas as plain JSON Schema: references inlined, OpenAPI's own dialect translated.
//!
//! An operation's input must stand alone — MCP clients, the describe page and argument validation read
//! it without the document — so every `$ref` is inlined. Recursive schemas (a comment's replies are
//! comments) and very deep or very large ones are cut: past [`MAX_DEPTH`] levels of nesting, or once an
//! operation has spent its budget of schema nodes (the document's [`BUDGET`] shared among its
//! operations), a schema keeps only its `type` and description. The result stays correct (it accepts
//! what the full schema accepts, and more), bounded in size — a few megabytes of script for the
//! largest documents, which the engine compiles in a second or two — and shallow enough for a script's map literal (Rhai bounds expression depth).
//! Values (`default`, `enum`, `examples`) deeper than [`MAX_VALUE_DEPTH`] are left out. OpenAPI 3.0's `nullable`, boolean `exclusiveMinimum` and
//! `example` become JSON Schema's forms; keywords JSON Schema does not know (`xml`, `discriminator`,
//! `x-…`) are left out; in a request, `readOnly` properties are left out.

use serde_json::{Map, Value, json};

use super::document::Document;
use crate::error::Error;

/// Levels of literal nesting kept in full below an operation's input properties (a property's schema
/// is two below its parent: `properties`, then the schema). The engine parses about 21 nested maps;
/// `META`, `operations`, the operation, `input` and `properties` take five, a value (`default`) three.
const MAX_DEPTH: usize = 10;
/// Schema nodes a whole document's operations may hold in full, shared among them.
pub const BUDGET: usize = 40_000;
/// What each operation may hold, however many the document has.
const LEAST_PER_OPERATION: usize = 30;
const MOST_PER_OPERATION: usize = 800;
/// Deepest `default`, `enum`, `const` or `examples` value kept.
const MAX_VALUE_DEPTH: usize = 3;
/// Longest description kept (in characters): they are read by people and models, not parsed.
pub const MAX_DESCRIPTION: usize = 600;
/// Longest description of a property, and deeper in a schema.
pub const MAX_PROPERTY_DESCRIPTION: usize = 300;
const MAX_NESTED_DESCRIPTION: usize = 120;
/// Deepest schema whose examples are kept.
const MAX_EXAMPLE_DEPTH: usize = 2;

/// Keywords copied as they are.
const KEPT: [&str; 22] = [
    "type",
    "format",
    "title",
    "enum",
    "const",
    "default",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "uniqueItems",
    "multipleOf",
    "minProperties",
    "maxProperties",
    "deprecated",
    "writeOnly",
    "contentMediaType",
    "contentEncoding",
    "examples",
];

/// What is being converted: a request body (where `readOnly` properties go) or a parameter.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Request,
    Parameter,
}

/// Converts the schemas of one operation, within one budget.
pub struct Converter<'a> {
    document: &'a Document,
    direction: Direction,
    spent: usize,
    budget: usize,
    /// The references being inlined, outermost first: one met again is a recursion.
    open: Vec<&'a str>,
}

impl<'a> Converter<'a> {
    /// A converter for one of `operations` operations of a document.
    pub fn new(document: &'a Document, direction: Direction, operations: usize) -> Converter<'a> {
        let budget = (BUDGET / operations.max(1)).clamp(LEAST_PER_OPERATION, MOST_PER_OPERATION);
        Converter { document, direction, spent: 0, budget, open: Vec::new() }
    }

    pub fn document(&self) -> &'a Document {
        self.document
    }

    pub fn direction(&mut self, direction: Direction) {
        self.direction = direction;
    }

    /// `schema` as plain JSON Schema.
    pub fn convert(&mut self, schema: &'a Value) -> Result<Value, Error> {
        self.at(schema, 0)
    }

    fn at(&mut self, schema: &'a Value, depth: usize) -> Result<Value, Error> {
        let (resolved, through) = self.document.resolve(schema)?;
        let Some(map) = resolved.as_object() else {
            return Ok(if resolved.is_boolean() { resolved.clone() } else { json!({}) });
        };
        let recursive = through.is_some_and(|r| self.open.contains(&r));
        self.spent += 1;
        if recursive || depth >= MAX_DEPTH || self.spent > self.budget {
            return Ok(shallow(map, recursive));
        }
        if let Some(reference) = through {
            self.open.push(reference);
        }
        let converted = self.object(map, depth);
        if through.is_some() {
            self.open.pop();
        }
        let mut converted = converted?;
        // A 3.1 `$ref` may carry its own description beside it.
        if let Some(description) = schema.get("description").and_then(Value::as_str).filter(|_| through.is_some()) {
            converted.insert("description".into(), json!(clip_at(description, depth)));
        }
        Ok(Value::Object(converted))
    }

    fn object(&mut self, map: &'a Map<String, Value>, depth: usize) -> Result<Map<String, Value>, Error> {
        let mut out = Map::new();
        for key in KEPT {
            let kept = |value: &&Value| {
                shallow_value(value, MAX_VALUE_DEPTH) && (key != "examples" || depth <= MAX_EXAMPLE_DEPTH)
            };
            if let Some(value) = map.get(key).filter(kept) {
                out.insert(key.into(), value.clone());
            }
        }
        if let Some(description) = map.get("description").and_then(Value::as_str) {
            out.insert("description".into(), json!(clip_at(description, depth)));
        }
        let example = |e: &&Value| {
            !out.contains_key("examples") && depth <= MAX_EXAMPLE_DEPTH && shallow_value(e, MAX_VALUE_DEPTH - 1)
        };
        if let Some(example) = map.get("example").filter(example) {
            out.insert("examples".into(), json!([example]));
        }
        translate(map, &mut out);
        if let Some(Value::Object(properties)) = map.get("properties") {
            let mut kept = Map::new();
            for (name, property) in properties {
                if self.direction == Direction::Request && self.read_only(property)? {
                    continue;
                }
                kept.insert(name.clone(), self.at(property, depth + 2)?);
            }
            if let Some(Value::Array(required)) = map.get("required") {
                let required: Vec<&Value> =
                    required.iter().filter(|n| n.as_str().is_some_and(|n| kept.contains_key(n))).collect();
                if !required.is_empty() {
                    out.insert("required".into(), json!(required));
                }
            }
            out.insert("properties".into(), Value::Object(kept));
        }
        for key in ["items", "not", "additionalProperties"] {
            if let Some(value) = map.get(key) {
                out.insert(key.into(), self.at(value, depth + 1)?);
            }
        }
        for key in ["allOf", "anyOf", "oneOf", "prefixItems"] {
            if let Some(Value::Array(items)) = map.get(key) {
                let items = items.iter().map(|item| self.at(item, depth + 2)).collect::<Result<Vec<_>, _>>()?;
                out.insert(key.into(), Value::Array(items));
            }
        }
        Ok(out)
    }

    /// Whether a property is `readOnly` (itself, or the schema its reference names).
    fn read_only(&self, property: &Value) -> Result<bool, Error> {
        let direct = property.get("readOnly").and_then(Value::as_bool);
        Ok(direct.unwrap_or(self.document.resolve(property)?.0.get("readOnly").and_then(Value::as_bool) == Some(true)))
    }
}

/// A schema cut short: its type and description only, which accepts whatever the full one accepts.
fn shallow(map: &Map<String, Value>, recursive: bool) -> Value {
    let mut out = Map::new();
    if let Some(kind) = map.get("type") {
        out.insert("type".into(), kind.clone());
    }
    translate(map, &mut out);
    let description =
        map.get("description").and_then(Value::as_str).map(|d| clip_to(d, MAX_NESTED_DESCRIPTION)).unwrap_or_default();
    let note =
        if recursive { "(recursive: the same shape as above)" } else { "(nested deeper: see the API's reference)" };
    out.insert("description".into(), json!(format!("{description} {note}").trim_start()));
    Value::Object(out)
}

/// OpenAPI 3.0's `nullable` and boolean exclusive bounds, in JSON Schema's words.
fn translate(map: &Map<String, Value>, out: &mut Map<String, Value>) {
    if map.get("nullable") == Some(&Value::Bool(true)) {
        if let Some(Value::String(kind)) = out.get("type") {
            let kind = kind.clone();
            out.insert("type".into(), json!([kind, "null"]));
        }
        if let Some(Value::Array(values)) = out.get_mut("enum")
            && !values.contains(&Value::Null)
        {
            values.push(Value::Null);
        }
    }
    for (exclusive, bound) in [("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")] {
        match map.get(exclusive) {
            Some(Value::Bool(true)) => {
                if let Some(value) = out.remove(bound) {
                    out.insert(exclusive.into(), value);
                }
            }
            Some(number @ Value::Number(_)) => {
                out.insert(exclusive.into(), number.clone());
            }
            _ => {}
        }
    }
}

/// Whether a value nests no deeper than `depth` levels.
fn shallow_value(value: &Value, depth: usize) -> bool {
    match value {
        Value::Array(items) => depth > 0 && items.iter().all(|v| shallow_value(v, depth - 1)),
        Value::Object(map) => depth > 0 && map.values().all(|v| shallow_value(v, depth - 1)),
        _ => true,
    }
}

/// A description at `depth` in a schema, cut shorter the deeper it is.
fn clip_at(text: &str, depth: usize) -> String {
    clip_to(text, if depth > 2 { MAX_NESTED_DESCRIPTION } else { MAX_PROPERTY_DESCRIPTION })
}

/// A description cut to [`MAX_DESCRIPTION`] characters.
pub fn clip(text: &str) -> String {
    clip_to(text, MAX_DESCRIPTION)
}

pub fn clip_to(text: &str, length: usize) -> String {
    let text = text.trim();
    match text.char_indices().nth(length) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(components: Value) -> Document {
        let text = json!({ "openapi": "3.0.3", "components": { "schemas": components } }).to_string();
        Document::read(text.as_bytes(), None).unwrap()
    }

    #[test]
    fn openapi_dialect_becomes_json_schema() {
        let document = document(json!({
            "Pet": { "type": "object", "required": ["id", "name"], "x-internal": true, "xml": {"name": "pet"},
                     "properties": {
                "id": { "type": "integer", "readOnly": true },
                "name": { "type": "string", "nullable": true, "example": "Rex" },
                "kind": { "type": "string", "enum": ["cat", "dog"], "nullable": true },
                "age": { "type": "number", "minimum": 0, "exclusiveMinimum": true },
            } },
        }));
        let pet = json!({ "$ref": "#/components/schemas/Pet" });
        let converted = Converter::new(&document, Direction::Request, 1).convert(&pet).unwrap();
        assert_eq!(
            converted,
            json!({ "type": "object", "required": ["name"], "properties": {
                "name": { "type": ["string", "null"], "examples": ["Rex"] },
                "kind": { "type": ["string", "null"], "enum": ["cat", "dog", null] },
                "age": { "type": "number", "exclusiveMinimum": 0 },
            } })
        );
        let as_parameter = Converter::new(&document, Direction::Parameter, 1).convert(&pet).unwrap();
        assert!(as_parameter["properties"].get("id").is_some(), "readOnly is left out of requests only");
    }

    #[test]
    fn recursion_and_depth_are_cut_short() {
        let document = document(json!({
            "Comment": { "type": "object", "description": "A comment.", "properties": {
                "text": { "type": "string" },
                "replies": { "type": "array", "items": { "$ref": "#/components/schemas/Comment" } },
            } },
        }));
        let comment = json!({ "$ref": "#/components/schemas/Comment" });
        let converted = Converter::new(&document, Direction::Request, 1).convert(&comment).unwrap();
        let inner = &converted["properties"]["replies"]["items"];
        assert_eq!(inner["type"], "object");
        assert!(inner["description"].as_str().unwrap().contains("recursive"), "{inner}");
        assert!(inner.get("properties").is_none());
    }
}
