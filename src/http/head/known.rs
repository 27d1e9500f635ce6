//! The header fields every MCP request is asked for, found once while the
//! head is parsed, so a lookup by one of these names reads one slot instead
//! of comparing the name with every field received.

/// A header field name the engine and the MCP transports look up on most
/// requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum KnownHeader {
    /// `Host`
    Host,
    /// `Origin`
    Origin,
    /// `Accept`
    Accept,
    /// `Content-Type`
    ContentType,
    /// `Authorization`
    Authorization,
    /// `Last-Event-ID`
    LastEventId,
    /// `Mcp-Session-Id`
    McpSessionId,
    /// `MCP-Protocol-Version`
    McpProtocolVersion,
    /// `Mcp-Method`
    McpMethod,
    /// `Mcp-Name`
    McpName,
}

/// How many [`KnownHeader`]s there are.
pub(crate) const KNOWN_HEADERS: usize = KnownHeader::McpName as usize + 1;

impl KnownHeader {
    /// The known header named `name` (any case), if it is one.
    pub fn of(name: &[u8]) -> Option<KnownHeader> {
        Self::by(name, |name, k| {
            name.eq_ignore_ascii_case(k.name().as_bytes())
        })
    }

    /// [`KnownHeader::of`] for a name already checked to be an HTTP token
    /// (RFC 9110 5.6.2), as the head parser's are: compared a word at a time.
    #[inline]
    pub(crate) fn of_token(name: &[u8]) -> Option<KnownHeader> {
        Self::by(name, |name, k| token_eq(name, k.name().as_bytes()))
    }

    /// The known header `same` finds `name` to be, among the at most two
    /// of its length.
    #[inline(always)]
    fn by(name: &[u8], same: impl Fn(&[u8], KnownHeader) -> bool) -> Option<KnownHeader> {
        // The length first: most names differ in it, and it leaves at most
        // two names to compare.
        let (a, b) = match name.len() {
            4 => (KnownHeader::Host, None),
            6 => (KnownHeader::Origin, Some(KnownHeader::Accept)),
            8 => (KnownHeader::McpName, None),
            10 => (KnownHeader::McpMethod, None),
            12 => (KnownHeader::ContentType, None),
            13 => (KnownHeader::Authorization, Some(KnownHeader::LastEventId)),
            14 => (KnownHeader::McpSessionId, None),
            20 => (KnownHeader::McpProtocolVersion, None),
            _ => return None,
        };
        if same(name, a) {
            return Some(a);
        }
        b.filter(|b| same(name, *b))
    }

    /// The name, lowercase.
    pub fn name(self) -> &'static str {
        match self {
            KnownHeader::Host => "host",
            KnownHeader::Origin => "origin",
            KnownHeader::Accept => "accept",
            KnownHeader::ContentType => "content-type",
            KnownHeader::Authorization => "authorization",
            KnownHeader::LastEventId => "last-event-id",
            KnownHeader::McpSessionId => "mcp-session-id",
            KnownHeader::McpProtocolVersion => "mcp-protocol-version",
            KnownHeader::McpMethod => "mcp-method",
            KnownHeader::McpName => "mcp-name",
        }
    }
}

/// Whether the token `name` equals `lower` (lowercase letters and `-`, at
/// least 4 bytes, as long as `name`) in any case. Setting bit 5 folds a
/// letter to lowercase; among token bytes only letters fold onto letters,
/// and nothing but `-` itself onto `-` (only CR would, and no token holds
/// one), so the words compare equal exactly when the names do.
#[inline(always)]
fn token_eq(name: &[u8], lower: &[u8]) -> bool {
    let n = name.len();
    if n != lower.len() || n < 4 {
        return false;
    }
    if n < 8 {
        return word4(name, 0) | 0x2020_2020 == word4(lower, 0)
            && word4(name, n - 4) | 0x2020_2020 == word4(lower, n - 4);
    }
    const FOLD: u64 = 0x2020_2020_2020_2020;
    let mut at = 0;
    while at + 8 < n {
        if word8(name, at) | FOLD != word8(lower, at) {
            return false;
        }
        at += 8;
    }
    word8(name, n - 8) | FOLD == word8(lower, n - 8)
}

