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
use crate::meta::operations::Operation;

/// Characters left as they are in a path segment or query component (RFC 3986 unreserved).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// An invocation an operation turns its arguments into.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub endpoint: String,
    pub method: String,
    /// The body arguments; `None` when there are none or they went into the query.
    pub data: Option<Value>,
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
