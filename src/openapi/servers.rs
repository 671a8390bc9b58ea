//! `servers` → `META.base_url` and `META.variables`.
//!
//! The first server is the base URL. Its variables (`https://{region}.api.example.com`) become
//! variables of the server, named after it (`PETS_REGION`), with the document's defaults, so the
//! operator can change them without editing the script. A relative URL (`/api/v3`: the API lives
//! wherever the document was served) gets a variable for its origin, `PETS_ORIGIN`, with no default:
//! the operator names it, or sets `PETS_BASE_URL` as for any server.

use heck::ToShoutySnakeCase;
use serde_json::{Value, json};

/// The base URL and the variables it uses.
#[derive(Debug, Default)]
pub struct Base {
    pub url: String,
    /// `META.variables`: names, or `#{ name, default }`.
    pub variables: Vec<Value>,
}

pub fn base(root: &Value, prefix: &str, notes: &mut Vec<String>) -> Base {
    let server = root.get("servers").and_then(Value::as_array).and_then(|s| s.first());
    let template = server.and_then(|s| s.get("url")).and_then(Value::as_str).unwrap_or("/");
    let mut variables = Vec::new();
    let mut url = String::new();
    let mut rest = template.trim();
    while let Some(open) = rest.find('{') {
        let Some(length) = rest[open..].find('}') else { break };
        let name = &rest[open + 1..open + length];
        let variable = super::names::constant(&format!("{prefix}_{}", name.to_shouty_snake_case()));
        let default = server.and_then(|s| s.pointer(&format!("/variables/{name}/default")));
        variables.push(match default.and_then(Value::as_str) {
            Some(default) => json!({ "name": variable, "default": default }),
            None => json!(variable),
        });
        url.push_str(&rest[..open]);
        url.push_str(&format!("{{{variable}}}"));
        rest = &rest[open + length + 1..];
    }
    url.push_str(rest);
    if let Some(scheme_relative) = url.strip_prefix("//") {
        url = format!("https://{scheme_relative}");
    }
    if url.starts_with('/') || url.is_empty() {
        let origin = format!("{prefix}_ORIGIN");
        notes.push(format!(
            "the document's server URL '{template}' is relative: set {origin} (e.g. https://api.example.com) or \
             {prefix}_BASE_URL"
        ));
        variables.push(json!(origin));
        url = format!("{{{origin}}}{url}");
    }
    Base { url: url.trim_end_matches('/').to_owned(), variables }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_variables_become_the_servers_variables_with_their_defaults() {
        let mut notes = Vec::new();
        let root = json!({ "servers": [{ "url": "https://{region}.pets.example/{basePath}/",
            "variables": { "region": { "default": "eu", "enum": ["eu", "us"] }, "basePath": { "default": "v2" } } }] });
        let base = base(&root, "PETS", &mut notes);
        assert_eq!(base.url, "https://{PETS_REGION}.pets.example/{PETS_BASE_PATH}");
        assert_eq!(
            base.variables,
            [json!({ "name": "PETS_REGION", "default": "eu" }), json!({ "name": "PETS_BASE_PATH", "default": "v2" })]
        );
        assert!(notes.is_empty());
    }

    #[test]
    fn a_relative_url_needs_an_origin() {
        let mut notes = Vec::new();
        let base = base(&json!({ "servers": [{ "url": "/api/v3" }] }), "PETS", &mut notes);
        assert_eq!(base.url, "{PETS_ORIGIN}/api/v3");
        assert_eq!(base.variables, [json!("PETS_ORIGIN")]);
        assert!(notes[0].contains("set PETS_ORIGIN"));
        assert_eq!(super::base(&json!({}), "PETS", &mut notes).url, "{PETS_ORIGIN}");
    }
}
