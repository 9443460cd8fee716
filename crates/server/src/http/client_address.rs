//! Where a request comes from: the TCP peer, or, when the peer is a proxy the operator
//! trusts (`--trusted-proxy CIDR`), the address that proxy says it forwarded for.
//!
//! Throttling, the addresses recorded on sign-ins, tokens and account events, and the request
//! logs all read the one [`ClientAddress`] this module's middleware puts on each request.
//! Forwarded headers are attacker input: they count only when the TCP peer is inside a
//! trusted CIDR, only the header the operator named is read (a proxy that sets
//! `X-Forwarded-For` passes a client's own `Forwarded` header through untouched, and the
//! other way round), and the address taken is the right-most one that is not itself a trusted
//! proxy (entries further left were written by whoever sent the request to the first proxy).
//! A header that cannot be read where it matters gives the peer's address, never an error.

use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName};
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

/// The address a request is attributed to (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

/// Which forwarded header a trusted proxy sets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx, HAProxy, Caddy, Traefik, Envoy, most
    /// cloud load balancers).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for="[2001:db8::1]:4711"`.
    Forwarded,
}

impl ForwardedHeader {
    fn name(self) -> HeaderName {
        match self {
            ForwardedHeader::XForwardedFor => HeaderName::from_static("x-forwarded-for"),
            ForwardedHeader::Forwarded => HeaderName::from_static("forwarded"),
        }
    }
}

/// The proxies whose forwarded headers are believed, and which header they set. Empty (the
/// default): every forwarded header is ignored and the TCP peer is the client.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    networks: Arc<[IpNet]>,
    header: ForwardedHeader,
}

impl TrustedProxies {
    /// Trusts `networks`, which set `header`.
    pub fn new(networks: Vec<IpNet>, header: ForwardedHeader) -> Self {
        TrustedProxies {
            networks: networks.into(),
            header,
        }
    }

    /// Whether `ip` is inside a trusted network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.networks.iter().any(|network| network.contains(&ip))
    }

    /// The client of a request from `peer` with `headers` (see the module documentation).
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.contains(peer) {
            return peer;
        }
        // Right to left, across header lines in reverse order; the parse stops at the client.
        let mut leftmost = peer;
        for value in headers.get_all(self.header.name()).iter().rev() {
            // Obsolete non-ASCII bytes: not a header a proxy we trust wrote.
            let Ok(text) = value.to_str() else {
                return peer;
            };
            let hops: Box<dyn Iterator<Item = Option<IpAddr>>> = match self.header {
                ForwardedHeader::XForwardedFor => Box::new(text.rsplit(',').map(parse_node)),
                ForwardedHeader::Forwarded => match forwarded_for(text) {
                    Some(list) => Box::new(list.into_iter().rev()),
                    None => return peer,
                },
            };
            for hop in hops {
                let Some(ip) = hop.map(|ip| ip.to_canonical()) else {
                    return peer;
                };
                if !self.contains(ip) {
                    return ip;
                }
                leftmost = ip;
            }
        }
        // Every hop is a trusted proxy (or there was no header): the farthest one is the
        // client.
        leftmost
    }
}

/// Parses a `--trusted-proxy` value: a CIDR (`10.0.0.0/8`, `2001:db8::/32`) or a single
/// address.
pub fn parse_network(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    IpNet::from_str(text)
        .or_else(|_| IpAddr::from_str(text).map(IpNet::from))
        .map_err(|_| format!("{text:?} is not a CIDR (like 10.0.0.0/8) nor an IP address"))
}

/// Middleware: puts the request's [`ClientAddress`] in its extensions, for the request span,
/// the handlers and the throttle. Requests without a peer (none in hubkeyd: every listener
/// records it) get none and fail where the address is needed.
pub async fn resolve(
    State(proxies): State<TrustedProxies>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    if let Some(peer) = peer {
        let client = proxies.client_address(peer, request.headers());
        request.extensions_mut().insert(ClientAddress(client));
    }
    next.run(request).await
}

