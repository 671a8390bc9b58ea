//! Which servers can run now: what the default tool list shows, so that an agent is offered the
//! integrations this gateway is set up for rather than every one it knows (`serve --mcp-all-tools`
//! lists them all).
//!
//! A server can run when it needs nothing, or when what it needs is there: one of each group of
//! alternatives in `META.secrets` (the webhook signing secret aside: calls never use it), and for an
//! OAuth server a plain access token, a stored connection, or — for the grants that need no browser —
//! the secrets its token request is built from. Values come from where scripts read them (the secret
//! store, then the environment); none is shown.

use std::collections::HashSet;

use crate::meta::Meta;
use crate::meta::oauth2::{Grant, Spec};
use crate::runtime::Runtime;

/// The names of the enabled servers that can run now.
pub fn servers(runtime: &Runtime) -> HashSet<String> {
    let set = |name: &str| runtime.services.secrets().get(name).is_ok_and(|value| value.is_some_and(|v| !v.is_empty()));
    let connected = |server: &str| runtime.store.connection(server).is_ok_and(|c| c.is_some());
    let registry = runtime.servers();
    registry
        .values()
        .filter(|server| server.enabled)
        .filter(|server| {
            server.script.as_ref().is_ok_and(|script| can_run(&server.name, &script.meta, &set, &connected))
        })
        .map(|server| server.name.clone())
        .collect()
}

fn can_run(name: &str, meta: &Meta, set: &dyn Fn(&str) -> bool, connected: &dyn Fn(&str) -> bool) -> bool {
    match &meta.oauth2 {
        Some(spec) => {
            set(&spec.access_token)
                || connected(name)
                || (spec.grant != Grant::AuthorizationCode && all_set(&grant_secrets(spec), set))
        }
        None => {
            let signing = meta.webhook.as_ref().map(|webhook| webhook.secret.as_str());
            meta.secrets
                .iter()
                .filter(|group| !(group.len() == 1 && Some(group[0].as_str()) == signing))
                .all(|alternatives| alternatives.iter().any(|secret| set(secret)))
        }
    }
}

fn all_set(names: &[String], set: &dyn Fn(&str) -> bool) -> bool {
    !names.is_empty() && names.iter().all(|name| set(name))
}

/// The secrets a token request of `spec`'s grant is built from: the `{NAME}`s of its templates.
fn grant_secrets(spec: &Spec) -> Vec<String> {
    let own = [&spec.client_id, &spec.client_secret, &spec.refresh_token, &spec.service_account];
    let params = spec.params.iter().map(|(_, value)| value);
    own.into_iter().chain(params).flat_map(|template| placeholders(template)).collect()
}

/// The `{NAME}`s of a template.
fn placeholders(template: &str) -> impl Iterator<Item = String> + '_ {
    template.split('{').skip(1).filter_map(|part| part.split_once('}').map(|(name, _)| name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(value: serde_json::Value) -> Meta {
        Meta::from_json(value).unwrap()
    }

    fn runs(meta: &Meta, secrets: &[&str], connected: bool) -> bool {
        can_run("s", meta, &|name| secrets.contains(&name), &|_| connected)
    }

    #[test]
    fn a_server_runs_with_one_of_each_group_of_secrets_but_its_webhook_secret() {
        let stripe = meta(json!({"title": "t", "description": "d", "secrets": ["API_KEY", "HOOK_SECRET"],
            "webhook": {"scheme": "stripe", "secret": "HOOK_SECRET"}}));
        assert!(runs(&stripe, &["API_KEY"], false));
        assert!(!runs(&stripe, &["HOOK_SECRET"], false));
        let google = meta(json!({"title": "t", "description": "d", "secrets": ["ID", ["KEY", "JSON"]]}));
        assert!(runs(&google, &["ID", "JSON"], false));
        assert!(!runs(&google, &["KEY", "JSON"], false));
        assert!(runs(&meta(json!({"title": "t", "description": "d"})), &[], false), "needing nothing");
    }

    #[test]
    fn an_oauth_server_runs_with_a_token_a_connection_or_its_grants_secrets() {
        let oauth = |grant: &str| {
            meta(json!({"title": "t", "description": "d", "auth": "oauth2", "secrets": ["TOKEN", "ID", "SECRET"],
                "base_url": "https://api.example.com",
                "oauth2": {"grant": grant, "token_url": "https://example.com/token", "authorize_url": "https://example.com/auth",
                           "client_id": "{ID}", "client_secret": "{SECRET}", "access_token": "TOKEN"}}))
        };
        let browser = oauth("authorization_code");
        assert!(!runs(&browser, &["ID", "SECRET"], false), "not connected yet");
        assert!(runs(&browser, &["ID", "SECRET"], true));
        assert!(runs(&browser, &["TOKEN"], false));
        let machine = oauth("client_credentials");
        assert!(runs(&machine, &["ID", "SECRET"], false));
        assert!(!runs(&machine, &["ID"], false));
    }
}
