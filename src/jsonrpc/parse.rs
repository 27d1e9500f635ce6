//! Parsing one JSON-RPC message (or a batch) without copying.
//!
//! One pass of the strict scanner in [`super::scan`] validates the whole
//! message and picks out the envelope members as borrowed slices; members of
//! an object `params` can be reported in that same pass ([`parse_with`]).

use std::borrow::Cow;

use super::scan::{RawJson, ScanError, Scanner, validate};
use super::{INVALID_REQUEST, PARSE_ERROR, RpcError};

/// A request or response id: a JSON string or number, kept as its raw text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Id<'a>(RawJson<'a>);

impl<'a> Id<'a> {
    /// The id exactly as it was sent (a JSON string with its quotes, or a number).
    pub fn raw(&self) -> &'a str {
        self.0.get()
    }

    /// Wraps a value if it is a string or a number.
    pub fn from_raw(raw: RawJson<'a>) -> Option<Id<'a>> {
        match raw.get().as_bytes().first() {
            Some(b'"' | b'-' | b'0'..=b'9') => Some(Id(raw)),
            _ => None,
        }
    }
}

/// A request: it has an id and expects exactly one answer.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// The id to echo.
    pub id: Id<'a>,
    /// The method name.
    pub method: Cow<'a, str>,
    /// The params, if any (an object or an array). The server itself
    /// reads the members it needs while parsing (`parse_with`); this is
    /// for other readers of the parser's output (its tests, fuzzing).
    #[cfg_attr(not(any(test, feature = "fuzzing")), allow(dead_code))]
    pub params: Option<RawJson<'a>>,
    /// The whole message, as text (a call copies the pieces it keeps
    /// from the stretch of it they lie in).
    pub message: &'a str,
}

/// A response to a request this side sent.
#[derive(Clone, Debug)]
pub struct Response<'a> {
    /// The id of the request it answers (None for `null`, after a parse error on the other side).
    pub id: Option<Id<'a>>,
    /// `Ok(result)` or `Err(error object)`.
    pub outcome: Result<RawJson<'a>, RawJson<'a>>,
}

/// One JSON-RPC message.
#[derive(Clone, Debug)]
pub enum Message<'a> {
    /// A request: answer it exactly once.
    Request(Request<'a>),
    /// A notification: never answered.
    Notification {
        /// The method name.
        method: Cow<'a, str>,
        /// The params, if any (no notification the server reads has any).
        #[cfg_attr(not(any(test, feature = "fuzzing")), allow(dead_code))]
        params: Option<RawJson<'a>>,
    },
    /// A response to one of our requests.
    Response(Response<'a>),
}

impl Message<'_> {
    /// The method name of a request or notification.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn method(&self) -> Option<&str> {
        match self {
            Message::Request(r) => Some(&r.method),
            Message::Notification { method, .. } => Some(method),
            Message::Response(_) => None,
        }
    }
}

/// A message that could not be taken, with what to answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError<'a> {
    /// The id to answer with, when one could be read (`null` otherwise).
    pub id: Option<Id<'a>>,
    /// The error to answer with (-32700 or -32600).
    pub error: RpcError,
}

/// The envelope members, as found.
#[derive(Default)]
struct Envelope<'a> {
    jsonrpc: Option<RawJson<'a>>,
    id: Option<RawJson<'a>>,
    method: Option<RawJson<'a>>,
    params: Option<RawJson<'a>>,
    result: Option<RawJson<'a>>,
    error: Option<RawJson<'a>>,
    duplicate: Option<&'static str>,
}

impl<'a> Envelope<'a> {
    #[inline]
    fn set(&mut self, key: &str, value: RawJson<'a>) {
        let (slot, name) = match key {
            "jsonrpc" => (&mut self.jsonrpc, "jsonrpc"),
            "id" => (&mut self.id, "id"),
            "method" => (&mut self.method, "method"),
            "params" => (&mut self.params, "params"),
            "result" => (&mut self.result, "result"),
            "error" => (&mut self.error, "error"),
            _ => return,
        };
        if slot.replace(value).is_some() {
            self.duplicate.get_or_insert(name);
        }
    }
}