/// One node of a forwarded list: `192.0.2.1`, `192.0.2.1:80`, `2001:db8::1`,
/// `[2001:db8::1]`, `[2001:db8::1]:4711`. `None` for anything else (`unknown`, an obfuscated
/// `_name`, garbage).
fn parse_node(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return inside.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    let (host, port) = text.rsplit_once(':')?;
    if !is_port(port) {
        return None;
    }
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

fn is_port(text: &str) -> bool {
    text.parse::<u16>().is_ok()
}

/// The `for` node of each element of one `Forwarded` header value (RFC 7239 section 4), in
/// order; `None` when the value does not parse. An element without exactly one `for`
/// parameter gives `Some(None)` for that element: the proxy did not say whom it forwarded.
fn forwarded_for(value: &str) -> Option<Vec<Option<IpAddr>>> {
    let mut elements = Vec::new();
    let mut for_value: Option<String> = None;
    let mut for_count = 0usize;
    let mut pair = String::new();
    let mut chars = value.chars();
    let mut in_quotes = false;
    let finish_pair =
        |pair: &mut String, for_value: &mut Option<String>, for_count: &mut usize| -> bool {
            let text = std::mem::take(pair);
            let text = text.trim();
            if text.is_empty() {
                return true;
            }
            let Some((name, value)) = text.split_once('=') else {
                return false;
            };
            if name.trim().eq_ignore_ascii_case("for") {
                *for_count += 1;
                *for_value = Some(value.trim().to_owned());
            }
            true
        };
    let mut finish_element = |for_value: &mut Option<String>, for_count: &mut usize| {
        let node = match (for_value.take(), *for_count) {
            (Some(value), 1) => unquote(&value).and_then(|node| parse_node(&node)),
            _ => None,
        };
        *for_count = 0;
        elements.push(node);
    };
    loop {
        let Some(c) = chars.next() else {
            if in_quotes || !finish_pair(&mut pair, &mut for_value, &mut for_count) {
                return None;
            }
            finish_element(&mut for_value, &mut for_count);
            return Some(elements);
        };
        match c {
            '"' => {
                in_quotes = !in_quotes;
                pair.push(c);
            }
            '\\' if in_quotes => {
                pair.push(c);
                pair.push(chars.next()?);
            }
            ';' if !in_quotes => {
                if !finish_pair(&mut pair, &mut for_value, &mut for_count) {
                    return None;
                }
            }
            ',' if !in_quotes => {
                if !finish_pair(&mut pair, &mut for_value, &mut for_count) {
                    return None;
                }
                finish_element(&mut for_value, &mut for_count);
            }
            c => pair.push(c),
        }
    }
}

/// A token as it is, a quoted-string without its quotes and escapes; `None` when malformed.
fn unquote(value: &str) -> Option<String> {
    let Some(inner) = value.strip_prefix('"') else {
        return (!value.contains('"')).then(|| value.to_owned());
    };
    let inner = inner.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn proxies(networks: &[&str], header: ForwardedHeader) -> TrustedProxies {
        TrustedProxies::new(
            networks.iter().map(|n| parse_network(n).unwrap()).collect(),
            header,
        )
    }

    fn headers(name: &str, values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn nodes_in_every_form() {
        assert_eq!(parse_node(" 192.0.2.1 "), Some(ip("192.0.2.1")));
        assert_eq!(parse_node("192.0.2.1:8080"), Some(ip("192.0.2.1")));
        assert_eq!(parse_node("2001:db8::1"), Some(ip("2001:db8::1")));
        assert_eq!(parse_node("[2001:db8::1]"), Some(ip("2001:db8::1")));
        assert_eq!(parse_node("[2001:db8::1]:4711"), Some(ip("2001:db8::1")));
        for bad in [
            "",
            "unknown",
            "_hidden",
            "192.0.2.1:99999",
            "[192.0.2.1]",
            "[2001:db8::1]x",
            "2001:db8::1:80:x",
            "example.com",
        ] {
            assert_eq!(parse_node(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn forwarded_elements() {
        assert_eq!(
            forwarded_for(r#"for="[2001:db8:cafe::17]:4711""#),
            Some(vec![Some(ip("2001:db8:cafe::17"))])
        );
        assert_eq!(
            forwarded_for(r#"For=192.0.2.60;proto=http;by=203.0.113.43, for=198.51.100.17"#),
            Some(vec![Some(ip("192.0.2.60")), Some(ip("198.51.100.17"))])
        );
        // A quoted comma or semicolon does not split.
        assert_eq!(
            forwarded_for(r#"by="a,b;c";for=192.0.2.1"#),
            Some(vec![Some(ip("192.0.2.1"))])
        );
        assert_eq!(forwarded_for("for=unknown"), Some(vec![None]));
        assert_eq!(forwarded_for("proto=https"), Some(vec![None]));
        assert_eq!(forwarded_for("for=1.2.3.4;for=5.6.7.8"), Some(vec![None]));
        assert_eq!(forwarded_for(r#"for="1.2.3.4"#), None);
        assert_eq!(forwarded_for("for"), None);
    }

    #[test]
    fn untrusted_peers_headers_are_ignored() {
        let trusted = proxies(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        let spoofed = headers("x-forwarded-for", &["198.51.100.1"]);
        assert_eq!(
            trusted.client_address(ip("192.0.2.9"), &spoofed),
            ip("192.0.2.9")
        );
        let nobody = TrustedProxies::default();
        assert_eq!(
            nobody.client_address(ip("10.0.0.1"), &spoofed),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn rightmost_untrusted_hop_wins() {
        let trusted = proxies(
            &["10.0.0.0/8", "2001:db8:ffff::/48"],
            ForwardedHeader::XForwardedFor,
        );
        let chain = headers(
            "x-forwarded-for",
            &["6.6.6.6, 198.51.100.7", "10.1.1.1, 2001:db8:ffff::2"],
        );
        assert_eq!(
            trusted.client_address(ip("10.0.0.1"), &chain),
            ip("198.51.100.7")
        );
        // A peer on a dual-stack socket shows up IPv4-mapped.
        assert_eq!(
            trusted.client_address(ip("::ffff:10.0.0.1"), &chain),
            ip("198.51.100.7")
        );
        let all_trusted = headers("x-forwarded-for", &["10.9.9.9, 10.1.1.1"]);
        assert_eq!(
            trusted.client_address(ip("10.0.0.1"), &all_trusted),
            ip("10.9.9.9")
        );
        assert_eq!(
            trusted.client_address(ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn malformed_hops_before_the_client_give_the_peer() {
        let trusted = proxies(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        for bad in ["198.51.100.7, garbage", "198.51.100.7,", "unknown"] {
            let map = headers("x-forwarded-for", &[bad]);
            assert_eq!(trusted.client_address(ip("10.0.0.1"), &map), ip("10.0.0.1"));
        }
        // Garbage left of the client is the client's own business.
        let map = headers("x-forwarded-for", &["garbage, 198.51.100.7"]);
        assert_eq!(
            trusted.client_address(ip("10.0.0.1"), &map),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn only_the_configured_header_counts() {
        let xff = proxies(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        let forwarded = proxies(&["10.0.0.0/8"], ForwardedHeader::Forwarded);
        let mut map = headers("forwarded", &[r#"for="[2001:db8::1]:4711""#]);
        map.append("x-forwarded-for", HeaderValue::from_static("192.0.2.5"));
        assert_eq!(xff.client_address(ip("10.0.0.1"), &map), ip("192.0.2.5"));
        assert_eq!(
            forwarded.client_address(ip("10.0.0.1"), &map),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn networks_and_addresses_parse() {
        assert!(parse_network("127.0.0.1/32").is_ok());
        assert!(parse_network("::1").is_ok());
        assert!(parse_network("fd00::/8").is_ok());
        assert!(parse_network("10.0.0.0/33").is_err());
        assert!(parse_network("proxy.example").is_err());
    }
}
