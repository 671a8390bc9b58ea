//! The options of one call: what `META.api` declares for every call, with the call's own on top.

use rhai::{EvalAltResult, Map};

use crate::meta::pagination::Paging;
use crate::meta::rate_limit::Window;
use crate::modules::native::arg_error;
use crate::modules::values::scalar_text;

/// The options of one call: `META.api` overlaid with the call's own.
pub(super) struct Options {
    pub(super) map: Map,
}

impl Options {
    pub(super) fn new(meta: &Map, overrides: &Map) -> Result<Options, Box<EvalAltResult>> {
        let mut map = match meta.get("api") {
            None => Map::new(),
            Some(api) => api.clone().try_cast::<Map>().ok_or_else(|| arg_error("META.api must be a map"))?,
        };
        // The schedule is the server's, shared by all its calls: one call cannot change it.
        if overrides.contains_key("rate_limit") {
            return Err(arg_error("rate_limit is the server's: declare it in META.api, not for one call"));
        }
        // A call's `pagination` refines the declared one (`#{ pagination: #{ items: "members" } }`).
        let declared = map.get("pagination").and_then(|p| p.read_lock::<Map>().map(|m| m.clone()));
        map.extend(overrides.clone());
        if let (Some(mut declared), Some(given)) =
            (declared, overrides.get("pagination").and_then(|p| p.read_lock::<Map>().map(|m| m.clone())))
        {
            declared.extend(given);
            map.insert("pagination".into(), declared.into());
        }
        for key in map.keys() {
            const KNOWN: [&str; 23] = [
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
                "auth",
                "host",
                "pagination",
                "rate_limit",
                "pass_headers",
                "region",
                "session_token",
                "xml_lists",
            ];
            if !KNOWN.contains(&key.as_str()) {
                return Err(arg_error(&format!("unknown api option '{key}' (one of {})", KNOWN.join(", "))));
            }
        }
        Ok(Options { map })
    }

    /// The declared pagination, if any.
    pub(super) fn paging(&self) -> Result<Option<Paging>, Box<EvalAltResult>> {
        match self.map.get("pagination") {
            None => Ok(None),
            Some(spec) => match spec.read_lock::<Map>() {
                Some(spec) => Ok(Some(Paging::parse(&spec)?)),
                None => Err(arg_error("META.api.pagination must be a map")),
            },
        }
    }

    /// The declared outbound rate limit, if any.
    pub(super) fn window(&self) -> Result<Option<Window>, Box<EvalAltResult>> {
        match self.map.get("rate_limit") {
            None => Ok(None),
            Some(spec) => match spec.read_lock::<Map>() {
                Some(spec) => Ok(Some(Window::parse(&spec)?)),
                None => Err(arg_error("META.api.rate_limit must be a map")),
            },
        }
    }

    /// A list of header names, lower-case.
    pub(super) fn names(&self, key: &str) -> Result<Vec<String>, Box<EvalAltResult>> {
        let Some(value) = self.map.get(key) else { return Ok(Vec::new()) };
        let list = value.read_lock::<rhai::Array>().ok_or_else(|| arg_error(&format!("{key} must be an array")))?;
        Ok(list.iter().map(|name| name.to_string().to_ascii_lowercase()).collect())
    }

    pub(super) fn text(&self, key: &str) -> Option<String> {
        self.map.get(key).filter(|v| !v.is_unit()).map(|v| v.to_string())
    }

    pub(super) fn pairs(&self, key: &str) -> Result<Vec<(String, String)>, Box<EvalAltResult>> {
        match self.map.get(key) {
            None => Ok(Vec::new()),
            Some(value) => Ok(value
                .clone()
                .try_cast::<Map>()
                .ok_or_else(|| arg_error(&format!("api option '{key}' must be a map")))?
                .into_iter()
                .map(|(k, v)| (k.to_string(), scalar_text(&v)))
                .collect()),
        }
    }
}
