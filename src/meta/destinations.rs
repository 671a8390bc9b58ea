//! Where a server declares it sends: its base URL, the further base URLs of `META.hosts`, and its OAuth
//! URLs — each a template an operator may replace with a variable (`<NAME>_BASE_URL`,
//! `<NAME>_<HOST>_BASE_URL`, `<NAME>_TOKEN_URL`, `<NAME>_AUTHORIZE_URL`, `<NAME>_REVOKE_URL`). What `boot diff` and import show
//! an operator, and what egress admits (`modules::egress`).
//!
//! The list is made once, when the script loads; what each URL is under the operator's variables is
//! [`routes`](super::routes)'.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;
use url::Url;

use super::Meta;
use super::invalid::Invalid;

/// `META.hosts`: names of further base URLs.
pub(super) fn hosts(value: Option<&Value>) -> Result<BTreeMap<String, String>, Invalid> {
    match value {
        None => Ok(BTreeMap::new()),
        Some(Value::Object(hosts)) => hosts
            .iter()
            .map(|(name, url)| match url {
                Value::String(url) if valid_host_name(name) => Ok((name.clone(), url.clone())),
                Value::String(_) => {
                    Err(format!("META.hosts name '{name}' must be lower-case letters, digits and '_'").into())
                }
                _ => Err(format!("META.hosts.{name} must be a base URL string").into()),
            })
            .collect(),
        Some(_) => Err("META.hosts must be a map of names to base URLs".into()),
    }
}

/// A `META.hosts` name: it becomes part of the variable `<NAME>_<HOST>_BASE_URL`.
fn valid_host_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// One declared destination.
#[derive(Debug, Clone)]
pub struct Destination {
    /// The suffix of the operator's override variable (`BASE_URL`, `UPLOAD_BASE_URL`, `TOKEN_URL`).
    pub suffix: String,
    /// The declared URL, a template.
    pub template: String,
}

/// Every destination `meta` declares, with the override variable suffix that replaces it: what `boot
/// diff` and import show an operator, and what egress starts from.
pub(super) fn declared(meta: &Meta) -> Vec<Destination> {
    let mut declared = Vec::new();
    let mut add = |suffix: String, template: &String| declared.push(Destination { suffix, template: template.clone() });
    if !meta.base_url.is_empty() {
        add("BASE_URL".to_owned(), &meta.base_url);
    }
    for (name, url) in &meta.hosts {
        add(format!("{}_BASE_URL", name.to_uppercase()), url);
    }
    if let Some(spec) = &meta.oauth2 {
        let urls =
            [("TOKEN_URL", &spec.token_url), ("AUTHORIZE_URL", &spec.authorize_url), ("REVOKE_URL", &spec.revoke_url)];
        for (suffix, url) in urls {
            if !url.is_empty() {
                add(suffix.to_owned(), url);
            }
        }
    }
    declared
}

/// Whether `template` has a `{NAME}` placeholder (as `modules::template` fills them).
pub(super) fn has_placeholder(template: &str) -> bool {
    template.split('{').skip(1).any(|rest| {
        let name = rest.split('}').next().unwrap_or_default();
        rest.contains('}')
            && !name.is_empty()
            && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    })
}

/// An origin as egress compares them: scheme (aliases folded), lower-case host, explicit port (the
/// scheme's default when none is written). With `wildcard`, the host is what follows a leftmost label
/// that stands for any one DNS label (`*` or `<name>`).
#[derive(Debug, Clone, PartialEq)]
pub struct Origin {
    pub scheme: String,
    pub host: String,
    pub port: u16,
    pub wildcard: bool,
}

impl Origin {
    /// A URL's origin, normalised.
    pub fn of(url: &Url) -> Option<Origin> {
        let scheme = match url.scheme() {
            "postgresql" => "postgres",
            "mariadb" => "mysql",
            other => other,
        };
        let default = match scheme {
            "postgres" => Some(5432),
            "mysql" => Some(3306),
            "mongodb" | "mongodb+srv" => Some(27017),
            _ => url.port_or_known_default(),
        };
        let host = url.host_str().filter(|h| !h.is_empty())?.to_ascii_lowercase();
        Some(Origin { scheme: scheme.to_owned(), host, port: url.port().or(default)?, wildcard: false })
    }

    /// `host` or `host:port` when the port is not the scheme's default (`*.host` for a wildcard).
    pub fn authority(&self) -> String {
        let default = match self.scheme.as_str() {
            "http" => 80,
            "https" => 443,
            "postgres" => 5432,
            "mysql" => 3306,
            _ => 0,
        };
        let mut authority = String::with_capacity(self.host.len() + 8);
        if self.wildcard {
            authority.push_str("*.");
        }
        authority.push_str(&self.host);
        if self.port != default {
            let _ = write!(authority, ":{}", self.port);
        }
        authority
    }
}

/// The origins a destination URL admits: its own (`https://` when it names no scheme), or each seed
/// host of a MongoDB URI. A URL that names no host admits nothing.
pub fn origins(url: &str) -> Vec<Origin> {
    match mongodb_seeds(url) {
        Some(seeds) => seeds.iter().filter_map(|seed| origin(seed)).collect(),
        None => origin(url).into_iter().collect(),
    }
}

fn origin(url: &str) -> Option<Origin> {
    let url = if url.contains("://") { url.to_owned() } else { format!("https://{url}") };
    let (scheme, rest) = url.split_once("://").unwrap_or_default();
    // A leftmost `*` or `<name>` label stands for one label: parse what follows it.
    let wildcard = rest.find('.').filter(|&dot| {
        let label = &rest[..dot];
        label == "*" || (label.starts_with('<') && label.ends_with('>') && !label.contains(['/', '@', ':']))
    });
    let parsed = match wildcard {
        Some(dot) => Url::parse(&format!("{scheme}://{}", &rest[dot + 1..])),
        None => Url::parse(&url),
    };
    let origin = Origin::of(&parsed.ok()?)?;
    Some(Origin { wildcard: wildcard.is_some(), ..origin })
}

/// The seed hosts of a MongoDB URI (`mongodb://user:pw@a:27017,b:27018/db?…`), each as
/// `scheme://host:port`, credentials left out; `None` for any other URL.
pub fn mongodb_seeds(uri: &str) -> Option<Vec<String>> {
    let (scheme, rest) = uri.split_once("://")?;
    if scheme != "mongodb" && scheme != "mongodb+srv" {
        return None;
    }
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let hosts = authority.rsplit_once('@').map_or(authority, |(_, hosts)| hosts);
    Some(hosts.split(',').map(|host| format!("{scheme}://{host}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_destinations_are_the_base_url_hosts_and_oauth_urls() {
        let meta = Meta::from_json(serde_json::json!({
            "title": "t", "description": "d", "base_url": "https://api.x.com/v1",
            "hosts": { "upload": "https://up.x.com" },
            "oauth2": { "grant": "authorization_code", "client_id": "c",
                        "token_url": "https://auth.x.com/token", "authorize_url": "https://auth.x.com/authorize" },
        }))
        .unwrap();
        let found = &meta.destinations;
        let pairs: Vec<(&str, &str)> = found.iter().map(|d| (d.suffix.as_str(), d.template.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("BASE_URL", "https://api.x.com/v1"),
                ("UPLOAD_BASE_URL", "https://up.x.com"),
                ("TOKEN_URL", "https://auth.x.com/token"),
                ("AUTHORIZE_URL", "https://auth.x.com/authorize"),
            ]
        );
        let none = Meta::from_json(serde_json::json!({ "title": "t", "description": "d" })).unwrap();
        assert!(none.destinations.is_empty());
    }
}
