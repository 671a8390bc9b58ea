//! Named operations: what `META.operations` declares, and how one becomes an invocation.
//!
//! A catalog script calls a whole API through `endpoint`, `method` and `data`; an operation names one
//! call of it (`list_customers`: `GET /v1/customers`) with a JSON-Schema `input`, so that forms, the
//! describe page and MCP tools can offer a real function instead of a raw endpoint. An operation is
//! only a recipe for the ordinary invocation: its `endpoint` template's `{field}`s are filled from the
//! arguments, and the other arguments become the query string (GET, HEAD, DELETE) or the body. The
//! script itself never learns which operation was used, so there is no second way to run it.
//!
//! Operations are declared and checked with the rest of `META`
//! ([`meta::operations`](crate::meta::operations)); this module only turns one into an invocation.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value};

use crate::error::Error;
use crate::meta::operations::{Operation, Place, Style};

/// Characters left as they are in a path segment or query component (RFC 3986 unreserved).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// An invocation an operation turns its arguments into.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub endpoint: String,
    pub method: String,
    /// The body arguments; `None` when there are none or they went into the query.
    pub data: Option<Value>,
    /// Header parameters, by their names on the wire.
    pub headers: Vec<(String, String)>,
}

impl Operation {
    /// The invocation these arguments stand for, once `input` accepts them; else `bad_request` naming
    /// every wrong field.
    pub fn call(&self, arguments: &Map<String, Value>) -> Result<Call, Error> {
        self.check(arguments).map_err(|fields| {
            let each: Vec<String> = fields.iter().map(|(field, problem)| format!("{field}: {problem}")).collect();
            let message = format!("operation '{}' refused its arguments: {}", self.name, each.join("; "));
            Error::InvalidArguments { message, fields }
        })?;
        let bad = |message: String| Error::BadRequest(format!("operation '{}': {message}", self.name));
        let mut rest = arguments.clone();
        rest.retain(|_, value| !value.is_null());
        let mut endpoint = self.fill(&mut rest).map_err(bad)?;
        let body = self.body.as_ref().and_then(|name| rest.shift_remove(name));
        // Arguments neither declared nor the body go to the query of a method without a body, in order.
        let in_query = matches!(self.method.as_str(), "GET" | "HEAD" | "DELETE") && body.is_none();
        let (mut headers, mut fields) = (Vec::new(), Map::new());
        for (name, value) in rest {
            match self.params.iter().find(|param| param.argument == name) {
                Some(param) if param.place == Place::Query => {
                    append(&mut endpoint, &param.name, &value, param.style, true)
                }
                Some(param) => headers.push((param.name.clone(), joined(&value, ","))),
                None if in_query => append(&mut endpoint, &name, &value, Style::Form, false),
                None if self.body.is_some() => return Err(bad(format!("unknown argument '{name}'"))),
                None => {
                    fields.insert(name, value);
                }
            }
        }
        let data = body.or_else(|| (!fields.is_empty()).then_some(Value::Object(fields)));
        Ok(Call { endpoint, method: self.method.clone(), data, headers })
    }

