//! Egress: where a server may send requests, decided before a byte leaves.
//!
//! A server's secrets are meant for its service, so a server sends only to its *declared destinations*:
//!
//! * its base URL (`META.base_url`), or what the operator set in `<NAME>_BASE_URL` instead;
//! * each named base URL in `META.hosts`, or `<NAME>_<HOST>_BASE_URL` instead;
//! * its OAuth URLs (`META.oauth2.token_url`, `authorize_url`, `revoke_url`), or `<NAME>_TOKEN_URL` /
//!   `<NAME>_AUTHORIZE_URL` / `<NAME>_REVOKE_URL` instead;
//! * for a server that receives webhooks, the URL an operator forwards its events to
//!   (`<NAME>_WEBHOOK_FORWARD_URL`, see `webhook::forward`).
//!
//! `{NAME}` placeholders are filled from the server's declared secrets and variables (a Shopify store's
//! domain), and a leftmost label written `*` or `<name>` stands for any one DNS label (Mailchimp's
//! `https://<dc>.api.mailchimp.com`). A script with none of these — an ad-hoc script — reaches only what an
//! operator names for it with `<NAME>_BASE_URL`, and nothing at all when it runs without a name.
//!
//! A destination is an *origin*: scheme, host and port (the scheme's default when none is written), as
//! browsers compare them. `https://api.x.com` does not admit `http://api.x.com`, and two services on
//! one machine on different ports are two destinations (which is also what keeps tests honest: two
//! mocks on 127.0.0.1 are two hosts).
//!
//! Beyond the declared list, link-local and cloud-metadata addresses (169.254.0.0/16, `fd00:ec2::254`,
//! `fe80::/10`, their IPv4-mapped, -compatible and NAT64 forms) are refused — as a literal in a URL here,
//! and after DNS resolution in [`connection::Resolver`], the resolver of the shared HTTP client — unless an
//! operator override names the address literally. Redirects are followed only within one origin
//! ([`connection::redirect`]), so a credential never follows a `Location` elsewhere. `db::connect` URLs pass the same check
//! ([`check_database`]), with their names resolved and checked before connecting.
//!
//! A refusal is `forbidden` (403) with the refused `host`.

pub mod connection;

use std::net::IpAddr;
use std::sync::Arc;

use reqwest::Url;
use rhai::EvalAltResult;

use super::services::Services;
use super::template;
use crate::engine::{Context, raise};
use crate::error::Error;
use crate::meta::destinations::{Origin, mongodb_seeds, origins};
use crate::meta::routes::Routes;
use connection::forbidden_address;

/// Where one invocation may send: its routes (see [`Routes`]), and the origins of those it filled.
pub struct Policy {
    routes: Arc<Routes>,
    /// The origins of each route with a placeholder, filled for this invocation, and whether an
    /// operator named it.
    filled: Vec<(Origin, bool)>,
}

impl Policy {
    /// The destinations of the invocation in `context`: each declared URL (or its override), a URL
    /// with placeholders filled now. One whose placeholders cannot be filled (a secret not set) admits
    /// nothing.
    pub fn of(services: &Services, context: &Context) -> Policy {
        let routes = template::routes(services, context);
        let mut filled = Vec::new();
        for route in routes.iter().filter(|route| route.origins.is_none()) {
            if let Ok(url) = template::fill(&route.admitted, services, context) {
                filled.extend(origins(&url).into_iter().map(|origin| (origin, route.operator.is_some())));
            }
        }
        Policy { routes, filled }
    }

    /// Every admitted origin, and whether an operator named it.
    fn allowed(&self) -> impl Iterator<Item = (&Origin, bool)> {
        let planned = self
            .routes
            .iter()
            .flat_map(|route| route.origins.iter().flatten().map(move |origin| (origin, route.operator.is_some())));
        planned.chain(self.filled.iter().map(|(origin, operator)| (origin, *operator)))
    }

