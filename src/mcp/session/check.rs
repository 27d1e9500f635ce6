//! A transport's own check of a request, run on what dispatch has already
//! read of it: Streamable HTTP 2026-07-28 has headers that repeat the body
//! (`Mcp-Method`, `Mcp-Name`, `Mcp-Param-*`), and checking them here reads
//! the body once instead of twice.

use crate::jsonrpc::{RawJson, RpcError};

/// What a transport checks of a request once dispatch has read it.
pub(crate) trait RequestCheck {
    /// The error to answer `request` with instead of handling it, if any.
    fn check(&self, request: &RequestView<'_>) -> Option<RpcError>;
}

/// A request as dispatch read it, for a [`RequestCheck`]: its method and
/// the members of its params a check may need, borrowed from the message
/// (the last of a repeated name).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestView<'a> {
    /// The method.
    pub(crate) method: &'a str,
    /// Whether `params._meta` is there (it is an object: dispatch refuses
    /// anything else before a check runs).
    pub(crate) has_meta: bool,
    /// `_meta`'s `io.modelcontextprotocol/protocolVersion`.
    pub(crate) meta_version: Option<&'a str>,
    /// `_meta`'s `io.modelcontextprotocol/clientCapabilities`.
    pub(crate) client_capabilities: Option<RawJson<'a>>,
    /// `params.name` (a tool or a prompt).
    pub(crate) name: Option<RawJson<'a>>,
    /// `params.uri` (a resource).
    pub(crate) uri: Option<RawJson<'a>>,
    /// `params.taskId`.
    pub(crate) task_id: Option<RawJson<'a>>,
    /// `params.arguments`.
    pub(crate) arguments: Option<RawJson<'a>>,
    /// A `tools/call` of a known tool: the `(property, header suffix)`
    /// pairs of its arguments mirrored in headers (SEP-2243), if any.
    pub(crate) header_params: Option<&'a [(String, String)]>,
}
