//! What an agent reads about a server's own tool `{name}` (the whole API through `endpoint`, `method` and
//! `data`): drawn from that server's `META` alone — its title and description, where it calls, an example
//! from its own operations or default call — so that no tool borrows another's example, and a script
//! without `META` is described as what it is.

use crate::meta::{Meta, Operation};

/// Operations named in a server tool's description; the rest are in the list anyway.
const NAMED_OPERATIONS: usize = 8;

/// The texts of a server tool: its description, and the hints of its `endpoint` and `data` arguments.
pub struct ServerTool {
    pub description: String,
    pub endpoint: String,
    pub data: String,
}

pub fn server_tool(name: &str, meta: &Meta) -> ServerTool {
    let example = meta.operations.first();
    let default_endpoint = meta.json["api"]["default_endpoint"].as_str().filter(|e| !e.is_empty());
    let mut description = match meta.title.is_empty() {
        true => format!("The server '{name}', whose script declares no META: runs its main(endpoint, method, data)."),
        false => format!("{}: {}", meta.title, meta.description),
    };
    if meta.base_url.starts_with("https://") || meta.base_url.starts_with("http://") {
        description.push_str(&format!(" Calls {} (endpoint is the path and query after it).", meta.base_url));
    }
    if let Some(op) = example {
        description.push_str(&format!(" For example: {} {}{}.", op.method, op.endpoint, with_data(op)));
    } else if let Some(endpoint) = default_endpoint {
        description.push_str(&format!(" Without an endpoint it calls {endpoint}."));
    }
    if !meta.operations.is_empty() {
        let mut named: Vec<String> =
            meta.operations.iter().take(NAMED_OPERATIONS).map(|op| format!("{name}__{}", op.name)).collect();
        if meta.operations.len() > NAMED_OPERATIONS {
            named.push("…".into());
        }
        description.push_str(&format!(" Its named operations are tools of their own: {}.", named.join(", ")));
    }
    if !meta.docs.is_empty() {
        description.push_str(&format!(" API reference: {}", meta.docs));
    }
    let endpoint = match example.map(|op| op.endpoint.as_str()).or(default_endpoint) {
        Some(endpoint) => format!("Path and query string, e.g. {endpoint} (default: the server's own default call)."),
        None => "Path and query string (default: the server's own default call).".to_owned(),
    };
    let body = meta.operations.iter().find(|op| !reads(op) && !fields(op).is_empty());
    let data = match body {
        Some(op) => format!(
            "The request body (JSON) for POST, PUT, PATCH and DELETE, e.g. {}; for GET, a map becomes query parameters.",
            data_example(op)
        ),
        None => {
            "The request body (JSON) for POST, PUT, PATCH and DELETE; for GET, a map becomes query parameters.".into()
        }
    };
    ServerTool { description, endpoint, data }
}

fn reads(op: &Operation) -> bool {
    matches!(op.method.as_str(), "GET" | "HEAD" | "DELETE")
}

/// The arguments of `op` that are not in its endpoint template.
fn fields(op: &Operation) -> Vec<&str> {
    op.arguments()
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| !op.endpoint.contains(&format!("{{{name}}}")))
        .collect()
}

fn data_example(op: &Operation) -> String {
    let fields: Vec<String> = fields(op).iter().map(|name| format!("\"{name}\": …")).collect();
    format!("{{{}}}", fields.join(", "))
}

/// ` with data {…}` for an operation that sends a body.
fn with_data(op: &Operation) -> String {
    match reads(op) || fields(op).is_empty() {
        true => String::new(),
        false => format!(" with data {}", data_example(op)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(value: serde_json::Value) -> Meta {
        Meta::from_json(value.clone()).map(|meta| Meta { json: value, ..meta }).unwrap()
    }

    #[test]
    fn a_server_is_described_from_its_own_meta() {
        let database = meta(json!({"title": "PostgreSQL", "description": "Run SQL.", "base_url": "postgres://{HOST}",
            "operations": {"query": {"description": "q", "method": "POST", "endpoint": "/query",
                "input": {"type": "object", "properties": {"sql": {"type": "string"}, "params": {"type": "array"}}}}}}));
        let tool = server_tool("postgresql", &database);
        assert_eq!(
            tool.description,
            "PostgreSQL: Run SQL. For example: POST /query with data {\"sql\": …, \"params\": …}. \
             Its named operations are tools of their own: postgresql__query."
        );
        assert!(tool.endpoint.contains("e.g. /query") && tool.data.contains("{\"sql\": …, \"params\": …}"));

        let zendesk =
            meta(json!({"title": "Zendesk", "description": "Call Zendesk.", "base_url": "https://z.example/api",
            "api": {"default_endpoint": "/users/me.json"}}));
        let tool = server_tool("zendesk", &zendesk);
        assert!(
            tool.description.contains("Calls https://z.example/api") && tool.description.contains("/users/me.json")
        );
        assert!(tool.endpoint.contains("e.g. /users/me.json") && !tool.endpoint.contains("customers"));

        let bare = server_tool("scratch", &Meta::ad_hoc());
        assert!(
            bare.description.starts_with("The server 'scratch', whose script declares no META"),
            "{}",
            bare.description
        );
        assert!(!bare.description.starts_with(':') && !bare.endpoint.contains("e.g."));
    }
}
