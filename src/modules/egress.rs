//! Egress: where a server may send requests, decided before a byte leaves.
//!
//! A server's secrets are meant for its service, so a server sends only to its *declared destinations*:
//!
//! * its base URL (`META.base_url`), or what the operator set in `<NAME>_BASE_URL` instead;
//! * each named base URL in `META.hosts`, or `<NAME>_<HOST>_BASE_URL` instead;
//! * its OAuth URLs (`META.oauth2.token_url`, `authorize_url`), or `<NAME>_TOKEN_URL` /
//!   `<NAME>_AUTHORIZE_URL` instead.
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
//! and after DNS resolution in [`Resolver`], the resolver of the shared HTTP client — unless an operator
//! override names the address literally. Redirects are followed only within one origin ([`redirects`]),
//! so a credential never follows a `Location` elsewhere. `db::connect` URLs pass the same check
//! ([`check_database`]), with their names resolved and checked before connecting.
//!
//! A refusal is `forbidden` (403) with the refused `host`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::Url;
use rhai::EvalAltResult;

use super::Services;
use crate::engine::{Context, raise};
use crate::error::Error;
use crate::meta::Meta;

/// Redirects a request may follow within its origin.
const MAX_REDIRECTS: usize = 10;

/// One declared destination.
#[derive(Debug, Clone, PartialEq)]
struct Allowed {
    scheme: String,
    /// Lower-case host; with `wildcard`, the part after the wildcard label (`api.mailchimp.com`).
    host: String,
    wildcard: bool,
    port: u16,
    /// Set by an operator (an override variable) rather than by the script.
    operator: bool,
}

/// Where one invocation may send.
#[derive(Debug, Default)]
pub struct Policy {
    allowed: Vec<Allowed>,
}

/// The operator's override `<NAME>_<SUFFIX>` for the server an invocation runs as (`STRIPE_BASE_URL`).
pub fn operator_url(services: &Services, context: &Context, suffix: &str) -> Option<String> {
    let name = context.server.as_ref()?;
    services.variable(&format!("{}_{suffix}", name.to_uppercase()))
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
    for (field, suffix) in [("token_url", "TOKEN_URL"), ("authorize_url", "AUTHORIZE_URL")] {
        if let Some(url) = meta.json.pointer(&format!("/oauth2/{field}")).and_then(|v| v.as_str()) {
            declared.push((suffix.to_owned(), url.to_owned()));
        }
    }
    declared
}

impl Policy {
    /// The destinations of the invocation in `context`: each declared template (or its override),
    /// placeholders filled. A template whose placeholders cannot be filled (a secret not set) admits
    /// nothing.
    pub fn of(services: &Services, context: &Context) -> Policy {
        let mut policy = Policy::default();
        let mut suffixes: Vec<(String, Option<String>)> =
            declared(&context.script.meta).into_iter().map(|(suffix, url)| (suffix, Some(url))).collect();
        if !suffixes.iter().any(|(suffix, _)| suffix == "BASE_URL") {
            suffixes.push(("BASE_URL".into(), None));
        }
        for (suffix, template) in suffixes {
            let (template, operator) = match operator_url(services, context, &suffix) {
                Some(url) => (url, true),
                None => match template {
                    Some(template) => (template, false),
                    None => continue,
                },
            };
            if let Ok(url) = super::api::fill(&template, services, context) {
                policy.admit(&url, operator);
            }
        }
        policy
    }

    /// Adds the origin of `url` (a base URL; `https://` when it names no scheme), or of each seed host of a
    /// MongoDB URI.
    fn admit(&mut self, url: &str, operator: bool) {
        match mongodb_seeds(url) {
            Some(seeds) => seeds.iter().for_each(|seed| self.admit_origin(seed, operator)),
            None => self.admit_origin(url, operator),
        }
    }