/// Parses one message (not a batch).
///
/// (The module is public with the `fuzzing` feature only; so is this example.)
///
/// ```
/// # #[cfg(feature = "fuzzing")]
/// # {
/// use snowflake_mcp::jsonrpc::{parse, Message};
///
/// let msg = parse(br#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#).unwrap();
/// let Message::Request(req) = msg else { panic!() };
/// assert_eq!((req.id.raw(), &*req.method), ("7", "ping"));
/// # }
/// ```
pub fn parse(bytes: &[u8]) -> Result<Message<'_>, ParseError<'_>> {
    parse_with(bytes, |_, _| {})
}

/// Parses one message, reporting each member of an object `params` to
/// `param` in the same pass (nothing is reported for array params).
///
/// Members reported before a parse error must be discarded by the caller.
#[inline]
pub fn parse_with<'a>(
    bytes: &'a [u8],
    param: impl FnMut(Cow<'a, str>, RawJson<'a>),
) -> Result<Message<'a>, ParseError<'a>> {
    parse_with_meta(bytes, param, |_, _| {})
}

/// [`parse_with`], also reporting each member of `params._meta`, when it is
/// an object, to `meta` in the same pass (`_meta` itself is reported to
/// `param` as well).
#[inline]
pub(crate) fn parse_with_meta<'a>(
    bytes: &'a [u8],
    mut param: impl FnMut(Cow<'a, str>, RawJson<'a>),
    mut meta: impl FnMut(Cow<'a, str>, RawJson<'a>),
) -> Result<Message<'a>, ParseError<'a>> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Err(parse_error("message is not valid UTF-8".into()));
    };
    let mut s = Scanner::new(text);
    s.ws();
    if s.peek() != Some(b'{') {
        return Err(match validate(text) {
            Ok(_) => invalid(None, "a message must be a JSON object"),
            Err(e) => parse_error(e.to_string()),
        });
    }
    let mut envelope = Envelope::default();
    if let Err(e) = scan_envelope(&mut s, text, &mut param, &mut meta, &mut envelope) {
        return Err(parse_error(e.to_string()));
    }
    classify(envelope, text)
}

/// The `jsonrpc` member as nearly every sender writes it.
const JSONRPC_MEMBER: &str = r#""jsonrpc":"2.0""#;

#[inline]
fn scan_envelope<'a>(
    s: &mut Scanner<'a>,
    text: &'a str,
    param: &mut impl FnMut(Cow<'a, str>, RawJson<'a>),
    meta: &mut impl FnMut(Cow<'a, str>, RawJson<'a>),
    e: &mut Envelope<'a>,
) -> Result<(), ScanError> {
    s.expect(b'{', "expected '{'")?;
    s.ws();
    if s.peek() == Some(b'}') {
        s.expect(b'}', "expected '}'")?;
    } else {
        loop {
            s.ws();
            if s.peek() != Some(b'"') {
                return s.err("expected a member name");
            }
            // Nearly every message carries this exact member: take it whole.
            if let Some(version) = s.take_literal(JSONRPC_MEMBER) {
                e.set("jsonrpc", RawJson(&version[JSONRPC_MEMBER.len() - 5..]));
            } else {
                let key = s.key()?;
                s.expect(b':', "expected ':'")?;
                s.ws();
                let value = if &*key == "params" && s.peek() == Some(b'{') {
                    let start = s.pos();
                    s.object_nesting(1, &mut *param, "_meta", &mut *meta)?;
                    RawJson(&text[start..s.pos()])
                } else {
                    s.value(0)?
                };
                e.set(&key, value);
            }
            s.ws();
            match s.peek() {
                Some(b',') => s.expect(b',', "expected ','")?,
                Some(b'}') => {
                    s.expect(b'}', "expected '}'")?;
                    break;
                }
                _ => return s.err("expected ',' or '}'"),
            }
        }
    }
    s.ws();
    if !s.at_end() {
        return s.err("trailing characters after the message");
    }
    Ok(())
}

