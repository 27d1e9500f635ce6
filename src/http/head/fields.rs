//! The header fields the engine reads: `Host`, `Content-Length`,
//! `Transfer-Encoding`, `Connection`, `Expect`, and the body framing they
//! decide.

use super::*;

/// Bytes allowed in a Host value or an authority (reg-name, IP literal, port).
pub(super) static HOST_BYTE: [bool; 256] = uri_bytes(b"[]");

/// What the framing-relevant header fields said.
#[derive(Default)]
pub(super) struct Fields {
    pub(super) content_length: Option<u64>,
    /// Whether a Transfer-Encoding field was seen; `chunked` whether its last coding was chunked.
    pub(super) transfer_encoding: bool,
    pub(super) chunked: bool,
    pub(super) other_coding: bool,
    pub(super) host: bool,
    pub(super) close: bool,
    pub(super) keep_alive: bool,
    pub(super) upgrade: bool,
    pub(super) expect: Expect,
}

/// A Host value: host characters only; like nginx, not empty and no empty label (`..`).
pub(super) fn valid_host(value: &[u8]) -> bool {
    // Without a branch per byte: a Host value is read on every request.
    let (mut ok, mut prev_dot) = (true, false);
    for &b in value {
        let dot = b == b'.';
        ok &= HOST_BYTE[b as usize] & !(dot & prev_dot);
        prev_dot = dot;
    }
    ok && !value.is_empty()
}

impl Fields {
    #[inline(always)]
    pub(super) fn read(&mut self, name: &[u8], value: &[u8]) -> Result<(), HeadError> {
        // Dispatch on length first: most fields are none of these and fail one compare.
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => {
                if self.host {
                    return Err(HeadError::DuplicateHost);
                }
                if !valid_host(value) {
                    return Err(HeadError::BadHost);
                }
                self.host = true;
            }
            6 if name.eq_ignore_ascii_case(b"expect") => {
                self.expect = if value.eq_ignore_ascii_case(b"100-continue")
                    && self.expect != Expect::Unsupported
                {
                    Expect::Continue
                } else {
                    Expect::Unsupported
                };
            }
            10 if name.eq_ignore_ascii_case(b"connection") => {
                // The usual single tokens first, then the general list.
                if value.eq_ignore_ascii_case(b"keep-alive") {
                    self.keep_alive = true;
                    return Ok(());
                }
                for token in value.split(|&b| b == b',').map(trim) {
                    if token.eq_ignore_ascii_case(b"close") {
                        self.close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        self.keep_alive = true;
                    } else if token.eq_ignore_ascii_case(b"upgrade") {
                        self.upgrade = true;
                    }
                }
            }
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                if self.content_length.is_some() {
                    return Err(HeadError::DuplicateContentLength);
                }
                self.content_length = Some(parse_content_length(value)?);
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                if self.transfer_encoding {
                    return Err(HeadError::BadTransferEncoding);
                }
                self.transfer_encoding = true;
                self.read_codings(value)?;
            }
            _ => {}
        }
        Ok(())
    }

    pub(super) fn read_codings(&mut self, value: &[u8]) -> Result<(), HeadError> {
        let mut chunked_seen = false;
        let mut last_chunked = false;
        for coding in value.split(|&b| b == b',').map(trim) {
            if coding.is_empty() {
                return Err(HeadError::BadTransferEncoding);
            }
            if coding.eq_ignore_ascii_case(b"chunked") {
                if chunked_seen {
                    // RFC 9112 6.1: chunked must not be applied more than once.
                    return Err(HeadError::BadTransferEncoding);
                }
                chunked_seen = true;
                last_chunked = true;
            } else {
                if !coding
                    .iter()
                    .all(|&b| b.is_ascii_graphic() || b == b' ' || b == b'\t')
                {
                    return Err(HeadError::BadTransferEncoding);
                }
                self.other_coding = true;
                last_chunked = false;
            }
        }
        self.chunked = last_chunked;
        Ok(())
    }

    pub(super) fn framing(&self, version: Version) -> Result<Framing, HeadError> {
        if self.transfer_encoding {
            if version == Version::Http10 {
                return Err(HeadError::ChunkedOnHttp10);
            }
            if self.content_length.is_some() {
                return Err(HeadError::LengthAndChunked);
            }
            if !self.chunked {
                return Err(HeadError::BadTransferEncoding);
            }
            if self.other_coding {
                return Err(HeadError::UnsupportedTransferCoding);
            }
            return Ok(Framing::Chunked);
        }
        Ok(match self.content_length {
            None | Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
        })
    }
}

/// Content-Length: one or more ASCII digits, nothing else, no overflow.
pub(super) fn parse_content_length(value: &[u8]) -> Result<u64, HeadError> {
    if value.is_empty() {
        return Err(HeadError::BadContentLength);
    }
    let mut n: u64 = 0;
    for &b in value {
        if !b.is_ascii_digit() {
            return Err(HeadError::BadContentLength);
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(HeadError::BadContentLength)?;
    }
    Ok(n)
}