    fn admit_origin(&mut self, url: &str, operator: bool) {
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
        if let Some(origin) = parsed.ok().and_then(|url| Origin::of(&url)) {
            self.allowed.push(Allowed {
                scheme: origin.scheme,
                host: origin.host,
                wildcard: wildcard.is_some(),
                port: origin.port,
                operator,
            });
        }
    }

    /// Whether a request to `url` may be sent: `forbidden` with the host when not.
    pub fn check(&self, url: &Url) -> Result<(), Error> {
        let origin = Origin::of(url).ok_or_else(|| refused(url.as_str(), "the URL names no host"))?;
        let matching: Vec<&Allowed> = self.allowed.iter().filter(|allowed| origin.is(allowed)).collect();
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
        Ok(())
    }
}

/// A URL's origin, normalised: scheme aliases folded, host lower-case, port explicit.
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    fn of(url: &Url) -> Option<Origin> {
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
        Some(Origin { scheme: scheme.to_owned(), host, port: url.port().or(default)? })
    }

    fn is(&self, allowed: &Allowed) -> bool {
        let host = match allowed.wildcard {
            false => self.host == allowed.host,
            true => {
                self.host.strip_suffix(allowed.host.as_str()).and_then(|label| label.strip_suffix('.')).is_some_and(
                    |label| !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
                )
            }
        };
        host && self.scheme == allowed.scheme && self.port == allowed.port
    }

    /// `host` or `host:port` when the port is not the scheme's default: what the refusal names.
    fn authority(&self) -> String {
        let default = match self.scheme.as_str() {
            "http" => 80,
            "https" => 443,
            "postgres" => 5432,
            "mysql" => 3306,
            _ => 0,
        };
        if self.port == default { self.host.clone() } else { format!("{}:{}", self.host, self.port) }
    }
}

fn refused(host: &str, why: &str) -> Error {
    Error::Refused { host: host.to_owned(), message: format!("refused to send to {host}: it {why}") }
}

/// Checks a request an invocation is about to send through `http` or `api`.
pub fn check(services: &Services, context: &Context, url: &Url) -> Result<(), Box<EvalAltResult>> {
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
    let operator = policy.allowed.iter().any(|allowed| origin.is(allowed) && allowed.operator);
    let name = (origin.host.trim_start_matches('[').trim_end_matches(']').to_owned(), origin.port);
    let addresses = crate::engine::wait(async move { tokio::net::lookup_host(name).await.map(Vec::from_iter) })?;
    if !operator && addresses.is_ok_and(|all| all.iter().any(|a| forbidden_address(a.ip()))) {
        return Err(raise(refused(&origin.authority(), "resolves to a link-local or cloud-metadata address")));
    }
    Ok(())
}

/// The seed hosts of a MongoDB URI (`mongodb://user:pw@a:27017,b:27018/db?…`), each as
/// `scheme://host:port`, credentials left out; `None` for any other URL.
fn mongodb_seeds(uri: &str) -> Option<Vec<String>> {
    let (scheme, rest) = uri.split_once("://")?;
    if scheme != "mongodb" && scheme != "mongodb+srv" {
        return None;
    }
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let hosts = authority.rsplit_once('@').map_or(authority, |(_, hosts)| hosts);
    Some(hosts.split(',').map(|host| format!("{scheme}://{host}")).collect())
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

/// Whether `ip` is link-local or a cloud provider's metadata service, in any of its spellings.
pub fn forbidden_address(ip: IpAddr) -> bool {
    fn v4(ip: Ipv4Addr) -> bool {
        // 169.254.0.0/16 holds the AWS, GCP, Azure and OCI metadata services; 100.100.100.200 is Alibaba's.
        ip.is_link_local() || ip == Ipv4Addr::new(100, 100, 100, 200)
    }
    match ip {
        IpAddr::V4(ip) => v4(ip),
        IpAddr::V6(ip) => {
            let segments = ip.segments();
            let embedded = || Ipv4Addr::from((u128::from(ip) & 0xffff_ffff) as u32);
            let mapped_or_compatible = segments[..5] == [0; 5] && (segments[5] == 0xffff || segments[5] == 0);
            let nat64 = segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
            ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
                || (segments[0] & 0xffc0) == 0xfe80
                || ((mapped_or_compatible || nat64) && v4(embedded()))
        }
    }
}

/// Why the resolver gave no address.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} resolves only to link-local or cloud-metadata addresses", self.0)
    }
}