/// Parses a batch (a JSON array of messages) into its members, at most
/// `max_members` of them: the scan stops at the first member past that (an
/// invalid request), so a huge batch costs no more than a refused one.
///
/// Each member is then read with [`parse`]. An empty array is an invalid request.
pub fn parse_batch(bytes: &[u8], max_members: usize) -> Result<Vec<RawJson<'_>>, ParseError<'_>> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Err(parse_error("message is not valid UTF-8".into()));
    };
    let mut s = Scanner::new(text);
    let mut members = Vec::new();
    let mut too_many = false;
    let scanned = (|| {
        s.ws();
        if s.peek() != Some(b'[') {
            return s.err("expected '['");
        }
        s.array_with(1, |m| {
            if members.len() == max_members {
                too_many = true;
                return Err(ScanError {
                    at: 0,
                    what: "too many members",
                });
            }
            members.push(m);
            Ok(())
        })?;
        s.ws();
        if !s.at_end() {
            return s.err("trailing characters after the batch");
        }
        Ok(())
    })();
    match scanned {
        Err(_) if too_many => Err(invalid(
            None,
            &format!(
                "the batch has more than {max_members} messages; at most {max_members} are allowed"
            ),
        )),
        Err(e) => Err(parse_error(e.to_string())),
        Ok(()) if members.is_empty() => Err(invalid(None, "empty batch")),
        Ok(()) => Ok(members),
    }
}

/// Whether `bytes` is a JSON array (a batch) rather than a single message.
pub(crate) fn is_batch(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'[')
}

/// An id's length as sent, a string's quotes not counted.
pub(crate) fn id_len(raw: &str) -> usize {
    match raw.strip_prefix('"') {
        Some(quoted) => quoted.len().saturating_sub(1),
        None => raw.len(),
    }
}

fn parse_error<'a>(what: String) -> ParseError<'a> {
    ParseError {
        id: None,
        error: RpcError::new(PARSE_ERROR, format!("parse error: {what}")),
    }
}

#[inline]
fn classify<'a>(e: Envelope<'a>, message: &'a str) -> Result<Message<'a>, ParseError<'a>> {
    if let Some(name) = e.duplicate {
        return Err(invalid(None, &format!("duplicate member \"{name}\"")));
    }
    let id = match e.id {
        None => None,
        // A request's id: a response's can only fail to match one of ours.
        Some(raw) if e.method.is_some() && id_len(raw.get()) > super::MAX_ID_BYTES => {
            return Err(invalid(
                None,
                &format!("\"id\" is longer than {} bytes", super::MAX_ID_BYTES),
            ));
        }
        Some(raw) => match Id::from_raw(raw) {
            Some(id) => Some(id),
            None if raw.is_null() && e.method.is_none() => None,
            None => return Err(invalid(None, "\"id\" must be a string or a number")),
        },
    };
    let version_ok = e
        .jsonrpc
        .is_some_and(|j| j.get() == "\"2.0\"" || j.as_str().as_deref() == Some("2.0"));
    if !version_ok {
        return Err(invalid(id, "\"jsonrpc\" must be \"2.0\""));
    }
    if let Some(method) = e.method {
        let Some(method) = method.as_str_lossy() else {
            return Err(invalid(id, "\"method\" must be a string"));
        };
        if e.result.is_some() || e.error.is_some() {
            return Err(invalid(
                id,
                "a request cannot carry \"result\" or \"error\"",
            ));
        }
        if let Some(p) = e.params
            && !(p.is_object() || p.is_array())
        {
            return Err(invalid(id, "\"params\" must be an object or an array"));
        }
        return Ok(match id {
            Some(id) => Message::Request(Request {
                id,
                method,
                params: e.params,
                message,
            }),
            None => Message::Notification {
                method,
                params: e.params,
            },
        });
    }
    if e.id.is_none() {
        return Err(invalid(
            None,
            "missing \"method\" (or, for a response, \"id\")",
        ));
    }
    let outcome = match (e.result, e.error) {
        (Some(r), None) => Ok(r),
        (None, Some(err)) => Err(err),
        (Some(_), Some(_)) => {
            return Err(invalid(
                id,
                "a response has \"result\" or \"error\", not both",
            ));
        }
        (None, None) => return Err(invalid(id, "missing \"method\"")),
    };
    if id.is_none() && outcome.is_ok() {
        return Err(invalid(None, "a result needs the \"id\" of its request"));
    }
    Ok(Message::Response(Response { id, outcome }))
}

