//! Where a server's calls go under the operator's variables: each declared URL with the override
//! `<NAME>_<SUFFIX>` applied (`STRIPE_BASE_URL`, `BOX_UPLOAD_BASE_URL`), what egress admits for it, and the
//! finished base URL.
//!
//! An override naming only a scheme and host keeps the declared path; one with a path replaces the whole
//! URL. Variables change only when the store does, so a script version's routes are made once per
//! snapshot of them and server name, and every call reads them in place: the origins of a URL with no
//! `{NAME}` placeholder are parsed here and its base URL finished here. A URL with a placeholder is filled
//! by each call, as it reads a secret that may change while the script runs and that the invocation
//! must mask.

use std::collections::BTreeMap;
use std::sync::Arc;

use url::Url;

use super::Meta;
use super::destinations::{Origin, has_placeholder, origins};
use super::webhook::FORWARD_URL;

/// The routes of one script version, for one server name and one snapshot of the registry variables.
pub struct Routes {
    server: Option<String>,
    variables: Arc<BTreeMap<String, String>>,
    routes: Vec<Route>,
}

/// One destination a server may send to.
pub struct Route {
    /// The suffix of the operator's override variable (`BASE_URL`, `UPLOAD_BASE_URL`, `TOKEN_URL`).
    pub suffix: String,
    /// The operator's override, when one is set.
    pub operator: Option<String>,
    /// What egress admits: the override, else the declared URL (a template).
    pub admitted: String,
    /// The origins of `admitted` when it has no placeholder; `None` when each call fills it first.
    pub origins: Option<Vec<Origin>>,
    /// The declared URL with the override applied, finished as a base URL (see [`finished`]), when it
    /// has no placeholder.
    pub base: Option<String>,
    /// `base` parsed, when it is an http or https URL.
    pub url: Option<Url>,
}

impl Routes {
    /// Every declared destination of `meta`, and the base URL and webhook forward URL an operator may
    /// name for a server that declares none, under `variables` for the server `server`.
    pub fn new(meta: &Meta, server: Option<&str>, variables: Arc<BTreeMap<String, String>>) -> Routes {
        let operator = |suffix: &str| server.and_then(|server| overriding(server, suffix, &variables));
        let mut routes: Vec<Route> =
            meta.destinations.iter().map(|d| Route::new(&d.suffix, &d.template, operator(&d.suffix))).collect();
        let base_url = (!routes.iter().any(|r| r.suffix == "BASE_URL")).then_some("BASE_URL");
        let forward = meta.webhook.is_some().then_some(FORWARD_URL);
        for suffix in base_url.into_iter().chain(forward) {
            if let Some(url) = operator(suffix) {
                routes.push(Route::new(suffix, "", Some(url)));
            }
        }
        Routes { server: server.map(str::to_owned), variables, routes }
    }

    /// Whether these are the routes for `server` under `variables` (the same snapshot, not an equal one).
    pub fn are_for(&self, server: Option<&str>, variables: &Arc<BTreeMap<String, String>>) -> bool {
        self.server.as_deref() == server && Arc::ptr_eq(&self.variables, variables)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }

    /// The route whose override has the suffix `suffix`.
    pub fn get(&self, suffix: &str) -> Option<&Route> {
        self.routes.iter().find(|route| route.suffix == suffix)
    }
}

impl Route {
    fn new(suffix: &str, declared: &str, operator: Option<String>) -> Route {
        let admitted = operator.clone().unwrap_or_else(|| declared.to_owned());
        let template = overridden(declared, operator.as_deref());
        let base = (!has_placeholder(&template)).then(|| finished(&template));
        let url = base.as_deref().and_then(|base| Url::parse(base).ok());
        Route {
            suffix: suffix.to_owned(),
            origins: (!has_placeholder(&admitted)).then(|| origins(&admitted)),
            admitted,
            base,
            url: url.filter(|url| matches!(url.scheme(), "http" | "https")),
            operator,
        }
    }
}

/// The operator's override `<SERVER>_<SUFFIX>`: a registry variable, else the process's.
pub fn overriding(server: &str, suffix: &str, variables: &BTreeMap<String, String>) -> Option<String> {
    crate::environment::variable(variables, &[&server.to_uppercase(), "_", suffix].concat())
}

/// A declared URL with an operator's override applied: an override naming only a scheme and host keeps
/// the declared path; one with a path replaces the whole URL.
pub fn overridden(declared: &str, operator: Option<&str>) -> String {
    match operator {
        Some(origin) if path_of(origin).is_empty() => [origin.trim_end_matches('/'), path_of(declared)].concat(),
        Some(whole) => whole.to_owned(),
        None => declared.to_owned(),
    }
}

/// A filled URL as a base URL: `https://` when it names no scheme, and no doubled slash in the rest (a
/// URL secret given with a trailing slash must not double the slash before the API's path).
pub fn finished(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let mut path = rest.to_owned();
    while path.contains("//") {
        path = path.replace("//", "/");
    }
    [scheme, "://", &path].concat()
}

