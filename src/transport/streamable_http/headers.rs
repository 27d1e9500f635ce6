//! What a POST's headers must say: `Accept`, the 2026-07-28 headers that
//! repeat the body, and the HTTP status an answer calls for.

use super::*;
use crate::jsonrpc::scan::{Scanner, each_member};
use crate::mcp::{RequestCheck, RequestView};

/// The HTTP status a 2026-07-28 answer carries: errors that mean "no such
/// method" are 404, malformed or unsupported requests 400.
pub(super) fn modern_status(answer: &[u8]) -> u16 {
    // The answer is ours: only its top-level names are read, up to
    // `result` (200, the result itself never scanned) or `error`, whose
    // code decides.
    // Our answers name `result` or `error` within their first bytes (after
    // `jsonrpc` and the id): only those are checked as text, unless the
    // names or the error run past them.
    let head = &answer[..answer.len().min(STATUS_PREFIX)];
    let head = match std::str::from_utf8(head) {
        Ok(text) => text,
        Err(cut) => std::str::from_utf8(&head[..cut.valid_up_to()]).unwrap_or_default(),
    };
    match read_answer(head) {
        Read::Result => 200,
        Read::Error(code) => status_of(code),
        Read::Unknown if head.len() == answer.len() => 200,
        // The names or the error run past the prefix: the whole answer.
        Read::Unknown => match std::str::from_utf8(answer).map(read_answer) {
            Ok(Read::Error(code)) => status_of(code),
            _ => 200,
        },
    }
}

/// How many leading bytes of an answer [`modern_status`] reads first.
const STATUS_PREFIX: usize = 512;

/// What the top level of an answer says, as far as its text goes.
enum Read {
    /// A `result`.
    Result,
    /// An `error`, with its code when it has a readable one.
    Error(Option<i32>),
    /// The text ends (or breaks) before `result` or `error`.
    Unknown,
}

/// Reads the top-level names of an answer up to `result` or `error`.
fn read_answer(text: &str) -> Read {
    let mut scanner = Scanner::new(text);
    let error = match scanner.find_member(|k| k == "result" || k == "error") {
        Ok(Some(k)) if k == "error" => match scanner.value(1) {
            Ok(error) => error,
            Err(_) => return Read::Unknown,
        },
        Ok(_) => return Read::Result,
        Err(_) => return Read::Unknown,
    };
    let mut code = None;
    let _ = each_member(error, |k, v| {
        if k == "code" {
            code = v.get().parse::<i32>().ok();
        }
    });
    Read::Error(code)
}

/// The HTTP status of a 2026-07-28 answer whose error has `code` (a
/// result, or an error without a code: 200).
pub(super) fn status_of(code: Option<i32>) -> u16 {
    match code {
        Some(METHOD_NOT_FOUND) => 404,
        Some(
            INVALID_PARAMS
            | INVALID_REQUEST
            | PARSE_ERROR
            | MISSING_CLIENT_CAPABILITY
            | UNSUPPORTED_PROTOCOL_VERSION
            | HEADER_MISMATCH,
        ) => 400,
        _ => 200,
    }
}

/// Whether an Accept header allows the answers this endpoint sends: one
/// pass over its media ranges (parameters such as `q` ignored), compared
/// case-insensitively on the header's own bytes.
pub(super) fn accepts_mcp(accept: &[u8]) -> bool {
    // What the SDKs send, byte for byte: one comparison.
    if accept == b"application/json, text/event-stream" {
        return true;
    }
    let (mut json, mut events) = (false, false);
    for range in accept.split(|&b| b == b',') {
        let media = range.split(|&b| b == b';').next().unwrap_or_default();
        let media = media.trim_ascii();
        if media == b"*/*" {
            return true;
        }
        json |= media.eq_ignore_ascii_case(b"application/json");
        events |= media.eq_ignore_ascii_case(b"text/event-stream");
    }
    json && events
}

/// 2026-07-28: `Mcp-Method` must name the body's method, `Mcp-Name` the tool,
/// resource or prompt, `Mcp-Param-*` the tool's mirrored arguments, and
/// `MCP-Protocol-Version` the body's `_meta` version (-32020, answered
/// with 400, on a mismatch). Checked by dispatch on what it reads of the
/// body, on the request's own headers.
pub(super) struct Agreement<'r> {
    req: &'r Request<'r>,
}

