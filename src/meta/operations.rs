//! `META.operations`: named calls of a server's API, each with a JSON-Schema `input`, checked when the
//! script loads so that a broken declaration is refused with the script, never discovered by the first
//! caller. Each `input` is compiled into a validator then, once per script version, so that every call's
//! arguments are checked against it before anything is sent. Turning one into an invocation is
//! [`operation`](crate::operation)'s.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::invalid::Invalid;

/// Longest operation name: with `__` and a server name it must still fit a 64-character tool name.
const MAX_NAME: usize = 48;

/// The methods an operation, or a call through a server's own tool, may use.
pub const METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];

/// One entry of `META.operations`.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub name: String,
    pub description: String,
    /// Upper-case HTTP method.
    pub method: String,
    /// A path with `{field}` placeholders, e.g. `/v1/customers/{id}`.
    pub endpoint: String,
    /// A JSON Schema object (`"type": "object"`) describing the arguments. Unless it says otherwise, it
    /// takes no argument it does not name (`"additionalProperties": false` is added).
    pub input: Map<String, Value>,
    /// `input`, compiled.
    pub schema: Schema,
    /// The operation lists something in pages (`paginated: true`), as `META.api.pagination` says:
    /// a caller may ask for every page.
    pub paginated: bool,
    /// Arguments sent other than by the default rule (`params`): in the query of a method with a body,
    /// as a header, under another name, or an array or object in a particular style.
    pub params: Vec<Param>,
    /// The argument that is the whole request body (`body`), when the body is not an object of
    /// arguments: an array, a scalar, or fields that share a name with a parameter.
    pub body: Option<String>,
    /// `endpoint`'s path, segment by segment, as calls are matched against it (see [`matching`]).
    segments: Vec<Segment>,
}

/// One segment of an endpoint template's path.
#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    /// `{field}`: any one non-empty segment.
    Field,
}

/// Where a declared parameter goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Query,
    Header,
}

/// How an array or object value is written in the query (OpenAPI's `style` and `explode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `form`, exploded: an array repeats its key (`id=1&id=2`), an object's fields are parameters.
    Form,
    /// `form`, not exploded: `id=1,2`.
    Comma,
    /// `spaceDelimited`: `id=1%202`.
    Space,
    /// `pipeDelimited`: `id=1|2`.
    Pipe,
    /// `deepObject`: `filter[status]=open`.
    Deep,
}

impl Style {
    const NAMES: [(&str, Style); 5] = [
        ("form", Style::Form),
        ("comma", Style::Comma),
        ("space", Style::Space),
        ("pipe", Style::Pipe),
        ("deep", Style::Deep),
    ];

    pub fn name(self) -> &'static str {
        Style::NAMES.iter().find(|(_, style)| *style == self).map_or("form", |(name, _)| name)
    }
}

/// One entry of an operation's `params`: `#{ in: "query" | "header", name: "Wire-Name", style: "comma" }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// The argument's name in `input`.
    pub argument: String,
    pub place: Place,
    /// Its name on the wire (the argument's own by default).
    pub name: String,
    pub style: Style,
}

/// An operation's `input` compiled into a validator, once, when the script loads.
#[derive(Debug, Clone)]
pub struct Schema(Arc<jsonschema::Validator>);

impl PartialEq for Schema {
    /// Compiled from `input`, which operations compare.
    fn eq(&self, _: &Schema) -> bool {
        true
    }
}

/// An argument the input schema refuses: the field (a dotted path for nested ones), and what is wrong.
pub type Problem = (String, String);

