//! A server: a name bound to a script, and the rule names follow.

use std::sync::Arc;

use crate::cid::Cid;
use crate::engine::Script;
use crate::error::Error;
use crate::meta::Meta;

/// Path segments the HTTP interface keeps for itself; no server may take them.
pub const RESERVED: [&str; 9] = ["api", "cid", "mcp", "ui", "health", "metrics", "webhooks", "oauth", "static"];

/// Checks a server name against `^[a-z][a-z0-9_]{0,63}$` and the reserved words.
pub fn validate_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let well_formed = name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !well_formed {
        return Err(format!(
            "'{name}' is not a valid server name: a lower-case letter, then up to 63 lower-case letters, digits or '_'"
        ));
    }
    if RESERVED.contains(&name) {
        return Err(format!("'{name}' is reserved"));
    }
    Ok(())
}

/// What `GET /{name}` and `switchboard describe` say about a server: its metadata and how to call it.
pub fn describe(name: &str, script: &Script, enabled: Option<bool>) -> serde_json::Value {
    let mut description = serde_json::json!({
        "name": name,
        "cid": script.cid,
        "enabled": enabled,
        "meta": script.meta.json,
        "asks": asks(name, &script.meta),
        "usage": {
            "proxy": format!("/{name}/{{endpoint}}"),
            "call": format!("/{name}?endpoint=&method=GET&data="),
        },
    });
    if script.meta.webhook.is_some() {
        description["usage"]["webhook"] = format!("POST /webhooks/{name}").into();
    }
    description
}

/// What a server asks of its operator: the secrets it may read (alternatives joined by `|`) and the
/// hosts it may send to, each with the variable that overrides it. An operator reads this before
/// trusting an image: `boot diff`, import and `describe` show it.
pub fn asks(name: &str, meta: &Meta) -> serde_json::Value {
    let (secrets, hosts) = asked(name, meta);
    serde_json::json!({ "secrets": secrets, "hosts": hosts })
}

/// [`asks`] on one line: `secrets: A, B | C; hosts: https://x ($NAME_BASE_URL)`.
pub fn asks_line(name: &str, meta: &Meta) -> String {
    let (secrets, hosts) = asked(name, meta);
    let list = |items: Vec<String>| if items.is_empty() { "none".to_owned() } else { items.join(", ") };
    format!("secrets: {}; hosts: {}", list(secrets), list(hosts))
}

fn asked(name: &str, meta: &Meta) -> (Vec<String>, Vec<String>) {
    let secrets = meta.secrets.iter().map(|alternatives| alternatives.join(" | ")).collect();
    let upper = name.to_uppercase();
    let hosts = crate::meta::destinations::declared(meta)
        .into_iter()
        .map(|(suffix, url)| format!("{url} (${upper}_{suffix})"))
        .collect();
    (secrets, hosts)
}

/// A registered server as the runtime serves it.
#[derive(Debug, Clone)]
pub struct Server {
    pub name: String,
    /// The CID the registry binds the name to.
    pub cid: Cid,
    pub enabled: bool,
    /// The compiled script for `cid`; an error when the stored script no longer loads.
    pub script: Result<Arc<Script>, Error>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_documented_rule() {
        for good in ["a", "stripe", "google_sheets", "s3", &format!("a{}", "b".repeat(63))] {
            assert_eq!(validate_name(good), Ok(()), "{good}");
        }
        for bad in ["", "A", "1a", "_a", "a-b", "a b", "é", &format!("a{}", "b".repeat(64))] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        for reserved in RESERVED {
            assert_eq!(validate_name(reserved), Err(format!("'{reserved}' is reserved")));
        }
    }
}
