//! Egress decided when the shared client connects, for every request whatever sent it: the addresses a
//! host name may resolve to (never link-local or a cloud-metadata service), and the redirects it follows
//! (within one origin, so a credential never follows a `Location` elsewhere). What each server may reach
//! is decided before that, by its [`Policy`](super::Policy).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Redirects a request may follow within its origin.
const MAX_REDIRECTS: usize = 10;

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
}
