//! Writing JSON-RPC messages straight into an output buffer.
//!
//! Ids are echoed byte for byte; results are written by the caller's
//! closure or copied from bytes serialized earlier, so a fixed answer is a
//! few `extend_from_slice` calls.

use super::{Id, RpcError};
use crate::util::offload::TURN_BYTES;

const RESULT_HEAD: &[u8] = br#"{"jsonrpc":"2.0","id":"#;
const RESULT_MIDDLE: &[u8] = br#","result":"#;
const RESULT_TAIL: &[u8] = b"}";

/// The bytes a result response adds around its id and its result.
pub(crate) const RESULT_FRAME_BYTES: usize =
    RESULT_HEAD.len() + RESULT_MIDDLE.len() + RESULT_TAIL.len();

/// Appends `{"jsonrpc":"2.0","id":ID,"result":` ... `}` with the result written by `result`.
pub fn write_result_with(out: &mut Vec<u8>, id: Id<'_>, result: impl FnOnce(&mut Vec<u8>)) {
    write_result_head(out, id);
    result(out);
    write_result_tail(out);
}

/// Appends what comes before a result response's result:
/// `{"jsonrpc":"2.0","id":ID,"result":`.
pub(crate) fn write_result_head(out: &mut Vec<u8>, id: Id<'_>) {
    out.extend_from_slice(RESULT_HEAD);
    out.extend_from_slice(id.raw().as_bytes());
    out.extend_from_slice(RESULT_MIDDLE);
}

/// Appends what ends a result response after its result.
pub(crate) fn write_result_tail(out: &mut Vec<u8>) {
    out.extend_from_slice(RESULT_TAIL);
}

/// Appends a result response whose result is already JSON.
pub fn write_result(out: &mut Vec<u8>, id: Id<'_>, result: &[u8]) {
    write_result_with(out, id, |out| out.extend_from_slice(result));
}

