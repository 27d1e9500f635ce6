//! The client behind a trusted proxy: `X-Forwarded-For` and `Forwarded`
//! (RFC 7239) read from the right, believed only as far as the proxies
//! that wrote them are trusted.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// The address a request from `peer` comes from: `peer` itself unless it
/// is a trusted proxy and `x_forwarded_for` (each header line, in order)
/// or, without it, `forwarded` names hops; then the rightmost hop that is
/// not a trusted proxy (or the leftmost, if all are). A hop that cannot be
/// read (`unknown`, an obfuscated name) stops the walk at the proxy that
/// wrote it. Forwarded clients have port 0.
pub(crate) fn client<'h>(
    peer: SocketAddr,
    trusted: &[IpNet],
    x_forwarded_for: impl Iterator<Item = &'h [u8]>,
    forwarded: impl Iterator<Item = &'h [u8]>,
) -> SocketAddr {
    let is_trusted = |ip: &IpAddr| is_trusted(trusted, *ip);
    if !is_trusted(&peer.ip()) {
        return peer;
    }
    let mut hops: Vec<Option<IpAddr>> = Vec::new();
    let mut saw_xff = false;
    for line in x_forwarded_for {
        saw_xff = true;
        let text = String::from_utf8_lossy(line);
        hops.extend(text.split(',').map(|h| parse_hop(h.trim())));
    }
    if !saw_xff {
        for line in forwarded {
            let text = String::from_utf8_lossy(line);
            for element in text.split(',') {
                let node = element.split(';').find_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    k.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| v.trim().trim_matches('"'))
                });
                if let Some(node) = node {
                    hops.push(parse_hop(node));
                }
            }
        }
    }
    let mut client = peer.ip();
    for hop in hops.iter().rev() {
        match hop {
            Some(ip) => {
                client = *ip;
                if !is_trusted(ip) {
                    break;
                }
            }
            None => break,
        }
    }
    if client == peer.ip() {
        return peer;
    }
    SocketAddr::new(canonical(client), 0)
}

/// One hop: an address, with or without a port (`192.0.2.1:80`,
/// `[2001:db8::1]:443`, `2001:db8::1`); `None` for anything else.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = hop.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    let inner = hop.strip_prefix('[')?.split(']').next()?;
    inner.parse().ok()
}

/// IPv4-mapped IPv6 addresses as IPv4.
/// Whether `ip` (an IPv4 address mapped into IPv6 counting as that IPv4
/// address) is in one of the `trusted` networks.
pub(crate) fn is_trusted(trusted: &[IpNet], ip: IpAddr) -> bool {
    trusted.iter().any(|n| n.contains(&canonical(ip)))
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().expect("net")).collect()
    }

    fn from(peer: &str, trusted: &[&str], xff: &[&str], fwd: &[&str]) -> String {
        let peer: SocketAddr = peer.parse().expect("peer");
        let trusted = nets(trusted);
        let xff: Vec<&[u8]> = xff.iter().map(|h| h.as_bytes()).collect();
        let fwd: Vec<&[u8]> = fwd.iter().map(|h| h.as_bytes()).collect();
        client(peer, &trusted, xff.iter().copied(), fwd.iter().copied()).to_string()
    }

    #[test]
    fn only_trusted_proxies_are_believed() {
        let lb = &["10.0.0.0/8"];
        // An untrusted peer's header is ignored.
        assert_eq!(
            from("192.0.2.5:1000", lb, &["203.0.113.9"], &[]),
            "192.0.2.5:1000"
        );
        // A trusted one names the client.
        assert_eq!(
            from("10.0.0.2:1000", lb, &["203.0.113.9"], &[]),
            "203.0.113.9:0"
        );
        // A client that sends its own header cannot choose its address:
        // the rightmost untrusted hop wins.
        assert_eq!(
            from("10.0.0.2:1000", lb, &["198.51.100.1, 203.0.113.9"], &[]),
            "203.0.113.9:0"
        );
        // Chains of trusted proxies are walked, and header lines joined.
        assert_eq!(
            from("10.0.0.2:1000", lb, &["203.0.113.9", "10.1.1.1"], &[]),
            "203.0.113.9:0"
        );
        // All trusted: the leftmost.
        assert_eq!(from("10.0.0.2:1000", lb, &["10.9.9.9"], &[]), "10.9.9.9:0");
        // Forwarded, with quoting, ports and IPv6.
        assert_eq!(
            from(
                "10.0.0.2:1",
                lb,
                &[],
                &["for=192.0.2.60;proto=http, for=\"[2001:db8:cafe::17]:4711\""]
            ),
            "[2001:db8:cafe::17]:0"
        );
        // An unreadable hop stops at the proxy that wrote it.
        assert_eq!(
            from("10.0.0.2:1", lb, &["203.0.113.9, unknown"], &[]),
            "10.0.0.2:1"
        );
        assert_eq!(from("10.0.0.2:1", lb, &[], &["for=_hidden"]), "10.0.0.2:1");
        // No header: the peer.
        assert_eq!(from("10.0.0.2:1", lb, &[], &[]), "10.0.0.2:1");
        // IPv4-mapped peers match IPv4 networks.
        assert_eq!(
            from("[::ffff:10.0.0.2]:1", lb, &["203.0.113.9:5555"], &[]),
            "203.0.113.9:0"
        );
    }
}
