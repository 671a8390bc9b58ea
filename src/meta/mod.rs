//! What a script declares: its `META`, read once when the script loads, as plain data.
//!
//! A server's declaration — its title and description, the secrets and variables it may read, how it
//! authenticates, where it sends (`base_url`, `hosts`), its named operations, and what `META.api`,
//! `META.oauth2` and `META.webhook` say — is parsed and checked here, so that a mistake is refused with
//! the script (`invalid_script`, at `META`'s line) rather than found by its first caller. The layers
//! above read these declarations and keep only their behaviour: the engine asks a loaded script for its
//! [`Meta`], `api` sends by it, `oauth` obtains tokens by its [`oauth2::Spec`], `webhooks` verifies
//! deliveries by its [`webhook::Spec`], MCP and the describe page offer its operations.
//!
//! This layer evaluates nothing and depends on nothing above it: not the engine, the native modules,
//! HTTP or the store. It may read Rhai values (a call's own `pagination` refines the declared one), and
//! its one error is [`Invalid`], a message the caller places.

pub mod api;
pub mod destinations;
mod invalid;
pub mod oauth2;
pub mod operations;
pub mod pagination;
pub mod pricing;
pub mod rate_limit;
pub mod routes;
pub mod webhook;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use serde_json::{Map, Value};

pub use api::Api;
pub use invalid::Invalid;
pub use operations::Operation;

/// The `META` constant of a script, read once when the script is loaded.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    pub title: String,
    pub description: String,
    pub category: String,
    /// Secrets the script may read; each entry lists alternatives (any one of them satisfies it).
    pub secrets: Vec<Vec<String>>,
    /// Registry variables the script may read (non-secret settings such as a region or an account id).
    pub variables: Vec<String>,
    /// What a variable's value must match as a whole, where the script says (`#{ name, pattern }`).
    pub variable_patterns: BTreeMap<String, Regex>,
    /// What a variable is when nobody set it (`META.variables` as a map of names to defaults).
    pub variable_defaults: BTreeMap<String, String>,
    pub auth: String,
    pub base_url: String,
    pub docs: String,
    /// Further base URLs the server calls, by name (`META.hosts`), chosen per call with `host`.
    pub hosts: BTreeMap<String, String>,
    /// Every destination declared above (base URL, hosts, OAuth URLs), prepared for egress.
    pub destinations: Vec<destinations::Destination>,
    /// The server's own wall-clock limit, overriding the runtime default.
    pub timeout: Option<Duration>,
    /// Named operations (`META.operations`).
    pub operations: Vec<Operation>,
    /// `META.oauth2`, required when `auth` is `oauth2`.
    pub oauth2: Option<Arc<oauth2::Spec>>,
    /// How the server receives webhooks (`META.webhook`), if it does.
    pub webhook: Option<webhook::Spec>,
    /// What every `api` call starts from (`META.api`).
    pub api: Api,
    /// What the provider charges (`META.pricing`), if declared.
    pub pricing: Option<pricing::Pricing>,
    /// The whole `META` as JSON, for describing the server.
    pub json: Value,
}

impl Meta {
    /// The metadata of a script that declares none: no secrets, no hosts, no title.
    pub fn ad_hoc() -> Meta {
        Meta { json: serde_json::json!({}), ..Meta::default() }
    }

    /// Whether the server declares how its lists page (`META.api.pagination`), so that a caller may ask
    /// for every page.
    pub fn pages(&self) -> bool {
        self.api.pagination.is_some()
    }

