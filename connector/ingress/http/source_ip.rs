//! Who is calling: the client address behind trusted proxies, and the source allow-list.
//!
//! The client is the TCP peer, unless the peer is a trusted proxy: then the forwarding header
//! is walked from the right (the hop the nearest proxy appended) past every trusted address,
//! and the first untrusted hop is the client. Entries to its left were written by the client
//! itself and are never believed, so a forged `X-Forwarded-For` from an untrusted peer, or a
//! forged prefix behind a trusted one, changes nothing.

use std::net::{IpAddr, SocketAddr};

use axum::http::{header, HeaderMap};

pub(crate) use crate::ingress::net::{Cidr, ForwardedHeader};

/// The allow-list and the trusted proxies.
#[derive(Debug, Clone, Default)]
pub struct SourcePolicy {
    allow: Vec<Cidr>,
    trusted: Vec<Cidr>,
    header: ForwardedHeader,
}

impl SourcePolicy {
    /// `allow` empty allows any source.
    pub fn new(allow: &[Cidr], trusted: &[Cidr], header: ForwardedHeader) -> Self {
        Self {
            allow: allow.to_vec(),
            trusted: trusted.to_vec(),
            header,
        }
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(ip))
    }

    /// The client address. `None` when a trusted proxy forwarded a hop that is not an
    /// address (`unknown`, an obfuscated name, garbage): the client cannot be known, which the
    /// allow-list treats as not allowed.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> Option<IpAddr> {
        let mut current = peer.to_canonical();
        if !self.is_trusted(current) {
            return Some(current);
        }
        let hops = match self.header {
            ForwardedHeader::XForwardedFor => x_forwarded_for(headers),
            ForwardedHeader::Forwarded => forwarded(headers),
        };
        for hop in hops.into_iter().rev() {
            let ip = hop?.to_canonical();
            if !self.is_trusted(ip) {
                return Some(ip);
            }
            current = ip;
        }
        // Every hop is a trusted proxy: the left-most is as far as we can see.
        Some(current)
    }

    /// True when the TCP peer alone is enough to refuse the connection: an allow-list is set,
    /// the peer is not a trusted proxy (whose clients are known only from a header), and the
    /// peer is not on the list.
    pub fn refuses_peer(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        !self.allow.is_empty() && !self.is_trusted(peer) && !self.is_allowed(Some(peer))
    }

    /// True when the allow-list is empty or contains `client`.
    pub fn is_allowed(&self, client: Option<IpAddr>) -> bool {
        if self.allow.is_empty() {
            return true;
        }
        client.is_some_and(|ip| self.allow.iter().any(|c| c.contains(ip)))
    }
}

/// Every `X-Forwarded-For` entry, left to right, across repeated headers.
fn x_forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|value| match value.to_str() {
            Ok(text) => text.split(',').map(parse_node).collect::<Vec<_>>(),
            Err(_) => vec![None],
        })
        .collect()
}

/// The `for=` of every RFC 7239 `Forwarded` element, left to right; an element without one is
/// an unknown hop.
fn forwarded(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all(header::FORWARDED)
        .iter()
        .flat_map(|value| match value.to_str() {
            Ok(text) => text
                .split(',')
                .map(|element| {
                    element.split(';').find_map(|pair| {
                        let (name, value) = pair.split_once('=')?;
                        name.trim()
                            .eq_ignore_ascii_case("for")
                            .then(|| parse_node(value))
                    })?
                })
                .collect::<Vec<_>>(),
            Err(_) => vec![None],
        })
        .collect()
}