fn invalid<'a>(id: Option<Id<'a>>, what: &str) -> ParseError<'a> {
    ParseError {
        id,
        error: RpcError::new(INVALID_REQUEST, format!("invalid request: {what}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::scan::MAX_DEPTH;
    use crate::jsonrpc::{INVALID_REQUEST, PARSE_ERROR};

    fn err(input: &str) -> (Option<String>, i32, String) {
        let e = parse(input.as_bytes()).unwrap_err();
        (
            e.id.map(|i| i.raw().to_string()),
            e.error.code,
            e.error.message,
        )
    }

    #[test]
    fn requests_notifications_responses() {
        let m =
            parse(br#"{"jsonrpc":"2.0","id":"a\"b","method":"tools/call","params":{"name":"x"}}"#)
                .unwrap();
        let Message::Request(r) = m else {
            panic!("{m:?}")
        };
        assert_eq!(r.id.raw(), r#""a\"b""#);
        assert_eq!(r.method, "tools/call");
        assert!(matches!(r.method, Cow::Borrowed(_)));
        assert_eq!(r.params.unwrap().get(), r#"{"name":"x"}"#);

        let m = parse(br#"{"method":"notifications/initialized","jsonrpc":"2.0"}"#).unwrap();
        assert_eq!(m.method(), Some("notifications/initialized"));
        assert!(matches!(m, Message::Notification { params: None, .. }));

        let m = parse(br#"{"jsonrpc":"2.0","id":-3,"result":{}}"#).unwrap();
        assert!(matches!(
            m,
            Message::Response(Response { outcome: Ok(_), .. })
        ));
        let m =
            parse(br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}"#).unwrap();
        assert!(matches!(
            m,
            Message::Response(Response {
                id: None,
                outcome: Err(_)
            })
        ));

        // Escapes in a method name are decoded (the one case that allocates).
        let m = parse(br#"{"jsonrpc":"2.0","id":1,"method":"pi\u006eg"}"#).unwrap();
        assert_eq!(m.method(), Some("ping"));
        // Unknown members are ignored.
        assert!(parse(br#"{"jsonrpc":"2.0","id":1,"method":"ping","extra":[1,2]}"#).is_ok());
    }

    #[test]
    fn parse_errors_have_null_id() {
        for input in [
            "",
            "{",
            "{\"jsonrpc\":\"2.0\",",
            "not json",
            "{\"id\":1,}",
            "\u{1}",
        ] {
            let (id, code, msg) = err(input);
            assert_eq!((id, code), (None, PARSE_ERROR), "{input:?}");
            assert!(msg.starts_with("parse error: "), "{msg}");
        }
    }

    #[test]
    fn a_request_id_past_the_bound_is_refused_without_echo() {
        let at = |id: String| format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
        let most = "x".repeat(super::super::MAX_ID_BYTES);
        let number = format!("1.{}", "0".repeat(super::super::MAX_ID_BYTES - 2));
        for id in [format!("\"{most}\""), number] {
            assert!(matches!(parse(at(id).as_bytes()), Ok(Message::Request(_))));
        }
        for id in [
            format!("\"{most}x\""),
            format!("1.{most}").replace('x', "0"),
        ] {
            let (id, code, msg) = err(&at(id));
            assert_eq!((id, code), (None, INVALID_REQUEST));
            assert!(msg.contains("\"id\" is longer than 1024 bytes"), "{msg}");
        }
        // A response's id is not bounded: it only fails to match a request.
        let response = format!(r#"{{"jsonrpc":"2.0","id":"{most}yy","result":{{}}}}"#);
        assert!(matches!(
            parse(response.as_bytes()),
            Ok(Message::Response(_))
        ));
    }

    #[test]
    fn invalid_utf8_anywhere_is_a_parse_error() {
        let e = parse(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"x\":\"\xff\"}")
            .unwrap_err();
        assert_eq!((e.error.code, e.id), (PARSE_ERROR, None));
    }

    #[test]
    fn invalid_requests_say_why_and_keep_the_id() {
        let rows = [
            (
                r#"{"id":1,"method":"ping"}"#,
                Some("1"),
                "\"jsonrpc\" must be \"2.0\"",
            ),
            (
                r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
                Some("1"),
                "\"jsonrpc\" must be \"2.0\"",
            ),
            (
                r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#,
                None,
                "\"id\" must be a string or a number",
            ),
            (
                r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
                None,
                "\"id\" must be a string or a number",
            ),
            (
                r#"{"jsonrpc":"2.0","id":true,"method":"ping"}"#,
                None,
                "\"id\" must be a string or a number",
            ),
            (
                r#"{"jsonrpc":"2.0","id":2,"method":"ping","params":3}"#,
                Some("2"),
                "\"params\" must be an object or an array",
            ),
            (
                r#"{"jsonrpc":"2.0","id":2,"method":"ping","params":null}"#,
                Some("2"),
                "\"params\" must be an object or an array",
            ),
            (
                r#"{"jsonrpc":"2.0","id":2}"#,
                Some("2"),
                "missing \"method\"",
            ),
            (
                r#"{"jsonrpc":"2.0","id":2,"result":1,"error":{}}"#,
                Some("2"),
                "not both",
            ),
            (
                r#"{"jsonrpc":"2.0","id":2,"method":"x","result":1}"#,
                Some("2"),
                "cannot carry",
            ),
            (
                r#"{"jsonrpc":"2.0","result":1}"#,
                None,
                "missing \"method\"",
            ),
            (
                r#"{"jsonrpc":"2.0","error":{"code":1,"message":"x"}}"#,
                None,
                "missing \"method\"",
            ),
            (
                r#"{"jsonrpc":"2.0","id":"s","method":7}"#,
                Some("\"s\""),
                "\"method\" must be a string",
            ),
            (
                r#"{"jsonrpc":"2.0","id":3,"id":4,"method":"ping"}"#,
                None,
                "duplicate member \"id\"",
            ),
            ("[1]", None, "must be a JSON object"),
            ("42", None, "must be a JSON object"),
            ("\"ping\"", None, "must be a JSON object"),
        ];
        for (input, want_id, want_msg) in rows {
            let (id, code, msg) = err(input);
            assert_eq!(code, INVALID_REQUEST, "{input}");
            assert_eq!(id.as_deref(), want_id, "{input}");
            assert!(msg.contains(want_msg), "{input}: {msg}");
        }
    }

    #[test]
    fn params_members_in_the_same_pass() {
        let mut seen = Vec::new();
        let m = parse_with(br#"{"params":{"name":"t","arguments":{"a":[1]}},"jsonrpc":"2.0","id":1,"method":"tools/call"}"#, |k, v| {
            seen.push((k.into_owned(), v.get().to_owned()))
        })
        .unwrap();
        assert_eq!(m.method(), Some("tools/call"));
        assert_eq!(
            seen,
            [
                ("name".into(), "\"t\"".into()),
                ("arguments".into(), r#"{"a":[1]}"#.into())
            ]
        );
    }

    #[test]
    fn meta_members_in_the_same_pass() {
        let (mut params, mut meta) = (Vec::new(), Vec::new());
        let body = br#"{"id":1,"params":{"_meta":{"a":{"b":[1]},"c\u0064":"x"},"name":"t","arguments":{"_meta":{"no":1}}},"jsonrpc":"2.0","method":"tools/call"}"#;
        let m = parse_with_meta(
            body,
            |k, v| params.push((k.into_owned(), v.get().to_owned())),
            |k, v| meta.push((k.into_owned(), v.get().to_owned())),
        )
        .unwrap();
        assert_eq!(m.method(), Some("tools/call"));
        // `_meta` is reported whole too, and only the one of `params` is opened.
        assert_eq!(
            params[0],
            ("_meta".into(), r#"{"a":{"b":[1]},"c\u0064":"x"}"#.into())
        );
        assert_eq!(params.len(), 3);
        assert_eq!(
            meta,
            [
                ("a".into(), r#"{"b":[1]}"#.into()),
                ("cd".into(), "\"x\"".into())
            ]
        );
        // A `_meta` that is no object has no members; a broken one is a parse error.
        meta.clear();
        let body = br#"{"id":1,"params":{"_meta":[1]},"jsonrpc":"2.0","method":"m"}"#;
        parse_with_meta(
            body,
            |_, _| {},
            |k, _| meta.push((k.into_owned(), String::new())),
        )
        .unwrap();
        assert!(meta.is_empty());
        let body = br#"{"id":1,"params":{"_meta":{"a":}},"jsonrpc":"2.0","method":"m"}"#;
        let e = parse_with_meta(body, |_, _| {}, |_, _| {}).unwrap_err();
        assert_eq!(e.error.code, PARSE_ERROR);
        // Nesting past the limit is refused inside `_meta` as anywhere.
        let deep = format!(
            r#"{{"id":1,"params":{{"_meta":{{"a":{}{}}}}},"jsonrpc":"2.0","method":"m"}}"#,
            "[".repeat(MAX_DEPTH),
            "]".repeat(MAX_DEPTH)
        );
        let e = parse_with_meta(deep.as_bytes(), |_, _| {}, |_, _| {}).unwrap_err();
        assert_eq!(e.error.code, PARSE_ERROR);
    }

    #[test]
    fn a_lone_surrogate_in_a_name_reads_as_an_unknown_name() {
        // Found by the jsonrpc_message fuzz target: such a notification was
        // answered with a parse error, though its JSON is valid grammar.
        let m = parse(br#"{"jsonrpc":"2.0","method":"notifications/x","params":{"a\udddd":0}}"#)
            .unwrap();
        assert_eq!(m.method(), Some("notifications/x"));
        // So does a method with one: an unknown method.
        let m = parse(br#"{"jsonrpc":"2.0","method":"x\udbdd"}"#).unwrap();
        assert_eq!(m.method(), Some("x\u{FFFD}"));
        let mut seen = Vec::new();
        parse_with(
            br#"{"params":{"k\ud800":1,"\\udddd":2},"jsonrpc":"2.0","id":1,"method":"m"}"#,
            |k, _| seen.push(k.into_owned()),
        )
        .unwrap();
        assert_eq!(seen, ["k\u{FFFD}", "\\udddd"]);
    }

    #[test]
    fn batches() {
        assert!(is_batch(b"  [{}]"));
        assert!(!is_batch(b" {}"));
        let members = parse_batch(
            br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}, {"jsonrpc":"2.0","method":"n"}]"#,
            2,
        )
        .unwrap();
        assert_eq!(members.len(), 2);
        // Past the bound the scan stops: the rest is never read, broken or not.
        let e = parse_batch(br#"[1,2,3,{"#, 2).unwrap_err();
        assert_eq!(e.error.code, INVALID_REQUEST);
        assert!(
            e.error.message.contains("more than 2"),
            "{}",
            e.error.message
        );
        assert!(matches!(
            parse(members[0].get().as_bytes()),
            Ok(Message::Request(_))
        ));
        let e = parse_batch(b"[]", 64).unwrap_err();
        assert_eq!(e.error.code, INVALID_REQUEST);
        let e = parse_batch(b"[{]", 64).unwrap_err();
        assert_eq!(e.error.code, PARSE_ERROR);
    }
}
