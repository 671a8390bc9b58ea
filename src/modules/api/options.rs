//! The options of one call: what the server declared in `META.api` (as loaded, checked), with the call's
//! own on top, and the auth it sends with.

use rhai::{Dynamic, EvalAltResult, Map};

use crate::meta::Meta;
use crate::meta::api::OPTIONS;
use crate::meta::pagination::Paging;
use crate::modules::native::arg_error;
use crate::modules::values::text_pairs;

/// What a call may not set for itself: the server's alone, shared by all its calls.
const THE_SERVERS: [(&str, &str); 2] = [
    ("rate_limit", "rate_limit is the server's: declare it in META.api, not for one call"),
    ("auth", "auth is the server's: declare it in META.auth, not for one call"),
];

/// The options of one call: `META.api` overlaid with the call's own. The declared options are the
/// loaded script's, read in place: a call copies only what it sets itself.
pub(super) struct Options<'a> {
    declared: &'a Map,
    own: Map,
    /// `META.auth` (`none` when it says nothing), or the `META.oauth2.fallback` that took over.
    auth: String,
}

impl<'a> Options<'a> {
    pub(super) fn new(meta: &'a Meta, overrides: &Map) -> Result<Options<'a>, Box<EvalAltResult>> {
        if let Some((_, why)) = THE_SERVERS.iter().find(|(key, _)| overrides.contains_key(*key)) {
            return Err(arg_error(why));
        }
        if let Some(key) = overrides.keys().find(|key| !OPTIONS.contains(&key.as_str())) {
            return Err(arg_error(&format!("unknown api option '{key}' (one of {})", OPTIONS.join(", "))));
        }
        let declared = &meta.api.options;
        let mut own = overrides.clone();
        // A call's `pagination` refines the declared one (`#{ pagination: #{ items: "members" } }`).
        if let (Some(mut refined), Some(given)) = (
            declared.get("pagination").and_then(|p| p.read_lock::<Map>().map(|m| m.clone())),
            overrides.get("pagination").and_then(|p| p.read_lock::<Map>().map(|m| m.clone())),
        ) {
            refined.extend(given);
            own.insert("pagination".into(), refined.into());
        }
        let auth = if meta.auth.is_empty() { "none".to_owned() } else { meta.auth.clone() };
        Ok(Options { declared, own, auth })
    }

    /// The option `key`: the call's own, else the declared one.
    pub(super) fn get(&self, key: &str) -> Option<&Dynamic> {
        self.own.get(key).or_else(|| self.declared.get(key))
    }

    /// The auth this call sends with.
    pub(super) fn auth(&self) -> &str {
        &self.auth
    }

    /// `META.oauth2.fallback` takes over: its auth scheme, and its credential as the call's `token`.
    pub(super) fn fall_back(&mut self, auth: &str, token: &str) {
        self.auth = auth.to_owned();
        self.own.insert("token".into(), token.into());
    }

    /// The declared pagination, refined by the call's own.
    pub(super) fn paging(&self) -> Result<Option<Paging>, Box<EvalAltResult>> {
        match self.get("pagination") {
            None => Ok(None),
            Some(spec) => match spec.read_lock::<Map>() {
                Some(spec) => Ok(Some(Paging::parse(&spec)?)),
                None => Err(arg_error("META.api.pagination must be a map")),
            },
        }
    }

    /// A list of header names, lower-case.
    pub(super) fn names(&self, key: &str) -> Result<Vec<String>, Box<EvalAltResult>> {
        let Some(value) = self.get(key) else { return Ok(Vec::new()) };
        let list = value.read_lock::<rhai::Array>().ok_or_else(|| arg_error(&format!("{key} must be an array")))?;
        Ok(list.iter().map(|name| name.to_string().to_ascii_lowercase()).collect())
    }

    pub(super) fn text(&self, key: &str) -> Option<String> {
        self.get(key).filter(|v| !v.is_unit()).map(|v| v.to_string())
    }

    pub(super) fn pairs(&self, key: &str) -> Result<Vec<(String, String)>, Box<EvalAltResult>> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(value) => text_pairs(
                &*value.read_lock::<Map>().ok_or_else(|| arg_error(&format!("api option '{key}' must be a map")))?,
            ),
        }
    }
}
