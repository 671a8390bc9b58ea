//! Named operations: what `META.operations` declares, and how one becomes an invocation.
//!
//! A catalog script calls a whole API through `endpoint`, `method` and `data`; an operation names one
//! call of it (`list_customers`: `GET /v1/customers`) with a JSON-Schema `input`, so that forms, the
//! describe page and MCP tools can offer a real function instead of a raw endpoint. An operation is
//! only a recipe for the ordinary invocation: its `endpoint` template's `{field}`s are filled from the
//! arguments, and the other arguments become the query string (GET, HEAD, DELETE) or the body. The
//! script itself never learns which operation was used, so there is no second way to run it.
//!
//! Operations are checked when a script loads (from [`Meta`](crate::engine::Meta)), so a broken
//! declaration is refused with the script, never discovered by the first caller.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value};

use crate::error::Error;

/// Longest operation name: with `__` and a server name it must still fit a 64-character tool name.
const MAX_NAME: usize = 48;

const METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];

/// Characters left as they are in a path segment or query component (RFC 3986 unreserved).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// One entry of `META.operations`.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub name: String,
    pub description: String,
    /// Upper-case HTTP method.
    pub method: String,
    /// A path with `{field}` placeholders, e.g. `/v1/customers/{id}`.
    pub endpoint: String,
    /// A JSON Schema object (`"type": "object"`) describing the arguments.
    pub input: Map<String, Value>,
}

/// An invocation an operation turns its arguments into.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub endpoint: String,
    pub method: String,
    /// The body arguments; `None` when there are none or they went into the query.
    pub data: Option<Value>,
}

/// Reads `META.operations` (absent: none), or says what is wrong with it.
pub fn parse(value: Option<&Value>) -> Result<Vec<Operation>, String> {
    let Some(value) = value else { return Ok(Vec::new()) };
    let map = value.as_object().ok_or("META.operations must be a map of operation names to operations")?;
    map.iter()
        .map(|(name, op)| Operation::parse(name, op).map_err(|e| format!("META.operations.{name}: {e}")))
        .collect()
}

impl Operation {
    fn parse(name: &str, value: &Value) -> Result<Operation, String> {
        check_name(name)?;
        let map = value.as_object().ok_or("must be an object map")?;
        let text = |key: &str| map.get(key).map(|v| v.as_str().ok_or(format!("{key} must be a string"))).transpose();
        let description = text("description")?.filter(|d| !d.trim().is_empty()).ok_or("description is required")?;
        let method = text("method")?.unwrap_or("GET").to_owned();
        if !METHODS.contains(&method.as_str()) {
            return Err(format!("method must be one of {}", METHODS.join(", ")));
        }
        let endpoint = text("endpoint")?.ok_or("endpoint is required")?.to_owned();
        if !endpoint.starts_with('/') {
            return Err("endpoint must be a path starting with '/'".into());
        }
        let input = match map.get("input") {
            None => serde_json::json!({ "type": "object" }).as_object().cloned().unwrap_or_default(),
            Some(Value::Object(input)) => input.clone(),
            Some(_) => return Err("input must be a JSON Schema object map".into()),
        };
        let operation =
            Operation { name: name.to_owned(), description: description.to_owned(), method, endpoint, input };
        operation.check_input()?;
        Ok(operation)
    }

    /// The input is an object schema, and every template field is a required property of it.
    fn check_input(&self) -> Result<(), String> {
        if self.input.get("type").and_then(Value::as_str) != Some("object") {
            return Err("input must have \"type\": \"object\"".into());
        }
        let properties = match self.input.get("properties") {
            None => None,
            Some(Value::Object(properties)) => Some(properties),
            Some(_) => return Err("input.properties must be an object map".into()),
        };
        let required = self.required()?;
        for field in template_fields(&self.endpoint)? {
            if !properties.is_some_and(|p| p.contains_key(field)) || !required.contains(&field) {
                return Err(format!("the endpoint's {{{field}}} must be a required property of input"));
            }
        }
        Ok(())
    }

