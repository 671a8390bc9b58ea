//! What a web browser may make the gateway do: decided once, before routing, for every route.
//!
//! A gateway on loopback is still reachable from any page its user opens, in two ways:
//!
//! * **DNS rebinding**: `evil.example` answers with 127.0.0.1, and the page's requests reach the gateway
//!   as same-origin requests of `evil.example` — they carry `Host: evil.example`. So every request must
//!   name a host this server answers to: loopback, its listen address, its public URL's host
//!   (`serve --public-url`, which providers' webhooks and OAuth redirects arrive with) and the names
//!   given with `serve --allowed-host`. A name without a port admits every port; `*` admits any host.
//! * **Cross-origin requests**: a form, an `<img>` or a `fetch` from another origin is sent with the
//!   user's network position even though the page cannot read the answer — enough to run a script
//!   that moves money. A browser says where a request comes from in `Origin` (every POST, every
//!   cross-origin fetch) and `Sec-Fetch-Site`. A request whose `Origin` is not this server's own (the
//!   `Host` it was sent to, or the public URL's origin) nor one given with `serve --allowed-origin`, or
//!   that a browser marks `same-site` or `cross-site` without such an `Origin`, runs nothing and
//!   changes nothing. Programs (curl, SDKs, MCP clients) send neither header and are not affected.
//!   Webhooks and the OAuth callback are exempt: they carry their own proof (a signature, a `state`),
//!   and the callback is reached by the provider's cross-site redirect by design.
//!
//! The MCP transport checks `Host` again with the same list ([`allowed_hosts`]), so the two never
//! disagree. Header values are never logged; a refusal names the value back to its sender only.

use axum::http::header::{HOST, ORIGIN};
use axum::http::{HeaderMap, HeaderName, Uri};

use crate::error::Error;
use crate::runtime::Settings;

static SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

/// Routes that prove who sent them by other means than where a browser was.
const OWN_PROOF: [&str; 2] = ["/webhooks/", "/oauth/"];

/// The `Host` values this server answers to, as `serve` was configured: `allowed_hosts` (loopback,
/// the listen address, `--allowed-host`) and the public URL's host.
pub fn allowed_hosts(settings: &Settings) -> Vec<String> {
    let mut hosts = settings.allowed_hosts.clone();
    if let Some(host) = settings.public_url.as_ref().and_then(|url| url.host_str()) {
        hosts.push(match settings.public_url.as_ref().and_then(|url| url.port()) {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        });
    }
    hosts
}

/// The browser rules of one running server.
#[derive(Debug, Clone)]
pub struct Policy {
    /// `None` admits any host (`--allowed-host '*'`).
    hosts: Option<Vec<(String, Option<u16>)>>,
    /// `None` admits any origin (`--allowed-origin '*'`).
    origins: Option<Vec<String>>,
    /// The public URL's origin, as a browser writes it in `Origin`.
    public_origin: Option<String>,
}

impl Policy {
    pub fn new(settings: &Settings) -> Policy {
        let hosts = allowed_hosts(settings);
        let hosts = (!hosts.iter().any(|h| h == "*")).then(|| hosts.iter().filter_map(|h| entry(h)).collect());
        let origins = &settings.allowed_origins;
        // Written the way a browser writes `Origin` (`https://App.example.com:443/` → `https://app.example.com`).
        let written = |o: &String| match url::Url::parse(o.trim()) {
            Ok(url) => url.origin().ascii_serialization(),
            Err(_) => o.trim().trim_end_matches('/').to_ascii_lowercase(),
        };
        let origins = (!origins.iter().any(|o| o == "*")).then(|| origins.iter().map(written).collect());
        let public_origin = settings.public_url.as_ref().map(|url| url.origin().ascii_serialization());
        Policy { hosts, origins, public_origin }
    }

    /// Whether a request with this target and these headers may go on to its route.
    pub fn admit(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), Error> {
        let host = self.admit_host(uri, headers)?;
        if OWN_PROOF.iter().any(|prefix| uri.path().starts_with(prefix)) {
            return Ok(());
        }
        match headers.get(ORIGIN) {
            Some(origin) => self.admit_origin(origin.as_bytes(), host),
            None => match headers.get(&SEC_FETCH_SITE).map(|v| v.as_bytes()) {
                Some(site @ (b"cross-site" | b"same-site")) => Err(from_elsewhere(&format!(
                    "the browser marks it Sec-Fetch-Site: {}",
                    String::from_utf8_lossy(site)
                ))),
                _ => Ok(()),
            },
        }
    }