/// The 4 bytes of `s` from `at` as a little-endian word.
#[inline(always)]
fn word4(s: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&s[at..at + 4]);
    u32::from_le_bytes(w)
}

/// The 8 bytes of `s` from `at` as a little-endian word.
#[inline(always)]
fn word8(s: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&s[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Where the first field of each [`KnownHeader`] is among a head's fields:
/// its index plus one, 0 when absent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KnownFields([u16; KNOWN_HEADERS]);

impl KnownFields {
    /// Notes that field `index` is named `name`, unless an earlier field of
    /// that name was noted.
    #[inline]
    pub(crate) fn note(&mut self, name: &[u8], index: usize) {
        if let Some(k) = KnownHeader::of_token(name) {
            let slot = &mut self.0[k as usize];
            if *slot == 0 {
                // At most MAX_HEADERS_CAP (256) fields: the index fits.
                *slot = (index + 1) as u16;
            }
        }
    }

    /// The index of the first field named `k`, if there is one.
    #[inline]
    pub fn first(&self, k: KnownHeader) -> Option<usize> {
        match self.0[k as usize] {
            0 => None,
            i => Some(i as usize - 1),
        }
    }

    /// The value of the first field named `k` among `fields` (the head's,
    /// spans into `buf`), if there is one.
    #[inline]
    pub fn value<'b>(
        &self,
        k: KnownHeader,
        fields: &[super::HeaderSpan],
        buf: &'b [u8],
    ) -> Option<&'b [u8]> {
        Some(fields.get(self.first(k)?)?.value.slice(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_found_in_any_case_and_no_other() {
        let all = [
            KnownHeader::Host,
            KnownHeader::Origin,
            KnownHeader::Accept,
            KnownHeader::ContentType,
            KnownHeader::Authorization,
            KnownHeader::LastEventId,
            KnownHeader::McpSessionId,
            KnownHeader::McpProtocolVersion,
            KnownHeader::McpMethod,
            KnownHeader::McpName,
        ];
        assert_eq!(all.len(), KNOWN_HEADERS);
        for (i, k) in all.into_iter().enumerate() {
            assert_eq!(k as usize, i);
            for name in [
                k.name().to_owned(),
                k.name().to_ascii_uppercase(),
                mixed_case(k.name()),
            ] {
                assert_eq!(KnownHeader::of(name.as_bytes()), Some(k), "{name}");
                assert_eq!(KnownHeader::of_token(name.as_bytes()), Some(k), "{name}");
            }
        }
        for other in [
            "",
            "hosts",
            "expect",
            "content-length",
            "mcp-param-x",
            "accepts",
            "hos_",
            "mcp_name",
            "content_type",
            "mcp-session-iD2",
            "origin!",
            "mcp~method",
        ] {
            assert_eq!(KnownHeader::of(other.as_bytes()), None, "{other}");
            assert_eq!(KnownHeader::of_token(other.as_bytes()), None, "{other}");
        }
    }

    fn mixed_case(name: &str) -> String {
        name.chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 2 == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect()
    }

    #[test]
    fn every_token_byte_folds_onto_a_name_byte_only_when_it_is_one() {
        // Each byte a token may hold, in each position of each name: the
        // word compare agrees with the byte-wise case-insensitive one.
        let token_bytes: Vec<u8> = (0u8..=127)
            .filter(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b))
            .collect();
        for k in [
            KnownHeader::Host,
            KnownHeader::McpProtocolVersion,
            KnownHeader::ContentType,
        ] {
            let name = k.name().as_bytes();
            for at in 0..name.len() {
                for &b in &token_bytes {
                    let mut probe = name.to_vec();
                    probe[at] = b;
                    assert_eq!(
                        token_eq(&probe, name),
                        probe.eq_ignore_ascii_case(name),
                        "{k:?} with {:?} at {at}",
                        b as char
                    );
                }
            }
        }
    }

    #[test]
    fn the_first_field_of_a_name_is_kept() {
        let mut known = KnownFields::default();
        known.note(b"Accept", 3);
        known.note(b"accept", 7);
        known.note(b"x-other", 1);
        assert_eq!(known.first(KnownHeader::Accept), Some(3));
        assert_eq!(known.first(KnownHeader::Host), None);
        known.note(b"host", 255);
        assert_eq!(known.first(KnownHeader::Host), Some(255));
    }
}