impl std::error::Error for Refused {}

/// The shared client's resolver: the system's answer without link-local and metadata addresses, decided
/// when connecting (so a name that changes its answer between a check and the connection cannot slip
/// through). A URL naming such an address literally never reaches a resolver: [`Policy::check`] decides.
pub struct Resolver;

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed = allowed_addresses(found);
            if allowed.is_empty() {
                return Err(Box::new(Refused(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The addresses a connection may use.
fn allowed_addresses(found: Vec<SocketAddr>) -> Vec<SocketAddr> {
    found.into_iter().filter(|address| !forbidden_address(address.ip())).collect()
}

/// The shared client's redirect policy: follow within the same origin (at most ten times), never to
/// another, so that headers, query and body credentials are never replayed elsewhere. The script sees
/// the redirect response itself.
pub fn redirect(attempt: reqwest::redirect::Attempt<'_>) -> reqwest::redirect::Action {
    let same_origin = attempt.previous().last().is_some_and(|previous| {
        previous.scheme() == attempt.url().scheme()
            && previous.host_str() == attempt.url().host_str()
            && previous.port_or_known_default() == attempt.url().port_or_known_default()
    });
    match same_origin && attempt.previous().len() <= MAX_REDIRECTS {
        true => attempt.follow(),
        false => attempt.stop(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(entries: &[(&str, bool)]) -> Policy {
        let mut policy = Policy::default();
        for (url, operator) in entries {
            policy.admit(url, *operator);
        }
        policy
    }

    fn decide(policy: &Policy, url: &str) -> Result<(), (String, String)> {
        policy.check(&Url::parse(url).unwrap()).map_err(|e| match e {
            Error::Refused { host, message } => (host, message),
            other => panic!("not a refusal: {other:?}"),
        })
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
        policy.admit("mongodb://ada:secret@127.0.0.1:27017,127.0.0.1:27018/app", false);
        assert!(policy.check(&Url::parse("mongodb://127.0.0.1:27018").unwrap()).is_ok());
        assert!(policy.check(&Url::parse("mongodb://127.0.0.1:27019").unwrap()).is_err());
    }

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
    fn every_spelling_of_a_metadata_address_is_forbidden() {
        for address in [
            "169.254.169.254",
            "169.254.0.1",
            "100.100.100.200",
            "fd00:ec2::254",
            "fe80::1",
            "febf::1",
            "::ffff:169.254.169.254",
            "::169.254.169.254",
            "64:ff9b::169.254.169.254",
        ] {
            assert!(forbidden_address(address.parse().unwrap()), "{address}");
        }
        for address in
            ["127.0.0.1", "10.0.0.1", "93.184.216.34", "::1", "::ffff:127.0.0.1", "fd00:ec2::253", "2001:db8::1"]
        {
            assert!(!forbidden_address(address.parse().unwrap()), "{address}");
        }
    }

    #[test]
    fn the_resolver_drops_forbidden_answers() {
        let found: Vec<SocketAddr> =
            ["169.254.169.254:0", "127.0.0.1:0", "[fd00:ec2::254]:0"].iter().map(|a| a.parse().unwrap()).collect();
        assert_eq!(allowed_addresses(found), vec!["127.0.0.1:0".parse::<SocketAddr>().unwrap()]);
        assert!(allowed_addresses(vec!["169.254.169.254:0".parse().unwrap()]).is_empty());
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