    /// The host the request was sent to, if this server answers to it. A request in absolute form
    /// (`GET http://name/ HTTP/1.1`) names it in its target too, and both must be admitted; an HTTP/2
    /// request may name it only there.
    fn admit_host<'a>(&self, uri: &'a Uri, headers: &'a HeaderMap) -> Result<&'a str, Error> {
        let mut hosts = headers.get_all(HOST).iter();
        let target = uri.authority().map(|a| a.as_str());
        // Two Host headers: a proxy in front may route by either one.
        let host = match (hosts.next(), hosts.next()) {
            (Some(host), None) => host.to_str().ok().filter(|h| !h.is_empty()),
            (None, _) => target,
            _ => None,
        };
        let host = host.ok_or_else(|| Error::BadRequest("the request needs exactly one valid Host header".into()))?;
        for named in std::iter::once(host).chain(target) {
            if !self.answers_to(named) {
                tracing::warn!("refused a request naming a Host this server does not answer to (browser rules)");
                let shown: String = named.chars().take(100).collect();
                return Err(Error::Forbidden(format!(
                    "this server does not answer to Host '{shown}' (against DNS rebinding): it answers to \
                     loopback, its listen address, its --public-url and names given with serve --allowed-host"
                )));
            }
        }
        Ok(host)
    }

    fn answers_to(&self, host: &str) -> bool {
        let Some(hosts) = &self.hosts else { return true };
        let Some((name, port)) = authority(host) else { return false };
        hosts.iter().any(|(allowed, allowed_port)| {
            allowed.eq_ignore_ascii_case(name) && allowed_port.is_none_or(|p| Some(p) == port)
        })
    }

    /// An `Origin` is admitted when it is this server's own — the host the request was sent to, or the
    /// public URL — or one the operator allowed.
    fn admit_origin(&self, origin: &[u8], host: &str) -> Result<(), Error> {
        let text = String::from_utf8_lossy(origin);
        let refused = || from_elsewhere(&format!("Origin '{}'", text.chars().take(100).collect::<String>()));
        let Ok(parsed) = url::Url::parse(&text) else {
            // `null` (a sandboxed frame, a file, a redirect across origins) names no origin at all.
            return if self.origins.is_none() { Ok(()) } else { Err(refused()) };
        };
        let own = matches!(parsed.scheme(), "http" | "https")
            && parsed.host_str().is_some_and(|name| {
                let authority = match parsed.port() {
                    Some(port) => format!("{name}:{port}"),
                    None => name.to_owned(),
                };
                authority.eq_ignore_ascii_case(host)
            });
        let serialized = parsed.origin().ascii_serialization();
        let public = self.public_origin.as_deref() == Some(serialized.as_str());
        let listed = match &self.origins {
            None => true,
            Some(origins) => origins.iter().any(|allowed| allowed.eq_ignore_ascii_case(&serialized)),
        };
        if own || public || listed { Ok(()) } else { Err(refused()) }
    }
}

/// The refusal of a request a browser sent from another origin, saying which rule refused it.
fn from_elsewhere(evidence: &str) -> Error {
    tracing::warn!("refused a request a browser sent from another origin (browser rules)");
    Error::Forbidden(format!(
        "refused a request from another origin ({evidence}): a web page elsewhere may not run or change \
         anything here; only this server's own pages and origins given with serve --allowed-origin may"
    ))
}

/// An allowed-host entry: a name, `name:port`, an IP address (IPv6 bare or in brackets).
fn entry(text: &str) -> Option<(String, Option<u16>)> {
    let text = text.trim();
    if text.parse::<std::net::IpAddr>().is_ok() {
        return Some((text.to_owned(), None));
    }
    authority(text).map(|(name, port)| (name.to_owned(), port))
}