    /// The names `input.required` lists.
    fn required(&self) -> Result<Vec<&str>, String> {
        match self.input.get("required") {
            None => Ok(Vec::new()),
            Some(Value::Array(names)) => {
                names.iter().map(|n| n.as_str().ok_or_else(|| "input.required holds names".to_owned())).collect()
            }
            Some(_) => Err("input.required must be an array of names".into()),
        }
    }

    /// The argument names `input` declares, each with whether it is required, in declaration order.
    pub fn arguments(&self) -> Vec<(&str, bool)> {
        let required = self.required().unwrap_or_default();
        let properties = self.input.get("properties").and_then(Value::as_object);
        properties.into_iter().flatten().map(|(name, _)| (name.as_str(), required.contains(&name.as_str()))).collect()
    }

    /// The invocation these arguments stand for, or `bad_request` naming what is missing or unusable.
    pub fn call(&self, arguments: &Map<String, Value>) -> Result<Call, Error> {
        let bad = |message: String| Error::BadRequest(format!("operation '{}': {message}", self.name));
        for name in self.required().map_err(bad)? {
            if arguments.get(name).is_none_or(Value::is_null) {
                return Err(bad(format!("the argument '{name}' is required")));
            }
        }
        let mut rest = arguments.clone();
        let mut endpoint = String::with_capacity(self.endpoint.len());
        let mut remaining = self.endpoint.as_str();
        while let Some(open) = remaining.find('{') {
            let close = remaining[open..].find('}').map(|c| open + c).ok_or_else(|| bad("unclosed '{'".into()))?;
            let field = &remaining[open + 1..close];
            let value = rest.shift_remove(field).ok_or_else(|| bad(format!("the argument '{field}' is required")))?;
            let text =
                scalar(&value).ok_or_else(|| bad(format!("the argument '{field}' must be a string or number")))?;
            endpoint.push_str(&remaining[..open]);
            endpoint.extend(utf8_percent_encode(&text, COMPONENT));
            remaining = &remaining[close + 1..];
        }
        endpoint.push_str(remaining);
        rest.retain(|_, value| !value.is_null());
        let data = match self.method.as_str() {
            "GET" | "HEAD" | "DELETE" => {
                append_query(&mut endpoint, &rest);
                None
            }
            _ => (!rest.is_empty()).then_some(Value::Object(rest)),
        };
        Ok(Call { endpoint, method: self.method.clone(), data })
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let well_formed = name.len() <= MAX_NAME
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.contains("__")
        && !name.ends_with('_');
    match well_formed {
        true => Ok(()),
        false => Err(format!(
            "'{name}' is not a valid operation name: a lower-case letter, then up to {} lower-case letters, digits \
             or single '_'",
            MAX_NAME - 1
        )),
    }
}

/// The `{field}` names of an endpoint template, in order.
fn template_fields(endpoint: &str) -> Result<Vec<&str>, String> {
    let mut fields = Vec::new();
    let mut remaining = endpoint;
    while let Some(open) = remaining.find(['{', '}']) {
        if remaining.as_bytes()[open] == b'}' {
            return Err("the endpoint has a '}' without '{'".into());
        }
        let close = remaining[open..].find('}').map(|c| open + c).ok_or("the endpoint has an unclosed '{'")?;
        let field = &remaining[open + 1..close];
        let valid = field.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!("'{{{field}}}' in the endpoint is not a field name"));
        }
        fields.push(field);
        remaining = &remaining[close + 1..];
    }
    Ok(fields)
}