/// `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]:443`, optionally quoted.
fn parse_node(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Some(rest) = text.strip_prefix('[') {
        return rest[..rest.find(']')?].parse().ok();
    }
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use std::str::FromStr;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|c| c.parse().unwrap()).collect()
    }

    fn headers(name: &'static str, values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(name, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn behind_proxy(header: ForwardedHeader) -> SourcePolicy {
        SourcePolicy::new(&[], &cidrs(&["10.0.0.0/8", "fd00::/8"]), header)
    }

    #[test]
    fn cidrs_parse_blocks_and_single_addresses() {
        assert!(Cidr::from_str("3.138.161.243")
            .unwrap()
            .contains(ip("3.138.161.243")));
        assert!(!Cidr::from_str("3.138.161.243")
            .unwrap()
            .contains(ip("3.138.161.244")));
        let block = Cidr::from_str("35.199.32.202/24").unwrap();
        assert_eq!(block.to_string(), "35.199.32.0/24");
        assert!(block.contains(ip("35.199.32.7")));
        assert!(Cidr::from_str("2001:db8::/32")
            .unwrap()
            .contains(ip("2001:db8::5")));
        // An IPv4-mapped IPv6 peer (dual-stack listener) is its IPv4 address.
        assert!(block.contains(ip("::ffff:35.199.32.7")));
        assert!(Cidr::from_str("35.199.32.0/33").is_err());
        assert!(Cidr::from_str("vendor").is_err());
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let policy = behind_proxy(ForwardedHeader::XForwardedFor);
        let forged = headers("x-forwarded-for", &["35.230.191.253"]);
        assert_eq!(
            policy.client_ip(ip("198.51.100.9"), &forged),
            Some(ip("198.51.100.9"))
        );
    }

    #[test]
    fn behind_a_trusted_proxy_the_right_most_untrusted_hop_is_the_client() {
        let policy = behind_proxy(ForwardedHeader::XForwardedFor);
        // The client forged the first entry; the proxy appended the real address.
        let h = headers("x-forwarded-for", &["35.230.191.253, 198.51.100.9"]);
        assert_eq!(
            policy.client_ip(ip("10.0.0.2"), &h),
            Some(ip("198.51.100.9"))
        );
        // Two proxies, one of them listed in a second header line.
        let h = headers(
            "x-forwarded-for",
            &["203.0.113.5, 198.51.100.9", "10.1.1.1"],
        );
        assert_eq!(
            policy.client_ip(ip("10.0.0.2"), &h),
            Some(ip("198.51.100.9"))
        );
        // Ports and brackets are tolerated.
        let h = headers("x-forwarded-for", &["[2001:db8::7]:443"]);
        assert_eq!(policy.client_ip(ip("fd00::1"), &h), Some(ip("2001:db8::7")));
        let h = headers("x-forwarded-for", &["198.51.100.9:5000"]);
        assert_eq!(
            policy.client_ip(ip("10.0.0.2"), &h),
            Some(ip("198.51.100.9"))
        );
    }

    #[test]
    fn a_trusted_proxy_without_a_header_is_itself_the_client() {
        let policy = behind_proxy(ForwardedHeader::XForwardedFor);
        assert_eq!(
            policy.client_ip(ip("10.0.0.2"), &HeaderMap::new()),
            Some(ip("10.0.0.2"))
        );
        let h = headers("x-forwarded-for", &["10.0.0.9, 10.0.0.3"]);
        assert_eq!(policy.client_ip(ip("10.0.0.2"), &h), Some(ip("10.0.0.9")));
    }

    #[test]
    fn an_unparseable_hop_behind_a_trusted_proxy_is_unknown_and_not_allowed() {
        let policy = SourcePolicy::new(
            &cidrs(&["35.230.191.253"]),
            &cidrs(&["10.0.0.0/8"]),
            ForwardedHeader::XForwardedFor,
        );
        let h = headers("x-forwarded-for", &["35.230.191.253, unknown"]);
        let client = policy.client_ip(ip("10.0.0.2"), &h);
        assert_eq!(client, None);
        assert!(!policy.is_allowed(client));
    }

    #[test]
    fn rfc_7239_forwarded_is_read_when_configured() {
        let policy = behind_proxy(ForwardedHeader::Forwarded);
        let h = headers(
            "forwarded",
            &[r#"for=203.0.113.5, for="[2001:db8::7]:4711";proto=https;by=10.0.0.2"#],
        );
        assert_eq!(
            policy.client_ip(ip("10.0.0.2"), &h),
            Some(ip("2001:db8::7"))
        );
        let h = headers(
            "forwarded",
            &["for=10.0.0.7;proto=https", "For=198.51.100.9"],
        );
        assert_eq!(
            policy.client_ip(ip("10.0.0.2"), &h),
            Some(ip("198.51.100.9"))
        );
        // An element without `for` (or `for=unknown`) is an unknown hop.
        let h = headers("forwarded", &["proto=https"]);
        assert_eq!(policy.client_ip(ip("10.0.0.2"), &h), None);
        // With Forwarded configured, X-Forwarded-For is ignored (a client could have sent it).
        let h = headers("x-forwarded-for", &["198.51.100.9"]);
        assert_eq!(policy.client_ip(ip("10.0.0.2"), &h), Some(ip("10.0.0.2")));
    }

    #[test]
    fn the_allow_list_checks_the_client_and_empty_allows_all() {
        let vendor = SourcePolicy::new(
            &cidrs(&["35.230.191.253/32", "35.199.32.202/32", "3.138.161.243"]),
            &[],
            ForwardedHeader::XForwardedFor,
        );
        assert!(vendor.is_allowed(Some(ip("3.138.161.243"))));
        assert!(!vendor.is_allowed(Some(ip("3.138.161.244"))));
        assert!(SourcePolicy::default().is_allowed(Some(ip("192.0.2.1"))));
        assert!(SourcePolicy::default().is_allowed(None));
    }
}
