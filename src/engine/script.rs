//! A compiled script: its CID, its metadata, and the AST that `main` is called on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rhai::AST;
use serde_json::Value;

use crate::cid::Cid;

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
    pub auth: String,
    pub base_url: String,
    pub docs: String,
    /// Further base URLs the server calls, by name (`META.hosts`), chosen per call with `host`.
    pub hosts: std::collections::BTreeMap<String, String>,
    /// The server's own wall-clock limit, overriding the runtime default.
    pub timeout: Option<Duration>,
    /// Named operations (`META.operations`), checked when the script loads.
    pub operations: Vec<crate::operation::Operation>,
    /// `META.oauth2`, required when `auth` is `oauth2`.
    pub oauth2: Option<std::sync::Arc<crate::oauth::Spec>>,
    /// How the server receives webhooks (`META.webhook`), if it does.
    pub webhook: Option<crate::webhooks::Spec>,
    /// Headers a caller may pass through to the API (`META.api.pass_headers`), lower-case.
    pub pass_headers: Vec<String>,
    /// The whole `META` as JSON, for describing the server.
    pub json: Value,
}

/// Headers a caller may never pass through: the server's own credentials and what the runtime sets.
const UNPASSABLE: [&str; 11] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "te",
    "upgrade",
    "x-request-id",
];

/// `META.api.pass_headers`: header names, checked.
fn pass_headers(api: Option<&Value>) -> Result<Vec<String>, String> {
    let Some(list) = api.and_then(|api| api.get("pass_headers")) else { return Ok(Vec::new()) };
    let names = list.as_array().ok_or("META.api.pass_headers must be an array of header names")?;
    names
        .iter()
        .map(|name| {
            let name = name.as_str().ok_or("META.api.pass_headers holds header names (strings)")?;
            let lower = name.to_ascii_lowercase();
            if reqwest::header::HeaderName::from_bytes(lower.as_bytes()).is_err() {
                return Err(format!("META.api.pass_headers: '{name}' is not a header name"));
            }
            if UNPASSABLE.contains(&lower.as_str()) {
                return Err(format!("META.api.pass_headers may not name {name}: the runtime sets it"));
            }
            Ok(lower)
        })
        .collect()
}

impl Meta {
    /// The metadata of a script that declares none: no secrets, no hosts, no title.
    pub fn ad_hoc() -> Meta {
        Meta { json: serde_json::json!({}), ..Meta::default() }
    }

    /// Whether the server declares how its lists page (`META.api.pagination`), so that a caller may ask
    /// for every page.
    pub fn pages(&self) -> bool {
        self.json.get("api").and_then(|api| api.get("pagination")).is_some_and(Value::is_object)
    }