/// A value as it reads in a path or query: strings as they are, numbers and booleans spelled out.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Appends `arguments` as query parameters: an array repeats its key, an object is sent as JSON text.
fn append_query(endpoint: &mut String, arguments: &Map<String, Value>) {
    for (key, value) in arguments {
        let values = match value {
            Value::Array(items) => items.iter().map(|v| scalar(v).unwrap_or_else(|| v.to_string())).collect(),
            other => vec![scalar(other).unwrap_or_else(|| other.to_string())],
        };
        for value in values {
            endpoint.push(if endpoint.contains('?') { '&' } else { '?' });
            endpoint.extend(utf8_percent_encode(key, COMPONENT));
            endpoint.push('=');
            endpoint.extend(utf8_percent_encode(&value, COMPONENT));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(value: Value) -> Result<Operation, String> {
        parse(Some(&json!({ "op": value }))).map(|mut ops| ops.remove(0))
    }

    fn args(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn a_get_fills_the_path_and_sends_the_rest_as_query() {
        let op = one(json!({
            "description": "Get a repo's issues.", "endpoint": "/repos/{owner}/{repo}/issues",
            "input": { "type": "object", "required": ["owner", "repo"],
                       "properties": { "owner": {"type": "string"}, "repo": {"type": "string"}, "state": {}, "labels": {} } },
        }))
        .unwrap();
        let call = op
            .call(&args(json!({"owner": "a b", "repo": "x/y", "state": "open", "labels": ["bug", "ui"], "skip": null})))
            .unwrap();
        assert_eq!(call.method, "GET");
        assert_eq!(call.endpoint, "/repos/a%20b/x%2Fy/issues?state=open&labels=bug&labels=ui");
        assert_eq!(call.data, None);
    }

    #[test]
    fn a_post_sends_the_rest_as_body() {
        let op = one(json!({
            "description": "d", "method": "POST", "endpoint": "/v1/customers/{id}?expand=x",
            "input": { "type": "object", "required": ["id"], "properties": { "id": {"type": "string"} } },
        }))
        .unwrap();
        let call = op.call(&args(json!({"id": "cus_1", "email": "a@b.c"}))).unwrap();
        assert_eq!(call.endpoint, "/v1/customers/cus_1?expand=x");
        assert_eq!(call.data, Some(json!({"email": "a@b.c"})));
        assert_eq!(op.call(&args(json!({"id": 7}))).unwrap().data, None);
    }

    #[test]
    fn missing_or_unusable_arguments_are_bad_requests_naming_them() {
        let op = one(json!({
            "description": "d", "endpoint": "/v1/{id}",
            "input": { "type": "object", "required": ["id", "q"], "properties": { "id": {}, "q": {} } },
        }))
        .unwrap();
        let error = op.call(&args(json!({"id": "1"}))).unwrap_err();
        assert_eq!(error.kind(), "bad_request");
        assert!(error.message().contains("'q' is required"), "{}", error.message());
        let error = op.call(&args(json!({"id": {"no": 1}, "q": 1}))).unwrap_err();
        assert!(error.message().contains("'id' must be a string or number"), "{}", error.message());
    }

    #[test]
    fn declarations_are_checked_when_read() {
        let cases = [
            (json!({"endpoint": "/x"}), "description is required"),
            (json!({"description": "d"}), "endpoint is required"),
            (json!({"description": "d", "endpoint": "x"}), "endpoint must be a path"),
            (json!({"description": "d", "endpoint": "/x", "method": "get"}), "method must be one of"),
            (json!({"description": "d", "endpoint": "/x/{id}"}), "{id} must be a required property"),
            (json!({"description": "d", "endpoint": "/x/{id"}), "unclosed"),
            (json!({"description": "d", "endpoint": "/x/{a-b}"}), "not a field name"),
            (json!({"description": "d", "endpoint": "/x", "input": {"type": "array"}}), "\"type\": \"object\""),
            (json!({"description": "d", "endpoint": "/x", "input": []}), "JSON Schema object"),
        ];
        for (value, expected) in cases {
            let error = one(value.clone()).unwrap_err();
            assert!(error.starts_with("META.operations.op: ") && error.contains(expected), "{value}: {error}");
        }
        for name in ["", "A", "1a", "a__b", "a_", "a-b", &"a".repeat(MAX_NAME + 1)] {
            let error = parse(Some(&json!({ name: {"description": "d", "endpoint": "/"} }))).unwrap_err();
            assert!(error.contains("not a valid operation name"), "{name}: {error}");
        }
        assert!(parse(Some(&json!([]))).unwrap_err().contains("must be a map"));
        assert_eq!(parse(None), Ok(Vec::new()));
    }
}