/// Reads `META.operations` (absent: none), or says what is wrong with it.
pub fn parse(value: Option<&Value>) -> Result<Vec<Operation>, Invalid> {
    let Some(value) = value else { return Ok(Vec::new()) };
    let map = value.as_object().ok_or("META.operations must be a map of operation names to operations")?;
    map.iter()
        .map(|(name, op)| Operation::parse(name, op).map_err(|e| format!("META.operations.{name}: {e}").into()))
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
        let paginated = match map.get("paginated") {
            None => false,
            Some(Value::Bool(paginated)) => *paginated,
            Some(_) => return Err("paginated must be true or false".into()),
        };
        if !endpoint.starts_with('/') {
            return Err("endpoint must be a path starting with '/'".into());
        }
        let mut input = match map.get("input") {
            None => serde_json::json!({ "type": "object" }).as_object().cloned().unwrap_or_default(),
            Some(Value::Object(input)) => input.clone(),
            Some(_) => return Err("input must be a JSON Schema object map".into()),
        };
        let params = match map.get("params") {
            None => Vec::new(),
            Some(Value::Object(params)) => {
                params.iter().map(|(arg, p)| Param::parse(arg, p)).collect::<Result<_, _>>()?
            }
            Some(_) => return Err("params must be a map of argument names to #{ in, name, style }".into()),
        };
        let body = text("body")?.map(str::to_owned);
        input.entry("additionalProperties").or_insert(Value::Bool(false));
        let schema = jsonschema::validator_for(&Value::Object(input.clone()))
            .map_err(|e| format!("input is not a JSON Schema this server can check: {e}"))?;
        let schema = Schema(Arc::new(schema));
        let description = description.to_owned();
        let segments = segments(&endpoint)
            .map(|segment| match segment.starts_with('{') {
                true => Segment::Field,
                false => Segment::Literal(segment.to_owned()),
            })
            .collect();
        let operation = Operation {
            name: name.to_owned(),
            description,
            method,
            endpoint,
            input,
            schema,
            paginated,
            params,
            body,
            segments,
        };
        operation.check_input()?;
        Ok(operation)
    }

    /// Checks `arguments` against `input`: every wrong field, or none. A null argument counts as absent.
    pub fn check(&self, arguments: &Map<String, Value>) -> Result<(), Vec<Problem>> {
        let given: Map<String, Value> =
            arguments.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), v.clone())).collect();
        let given = Value::Object(given);
        let problems: Vec<Problem> = self.schema.0.iter_errors(&given).flat_map(|error| problem(&error)).collect();
        if problems.is_empty() { Ok(()) } else { Err(problems) }
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
        let fields = template_fields(&self.endpoint)?;
        for field in &fields {
            if !properties.is_some_and(|p| p.contains_key(*field)) || !required.contains(field) {
                return Err(format!("the endpoint's {{{field}}} must be a required property of input"));
            }
        }
        let declared = self
            .params
            .iter()
            .map(|p| (p.argument.as_str(), "params"))
            .chain(self.body.as_deref().map(|b| (b, "body")));
        for (argument, key) in declared {
            if !properties.is_some_and(|p| p.contains_key(argument)) {
                return Err(format!("{key} names '{argument}', which must be a property of input"));
            }
            if fields.contains(&argument) {
                return Err(format!("'{argument}' fills the endpoint's {{{argument}}}: it cannot also be in {key}"));
            }
        }
        if let Some(body) = &self.body
            && self.params.iter().any(|p| &p.argument == body)
        {
            return Err(format!("'{body}' cannot be both the body and a parameter"));
        }
        Ok(())
    }

    /// The names `input.required` lists.
    pub(crate) fn required(&self) -> Result<Vec<&str>, String> {
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
}

impl Param {
    fn parse(argument: &str, value: &Value) -> Result<Param, String> {
        let bad = |what: &str| format!("params.{argument}: {what}");
        let map = value.as_object().ok_or_else(|| bad("must be #{ in, name, style }"))?;
        if let Some(key) = map.keys().find(|k| !["in", "name", "style"].contains(&k.as_str())) {
            return Err(bad(&format!("unknown key '{key}' (in, name, style)")));
        }
        let text = |key: &str| {
            map.get(key).map(|v| v.as_str().ok_or_else(|| bad(&format!("{key} must be a string")))).transpose()
        };
        let place = match text("in")? {
            Some("query") => Place::Query,
            Some("header") => Place::Header,
            _ => return Err(bad("in must be \"query\" or \"header\"")),
        };
        let name = text("name")?.unwrap_or(argument).to_owned();
        if name.is_empty()
            || (place == Place::Header && reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err())
        {
            return Err(bad(&format!(
                "'{name}' is not a {} name",
                if place == Place::Header { "header" } else { "parameter" }
            )));
        }
        let style = match text("style")? {
            None => Style::Form,
            Some(style) => Style::NAMES
                .iter()
                .find(|(n, _)| *n == style)
                .map(|(_, s)| *s)
                .ok_or_else(|| bad(&format!("style '{style}' is not one of form, comma, space, pipe, deep")))?,
        };
        Ok(Param { argument: argument.to_owned(), place, name, style })
    }
}

