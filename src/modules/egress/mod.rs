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

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, LazyLock};

use reqwest::Url;
use rhai::EvalAltResult;

use super::services::Services;
use super::template;
use crate::engine::{Context, raise};
use crate::error::Error;
use crate::meta::destinations::{Destination, Origin, mongodb_seeds, origins};
use connection::forbidden_address;

/// One admitted origin, and who named it.
#[derive(Debug, Clone, PartialEq)]
struct Allowed<'a> {
    origin: Cow<'a, Origin>,
    /// Set by an operator (an override variable) rather than by the script.
    operator: bool,
}

/// Where one invocation may send.
#[derive(Debug, Default)]
pub struct Policy<'a> {
    allowed: Vec<Allowed<'a>>,
}

impl<'a> Policy<'a> {
    /// The destinations of the invocation in `context`: each declared template (or its override),
    /// placeholders filled. A template with no placeholder was parsed when the script loaded; one whose
    /// placeholders cannot be filled (a secret not set) admits nothing.
    pub fn of(services: &Services, context: &'a Context) -> Policy<'a> {
        let mut policy = Policy::default();
        let meta = &context.script.meta;
        let declared = meta.destinations.iter().map(|d| (d.suffix.as_str(), Some(d)));
        let base_url = (!meta.destinations.iter().any(|d| d.suffix == "BASE_URL")).then_some(("BASE_URL", None));
        let forward = meta.webhook.is_some().then_some((crate::meta::webhook::FORWARD_URL, None));
        for (suffix, destination) in declared.chain(base_url).chain(forward) {
            let (url, operator) = match (template::operator_url(services, context, suffix), destination) {
                (Some(url), _) => (url, true),
                (None, Some(Destination { origins: Some(origins), .. })) => {
                    let admitted =
                        origins.iter().map(|origin| Allowed { origin: Cow::Borrowed(origin), operator: false });
                    policy.allowed.extend(admitted);
                    continue;
                }
                (None, Some(destination)) => (destination.template.clone(), false),
                (None, None) => continue,
            };
            if let Ok(filled) = template::fill(&url, services, context) {
                policy.admit(&filled, operator, filled == url);
            }
        }
        policy
    }

    /// Adds the origins of `url` (see [`origins`]); `plain` when no secret was filled into it, which
    /// lets its origins be remembered (see [`remembered`]).
    fn admit(&mut self, url: &str, operator: bool, plain: bool) {
        let origins = if plain { remembered(url) } else { origins(url).into() };
        self.allowed.extend(origins.iter().map(|origin| Allowed { origin: Cow::Owned(origin.clone()), operator }));
    }

    /// Whether a request to `url` may be sent: `forbidden` with the host when not. When it may, the
    /// declared destination it matched (`host`, `host:port`, `*.host` for a wildcard), which names it
    /// in the metrics: one label per declaration however many hosts a wildcard admits.
    pub fn check(&self, url: &Url) -> Result<String, Error> {
        let origin = Origin::of(url).ok_or_else(|| refused(url.as_str(), "the URL names no host"))?;
        let matching: Vec<&Allowed> = self.allowed.iter().filter(|allowed| admits(&allowed.origin, &origin)).collect();
        if matching.is_empty() {
            return Err(refused(
                &origin.authority(),
                "is not one of this server's declared hosts (its base URL, META.hosts, OAuth URLs, or an operator's <NAME>_BASE_URL)",
            ));
        }
        let literal = origin.host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok();
        if literal.is_some_and(forbidden_address) && !matching.iter().any(|allowed| allowed.operator) {
            return Err(refused(
                &origin.authority(),
                "is a link-local or cloud-metadata address; only an operator override may name one",
            ));
        }
        Ok(matching[0].origin.authority())
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

/// The origins [`remembered`] keeps, by URL text.
static KNOWN: LazyLock<parking_lot::RwLock<HashMap<String, Arc<[Origin]>>>> = LazyLock::new(Default::default);

/// Most URLs [`remembered`] keeps; past that it starts again (an operator has a few overrides, not
/// thousands).
const REMEMBERED: usize = 256;

/// The origins of `url` (`https://` when it names no scheme, each seed host of a MongoDB URI), parsed
/// once per text: an operator's override is the same text on every call, and parsing it cost more than
/// the rest of the check. Only text no secret was filled into is kept.
fn remembered(url: &str) -> Arc<[Origin]> {
    if let Some(known) = KNOWN.read().get(url) {
        return known.clone();
    }
    let parsed: Arc<[Origin]> = origins(url).into();
    let mut known = KNOWN.write();
    if known.len() >= REMEMBERED {
        known.clear();
    }
    known.insert(url.to_owned(), parsed.clone());
    parsed
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
    let operator = policy.allowed.iter().any(|allowed| admits(&allowed.origin, &origin) && allowed.operator);
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

    fn policy(entries: &[(&str, bool)]) -> Policy<'static> {
        let mut policy = Policy::default();
        for (url, operator) in entries {
            policy.admit(url, *operator, false);
        }
        policy
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
        let mut policy = Policy::default();
        policy.admit("mongodb://ada:secret@127.0.0.1:27017,127.0.0.1:27018/app", false, false);
        assert!(policy.check(&Url::parse("mongodb://127.0.0.1:27018").unwrap()).is_ok());
        assert!(policy.check(&Url::parse("mongodb://127.0.0.1:27019").unwrap()).is_err());
    }

    #[test]
    fn remembered_origins_are_the_parsed_ones_and_few() {
        for url in ["https://api.example.com/v1", "127.0.0.1:8080", "mongodb://a:b@h1:1,h2:2/db", "not a url"] {
            assert_eq!(*remembered(url), *origins(url), "{url}");
            assert_eq!(*remembered(url), *origins(url), "{url}, again");
        }
        for n in 0..2 * REMEMBERED {
            remembered(&format!("https://host{n}.example.com"));
            assert!(KNOWN.read().len() <= REMEMBERED);
        }
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