/// Appends an error response; `id` is `null` when the request's id could not be read.
pub fn write_error(out: &mut Vec<u8>, id: Option<Id<'_>>, error: &RpcError) {
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    match id {
        Some(id) => out.extend_from_slice(id.raw().as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(br#","error":{"code":"#);
    out.extend_from_slice(error.code.to_string().as_bytes());
    out.extend_from_slice(br#","message":"#);
    write_json_string(out, &error.message);
    if let Some(data) = &error.data {
        out.extend_from_slice(br#","data":"#);
        out.extend_from_slice(data.as_bytes());
    }
    out.extend_from_slice(b"}}");
}

/// Appends a notification; `params` must be a JSON object (or empty for none).
pub fn write_notification(out: &mut Vec<u8>, method: &str, params: &[u8]) {
    out.extend_from_slice(br#"{"jsonrpc":"2.0","method":"#);
    write_json_string(out, method);
    if !params.is_empty() {
        out.extend_from_slice(br#","params":"#);
        out.extend_from_slice(params);
    }
    out.push(b'}');
}

/// Appends a request from this side; `id` is written as a number.
pub fn write_request(out: &mut Vec<u8>, id: u64, method: &str, params: &[u8]) {
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    out.extend_from_slice(id.to_string().as_bytes());
    out.extend_from_slice(br#","method":"#);
    write_json_string(out, method);
    if !params.is_empty() {
        out.extend_from_slice(br#","params":"#);
        out.extend_from_slice(params);
    }
    out.push(b'}');
}

/// Appends `s` as a JSON string literal, escaped as serde_json escapes
/// (`\"`, `\\`, the short forms of `\b \f \n \r \t`, `\u00XX` for other
/// control characters; nothing else). Runs without any of those are found
/// eight bytes at a time and copied whole.
pub fn write_json_string(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    if b.len() <= TURN_BYTES {
        write_escaped(out, b);
    } else {
        // Every byte that needs escaping is ASCII, so the pieces may end
        // anywhere, inside a character too.
        for piece in b.chunks(TURN_BYTES) {
            write_escaped(out, piece);
            let _ = crate::util::offload::checkpoint();
        }
    }
    out.push(b'"');
}

/// Appends `b` escaped, without the quotes.
fn write_escaped(out: &mut Vec<u8>, b: &[u8]) {
    let (mut run, mut i) = (0, 0);
    while i < b.len() {
        if let Some(word) = b.get(i..i + 8) {
            let word = u64::from_le_bytes(<[u8; 8]>::try_from(word).unwrap_or([0; 8]));
            let special = super::scan::special_bytes(word);
            if special == 0 {
                i += 8;
                continue;
            }
            // The lowest flag marks the first special byte exactly.
            i += (special.trailing_zeros() / 8) as usize;
        } else if !matches!(b[i], b'"' | b'\\' | 0..0x20) {
            i += 1;
            continue;
        }
        out.extend_from_slice(&b[run..i]);
        escape(out, b[i]);
        i += 1;
        run = i;
    }
    out.extend_from_slice(&b[run..]);
}

/// Appends the escape of a quote, a backslash or a control byte.
fn escape(out: &mut Vec<u8>, c: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let short = match c {
        b'"' => b'"',
        b'\\' => b'\\',
        0x08 => b'b',
        0x0c => b'f',
        b'\n' => b'n',
        b'\r' => b'r',
        b'\t' => b't',
        _ => {
            let hex = [HEX[usize::from(c >> 4)], HEX[usize::from(c & 15)]];
            out.extend_from_slice(b"\\u00");
            out.extend_from_slice(&hex);
            return;
        }
    };
    out.extend_from_slice(&[b'\\', short]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::{Message, parse};

    fn id_of(input: &str) -> Id<'_> {
        match parse(input.as_bytes()).unwrap() {
            Message::Request(r) => r.id,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn echoes_ids_byte_for_byte() {
        let input = r#"{"jsonrpc":"2.0","id":"x\u0041","method":"ping"}"#;
        let mut out = Vec::new();
        write_result(&mut out, id_of(input), b"{}");
        assert_eq!(out, br#"{"jsonrpc":"2.0","id":"x\u0041","result":{}}"#);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["id"], "xA");
    }

    #[test]
    fn errors_escape_messages() {
        let mut out = Vec::new();
        let e = RpcError::new(-32602, "bad \"cursor\"\n").with_data(r#"{"supported":["a"]}"#);
        write_error(&mut out, None, &e);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["id"], serde_json::Value::Null);
        assert_eq!(v["error"]["code"], -32602);
        assert_eq!(v["error"]["message"], "bad \"cursor\"\n");
        assert_eq!(v["error"]["data"]["supported"][0], "a");
    }

    #[test]
    fn notifications_and_requests() {
        let mut out = Vec::new();
        write_notification(&mut out, "notifications/tools/list_changed", b"");
        assert_eq!(
            out,
            br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#
        );
        out.clear();
        write_request(&mut out, 9, "roots/list", b"{}");
        assert_eq!(
            out,
            br#"{"jsonrpc":"2.0","id":9,"method":"roots/list","params":{}}"#
        );
    }

    #[test]
    fn long_strings_escape_in_pieces_as_serde_json_does() {
        // Escapes and multi-byte characters on and around the piece ends.
        let unit = "ab\"c\\é€\n😀\u{1}x";
        let mut s = String::new();
        while s.len() < 3 * TURN_BYTES + 1000 {
            s.push_str(unit);
        }
        for cut in [TURN_BYTES - 1, TURN_BYTES, TURN_BYTES + 1, s.len()] {
            let mut end = cut.min(s.len());
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            let text = &s[..end];
            let mut out = Vec::new();
            write_json_string(&mut out, text);
            assert_eq!(
                out,
                serde_json::to_vec(text).expect("serializes"),
                "{end} bytes"
            );
        }
    }

    /// Escaped exactly as serde_json escapes, whatever the mix of plain
    /// runs, special bytes, word boundaries and multi-byte characters.
    #[test]
    fn strings_escape_as_serde_json_does() {
        let pieces = [
            "",
            "a",
            "plain text",
            "\"",
            "\\",
            "\n",
            "\r\t",
            "\u{0}",
            "\u{1f}",
            "\u{7f}",
            "é",
            "€",
            "😀",
            "/",
            "0123456789abcdef",
            "\u{8}\u{c}",
        ];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20_000 {
            let mut s = String::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut x = seed;
            for _ in 0..(x % 9) {
                x /= 9;
                s.push_str(pieces[(x % pieces.len() as u64) as usize]);
                x = x.rotate_left(17) ^ seed;
            }
            let mut ours = Vec::new();
            write_json_string(&mut ours, &s);
            let theirs = serde_json::to_vec(&s).unwrap();
            assert_eq!(ours, theirs, "{s:?}");
        }
        let all: String = (0u8..0x80).map(char::from).collect();
        let mut ours = b"x".to_vec();
        write_json_string(&mut ours, &all);
        assert_eq!(ours[1..], serde_json::to_vec(&all).unwrap()[..]);
    }
}