    /// Reads `META` from its JSON form, or says what is wrong with it.
    pub fn from_json(json: Value) -> Result<Meta, Invalid> {
        let map = json.as_object().ok_or("META must be an object map (#{ ... })")?;
        let text = |key: &str, required: bool| -> Result<String, Invalid> {
            match map.get(key) {
                Some(Value::String(s)) => Ok(s.clone()),
                None if !required => Ok(String::new()),
                None => Err(format!("META.{key} is required").into()),
                Some(_) => Err(format!("META.{key} must be a string").into()),
            }
        };
        let secrets = secrets(map.get("secrets"))?;
        let (variables, variable_patterns, variable_defaults) = variables(map.get("variables"))?;
        if let Some(problem) = secrets.iter().flatten().chain(&variables).find_map(|n| crate::environment::refusal(n)) {
            return Err(format!("META may not declare {problem}").into());
        }
        let operations = operations::parse(map.get("operations"))?;
        let meta = Meta {
            pricing: map.get("pricing").map(|spec| pricing::Pricing::from_json(spec, &operations)).transpose()?,
            hosts: destinations::hosts(map.get("hosts"))?,
            timeout: timeout(map.get("timeout_ms"))?,
            oauth2: oauth2(map)?,
            webhook: map.get("webhook").map(webhook::Spec::from_json).transpose()?,
            api: Api::from_json(map.get("api"))?,
            title: text("title", true)?,
            description: text("description", true)?,
            category: text("category", false)?,
            secrets,
            variables,
            variable_patterns,
            variable_defaults,
            auth: text("auth", false)?,
            base_url: text("base_url", false)?,
            docs: text("docs", false)?,
            operations,
            destinations: Vec::new(),
            json: Value::Null,
        };
        if let Some(op) = meta.operations.iter().find(|op| op.paginated && !meta.pages()) {
            return Err(format!("META.operations.{}: paginated needs META.api.pagination to say how", op.name).into());
        }
        match &meta.webhook {
            Some(spec) if !meta.declares_secret(&spec.secret) => {
                Err(format!("META.webhook.secret '{}' must be one of the names in META.secrets", spec.secret).into())
            }
            _ => Ok(Meta { json, destinations: destinations::declared(&meta), ..meta }),
        }
    }

    /// The named operation a call of `method` on `endpoint` is, if any (see [`operations::matching`]).
    pub fn operation_for(&self, method: &str, endpoint: &str) -> Option<&Operation> {
        operations::matching(&self.operations, method, endpoint)
    }

    /// Whether `name` is one of the secrets this script declared.
    pub fn declares_secret(&self, name: &str) -> bool {
        self.secrets.iter().flatten().any(|declared| declared == name)
    }

    /// The declared secrets (each with its alternatives) that the server's requests name as `{NAME}`
    /// placeholders — in its base URL, credentials, headers, OAuth settings — rather than only to
    /// verify webhooks.
    pub fn request_secrets(&self) -> Vec<&[String]> {
        let mut texts = Vec::new();
        let requests = self.json.as_object().into_iter().flatten().filter(|(key, _)| *key != "webhook");
        requests.for_each(|(_, value)| collect_texts(value, &mut texts));
        let named = |name: &String| texts.iter().any(|text| text.contains(&format!("{{{name}}}")));
        self.secrets.iter().filter(|group| group.iter().any(named)).map(Vec::as_slice).collect()
    }
}

/// Every string inside `value`.
fn collect_texts<'a>(value: &'a Value, texts: &mut Vec<&'a str>) {
    match value {
        Value::String(text) => texts.push(text),
        Value::Array(items) => items.iter().for_each(|item| collect_texts(item, texts)),
        Value::Object(map) => map.values().for_each(|item| collect_texts(item, texts)),
        _ => {}
    }
}

/// `META.secrets`: names, or arrays of alternative names.
fn secrets(value: Option<&Value>) -> Result<Vec<Vec<String>>, Invalid> {
    match value {
        None => Ok(Vec::new()),
        Some(Value::Array(entries)) => entries
            .iter()
            .map(|entry| match entry {
                Value::String(name) => Ok(vec![name.clone()]),
                Value::Array(names) if !names.is_empty() => names
                    .iter()
                    .map(|n| n.as_str().map(str::to_owned).ok_or("META.secrets alternatives must be strings".into()))
                    .collect(),
                _ => Err("META.secrets holds names, or arrays of alternative names".into()),
            })
            .collect(),
        Some(_) => Err("META.secrets must be an array".into()),
    }
}

