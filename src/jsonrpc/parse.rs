//! Parsing one JSON-RPC message (or a batch) without copying.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{INVALID_REQUEST, PARSE_ERROR, RpcError};

/// A request or response id: a JSON string or number, kept as its raw bytes.
#[derive(Clone, Copy, Debug)]
pub struct Id<'a>(&'a RawValue);

impl PartialEq for Id<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.raw() == other.raw()
    }
}

impl Eq for Id<'_> {}

impl<'a> Id<'a> {
    /// The id exactly as it was sent (a JSON string with its quotes, or a number).
    pub fn raw(&self) -> &'a str {
        self.0.get()
    }

    /// Wraps raw JSON text if it is a string or a number.
    pub fn from_raw(raw: &'a RawValue) -> Option<Id<'a>> {
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
    /// The params, if any (an object or an array).
    pub params: Option<&'a RawValue>,
}

/// A response to a request this side sent.
#[derive(Clone, Debug)]
pub struct Response<'a> {
    /// The id of the request it answers (None for `null`, after a parse error on the other side).
    pub id: Option<Id<'a>>,
    /// `Ok(result)` or `Err(error object)`.
    pub outcome: Result<&'a RawValue, &'a RawValue>,
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
        /// The params, if any.
        params: Option<&'a RawValue>,
    },
    /// A response to one of our requests.
    Response(Response<'a>),
}

impl Message<'_> {
    /// The method name of a request or notification.
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

/// A string borrowed from the input unless it holds escapes.
///
/// serde borrows a `Cow<str>` only when it is a field of its own; inside an
/// `Option` it would always allocate.
#[derive(Deserialize)]
#[serde(transparent)]
pub(crate) struct Str<'a>(#[serde(borrow)] pub(crate) Cow<'a, str>);

/// The envelope as serde sees it; every member borrowed.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    jsonrpc: Option<Str<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<Str<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    params: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    error: Option<&'a RawValue>,
}

/// Keeps a member that is present but `null` (serde's `Option` would drop it).
pub(crate) fn present<'de, D>(d: D) -> Result<Option<&'de RawValue>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    <&RawValue>::deserialize(d).map(Some)
}

/// Only the id, read leniently to answer an invalid request.
#[derive(Deserialize)]
struct IdOnly<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
}

/// Parses one message (not a batch).
///
/// ```
/// use snowflake_mcp::jsonrpc::{parse, Message};
///
/// let msg = parse(br#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#).unwrap();
/// let Message::Request(req) = msg else { panic!() };
/// assert_eq!((req.id.raw(), &*req.method), ("7", "ping"));
/// ```
pub fn parse(bytes: &[u8]) -> Result<Message<'_>, ParseError<'_>> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        // Not an object: an invalid request if it is JSON at all, else a parse error.
        let error = match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            Ok(_) => RpcError::new(
                INVALID_REQUEST,
                "invalid request: a message must be a JSON object",
            ),
            Err(e) => RpcError::new(PARSE_ERROR, format!("parse error: {e}")),
        };
        return Err(ParseError { id: None, error });
    }
    // JSON text is UTF-8: check it all once (serde would skip ignored members
    // unchecked), then let serde read a `str` without checking again.
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Err(ParseError {
            id: None,
            error: RpcError::new(PARSE_ERROR, "parse error: message is not valid UTF-8"),
        });
    };
    let envelope: Envelope<'_> = match serde_json::from_str(text) {
        Ok(e) => e,
        Err(e) => return Err(refuse(bytes, &e)),
    };
    classify(envelope)
}

/// Parses a batch (a JSON array of messages) into its members' raw bytes.
///
/// Each member is then read with [`parse`] (via `RawValue::get`). An empty
/// array is an invalid request.
pub fn parse_batch(bytes: &[u8]) -> Result<Vec<&RawValue>, ParseError<'_>> {
    match serde_json::from_slice::<Vec<&RawValue>>(bytes) {
        Ok(v) if v.is_empty() => Err(ParseError {
            id: None,
            error: RpcError::new(INVALID_REQUEST, "invalid request: empty batch"),
        }),
        Ok(v) => Ok(v),
        Err(e) => Err(refuse(bytes, &e)),
    }
}

/// Whether `bytes` is a JSON array (a batch) rather than a single message.
pub(crate) fn is_batch(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'[')
}

fn refuse<'a>(bytes: &'a [u8], e: &serde_json::Error) -> ParseError<'a> {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => ParseError {
            id: None,
            error: RpcError::new(PARSE_ERROR, format!("parse error: {e}")),
        },
        // Valid JSON of the wrong shape: an invalid request, with its id if it had one.
        Category::Data => {
            let id = serde_json::from_slice::<IdOnly<'_>>(bytes)
                .ok()
                .and_then(|i| i.id)
                .and_then(Id::from_raw);
            ParseError {
                id,
                error: RpcError::new(INVALID_REQUEST, format!("invalid request: {e}")),
            }
        }
    }
}

fn classify(e: Envelope<'_>) -> Result<Message<'_>, ParseError<'_>> {
    let id = match e.id {
        None => None,
        Some(raw) => match Id::from_raw(raw) {
            Some(id) => Some(id),
            None if raw.get() == "null" && e.method.is_none() => None,
            None => return Err(invalid(None, "\"id\" must be a string or a number")),
        },
    };
    if e.jsonrpc.as_ref().map(|s| &*s.0) != Some("2.0") {
        return Err(invalid(id, "\"jsonrpc\" must be \"2.0\""));
    }
    if let Some(Str(method)) = e.method {
        if e.result.is_some() || e.error.is_some() {
            return Err(invalid(
                id,
                "a request cannot carry \"result\" or \"error\"",
            ));
        }
        if let Some(p) = e.params
            && !matches!(p.get().as_bytes().first(), Some(b'{' | b'['))
        {
            return Err(invalid(id, "\"params\" must be an object or an array"));
        }
        return Ok(match id {
            Some(id) => Message::Request(Request {
                id,
                method,
                params: e.params,
            }),
            None => Message::Notification {
                method,
                params: e.params,
            },
        });
    }
    if e.id.is_none() {
        return Err(invalid(None, "missing \"method\" (or, for a response, \"id\")"));
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
    fn invalid_utf8_anywhere_is_a_parse_error() {
        let e = parse(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"x\":\"\xff\"}").unwrap_err();
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
            (r#"{"jsonrpc":"2.0","result":1}"#, None, "missing \"method\""),
            (r#"{"jsonrpc":"2.0","error":{"code":1,"message":"x"}}"#, None, "missing \"method\""),
            (
                r#"{"jsonrpc":"2.0","id":"s","method":7}"#,
                Some("\"s\""),
                "invalid type",
            ),
            (
                r#"{"jsonrpc":"2.0","id":3,"id":4,"method":"ping"}"#,
                None,
                "duplicate field",
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
    fn batches() {
        assert!(is_batch(b"  [{}]"));
        assert!(!is_batch(b" {}"));
        let members = parse_batch(
            br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}, {"jsonrpc":"2.0","method":"n"}]"#,
        )
        .unwrap();
        assert_eq!(members.len(), 2);
        assert!(matches!(
            parse(members[0].get().as_bytes()),
            Ok(Message::Request(_))
        ));
        let e = parse_batch(b"[]").unwrap_err();
        assert_eq!(e.error.code, INVALID_REQUEST);
        let e = parse_batch(b"[{]").unwrap_err();
        assert_eq!(e.error.code, PARSE_ERROR);
    }
}