/// A `Host` value split into name and port: `name`, `name:port`, `[v6]`, `[v6]:port`.
fn authority(text: &str) -> Option<(&str, Option<u16>)> {
    let (name, port) = match text.strip_prefix('[') {
        Some(rest) => {
            let (name, after) = rest.split_once(']')?;
            (name, if after.is_empty() { None } else { Some(after.strip_prefix(':')?) })
        }
        None => match text.rsplit_once(':') {
            Some((name, port)) if !name.contains(':') => (name, Some(port)),
            Some(_) => return None,
            None => (text, None),
        },
    };
    let port = match port {
        Some(digits) => Some(digits.parse::<u16>().ok()?),
        None => None,
    };
    (!name.is_empty()).then_some((name, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configured(hosts: &[&str], origins: &[&str], public: Option<&str>) -> Policy {
        let mut settings = Settings::new(std::path::PathBuf::new());
        settings.allowed_hosts.extend(hosts.iter().map(|h| h.to_string()));
        settings.allowed_origins = origins.iter().map(|o| o.to_string()).collect();
        settings.public_url = public.map(|p| p.parse().unwrap());
        Policy::new(&settings)
    }

    fn request(path: &str, headers: &[(&str, &str)]) -> (Uri, HeaderMap) {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
        }
        (path.parse().unwrap(), map)
    }

    fn decide(policy: &Policy, path: &str, headers: &[(&str, &str)]) -> Result<(), &'static str> {
        let (uri, map) = request(path, headers);
        policy.admit(&uri, &map).map_err(|e| e.kind())
    }

    #[test]
    fn hosts_are_loopback_the_listen_address_the_public_url_and_the_allowed() {
        let policy =
            configured(&["10.0.0.5", "gw.internal", "api.example.com:8443"], &[], Some("https://hooks.example.com"));
        for host in ["localhost:8080", "LocalHost", "127.0.0.1:1", "[::1]:8080", "10.0.0.5:80", "gw.internal"] {
            assert_eq!(decide(&policy, "/echo", &[("host", host)]), Ok(()), "{host}");
        }
        for host in ["api.example.com:8443", "hooks.example.com", "hooks.example.com:443"] {
            assert_eq!(decide(&policy, "/webhooks/stripe", &[("host", host)]), Ok(()), "{host}");
        }
        for host in ["evil.example", "api.example.com", "localhost.", "127.0.0.1.nip.io", "[::2]", "::1", "a:b:c"] {
            assert_eq!(decide(&policy, "/echo", &[("host", host)]), Err("forbidden"), "{host}");
        }
        assert_eq!(decide(&policy, "/echo", &[]), Err("bad_request"));
        assert_eq!(decide(&policy, "/echo", &[("host", "localhost"), ("host", "evil.example")]), Err("bad_request"));
        assert_eq!(decide(&policy, "http://evil.example/echo", &[("host", "localhost")]), Err("forbidden"));
        assert_eq!(decide(&policy, "http://localhost:8080/echo", &[]), Ok(()), "HTTP/2 names it in :authority");
        assert_eq!(decide(&configured(&["*"], &[], None), "/", &[("host", "anything.example")]), Ok(()));
    }

    #[test]
    fn a_browser_from_elsewhere_is_refused_unless_its_origin_is_allowed() {
        let policy = configured(&["gw.example.com"], &["https://App.example.com:443/"], Some("https://gw.example.com"));
        let host = ("host", "127.0.0.1:8080");
        let allowed: [&[(&str, &str)]; 6] = [
            &[host],
            &[host, ("origin", "http://127.0.0.1:8080"), ("sec-fetch-site", "same-origin")],
            &[host, ("origin", "https://app.example.com"), ("sec-fetch-site", "cross-site")],
            &[host, ("origin", "HTTPS://APP.example.com")],
            &[host, ("origin", "https://gw.example.com")],
            &[host, ("sec-fetch-site", "none")],
        ];
        for headers in allowed {
            assert_eq!(decide(&policy, "/echo", headers), Ok(()), "{headers:?}");
        }
        let refused: [&[(&str, &str)]; 6] = [
            &[host, ("origin", "http://evil.example")],
            &[host, ("origin", "http://127.0.0.1:3000")],
            &[host, ("origin", "https://app.example.com:444")],
            &[host, ("origin", "null")],
            &[host, ("sec-fetch-site", "cross-site")],
            &[host, ("sec-fetch-site", "same-site")],
        ];
        for headers in refused {
            assert_eq!(decide(&policy, "/echo", headers), Err("forbidden"), "{headers:?}");
            assert_eq!(decide(&policy, "/oauth/box/callback", headers), Ok(()), "{headers:?}");
            assert_eq!(decide(&policy, "/webhooks/stripe", headers), Ok(()), "{headers:?}");
        }
        let any = super::Policy { origins: None, ..policy };
        assert_eq!(decide(&any, "/echo", &[host, ("origin", "http://evil.example")]), Ok(()));
    }
}
