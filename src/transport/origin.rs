//! DNS-rebinding defence shared by the MCP endpoints (`/mcp`, `/ws`).
//!
//! A request without `Origin` comes from a non-browser client and passes. A
//! browser page's `Origin` must be on the allow-list or be a loopback
//! origin; a loopback origin must also be talking to a loopback `Host`
//! (otherwise a rebound DNS name is pointing a page at this server).

use crate::http::Request;

/// Why a request's origin was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OriginRefused {
    /// The `Origin` is neither loopback nor allow-listed.
    Origin,
    /// A loopback `Origin` with a `Host` that is not loopback.
    Host,
}

impl OriginRefused {
    /// The message sent back with the 403.
    pub(crate) fn message(self) -> &'static str {
        match self {
            OriginRefused::Origin => "Origin not allowed",
            OriginRefused::Host => "Host not allowed for a loopback Origin",
        }
    }
}

/// Checks `Origin` (and `Host` for loopback origins) against `allowed`
/// (exact `scheme://host[:port]` strings).
pub(crate) fn check(req: &Request<'_>, allowed: &[String]) -> Result<(), OriginRefused> {
    let Some(origin) = req.header("origin") else {
        return Ok(());
    };
    let origin = std::str::from_utf8(origin).unwrap_or_default();
    if allowed.iter().any(|a| a == origin) {
        return Ok(());
    }
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or_default();
    if !is_loopback_host(strip_port(authority)) {
        return Err(OriginRefused::Origin);
    }
    let host = req
        .header("host")
        .and_then(|h| std::str::from_utf8(h).ok())
        .unwrap_or_default();
    if !is_loopback_host(strip_port(host)) {
        return Err(OriginRefused::Host);
    }
    Ok(())
}

/// Whether a host name (without port) is a loopback name.
fn is_loopback_host(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "[::1]")
}

/// `host[:port]` without the port.
fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.find(']').map_or(authority, |i| &authority[..=i]);
    }
    authority.split(':').next().unwrap_or(authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_stripped() {
        assert_eq!(strip_port("localhost:8000"), "localhost");
        assert_eq!(strip_port("[::1]:8000"), "[::1]");
        assert_eq!(strip_port("127.0.0.1"), "127.0.0.1");
        assert!(is_loopback_host(strip_port("[::1]")));
        assert!(!is_loopback_host(strip_port("evil.example:80")));
    }
}