/// `META.variables`: names, or `#{ name, pattern, default }` (either or both of `pattern` and `default`):
/// `pattern` is what a value must match as a whole (what an operator is asked for before connecting: a
/// subdomain, a tenant, an organisation URL), `default` the value when nobody set one (an imported
/// document's server variables).
#[allow(clippy::type_complexity)]
fn variables(
    value: Option<&Value>,
) -> Result<(Vec<String>, BTreeMap<String, Regex>, BTreeMap<String, String>), Invalid> {
    let entries = match value {
        None => return Ok(Default::default()),
        Some(Value::Array(entries)) => entries,
        Some(_) => return Err("META.variables must be an array of names".into()),
    };
    let (mut names, mut patterns, mut defaults) = (Vec::new(), BTreeMap::new(), BTreeMap::new());
    let entry_error = "a META.variables entry is a name or #{ name, pattern, default }";
    for entry in entries {
        let (name, pattern, default) = match entry {
            Value::String(name) => (name.clone(), None, None),
            Value::Object(map) => {
                if map.keys().any(|k| !["name", "pattern", "default"].contains(&k.as_str())) {
                    return Err(entry_error.into());
                }
                let text = |key: &str| match map.get(key) {
                    None => Ok(None),
                    Some(Value::String(text)) => Ok(Some(text.clone())),
                    Some(_) => Err(Invalid::from(entry_error)),
                };
                let name = text("name")?.ok_or(entry_error)?;
                (name, text("pattern")?, text("default")?)
            }
            _ => return Err("META.variables holds names, or #{ name, pattern, default }".into()),
        };
        if let Some(pattern) = pattern {
            let whole = Regex::new(&format!("^(?:{pattern})$"))
                .map_err(|e| format!("META.variables '{name}': the pattern does not compile: {e}"))?;
            patterns.insert(name.clone(), whole);
        }
        if let Some(default) = default {
            defaults.insert(name.clone(), default);
        }
        names.push(name);
    }
    Ok((names, patterns, defaults))
}

/// `META.timeout_ms`: the server's own wall-clock limit.
fn timeout(value: Option<&Value>) -> Result<Option<Duration>, Invalid> {
    match value.map(Value::as_u64) {
        None => Ok(None),
        Some(Some(ms)) if ms > 0 => Ok(Some(Duration::from_millis(ms))),
        Some(_) => Err("META.timeout_ms must be a positive integer".into()),
    }
}

