//! The request-target: origin form split into path and query, absolute
//! form reduced to its path, each byte checked.

use super::fields::HOST_BYTE;
use super::*;

/// Bytes allowed in an origin-form path and query (RFC 3986 pchar, `/` and `?`).
pub(super) static TARGET_BYTE: [bool; 256] = uri_bytes(b"@/?");

/// Splits a request-target into path and query, checking its form (RFC 9112 3.2).
pub(super) fn split_target(
    buf: &[u8],
    method: Method,
    target: &[u8],
) -> Result<(Span, Option<Span>), HeadError> {
    if method == Method::Connect {
        return Err(HeadError::ConnectUnsupported);
    }
    if target == b"*" {
        return if method == Method::Options {
            Ok((Span::of(buf, target), None))
        } else {
            Err(HeadError::BadTarget)
        };
    }
    let path_and_query = if target.first() == Some(&b'/') {
        target
    } else {
        absolute_form_rest(target).ok_or(HeadError::BadTarget)?
    };
    if !path_and_query.iter().all(|&b| TARGET_BYTE[b as usize]) {
        return Err(HeadError::BadTarget);
    }
    if path_and_query.is_empty() {
        // `http://host` means `/`: an empty path span, which `Request::path` reads as `/`.
        return Ok((Span::of(buf, path_and_query), None));
    }
    if path_and_query[0] != b'/' {
        // `http://host?q` (empty path with a query) is refused rather than rewritten.
        return Err(HeadError::BadTarget);
    }
    match path_and_query.iter().position(|&b| b == b'?') {
        Some(q) => Ok((
            Span::of(buf, &path_and_query[..q]),
            Some(Span::of(buf, &path_and_query[q + 1..])),
        )),
        None => Ok((Span::of(buf, path_and_query), None)),
    }
}

/// For an absolute-form target (`http://authority/path?q`), the part after the authority.
pub(super) fn absolute_form_rest(target: &[u8]) -> Option<&[u8]> {
    let scheme_len = if starts_with_ignore_case(target, b"http://") {
        7
    } else if starts_with_ignore_case(target, b"https://") {
        8
    } else {
        return None;
    };
    let rest = &target[scheme_len..];
    let authority_end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    if authority.is_empty()
        || !authority
            .iter()
            .all(|&b| HOST_BYTE[b as usize] || b == b'@')
    {
        return None;
    }
    Some(&rest[authority_end..])
}

pub(super) fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}
