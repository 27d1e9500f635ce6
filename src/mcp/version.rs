//! MCP protocol versions and negotiation.

/// A protocol version this library speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum ProtocolVersion {
    /// 2024-11-05: the first published version.
    V2024_11_05,
    /// 2025-03-26: Streamable HTTP; the only version with JSON-RPC batches.
    V2025_03_26,
    /// 2025-06-18: structured tool output, elicitation.
    V2025_06_18,
    /// 2025-11-25: the last version with the `initialize` handshake.
    V2025_11_25,
    /// 2026-07-28: stateless; every request carries its version in `_meta`.
    V2026_07_28,
}

/// Versions that begin with `initialize`, oldest first.
pub const HANDSHAKE_VERSIONS: [ProtocolVersion; 4] = [
    ProtocolVersion::V2024_11_05,
    ProtocolVersion::V2025_03_26,
    ProtocolVersion::V2025_06_18,
    ProtocolVersion::V2025_11_25,
];

/// Versions without a handshake (`server/discover`, per-request `_meta`).
#[cfg(test)]
pub const MODERN_VERSIONS: [ProtocolVersion; 1] = [ProtocolVersion::V2026_07_28];

/// Every version this library speaks, oldest first.
pub const ALL_VERSIONS: [ProtocolVersion; 5] = [
    ProtocolVersion::V2024_11_05,
    ProtocolVersion::V2025_03_26,
    ProtocolVersion::V2025_06_18,
    ProtocolVersion::V2025_11_25,
    ProtocolVersion::V2026_07_28,
];

/// The `_meta` key that carries a request's protocol version (2026-07-28).
pub const PROTOCOL_VERSION_META_KEY: &str = "io.modelcontextprotocol/protocolVersion";

impl ProtocolVersion {
    /// The version's date string.
    pub fn as_str(self) -> &'static str {
        match self {
            ProtocolVersion::V2024_11_05 => "2024-11-05",
            ProtocolVersion::V2025_03_26 => "2025-03-26",
            ProtocolVersion::V2025_06_18 => "2025-06-18",
            ProtocolVersion::V2025_11_25 => "2025-11-25",
            ProtocolVersion::V2026_07_28 => "2026-07-28",
        }
    }

    /// Parses a version string this library supports.
    pub fn parse(s: &str) -> Option<ProtocolVersion> {
        ProtocolVersion::from_bytes(s.as_bytes())
    }

    /// [`ProtocolVersion::parse`] of a header's bytes as sent (no UTF-8
    /// check first: every version is ASCII, so other bytes match none).
    pub(crate) fn from_bytes(b: &[u8]) -> Option<ProtocolVersion> {
        Some(match b {
            b"2024-11-05" => ProtocolVersion::V2024_11_05,
            b"2025-03-26" => ProtocolVersion::V2025_03_26,
            b"2025-06-18" => ProtocolVersion::V2025_06_18,
            b"2025-11-25" => ProtocolVersion::V2025_11_25,
            b"2026-07-28" => ProtocolVersion::V2026_07_28,
            _ => return None,
        })
    }

    /// The version to answer an `initialize` that asked for `requested`: the
    /// same one when it is a handshake version we speak, else our newest
    /// handshake version (the client then decides whether it can go on).
    pub fn negotiate(requested: &str) -> ProtocolVersion {
        match ProtocolVersion::parse(requested) {
            Some(v) if HANDSHAKE_VERSIONS.contains(&v) => v,
            _ => ProtocolVersion::V2025_11_25,
        }
    }

    /// Whether this version has no handshake and stamps every result with `resultType`.
    pub fn is_modern(self) -> bool {
        self >= ProtocolVersion::V2026_07_28
    }

    /// Whether JSON-RPC batches are allowed.
    pub fn allows_batches(self) -> bool {
        self == ProtocolVersion::V2025_03_26
    }

    /// Whether tool results may carry `structuredContent` and tools an `outputSchema`.
    pub fn has_structured_output(self) -> bool {
        self >= ProtocolVersion::V2025_06_18
    }
}

/// Every supported version, as the JSON array sent in `-32022` errors and `server/discover`.
pub(crate) fn supported_json() -> &'static str {
    r#"["2024-11-05","2025-03-26","2025-06-18","2025-11-25","2026-07-28"]"#
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        assert_eq!(
            ProtocolVersion::negotiate("2024-11-05"),
            ProtocolVersion::V2024_11_05
        );
        assert_eq!(
            ProtocolVersion::negotiate("2025-06-18"),
            ProtocolVersion::V2025_06_18
        );
        assert_eq!(
            ProtocolVersion::negotiate("1999-01-01"),
            ProtocolVersion::V2025_11_25
        );
        // 2026-07-28 has no handshake: an initialize asking for it gets the newest handshake version.
        assert_eq!(
            ProtocolVersion::negotiate("2026-07-28"),
            ProtocolVersion::V2025_11_25
        );
        let listed: Vec<&str> = ALL_VERSIONS.iter().map(|v| v.as_str()).collect();
        assert_eq!(supported_json(), serde_json::to_string(&listed).unwrap());
        for v in HANDSHAKE_VERSIONS.iter().chain(&MODERN_VERSIONS) {
            assert_eq!(ProtocolVersion::parse(v.as_str()), Some(*v));
            assert!(supported_json().contains(v.as_str()));
        }
        assert!(ProtocolVersion::V2025_03_26.allows_batches());
        assert!(!ProtocolVersion::V2025_06_18.allows_batches());
    }
}
