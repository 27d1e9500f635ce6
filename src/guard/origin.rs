//! DNS-rebinding defence shared by the MCP endpoints (`/mcp`, `/ws`) and
//! the operations endpoints.
//!
//! A request without `Origin` comes from a non-browser client and passes
//! the Origin check. A browser page's `Origin` must be on the allow-list or
//! be a loopback origin; a loopback origin must also be talking to a
//! loopback `Host` (otherwise a rebound DNS name is pointing a page at this
//! server). An `Origin` is parsed as the URL origin it must be
//! (`scheme://host[:port]`, nothing else: no user info, no path), so
//! `http://127.0.0.1:80@evil.example` is not taken for loopback.
//!
//! Independently, a server that lists the `Host` names it answers to
//! refuses every other name: a page on a rebound name sends no `Origin` on
//! a same-origin `GET`, but its `Host` still names the attacker's domain.

use crate::http::{KnownHeader, Request};

/// Why a request's origin was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OriginRefused {
    /// The `Origin` is neither loopback nor allow-listed.
    Origin,
    /// A loopback `Origin` with a `Host` that is not loopback.
    Host,
    /// A `Host` not on the server's list of names.
    UnknownHost,
}

impl OriginRefused {
    /// The message sent back with the 403.
    pub fn message(self) -> &'static str {
        match self {
            OriginRefused::Origin => "Origin not allowed",
            OriginRefused::Host => "Host not allowed for a loopback Origin",
            OriginRefused::UnknownHost => "Host not allowed",
        }
    }
}

/// The request's `Host` header as text (empty when missing or not UTF-8).
fn host_of<'a>(req: &Request<'a>) -> &'a str {
    req.known_header(KnownHeader::Host)
        .and_then(|h| std::str::from_utf8(h).ok())
        .unwrap_or_default()
}

/// Checks `Host` against `allowed_hosts` (host names, any port; an empty
/// list allows any).
pub fn check_host(req: &Request<'_>, allowed_hosts: &[String]) -> Result<(), OriginRefused> {
    if allowed_hosts.is_empty() {
        return Ok(());
    }
    let name = parse_authority(host_of(req)).map(|(h, _)| h);
    if name.is_some_and(|n| allowed_hosts.iter().any(|a| a.eq_ignore_ascii_case(n))) {
        Ok(())
    } else {
        Err(OriginRefused::UnknownHost)
    }
}

/// Checks `Origin` (and `Host` for loopback origins) against `allowed`
/// (exact `scheme://host[:port]` strings).
pub fn check(req: &Request<'_>, allowed: &[String]) -> Result<(), OriginRefused> {
    let Some(origin) = req.known_header(KnownHeader::Origin) else {
        return Ok(());
    };
    let origin = std::str::from_utf8(origin).unwrap_or_default();
    if allowed.iter().any(|a| a == origin) {
        return Ok(());
    }
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    let origin_host = authority.and_then(parse_authority).map(|(h, _)| h);
    if !origin_host.is_some_and(is_loopback_host) {
        return Err(OriginRefused::Origin);
    }
    if !parse_authority(host_of(req)).is_some_and(|(h, _)| is_loopback_host(h)) {
        return Err(OriginRefused::Host);
    }
    Ok(())
}

/// Whether a host name (without port) is a loopback name.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || matches!(host, "127.0.0.1" | "[::1]")
}

/// Splits `host[:port]` (an `Origin`'s authority or a `Host` header) into
/// its host and port; `None` unless it is exactly that: a registered name
/// or IPv4 address of the characters a host may have, or a bracketed IPv6
/// address, then at most a port of 1 to 5 digits. User info (`@`), paths,
/// queries and anything else are refused.
pub(crate) fn parse_authority(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, rest) = authority.split_at(end + 1);
        let inner = &host[1..host.len() - 1];
        if inner.is_empty()
            || !inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return None;
        }
        (host, rest)
    } else {
        let end = authority.find(':').unwrap_or(authority.len());
        let (host, rest) = authority.split_at(end);
        let name_char = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'.';
        if host.is_empty() || !host.bytes().all(name_char) {
            return None;
        }
        (host, rest)
    };
    let port = match port.strip_prefix(':') {
        None if port.is_empty() => None,
        None => return None,
        Some(digits) => {
            if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            Some(digits.parse().ok()?)
        }
    };
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_are_parsed_strictly() {
        assert_eq!(
            parse_authority("localhost:8000"),
            Some(("localhost", Some(8000)))
        );
        assert_eq!(parse_authority("[::1]:8000"), Some(("[::1]", Some(8000))));
        assert_eq!(parse_authority("127.0.0.1"), Some(("127.0.0.1", None)));
        for bad in [
            "127.0.0.1:80@evil.example",
            "127.0.0.1@evil.example",
            "user:pass@127.0.0.1",
            "127.0.0.1/x",
            "127.0.0.1:",
            "127.0.0.1:99999999",
            "127.0.0.1:8000/",
            "[::1]x",
            "",
            "[]",
            "local host",
        ] {
            assert_eq!(parse_authority(bad), None, "{bad}");
        }
        assert!(is_loopback_host("LOCALHOST"));
        assert!(!is_loopback_host("evil.example"));
    }

    fn run(headers: &str, allowed_hosts: &[&str]) -> Result<(), OriginRefused> {
        let raw = format!("GET /mcp HTTP/1.1\r\n{headers}\r\n\r\n");
        let hosts: Vec<String> = allowed_hosts.iter().map(|h| h.to_string()).collect();
        crate::http::request::with_parsed(raw.as_bytes(), |req| {
            check_host(&req, &hosts)?;
            check(&req, &["https://app.example".to_string()])
        })
    }

    #[test]
    fn origins_with_user_info_are_not_loopback() {
        assert_eq!(
            run(
                "Host: 127.0.0.1:8000\r\nOrigin: http://127.0.0.1:80@evil.example",
                &[]
            ),
            Err(OriginRefused::Origin)
        );
        assert_eq!(
            run(
                "Host: 127.0.0.1:8000\r\nOrigin: http://localhost.evil.example",
                &[]
            ),
            Err(OriginRefused::Origin)
        );
        assert_eq!(
            run("Host: 127.0.0.1:8000\r\nOrigin: http://localhost:3000", &[]),
            Ok(())
        );
        assert_eq!(
            run("Host: evil.example\r\nOrigin: http://localhost:3000", &[]),
            Err(OriginRefused::Host)
        );
        assert_eq!(run("Host: a\r\nOrigin: https://app.example", &[]), Ok(()));
    }

    #[test]
    fn listed_hosts_are_enforced() {
        let loopback = ["localhost", "127.0.0.1", "[::1]"];
        assert_eq!(run("Host: 127.0.0.1:8000", &loopback), Ok(()));
        assert_eq!(run("Host: LOCALHOST:8000", &loopback), Ok(()));
        assert_eq!(
            run("Host: rebound.evil.example:8000", &loopback),
            Err(OriginRefused::UnknownHost)
        );
        // No list: any Host (a server behind a proxy that names it).
        assert_eq!(run("Host: rebound.evil.example:8000", &[]), Ok(()));
    }
}