    /// Whether a request to `url` may be sent: `forbidden` with the host when not. When it may, the
    /// declared destination it matched (`host`, `host:port`, `*.host` for a wildcard), which names it
    /// in the metrics: one label per declaration however many hosts a wildcard admits.
    pub fn check(&self, url: &Url) -> Result<String, Error> {
        let origin = Origin::of(url).ok_or_else(|| refused(url.as_str(), "the URL names no host"))?;
        let mut matching = self.allowed().filter(|(allowed, _)| admits(allowed, &origin)).peekable();
        let Some(&(first, _)) = matching.peek() else {
            return Err(refused(
                &origin.authority(),
                "is not one of this server's declared hosts (its base URL, META.hosts, OAuth URLs, or an operator's <NAME>_BASE_URL)",
            ));
        };
        let literal = origin.host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok();
        if literal.is_some_and(forbidden_address) && !matching.any(|(_, operator)| operator) {
            return Err(refused(
                &origin.authority(),
                "is a link-local or cloud-metadata address; only an operator override may name one",
            ));
        }
        Ok(first.authority())
    }

    /// Whether an operator named a destination that admits `origin`.
    fn operator_admits(&self, origin: &Origin) -> bool {
        self.allowed().any(|(allowed, operator)| operator && admits(allowed, origin))
    }
}

