//! `META.api`: what every `api::call` of a server starts from, checked when the script loads — the
//! options it sets for every call, the caller headers it may pass through, its pagination and its rate
//! limit. A call's own options are laid over these for that call only; what is the server's alone (its
//! rate limit, and `META.auth`) no call can change.

use rhai::{Dynamic, Map};
use serde_json::Value;

use super::invalid::Invalid;
use super::pagination::Paging;
use super::rate_limit::Window;

/// The checked `META.api`.
#[derive(Debug, Clone, Default)]
pub struct Api {
    /// Every option it sets, as the Rhai values a call's own options are laid over.
    pub options: Map,
    /// Headers a caller may pass through to the API (`pass_headers`), lower-case.
    pub pass_headers: Vec<String>,
    /// How the API's lists page (`pagination`).
    pub pagination: Option<Paging>,
    /// The API's documented limit (`rate_limit`).
    pub rate_limit: Option<Window>,
}

/// The options `META.api` (and, but for `rate_limit`, a call's own options) may set.
pub const OPTIONS: [&str; 22] = [
    "default_method",
    "default_data",
    "body_fields",
    "token",
    "scheme",
    "username",
    "password",
    "headers",
    "query",
    "body",
    "response",
    "default_endpoint",
    "base_url",
    "timeout_ms",
    "max_retries",
    "host",
    "pagination",
    "rate_limit",
    "pass_headers",
    "region",
    "session_token",
    "xml_lists",
];

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

impl Api {
    /// Reads `META.api` (absent: nothing declared), or says what is wrong with it.
    pub fn from_json(api: Option<&Value>) -> Result<Api, Invalid> {
        let Some(api) = api else { return Ok(Api::default()) };
        let fields = api.as_object().ok_or("META.api must be a map")?;
        if let Some(key) = fields.keys().find(|key| !OPTIONS.contains(&key.as_str())) {
            return Err(format!("META.api: unknown option '{key}' (one of {})", OPTIONS.join(", ")).into());
        }
        let options = serde_json::from_value::<Dynamic>(api.clone()).map_err(|e| e.to_string())?;
        Ok(Api {
            pagination: fields.get("pagination").map(Paging::from_json).transpose()?,
            rate_limit: fields.get("rate_limit").map(Window::from_json).transpose()?,
            pass_headers: pass_headers(fields.get("pass_headers"))?,
            options: options.try_cast::<Map>().unwrap_or_default(),
        })
    }
}

/// Whether a caller may pass the header `name` (lower-case) through to an API: not one the runtime sets
/// or a credential travels in.
pub fn passable(name: &str) -> bool {
    !UNPASSABLE.contains(&name)
}

/// `META.api.pass_headers`: header names, checked.
fn pass_headers(list: Option<&Value>) -> Result<Vec<String>, Invalid> {
    let Some(list) = list else { return Ok(Vec::new()) };
    let names = list.as_array().ok_or("META.api.pass_headers must be an array of header names")?;
    names
        .iter()
        .map(|name| {
            let name = name.as_str().ok_or("META.api.pass_headers holds header names (strings)")?;
            let lower = name.to_ascii_lowercase();
            if reqwest::header::HeaderName::from_bytes(lower.as_bytes()).is_err() {
                return Err(format!("META.api.pass_headers: '{name}' is not a header name").into());
            }
            if !passable(&lower) {
                return Err(format!("META.api.pass_headers may not name {name}: the runtime sets it").into());
            }
            Ok(lower)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn what_a_call_starts_from_is_read_and_checked_once() {
        let api = Api::from_json(Some(&json!({
            "headers": { "Notion-Version": "2022-06-28" }, "rate_limit": { "requests": 3, "per_ms": 1000 },
        })))
        .unwrap();
        assert_eq!(api.options["headers"].clone().cast::<Map>()["Notion-Version"].to_string(), "2022-06-28");
        assert_eq!(api.rate_limit.map(|w| w.requests), Some(3));
        let unknown = Api::from_json(Some(&json!({ "tokne": "{KEY}" }))).unwrap_err();
        assert!(unknown.starts_with("META.api: unknown option 'tokne' (one of default_method, "), "{unknown}");
        let auth = Api::from_json(Some(&json!({ "auth": "query:key" }))).unwrap_err();
        assert!(auth.contains("unknown option 'auth'"), "META.auth says how a server authenticates: {auth}");
        assert_eq!(Api::from_json(Some(&json!("bearer"))).unwrap_err(), "META.api must be a map");
        assert!(Api::from_json(None).unwrap().options.is_empty());
    }
}