    /// The endpoint with its `{field}`s filled from (and taken out of) the arguments.
    fn fill(&self, arguments: &mut Map<String, Value>) -> Result<String, String> {
        let mut endpoint = String::with_capacity(self.endpoint.len());
        let mut remaining = self.endpoint.as_str();
        while let Some(open) = remaining.find('{') {
            let close = remaining[open..].find('}').map(|c| open + c).ok_or("unclosed '{'")?;
            let field = &remaining[open + 1..close];
            let value = arguments.shift_remove(field).ok_or_else(|| format!("the argument '{field}' is required"))?;
            let text = match value {
                Value::Array(_) => joined(&value, ","),
                other => scalar(&other).ok_or_else(|| format!("the argument '{field}' must be a string or number"))?,
            };
            endpoint.push_str(&remaining[..open]);
            endpoint.extend(utf8_percent_encode(&text, COMPONENT));
            remaining = &remaining[close + 1..];
        }
        endpoint.push_str(remaining);
        Ok(endpoint)
    }
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

/// A scalar as it reads, anything else as JSON text.
fn text(value: &Value) -> String {
    scalar(value).unwrap_or_else(|| value.to_string())
}

/// An array's items (an object's names and values, in turn) joined by `separator`; a scalar as it reads.
fn joined(value: &Value, separator: &str) -> String {
    match value {
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(separator),
        Value::Object(fields) => {
            fields.iter().flat_map(|(k, v)| [k.clone(), text(v)]).collect::<Vec<_>>().join(separator)
        }
        other => text(other),
    }
}

fn push_pair(endpoint: &mut String, key: &str, value: &str) {
    endpoint.push(if endpoint.contains('?') { '&' } else { '?' });
    endpoint.extend(utf8_percent_encode(key, COMPONENT));
    endpoint.push('=');
    endpoint.extend(utf8_percent_encode(value, COMPONENT));
}

/// Appends one query parameter, written in its style. An undeclared argument is written as `form` but
/// for an object, which goes as JSON text rather than spread into parameters it did not declare.
fn append(endpoint: &mut String, key: &str, value: &Value, style: Style, declared: bool) {
    match (style, value) {
        (Style::Form, Value::Array(items)) => items.iter().for_each(|item| push_pair(endpoint, key, &text(item))),
        (Style::Form, Value::Object(fields)) if declared => {
            fields.iter().for_each(|(k, v)| push_pair(endpoint, k, &text(v)))
        }
        (Style::Deep, Value::Object(_)) => deep(endpoint, key, value),
        (Style::Comma, _) => push_pair(endpoint, key, &joined(value, ",")),
        (Style::Space, _) => push_pair(endpoint, key, &joined(value, " ")),
        (Style::Pipe, _) => push_pair(endpoint, key, &joined(value, "|")),
        (Style::Form | Style::Deep, other) => push_pair(endpoint, key, &text(other)),
    }
}

/// `deepObject`: `key[field]=value`, nested objects deeper (`key[a][b]`), arrays by index (`key[a][0]`).
fn deep(endpoint: &mut String, key: &str, value: &Value) {
    match value {
        Value::Object(fields) => fields.iter().for_each(|(k, v)| deep(endpoint, &format!("{key}[{k}]"), v)),
        Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| deep(endpoint, &format!("{key}[{i}]"), v)),
        other => push_pair(endpoint, key, &text(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::operations::tests::one;
    use serde_json::json;

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
            "input": { "type": "object", "required": ["id"], "properties": { "id": {}, "email": {"type": "string"} } },
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
        let error = op.call(&args(json!({"id": "1", "q": null}))).unwrap_err();
        assert_eq!(error.kind(), "bad_request");
        assert!(error.message().contains("q: is required"), "{}", error.message());
        let error = op.call(&args(json!({"id": {"no": 1}, "q": 1}))).unwrap_err();
        assert!(error.message().contains("'id' must be a string or number"), "{}", error.message());
    }

    #[test]
    fn declared_parameters_go_where_and_how_they_are_declared() {
        let op = one(json!({
            "description": "d", "method": "POST", "endpoint": "/v1/items/{item_id}",
            "input": { "type": "object", "required": ["item_id"], "properties": {
                "item_id": {}, "ids": {}, "tags": {}, "filter": {}, "expand": {}, "idempotency_key": {}, "name": {} } },
            "params": {
                "ids": {"in": "query", "style": "comma"},
                "tags": {"in": "query", "name": "tag", "style": "pipe"},
                "filter": {"in": "query", "style": "deep"},
                "expand": {"in": "query", "name": "expand[]"},
                "idempotency_key": {"in": "header", "name": "Idempotency-Key"},
            },
        }))
        .unwrap();
        let call = op
            .call(&args(json!({
                "item_id": "i 1", "ids": [1, 2], "tags": ["a", "b"], "filter": {"state": "open", "owner": {"id": 7}},
                "expand": ["x", "y"], "idempotency_key": "k1", "name": "n",
            })))
            .unwrap();
        assert_eq!(
            call.endpoint,
            "/v1/items/i%201?ids=1%2C2&tag=a%7Cb&filter%5Bstate%5D=open&filter%5Bowner%5D%5Bid%5D=7\
             &expand%5B%5D=x&expand%5B%5D=y"
        );
        assert_eq!(call.headers, [("Idempotency-Key".to_owned(), "k1".to_owned())]);
        assert_eq!(call.data, Some(json!({"name": "n"})));
    }

    #[test]
    fn a_body_argument_is_the_whole_body() {
        let op = one(json!({
            "description": "d", "method": "PUT", "endpoint": "/v1/lists/{id}", "body": "body",
            "input": { "type": "object", "required": ["id", "body"], "properties": { "id": {}, "body": {} } },
        }))
        .unwrap();
        let call = op.call(&args(json!({"id": "l", "body": ["a", "b"]}))).unwrap();
        assert_eq!((call.endpoint.as_str(), call.data), ("/v1/lists/l", Some(json!(["a", "b"]))));
        let error = op.call(&args(json!({"id": "l", "body": [], "other": 1}))).unwrap_err();
        assert!(error.message().contains("other: is not an argument"), "{}", error.message());
    }

    #[test]
    fn arguments_are_checked_against_the_input_schema_naming_every_wrong_field() {
        let op = one(json!({
            "description": "d", "method": "POST", "endpoint": "/v1/payment_intents",
            "input": { "type": "object", "required": ["amount", "currency"], "properties": {
                "amount": {"type": "integer"}, "currency": {"type": "string", "enum": ["eur", "usd"]},
                "metadata": {"type": "object", "properties": {"order": {"type": "integer"}}} } },
        }))
        .unwrap();
        let error = op
            .call(&args(json!({"amount": "ten", "currency": "gbp", "injected": "x", "metadata": {"order": "7"}})))
            .unwrap_err();
        let json = error.to_json();
        let fields: Vec<&str> =
            json["error"]["fields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap()).collect();
        assert_eq!(fields.len(), 4, "{json}");
        for field in ["amount", "currency", "injected", "metadata.order"] {
            assert!(fields.contains(&field), "{field} in {json}");
            assert!(error.message().contains(&format!("{field}: ")), "{}", error.message());
        }
        assert_eq!((json["error"]["type"].as_str(), error.status()), (Some("bad_request"), 400));
        let missing = op.call(&args(json!({}))).unwrap_err().to_json();
        assert_eq!(missing["error"]["fields"].as_array().unwrap().len(), 2, "{missing}");
        assert!(op.call(&args(json!({"amount": 1000, "currency": "eur"}))).is_ok());
        // A schema that allows more arguments says so itself.
        let open = one(
            json!({"description": "d", "endpoint": "/x", "input": {"type": "object", "additionalProperties": true}}),
        );
        assert_eq!(open.unwrap().call(&args(json!({"any": 1}))).unwrap().endpoint, "/x?any=1");
    }
}