/// Whether the declared origin `allowed` admits a request's `origin`: same scheme and port, and the same
/// host, or for a wildcard one more label (letters, digits, `-`) before it.
fn admits(allowed: &Origin, origin: &Origin) -> bool {
    let host = match allowed.wildcard {
        false => origin.host == allowed.host,
        true => origin
            .host
            .strip_suffix(allowed.host.as_str())
            .and_then(|label| label.strip_suffix('.'))
            .is_some_and(|label| !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')),
    };
    host && origin.scheme == allowed.scheme && origin.port == allowed.port
}

fn refused(host: &str, why: &str) -> Error {
    Error::Refused { host: host.to_owned(), message: format!("refused to send to {host}: it {why}") }
}

/// Checks a request an invocation is about to send through `http` or `api`, and returns the declared
/// destination it goes to (see [`Policy::check`]).
pub fn check(services: &Services, context: &Context, url: &Url) -> Result<String, Box<EvalAltResult>> {
    Policy::of(services, context).check(url).map_err(raise)
}

/// Query parameters through which a database URL could name another host or a local socket.
const DATABASE_REROUTES: [&str; 5] = ["host", "hostaddr", "port", "socket", "unix_socket"];

/// Checks a `db::connect` URL: one declared host, no parameter that reroutes it, and every address its
/// name resolves to allowed. The script waits for the name resolution without holding its thread.
pub fn check_database(services: &Services, context: &Context, text: &str) -> Result<(), Box<EvalAltResult>> {
    let malformed = || raise(Error::BadRequest("db::connect takes a postgres:// or mysql:// URL".into()));
    let url = Url::parse(text).map_err(|_| malformed())?;
    if let Some((name, _)) = url.query_pairs().find(|(name, _)| DATABASE_REROUTES.contains(&name.as_ref())) {
        return Err(raise(refused(url.host_str().unwrap_or(""), &format!("is rerouted by the parameter '{name}'"))));
    }
    let policy = Policy::of(services, context);
    policy.check(&url).map_err(raise)?;
    let origin = Origin::of(&url).ok_or_else(malformed)?;
    let operator = policy.operator_admits(&origin);
    let name = (origin.host.trim_start_matches('[').trim_end_matches(']').to_owned(), origin.port);
    let addresses = crate::engine::wait(async move { tokio::net::lookup_host(name).await.map(Vec::from_iter) })?;
    if !operator && addresses.is_ok_and(|all| all.iter().any(|a| forbidden_address(a.ip()))) {
        return Err(raise(refused(&origin.authority(), "resolves to a link-local or cloud-metadata address")));
    }
    Ok(())
}

/// Checks a `db::mongo` URI: every seed host declared and resolving only to allowed addresses. A
/// `mongodb+srv` name is looked up by the driver, which admits only hosts under the seed's own parent
/// domain.
pub fn check_mongodb(services: &Services, context: &Context, uri: &str) -> Result<(), Box<EvalAltResult>> {
    let seeds = mongodb_seeds(uri)
        .filter(|seeds| seeds.iter().all(|s| !s.ends_with("://")))
        .ok_or_else(|| raise(Error::BadRequest("db::mongo takes a mongodb:// or mongodb+srv:// URI".into())))?;
    seeds.iter().try_for_each(|seed| check_database(services, context, seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A policy admitting each URL's origins, named by an operator or not.
    fn policy(entries: &[(&str, bool)]) -> Policy {
        let routes = Arc::new(Routes::new(&crate::meta::Meta::default(), None, Arc::default()));
        let filled = entries.iter().flat_map(|(url, operator)| origins(url).into_iter().map(|o| (o, *operator)));
        Policy { routes, filled: filled.collect() }
    }

    fn decide(policy: &Policy, url: &str) -> Result<(), (String, String)> {
        policy.check(&Url::parse(url).unwrap()).map(drop).map_err(|e| match e {
            Error::Refused { host, message } => (host, message),
            other => panic!("not a refusal: {other:?}"),
        })
    }

    #[test]
    fn a_request_is_labelled_by_the_declaration_it_matched() {
        let p = policy(&[("https://<dc>.api.mailchimp.com/3.0", false), ("http://127.0.0.1:4001", true)]);
        let label = |url: &str| p.check(&Url::parse(url).unwrap()).unwrap();
        assert_eq!(label("https://us1.api.mailchimp.com/3.0/lists"), "*.api.mailchimp.com");
        assert_eq!(label("https://us21.api.mailchimp.com/"), "*.api.mailchimp.com");
        assert_eq!(label("http://127.0.0.1:4001/x"), "127.0.0.1:4001");
    }

    #[test]
    fn only_declared_origins_are_admitted() {
        let p = policy(&[("https://api.stripe.com/v1", false), ("http://127.0.0.1:4001", true)]);
        assert_eq!(decide(&p, "https://api.stripe.com/v1/charges?x=1"), Ok(()));
        assert_eq!(decide(&p, "https://API.Stripe.com:443/other"), Ok(()));
        assert_eq!(decide(&p, "http://127.0.0.1:4001/collect"), Ok(()));
        for (url, host) in [
            ("https://evil.example/collect", "evil.example"),
            ("http://api.stripe.com/v1", "api.stripe.com"),
            ("https://api.stripe.com:8443/v1", "api.stripe.com:8443"),
            ("http://127.0.0.1:4002/collect", "127.0.0.1:4002"),
            ("https://api.stripe.com.evil.example/", "api.stripe.com.evil.example"),
            ("https://x.api.stripe.com/", "x.api.stripe.com"),
        ] {
            let (refused, message) = decide(&p, url).unwrap_err();
            assert_eq!(refused, host, "{url}");
            assert!(message.contains("not one of this server's declared hosts"), "{message}");
        }
    }

    /// URL spellings that try to pass for a declared host: each must be refused.
    const DISGUISES: [&str; 14] = [
        "https://api.stripe.com@evil.example/",
        "https://api.stripe.com:443@evil.example/",
        "https://evil.example\\@api.stripe.com/",
        "https://evil.example#@api.stripe.com/",
        "https://evil.example?@api.stripe.com/",
        "https://api.stripe.com.evil.example/",
        "https://api.stripe.com./",
        "https://evilapi.stripe.com/",
        "http://api.stripe.com/",
        "https://api.stripe.com:444/",
        "https://[::ffff:7f00:1]/",
        "https://2852039166/",
        "https://0xa9.0xfe.0xa9.0xfe/",
        "https://xn--pi-7ka.stripe.com/",
    ];

    #[test]
    fn disguised_hosts_are_refused() {
        let p = policy(&[("https://api.stripe.com/v1", false)]);
        for url in DISGUISES {
            assert!(decide(&p, url).is_err(), "{url} passed for api.stripe.com");
        }
        let metadata = policy(&[("https://169.254.169.254", false)]);
        for url in ["https://2852039166/", "https://0xa9.0xfe.0xa9.0xfe/", "https://169.254.43518/"] {
            let (host, message) = decide(&metadata, url).unwrap_err();
            assert_eq!(host, "169.254.169.254", "{url}");
            assert!(message.contains("cloud-metadata"), "{url}: {message}");
        }
    }

    #[test]
    fn a_mongodb_uri_admits_each_seed_host_without_its_credentials() {
        let seeds = mongodb_seeds("mongodb://ada:p%40ss@db1.example.com:27017,db2.example.com/app?replicaSet=rs0");
        assert_eq!(seeds.unwrap(), ["mongodb://db1.example.com:27017", "mongodb://db2.example.com"]);
        assert_eq!(
            mongodb_seeds("mongodb+srv://cluster0.example.net/").unwrap(),
            ["mongodb+srv://cluster0.example.net"]
        );
        assert_eq!(mongodb_seeds("postgres://u@h/db"), None);
        let policy = policy(&[("mongodb://ada:secret@127.0.0.1:27017,127.0.0.1:27018/app", false)]);
        assert!(policy.check(&Url::parse("mongodb://127.0.0.1:27018").unwrap()).is_ok());
        assert!(policy.check(&Url::parse("mongodb://127.0.0.1:27019").unwrap()).is_err());
    }

    #[test]
    fn a_nameless_script_admits_nothing() {
        let p = policy(&[]);
        assert_eq!(decide(&p, "http://127.0.0.1:8080/").unwrap_err().0, "127.0.0.1:8080");
    }

    #[test]
    fn a_wildcard_label_admits_exactly_one_label() {
        let p = policy(&[("https://<dc>.api.mailchimp.com/3.0", false), ("acme.myshopify.com/admin", false)]);
        assert_eq!(decide(&p, "https://us6.api.mailchimp.com/3.0/lists"), Ok(()));
        assert_eq!(decide(&p, "https://acme.myshopify.com/admin/shop.json"), Ok(()));
        for url in [
            "https://api.mailchimp.com/",
            "https://a.b.api.mailchimp.com/",
            "https://evilapi.mailchimp.com/",
            "http://us6.api.mailchimp.com/",
            "https://other.myshopify.com/",
        ] {
            assert!(decide(&p, url).is_err(), "{url}");
        }
    }

    #[test]
    fn metadata_and_link_local_addresses_are_refused_unless_an_operator_names_them() {
        let declared_by_script = policy(&[
            ("http://169.254.169.254", false),
            ("http://[fd00:ec2::254]", false),
            ("http://[::ffff:169.254.169.254]", false),
            ("http://[fe80::1]", false),
        ]);
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00:ec2::254]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://[fe80::1]/",
        ] {
            let (_, message) = decide(&declared_by_script, url).unwrap_err();
            assert!(message.contains("link-local or cloud-metadata"), "{url}: {message}");
        }
        let named_by_operator = policy(&[("http://169.254.169.254", true)]);
        assert_eq!(decide(&named_by_operator, "http://169.254.169.254/latest/meta-data/"), Ok(()));
    }

    #[test]
    fn database_origins_fold_scheme_aliases_and_default_ports() {
        let p = policy(&[("postgres://db.internal", false), ("mysql://127.0.0.1:3307", false)]);
        assert_eq!(decide(&p, "postgresql://user:pw@db.internal:5432/app"), Ok(()));
        assert_eq!(decide(&p, "mariadb://root@127.0.0.1:3307/test"), Ok(()));
        assert!(decide(&p, "postgres://db.internal:5433/app").is_err());
        assert!(decide(&p, "mysql://127.0.0.1/test").is_err());
    }
}