impl<'r> Agreement<'r> {
    pub(super) fn new(req: &'r Request<'r>) -> Self {
        Agreement { req }
    }
}

impl RequestCheck for Agreement<'_> {
    fn check(&self, request: &RequestView<'_>) -> Option<RpcError> {
        let (method, name) = (KnownHeader::McpMethod, KnownHeader::McpName);
        let sent = [method, name].map(|k| self.req.known_header(k));
        agree(sent, |name| self.req.header(name), request)
    }
}

/// [`Agreement`] for a body dispatched off the async workers: the headers
/// it may need (`Mcp-Method`, `Mcp-Name`, `Mcp-Param-*`), copied.
pub(super) struct OwnedAgreement {
    /// Lowercased name and value, in the order received.
    headers: Vec<(String, Vec<u8>)>,
}

impl OwnedAgreement {
    pub(super) fn of(req: &Request<'_>) -> Self {
        let wanted = |name: &str| {
            name.eq_ignore_ascii_case("mcp-method")
                || name.eq_ignore_ascii_case("mcp-name")
                || name
                    .get(..10)
                    .is_some_and(|p| p.eq_ignore_ascii_case("mcp-param-"))
        };
        OwnedAgreement {
            headers: req
                .headers()
                .filter(|(name, _)| wanted(name))
                .map(|(name, value)| (name.to_ascii_lowercase(), value.to_vec()))
                .collect(),
        }
    }
}

impl RequestCheck for OwnedAgreement {
    fn check(&self, request: &RequestView<'_>) -> Option<RpcError> {
        let header = |name: &str| {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_slice())
        };
        let sent = ["mcp-method", "mcp-name"].map(header);
        agree(sent, header, request)
    }
}

/// The check of [`Agreement`]: `sent` holds the `Mcp-Method` and
/// `Mcp-Name` values; `header` reads others (by lowercase name, the first
/// of a repeated one).
fn agree<'h>(
    [sent_method, sent_name]: [Option<&'h [u8]>; 2],
    header: impl Fn(&str) -> Option<&'h [u8]>,
    r: &RequestView<'_>,
) -> Option<RpcError> {
    let mismatch = |what: &str| {
        Some(RpcError::new(
            HEADER_MISMATCH,
            format!("header mismatch: {what}"),
        ))
    };
    let invalid = |what: &str| {
        Some(RpcError::new(
            INVALID_PARAMS,
            format!("invalid params: {what}"),
        ))
    };
    if !r.has_meta {
        return invalid("a 2026-07-28 request needs _meta");
    }
    let Some(meta_version) = r.meta_version else {
        return invalid("_meta needs io.modelcontextprotocol/protocolVersion");
    };
    if !r.client_capabilities.is_some_and(|c| c.is_object()) {
        return invalid("_meta needs io.modelcontextprotocol/clientCapabilities");
    }
    if meta_version != "2026-07-28" {
        return mismatch("MCP-Protocol-Version differs from the body's _meta version");
    }
    match sent_method {
        Some(m) if m == r.method.as_bytes() => {}
        Some(_) => return mismatch("Mcp-Method differs from the body's method"),
        None => return mismatch("Mcp-Method is missing"),
    }
    let named = match r.method {
        "tools/call" | "prompts/get" => r.name,
        "resources/read" => r.uri,
        "tasks/get" | "tasks/update" | "tasks/cancel" => r.task_id,
        _ => return None,
    };
    let named = named.and_then(|n| n.as_str());
    // Bytes against bytes: a header that is not UTF-8 matches no name.
    match (sent_name, &named) {
        (Some(h), Some(n)) if h == n.as_bytes() => {}
        (None, _) => return mismatch("Mcp-Name is missing"),
        _ => return mismatch("Mcp-Name differs from the body"),
    }
    if r.method == "tools/call"
        && let Some(tool) = r.header_params
    {
        // Built only for a tool whose arguments are mirrored in headers.
        let arguments: serde_json::Value = r
            .arguments
            .and_then(|a| serde_json::from_str(a.get()).ok())
            .unwrap_or_default();
        for (property, suffix) in tool.iter() {
            let header_name = format!("mcp-param-{suffix}");
            let argument = &arguments[property];
            if let Err(why) = check_param_header(header(&header_name), argument) {
                return mismatch(&format!("Mcp-Param-{suffix} {why}"));
            }
        }
    }
    None
}

