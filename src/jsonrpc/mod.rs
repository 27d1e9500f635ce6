//! JSON-RPC 2.0 messages, borrowed from the bytes they arrived in.
//!
//! [`parse`] reads one message without copying: one pass of a strict
//! scanner validates it, `id`, `params`, `result` and `error` stay
//! [`RawJson`] slices of the input, and `method` is a `Cow<str>` that only
//! allocates when the method name holds escapes. The
//! writers in `write` put answers straight into an output buffer, echoing
//! the request's `id` bytes as they came.
//!
//! Nothing here knows about HTTP or MCP.

mod parse;
#[cfg(feature = "fuzzing")]
pub mod scan;
#[cfg(not(feature = "fuzzing"))]
pub(crate) mod scan;
#[cfg(feature = "fuzzing")]
pub mod write;
#[cfg(not(feature = "fuzzing"))]
pub(crate) mod write;

pub(crate) use parse::id_len;
pub(crate) use parse::is_batch;
pub(crate) use parse::parse_with_meta;
pub use parse::{Id, Message, Request, parse, parse_batch};
#[cfg(feature = "fuzzing")]
pub use parse::{ParseError, Response, parse_with};
pub use scan::RawJson;

/// Invalid JSON was received.
pub const PARSE_ERROR: i32 = -32700;
/// The JSON sent is not a valid request object.
pub const INVALID_REQUEST: i32 = -32600;
/// The method does not exist or is not available.
pub const METHOD_NOT_FOUND: i32 = -32601;
/// Invalid method parameters.
pub const INVALID_PARAMS: i32 = -32602;
/// Internal error.
pub const INTERNAL_ERROR: i32 = -32603;
/// The longest request id taken, as sent (a string's quotes not counted):
/// every answer repeats it, every call's log line carries it, and a call
/// keeps it while it runs, so a longer one is refused (-32600, answered
/// with a null id). 1 KiB.
pub const MAX_ID_BYTES: usize = 1024;

/// An error to answer with: a code, a message that says what was wrong, and the id if known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcError {
    /// The JSON-RPC error code.
    pub code: i32,
    /// A human-readable explanation.
    pub message: String,
    /// Extra structured data, as JSON text.
    pub data: Option<String>,
}

impl RpcError {
    /// An error with a code and message.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// Attaches `data` (already JSON).
    pub fn with_data(mut self, data: impl Into<String>) -> Self {
        self.data = Some(data.into());
        self
    }

    /// -32601 for `method`.
    pub fn method_not_found(method: &str) -> Self {
        RpcError::new(
            METHOD_NOT_FOUND,
            format!("method not found: {}", crate::util::Brief(method)),
        )
    }

    /// -32602 with a message.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        RpcError::new(INVALID_PARAMS, message)
    }
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for RpcError {}