/// What a validation error says about which fields.
fn problem(error: &jsonschema::ValidationError<'_>) -> Vec<Problem> {
    use jsonschema::error::ValidationErrorKind as Kind;
    let at: Vec<String> = error.instance_path().iter().map(|segment| segment.to_string()).collect();
    let field = |name: Option<&str>| at.iter().map(String::as_str).chain(name).collect::<Vec<_>>().join(".");
    match error.kind() {
        Kind::AdditionalProperties { unexpected } => {
            unexpected.iter().map(|name| (field(Some(name)), "is not an argument this tool takes".to_owned())).collect()
        }
        Kind::Required { property } => vec![(field(property.as_str()), "is required".to_owned())],
        _ => vec![(if at.is_empty() { "(arguments)".to_owned() } else { field(None) }, error.to_string())],
    }
}

/// The operation a call of `method` on `endpoint` is: the first declared one with that method whose
/// template's path matches the endpoint's path segment by segment (a `{field}` matches any one
/// non-empty segment; queries are not compared). Every invocation asks, and an imported API declares
/// a thousand operations or more: the templates are split once, when the script is loaded.
pub fn matching<'a>(operations: &'a [Operation], method: &str, endpoint: &str) -> Option<&'a Operation> {
    if operations.is_empty() {
        return None;
    }
    let called: Vec<&str> = segments(endpoint).collect();
    operations.iter().find(|operation| {
        operation.segments.len() == called.len()
            && operation.method.eq_ignore_ascii_case(method)
            && operation.segments.iter().zip(&called).all(|(want, got)| match want {
                Segment::Field => !got.is_empty(),
                Segment::Literal(text) => text == got,
            })
    })
}

/// The segments of an endpoint's path, without its query and its outer slashes.
fn segments(endpoint: &str) -> std::str::Split<'_, char> {
    endpoint.split(['?', '#']).next().unwrap_or_default().trim_matches('/').split('/')
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn one(value: Value) -> Result<Operation, Invalid> {
        parse(Some(&json!({ "op": value }))).map(|mut ops| ops.remove(0))
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
            (
                json!({"description": "d", "endpoint": "/x", "params": {"a": {"in": "query"}}}),
                "must be a property of input",
            ),
            (json!({"description": "d", "endpoint": "/x", "body": "b"}), "body names 'b'"),
            (
                json!({"description": "d", "endpoint": "/x", "input": {"type": "object", "properties": {"a": {}}},
                       "params": {"a": {"in": "path"}}}),
                "in must be \"query\" or \"header\"",
            ),
            (
                json!({"description": "d", "endpoint": "/x", "input": {"type": "object", "properties": {"a": {}}},
                       "params": {"a": {"in": "query", "style": "matrix"}}}),
                "style 'matrix' is not one of",
            ),
            (
                json!({"description": "d", "endpoint": "/x", "input": {"type": "object", "properties": {"a": {}}},
                       "params": {"a": {"in": "header", "name": "bad header"}}}),
                "not a header name",
            ),
            (
                json!({"description": "d", "endpoint": "/x", "input": {"type": "object", "properties": {"a": {}}},
                       "body": "a", "params": {"a": {"in": "query"}}}),
                "both the body and a parameter",
            ),
            (json!({"description": "d", "endpoint": "/x", "paginated": "yes"}), "paginated must be true or false"),
            (
                json!({"description": "d", "endpoint": "/x", "input": {"type": "object", "properties": {"a": {"type": "text"}}}}),
                "not a JSON Schema this server can check",
            ),
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

    #[test]
    fn a_call_matches_the_operation_whose_template_it_fills() {
        let operations = parse(Some(&json!({
            "list_customers": { "description": "d", "endpoint": "/v1/customers" },
            "create_customer": { "description": "d", "method": "POST", "endpoint": "/v1/customers" },
            "get_customer": { "description": "d", "endpoint": "/v1/customers/{id}?expand=x",
                              "input": { "type": "object", "required": ["id"], "properties": { "id": {} } } },
        })))
        .unwrap();
        let name = |method: &str, endpoint: &str| matching(&operations, method, endpoint).map(|op| op.name.as_str());
        assert_eq!(name("POST", "/v1/customers"), Some("create_customer"));
        assert_eq!(name("GET", "/v1/customers?limit=3"), Some("list_customers"));
        assert_eq!(name("get", "v1/customers/cus_1"), Some("get_customer"));
        assert_eq!(name("GET", "/v1/customers/cus_1/sources"), None);
        assert_eq!(name("DELETE", "/v1/customers"), None);
        assert_eq!(name("GET", "/v1/customers//"), Some("list_customers"));
    }
}