/// SEP-2243: a header that mirrors a tool argument must be there exactly
/// when the argument is, and say the same; `=?base64?...?=` values are
/// decoded (canonical padding, standard alphabet), others taken literally.
pub(super) fn check_param_header(
    header: Option<&[u8]>,
    argument: &serde_json::Value,
) -> Result<(), &'static str> {
    use base64::Engine as _;
    let header = match header {
        None if argument.is_null() => return Ok(()),
        None => return Err("is missing but the argument is in the body"),
        Some(h) => h,
    };
    let text = std::str::from_utf8(header).map_err(|_| "is not UTF-8")?;
    let decoded = match text
        .strip_prefix("=?base64?")
        .and_then(|t| t.strip_suffix("?="))
    {
        Some(encoded) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|_| "is not valid base64")?;
            String::from_utf8(bytes).map_err(|_| "does not decode to UTF-8")?
        }
        None => text.to_owned(),
    };
    let expected = match argument {
        serde_json::Value::Null => return Err("is sent but the argument is not in the body"),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if decoded == expected {
        Ok(())
    } else {
        Err("differs from the argument in the body")
    }
}

/// JSON-RPC code for a header that disagrees with the body (2026-07-28).
const HEADER_MISMATCH: i32 = -32020;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_must_allow_json_and_event_streams_in_any_case() {
        for ok in [
            "application/json, text/event-stream",
            "Text/Event-Stream;q=0.5, APPLICATION/JSON",
            "*/*",
            "application/json;q=0.9, */*",
            " application/json ;q=1,text/event-stream",
        ] {
            assert!(accepts_mcp(ok.as_bytes()), "{ok}");
        }
        for refused in [
            "application/json",
            "text/event-stream",
            "",
            "text/*",
            "\u{ff}json",
            "application/jsonl, text/event-stream",
            "application/json-seq, text/event-stream-x",
        ] {
            assert!(!accepts_mcp(refused.as_bytes()), "{refused}");
        }
    }

    #[test]
    fn the_status_of_an_answer_comes_from_its_error_code_alone() {
        let status = |a: &str| modern_status(a.as_bytes());
        // A result is 200 whatever it holds (it is not even scanned).
        assert_eq!(
            status(r#"{"jsonrpc":"2.0","id":"error","result":{"error":{"code":-32601}}}"#),
            200
        );
        assert_eq!(
            status(r#"{"jsonrpc":"2.0","id":1,"result":[unscanned"#),
            200
        );
        assert_eq!(
            status(r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"x"}}"#),
            404
        );
        for code in [-32602, -32600, -32700] {
            let a =
                format!(r#"{{"jsonrpc":"2.0","id":1,"error":{{"message":"x","code":{code}}}}}"#);
            assert_eq!(status(&a), 400, "{a}");
        }
        assert_eq!(
            status(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"x"}}"#),
            200
        );
        assert_eq!(status("not json"), 200);
        // Names past the first bytes read (a long id, a cut in a
        // multi-byte character, a long error) are still found.
        for pad in [STATUS_PREFIX, STATUS_PREFIX - 1, STATUS_PREFIX - 2] {
            let id = format!("{}é", "x".repeat(pad - 30));
            let a = format!(r#"{{"jsonrpc":"2.0","id":"{id}","error":{{"code":-32601}}}}"#);
            assert_eq!(status(&a), 404, "{pad}");
            let a = format!(r#"{{"jsonrpc":"2.0","id":"{id}","result":{{}}}}"#);
            assert_eq!(status(&a), 200, "{pad}");
        }
        let data = "y".repeat(2 * STATUS_PREFIX);
        let a = format!(
            r#"{{"jsonrpc":"2.0","id":1,"error":{{"data":"{data}","code":-32602,"message":"x"}}}}"#
        );
        assert_eq!(status(&a), 400);
    }
}
