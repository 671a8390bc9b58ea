//! A server: a name bound to a script, and the rule names follow.

use std::collections::HashMap;
use std::sync::Arc;

use crate::cid::Cid;
use crate::engine::Script;
use crate::error::Error;
use crate::meta::Meta;
use crate::store::Binding;

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

/// The candidate closest to `name` when it is close enough to be a slip (a typo, a missing or extra
/// letter or two), for a `did you mean` hint. A text longer than any valid name is nobody's slip.
pub fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    if name.is_empty() || name.len() > 64 {
        return None;
    }
    let allowed = (name.chars().count() / 3).max(1);
    candidates
        .map(|candidate| (strsim::damerau_levenshtein(name, candidate), candidate))
        .filter(|(distance, _)| *distance <= allowed)
        .min()
        .map(|(_, candidate)| candidate)
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
    let hosts = meta
        .destinations
        .iter()
        .map(|destination| format!("{} (${upper}_{})", destination.template, destination.suffix))
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

/// Which server each CID runs as when it is invoked by CID, from every binding an operator made
/// (oldest first) and the servers now registered.
///
/// Anyone can put bytes in the store (a stored output, a webhook body), so a CID alone says nothing about
/// who wrote the script it names, and a script's own `META` cannot be what decides what it may read.
/// A CID runs only if an operator bound it to a server that is registered and enabled now, and it runs as
/// that server: its name, secrets, database and base-URL overrides. When several such servers bound
/// it, the operator's bindings decide: a server bound to it now wins over one that was bound to it
/// before, and among equals the later binding wins (a rollback is a binding).
pub fn runners(servers: &HashMap<String, Arc<Server>>, bindings: &[(String, Binding)]) -> HashMap<Cid, String> {
    let mut chosen: HashMap<Cid, ((bool, usize), &str)> = HashMap::new();
    for (order, (name, binding)) in bindings.iter().enumerate() {
        let Some(server) = servers.get(name).filter(|server| server.enabled) else { continue };
        let rank = (server.cid == binding.cid, order);
        let entry = chosen.entry(binding.cid).or_insert((rank, name));
        if rank > entry.0 {
            *entry = (rank, name);
        }
    }
    chosen.into_iter().map(|(cid, (_, name))| (cid, name.to_owned())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Origin;

    fn server(name: &str, cid: Cid, enabled: bool) -> (String, Arc<Server>) {
        let script = Err(Error::Internal("not loaded in this test".into()));
        (name.to_owned(), Arc::new(Server { name: name.to_owned(), cid, enabled, script }))
    }

    fn bound(name: &str, cid: Cid) -> (String, Binding) {
        (name.to_owned(), Binding { cid, at: 0, origin: Origin::Api })
    }

    #[test]
    fn a_cid_runs_as_the_enabled_server_that_bound_it_now_or_last() {
        let [old, shared, head, orphan, off] =
            ["old", "shared", "head", "orphan", "off"].map(|b| Cid::of(b.as_bytes()));
        let servers: HashMap<_, _> =
            [server("a", head, true), server("b", shared, true), server("c", shared, true), server("d", off, false)]
                .into();
        let bindings = [
            bound("a", old),
            bound("c", shared),
            bound("b", shared),
            bound("a", shared),
            bound("a", head),
            bound("gone", orphan),
            bound("d", off),
        ];
        let runners = runners(&servers, &bindings);
        assert_eq!(runners.get(&old).map(String::as_str), Some("a"), "an earlier version of a");
        assert_eq!(runners.get(&head).map(String::as_str), Some("a"));
        // b and c are bound to it now; b bound it after c. a bound it later still, but moved on.
        assert_eq!(runners.get(&shared).map(String::as_str), Some("b"));
        assert_eq!(runners.get(&orphan), None, "its server is gone");
        assert_eq!(runners.get(&off), None, "its server is disabled");
        assert_eq!(runners.len(), 3);
    }

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