/// The path part of a URL template (`/v1` of `https://api.x.com/v1`), `""` when it has none.
fn path_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    match rest.find('/') {
        Some(start) if rest[start..] != *"/" => &rest[start..],
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta::from_json(serde_json::json!({
            "title": "t", "description": "d", "secrets": ["STORE"], "base_url": "https://API.x.com/v1",
            "hosts": { "shop": "https://{STORE}.shop.example/admin", "dc": "https://<dc>.api.example",
                       "body": "https://a.example/{id}", "up": "https://up.x.com/files" },
        }))
        .unwrap()
    }

    fn variables(pairs: &[(&str, &str)]) -> Arc<BTreeMap<String, String>> {
        Arc::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn a_url_without_placeholders_is_parsed_and_finished_once_and_one_with_them_per_call() {
        let routes = Routes::new(&meta(), Some("svc"), variables(&[]));
        let route = |suffix: &str| routes.get(suffix).unwrap();
        let base = route("BASE_URL").origins.clone().unwrap();
        assert_eq!(base, [Origin { scheme: "https".into(), host: "api.x.com".into(), port: 443, wildcard: false }]);
        assert_eq!(route("BASE_URL").base.as_deref(), Some("https://API.x.com/v1"));
        assert_eq!((route("SHOP_BASE_URL").origins.clone(), route("SHOP_BASE_URL").base.clone()), (None, None));
        assert_eq!(route("DC_BASE_URL").origins.clone().unwrap()[0].authority(), "*.api.example");
        // Braces that are no placeholder (a path parameter) are part of a literal URL.
        assert_eq!(route("BODY_BASE_URL").origins.clone().unwrap()[0].host, "a.example");
        assert!(routes.iter().all(|route| route.operator.is_none()));
    }

    #[test]
    fn an_override_replaces_the_origin_or_the_whole_url() {
        let set =
            variables(&[("SVC_BASE_URL", "http://127.0.0.1:9/"), ("SVC_UP_BASE_URL", "http://127.0.0.1:8/other")]);
        let routes = Routes::new(&meta(), Some("svc"), set);
        let base = routes.get("BASE_URL").unwrap();
        assert_eq!(base.base.as_deref(), Some("http://127.0.0.1:9/v1"));
        assert_eq!(
            (base.operator.as_deref(), base.admitted.as_str()),
            (Some("http://127.0.0.1:9/"), "http://127.0.0.1:9/")
        );
        assert_eq!(base.origins.as_ref().unwrap()[0].authority(), "127.0.0.1:9");
        assert_eq!(routes.get("UP_BASE_URL").unwrap().base.as_deref(), Some("http://127.0.0.1:8/other"));
        // Another server's variables are not this one's.
        let other = Routes::new(&meta(), Some("other"), variables(&[("SVC_BASE_URL", "http://127.0.0.1:9")]));
        assert!(other.iter().all(|route| route.operator.is_none()));
    }

    #[test]
    fn a_script_declaring_no_base_url_reaches_only_what_an_operator_names() {
        let bare = Meta::from_json(serde_json::json!({ "title": "t", "description": "d" })).unwrap();
        assert_eq!(Routes::new(&bare, Some("adhoc"), variables(&[])).iter().count(), 0);
        let named = Routes::new(&bare, Some("adhoc"), variables(&[("ADHOC_BASE_URL", "http://127.0.0.1:7")]));
        assert_eq!(named.get("BASE_URL").unwrap().admitted, "http://127.0.0.1:7");
        // Without a name there is no variable to read.
        assert_eq!(Routes::new(&bare, None, variables(&[("ADHOC_BASE_URL", "http://127.0.0.1:7")])).iter().count(), 0);
    }

    #[test]
    fn routes_are_for_one_server_and_one_snapshot_of_the_variables() {
        let snapshot = variables(&[("A", "1")]);
        let routes = Routes::new(&meta(), Some("svc"), snapshot.clone());
        assert!(routes.are_for(Some("svc"), &snapshot));
        assert!(!routes.are_for(Some("svc"), &variables(&[("A", "1")])), "an equal snapshot is a new one");
        assert!(!routes.are_for(Some("other"), &snapshot));
        assert!(!routes.are_for(None, &snapshot));
    }

    #[test]
    fn a_base_url_is_finished_with_a_scheme_and_no_doubled_slash() {
        assert_eq!(finished("shop.example//admin//api"), "https://shop.example/admin/api");
        assert_eq!(finished("http://127.0.0.1:9//v1"), "http://127.0.0.1:9/v1");
    }

    #[test]
    fn the_path_of_a_base_url_template_is_what_follows_its_host() {
        assert_eq!(path_of("https://api.stripe.com"), "");
        assert_eq!(path_of("https://api.stripe.com/"), "");
        assert_eq!(path_of("https://{JIRA_DOMAIN}/rest/api/3"), "/rest/api/3");
        assert_eq!(path_of("https://api.telegram.org/bot{TELEGRAM_BOT_TOKEN}"), "/bot{TELEGRAM_BOT_TOKEN}");
        assert_eq!(path_of("{SHOPIFY_STORE_URL}/admin/api/2024-10"), "/admin/api/2024-10");
        assert_eq!(path_of("http://127.0.0.1:8080"), "");
    }
}