    /// Reads `META` from its JSON form, or says what is wrong with it.
    pub fn from_json(json: Value) -> Result<Meta, String> {
        let map = json.as_object().ok_or("META must be an object map (#{ ... })")?;
        let text = |key: &str, required: bool| -> Result<String, String> {
            match map.get(key) {
                Some(Value::String(s)) => Ok(s.clone()),
                None if !required => Ok(String::new()),
                None => Err(format!("META.{key} is required")),
                Some(_) => Err(format!("META.{key} must be a string")),
            }
        };
        let secrets = match map.get("secrets") {
            None => Vec::new(),
            Some(Value::Array(entries)) => entries
                .iter()
                .map(|entry| match entry {
                    Value::String(name) => Ok(vec![name.clone()]),
                    Value::Array(names) if !names.is_empty() => names
                        .iter()
                        .map(|n| n.as_str().map(str::to_owned).ok_or("META.secrets alternatives must be strings"))
                        .collect(),
                    _ => Err("META.secrets holds names, or arrays of alternative names"),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("META.secrets must be an array".into()),
        };
        let variables = match map.get("variables") {
            None => Vec::new(),
            Some(Value::Array(names)) => names
                .iter()
                .map(|n| n.as_str().map(str::to_owned).ok_or("META.variables holds names"))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("META.variables must be an array of names".into()),
        };
        if let Some(problem) = secrets.iter().flatten().chain(&variables).find_map(|n| crate::environment::refusal(n)) {
            return Err(format!("META may not declare {problem}"));
        }
        let hosts = match map.get("hosts") {
            None => Default::default(),
            Some(Value::Object(hosts)) => hosts
                .iter()
                .map(|(name, url)| match url {
                    Value::String(url) if valid_host_name(name) => Ok((name.clone(), url.clone())),
                    Value::String(_) => {
                        Err(format!("META.hosts name '{name}' must be lower-case letters, digits and '_'"))
                    }
                    _ => Err(format!("META.hosts.{name} must be a base URL string")),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("META.hosts must be a map of names to base URLs".into()),
        };
        let timeout = match map.get("timeout_ms") {
            None => None,
            Some(v) => match v.as_u64() {
                Some(ms) if ms > 0 => Some(Duration::from_millis(ms)),
                _ => return Err("META.timeout_ms must be a positive integer".into()),
            },
        };
        let oauth2 = match (map.get("oauth2"), map.get("auth").and_then(Value::as_str)) {
            (Some(spec), _) => Some(std::sync::Arc::new(crate::oauth::Spec::from_json(spec)?)),
            (None, Some("oauth2")) => return Err("META.auth \"oauth2\" needs META.oauth2".into()),
            (None, _) => None,
        };
        let webhook = map.get("webhook").map(crate::webhooks::Spec::from_json).transpose()?;
        // Checked when the script loads, so that a mistake shows at once rather than on the first paged call.
        if let Some(spec) = map.get("api").and_then(|api| api.get("pagination")) {
            crate::modules::pages::Paging::from_json(spec)?;
        }
        if let Some(spec) = map.get("api").and_then(|api| api.get("rate_limit")) {
            crate::modules::throttle::Window::from_json(spec)?;
        }
        let meta = Meta {
            title: text("title", true)?,
            description: text("description", true)?,
            category: text("category", false)?,
            secrets,
            variables,
            auth: text("auth", false)?,
            base_url: text("base_url", false)?,
            docs: text("docs", false)?,
            hosts,
            timeout,
            operations: crate::operation::parse(map.get("operations"))?,
            oauth2,
            webhook,
            pass_headers: pass_headers(map.get("api"))?,
            json,
        };
        match &meta.webhook {
            Some(spec) if !meta.declares_secret(&spec.secret) => {
                Err(format!("META.webhook.secret '{}' must be one of the names in META.secrets", spec.secret))
            }
            _ => Ok(meta),
        }
    }

    /// Whether `name` is one of the secrets this script declared.
    pub fn declares_secret(&self, name: &str) -> bool {
        self.secrets.iter().flatten().any(|declared| declared == name)
    }
}

/// A `META.hosts` name: it becomes part of the variable `<NAME>_<HOST>_BASE_URL`.
fn valid_host_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A script ready to run. Shared by every request for its CID; never mutated except for what the
/// runtime learns about where it must run.
pub struct Script {
    pub cid: Cid,
    /// The CID's text, made once: every response names the script that ran.
    pub cid_text: bytes::Bytes,
    pub meta: Meta,
    /// Functions plus a prelude that defines the top-level constants `main` reads as `global::NAME`.
    pub(super) ast: AST,
    /// Whether the prelude must be evaluated before `main` (only when `main` reads a global).
    pub(super) has_prelude: bool,
    /// Whether it defines `fn webhook(event)`.
    webhook: bool,
    /// Learned on the first run that waited or outgrew the inline budget: start it as a fiber.
    waits: AtomicBool,
    /// A run overflowed its stack: what its abandoned frames held is leaked, so it is not run again.
    overflowed: AtomicBool,
}

impl Script {
    pub(super) fn new(cid: Cid, meta: Meta, ast: AST, has_prelude: bool) -> Script {
        let cid_text = bytes::Bytes::copy_from_slice(cid.text().as_str().as_bytes());
        let webhook = ast.iter_functions().any(|f| f.name == "webhook" && f.params.len() == 1);
        let (waits, overflowed) = (AtomicBool::new(false), AtomicBool::new(false));
        Script { cid, cid_text, meta, ast, has_prelude, webhook, waits, overflowed }
    }

    /// Whether this script should skip the inline attempt and start as a fiber.
    pub fn waits(&self) -> bool {
        self.waits.load(Ordering::Relaxed)
    }

    pub fn mark_waits(&self) {
        self.waits.store(true, Ordering::Relaxed);
    }

    /// Whether a run of this script overflowed its stack; it is then refused without running, so that
    /// a caller repeating it cannot make the process leak again and again.
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Relaxed)
    }

    pub(super) fn mark_overflowed(&self) {
        self.overflowed.store(true, Ordering::Relaxed);
    }

    /// Whether the script defines `function` (every script defines `main`: compiling checks it).
    pub fn defines(&self, function: super::Function) -> bool {
        match function {
            super::Function::Main => true,
            super::Function::Webhook => self.webhook,
        }
    }
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Script").field("cid", &self.cid).field("title", &self.meta.title).finish()
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
    }

    #[test]
    fn a_webhook_is_keyed_by_a_declared_secret() {
        let meta = Meta::from_json(json!({
            "title": "t", "description": "d", "secrets": ["API_KEY", "HOOK_SECRET"],
            "webhook": {"scheme": "github", "secret": "HOOK_SECRET"},
        }))
        .unwrap();
        assert_eq!(meta.webhook.map(|w| w.scheme), Some(crate::webhooks::Scheme::Github));
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
