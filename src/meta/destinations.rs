//! Where a server declares it sends: its base URL, the further base URLs of `META.hosts`, and its OAuth
//! URLs — each a template an operator may replace with a variable (`<NAME>_BASE_URL`,
//! `<NAME>_<HOST>_BASE_URL`, `<NAME>_TOKEN_URL`, `<NAME>_AUTHORIZE_URL`, `<NAME>_REVOKE_URL`). What `boot diff` and import show
//! an operator, and what egress admits (`modules::egress`).

use std::collections::BTreeMap;

use serde_json::Value;

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

/// Every destination template `meta` declares, with the override variable suffix that replaces it:
/// what `boot diff` and import show an operator.
pub fn declared(meta: &Meta) -> Vec<(String, String)> {
    let mut declared = Vec::new();
    if !meta.base_url.is_empty() {
        declared.push(("BASE_URL".to_owned(), meta.base_url.clone()));
    }
    for (name, url) in &meta.hosts {
        declared.push((format!("{}_BASE_URL", name.to_uppercase()), url.clone()));
    }
    if let Some(spec) = &meta.oauth2 {
        let urls =
            [("TOKEN_URL", &spec.token_url), ("AUTHORIZE_URL", &spec.authorize_url), ("REVOKE_URL", &spec.revoke_url)];
        for (suffix, url) in urls {
            if !url.is_empty() {
                declared.push((suffix.to_owned(), url.clone()));
            }
        }
    }
    declared
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
        let found = declared(&meta);
        let pairs: Vec<(&str, &str)> = found.iter().map(|(suffix, url)| (suffix.as_str(), url.as_str())).collect();
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
        assert!(declared(&none).is_empty());
    }
}