/// `META.oauth2`, which `auth: "oauth2"` requires.
fn oauth2(map: &Map<String, Value>) -> Result<Option<Arc<oauth2::Spec>>, Invalid> {
    match (map.get("oauth2"), map.get("auth").and_then(Value::as_str)) {
        (Some(spec), _) => Ok(Some(Arc::new(oauth2::Spec::from_json(spec)?))),
        (None, Some("oauth2")) => Err("META.auth \"oauth2\" needs META.oauth2".into()),
        (None, _) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn meta_reads_secret_alternatives() {
        let meta = Meta::from_json(json!({
            "title": "Sheets", "description": "d",
            "secrets": ["A", ["GOOGLE_API_KEY", "GOOGLE_SERVICE_ACCOUNT_JSON"]],
        }))
        .unwrap();
        assert!(meta.declares_secret("A"));
        assert!(meta.declares_secret("GOOGLE_SERVICE_ACCOUNT_JSON"));
        assert!(!meta.declares_secret("OTHER"));
    }

    #[test]
    fn meta_problems_are_named() {
        assert_eq!(Meta::from_json(json!([])).unwrap_err(), "META must be an object map (#{ ... })");
        assert_eq!(Meta::from_json(json!({"description": "d"})).unwrap_err(), "META.title is required");
        assert_eq!(
            Meta::from_json(json!({"title": "t", "description": "d", "secrets": [1]})).unwrap_err(),
            "META.secrets holds names, or arrays of alternative names"
        );
        let runtime_secret = json!({"title": "t", "description": "d", "secrets": [["X", "SWITCHBOARD_ADMIN_TOKEN"]]});
        assert!(
            Meta::from_json(runtime_secret).unwrap_err().contains("'SWITCHBOARD_ADMIN_TOKEN' belongs to the runtime")
        );
        let host_variable = json!({"title": "t", "description": "d", "variables": ["HOME"]});
        assert!(Meta::from_json(host_variable).unwrap_err().contains("'HOME' belongs to the runtime or the host"));
        assert_eq!(
            Meta::from_json(json!({"title": "t", "description": "d", "hosts": {"Up": "https://x"}})).unwrap_err(),
            "META.hosts name 'Up' must be lower-case letters, digits and '_'"
        );
        assert_eq!(
            Meta::from_json(json!({"title": "t", "description": "d", "timeout_ms": 0})).unwrap_err(),
            "META.timeout_ms must be a positive integer"
        );
        let unpaged = json!({"title": "t", "description": "d",
            "operations": {"list": {"description": "d", "endpoint": "/x", "paginated": true}}});
        assert_eq!(
            Meta::from_json(unpaged).unwrap_err(),
            "META.operations.list: paginated needs META.api.pagination to say how"
        );
    }

    #[test]
    fn variables_may_carry_defaults() {
        let meta = Meta::from_json(json!({
            "title": "t", "description": "d",
            "variables": [{ "name": "PETS_REGION", "default": "eu" }, "PETS_HOST"],
        }))
        .unwrap();
        assert_eq!(meta.variables, ["PETS_REGION", "PETS_HOST"]);
        assert_eq!(meta.variable_defaults.get("PETS_REGION").map(String::as_str), Some("eu"));
        assert!(!meta.variable_defaults.contains_key("PETS_HOST"));
        let bad = json!({ "title": "t", "description": "d", "variables": [{ "name": "PETS_PORT", "default": 80 }] });
        assert!(Meta::from_json(bad).unwrap_err().contains("a META.variables entry is a name or"));
    }

    #[test]
    fn a_variable_may_declare_the_pattern_its_value_matches() {
        let meta = Meta::from_json(json!({
            "title": "t", "description": "d",
            "variables": ["REGION", {"name": "DESK_SUBDOMAIN", "pattern": "[a-z0-9-]{1,63}"}],
        }))
        .unwrap();
        assert_eq!(meta.variables, ["REGION", "DESK_SUBDOMAIN"]);
        let pattern = &meta.variable_patterns["DESK_SUBDOMAIN"];
        assert!(pattern.is_match("acme-eu") && !pattern.is_match("evil.example/x") && !pattern.is_match(""));
        let broken = json!({"title": "t", "description": "d", "variables": [{"name": "X", "pattern": "("}]});
        assert!(Meta::from_json(broken).unwrap_err().contains("'X': the pattern does not compile"));
        let extra = json!({"title": "t", "description": "d", "variables": [{"name": "X", "pattern": "a", "b": 1}]});
        assert!(Meta::from_json(extra).is_err());
    }

    #[test]
    fn a_webhook_is_keyed_by_a_declared_secret() {
        let meta = Meta::from_json(json!({
            "title": "t", "description": "d", "secrets": ["API_KEY", "HOOK_SECRET"],
            "webhook": {"scheme": "github", "secret": "HOOK_SECRET"},
        }))
        .unwrap();
        assert_eq!(meta.webhook.map(|w| w.scheme), Some(webhook::Scheme::Github));
        let undeclared = Meta::from_json(json!({
            "title": "t", "description": "d", "secrets": ["API_KEY"],
            "webhook": {"scheme": "github", "secret": "HOOK_SECRET"},
        }));
        assert_eq!(
            undeclared.unwrap_err(),
            "META.webhook.secret 'HOOK_SECRET' must be one of the names in META.secrets"
        );
        let unknown =
            Meta::from_json(json!({"title": "t", "description": "d", "webhook": {"scheme": "x", "secret": "S"}}));
        assert!(unknown.unwrap_err().starts_with("META.webhook.scheme must be one of"));
    }
}
