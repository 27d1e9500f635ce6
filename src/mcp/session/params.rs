//! What dispatch reads of a message: `_meta` and the params it looks at.

use super::*;

/// What `_meta` carries that dispatch needs.
#[derive(Default)]
pub(super) struct Meta<'a> {
    pub(super) version: Option<Cow<'a, str>>,
    pub(super) progress_token: Option<RawJson<'a>>,
    pub(super) log_level: Option<LogLevel>,
    pub(super) client_capabilities: Option<RawJson<'a>>,
    pub(super) client_info: Option<RawJson<'a>>,
}

impl<'a> Meta<'a> {
    /// Reads one member of `_meta`, as the message is parsed; the first
    /// member that is not what it must be is kept in `bad`.
    pub(super) fn take(&mut self, key: &str, v: RawJson<'a>, bad: &mut Option<&'static str>) {
        match key {
            crate::mcp::version::PROTOCOL_VERSION_META_KEY => match v.as_str() {
                Some(s) => self.version = Some(s),
                None => {
                    bad.get_or_insert("the protocol version in \"_meta\" must be a string");
                }
            },
            // A token is repeated in every progress notification and kept
            // while its call runs: a string or a number, bounded as an id is.
            "progressToken" => match progress_token_fits(v) {
                Some(true) => self.progress_token = Some(v),
                Some(false) => {
                    bad.get_or_insert("the progress token in \"_meta\" is longer than 1024 bytes");
                }
                None if v.is_null() => {}
                None => {
                    bad.get_or_insert(
                        "the progress token in \"_meta\" must be a string or a number",
                    );
                }
            },
            "io.modelcontextprotocol/clientCapabilities" => self.client_capabilities = Some(v),
            "io.modelcontextprotocol/clientInfo" => self.client_info = Some(v),
            "io.modelcontextprotocol/logLevel" => match read_log_level(v) {
                Some(l) => self.log_level = Some(l),
                None => {
                    bad.get_or_insert("the log level in \"_meta\" is not a level");
                }
            },
            _ => {}
        }
    }
}

/// Whether a progress token is within [`crate::jsonrpc::MAX_ID_BYTES`]
/// (a string's quotes not counted); `None` when it is neither a string nor
/// a number.
fn progress_token_fits(v: RawJson<'_>) -> Option<bool> {
    // The refusal's text names the bound.
    const _: () = assert!(crate::jsonrpc::MAX_ID_BYTES == 1024);
    let raw = v.get();
    if !raw.starts_with(|c: char| c == '"' || c == '-' || c.is_ascii_digit()) {
        return None;
    }
    Some(crate::jsonrpc::id_len(raw) <= crate::jsonrpc::MAX_ID_BYTES)
}

pub(super) fn read_log_level(v: RawJson<'_>) -> Option<LogLevel> {
    serde_json::from_str(v.get()).ok()
}

/// Members of `params` that dispatch needs, picked out while the message is parsed.
#[derive(Default)]
pub(super) struct Params<'a> {
    pub(super) meta: Option<RawJson<'a>>,
    pub(super) name: Option<RawJson<'a>>,
    pub(super) arguments: Option<RawJson<'a>>,
    pub(super) cursor: Option<RawJson<'a>>,
    pub(super) protocol_version: Option<RawJson<'a>>,
    pub(super) level: Option<RawJson<'a>>,
    pub(super) request_id: Option<RawJson<'a>>,
    pub(super) uri: Option<RawJson<'a>>,
    pub(super) capabilities: Option<RawJson<'a>>,
    pub(super) reference: Option<RawJson<'a>>,
    pub(super) argument: Option<RawJson<'a>>,
    pub(super) input_responses: Option<RawJson<'a>>,
    pub(super) request_state: Option<RawJson<'a>>,
    pub(super) notifications: Option<RawJson<'a>>,
    pub(super) task_id: Option<RawJson<'a>>,
    pub(super) client_info: Option<RawJson<'a>>,
    pub(super) duplicate: bool,
    /// The members of `_meta` dispatch reads, taken in the same pass.
    pub(super) meta_members: Meta<'a>,
    /// Why a member of `_meta` is not what it must be, if one is not.
    pub(super) meta_bad: Option<&'static str>,
}

impl<'a> Params<'a> {
    /// What `_meta` says, or -32602 when it is not an object or a member
    /// of it is not what it must be.
    /// (Without `_meta`, or with one that is no object, no member was
    /// taken: `meta_members` is then the default.)
    pub(super) fn meta(&self) -> Result<&Meta<'a>, RpcError> {
        if self.meta.is_some_and(|raw| !raw.is_object()) {
            return Err(RpcError::invalid_params("\"_meta\" must be an object"));
        }
        match self.meta_bad {
            Some(why) => Err(RpcError::invalid_params(why)),
            None => Ok(&self.meta_members),
        }
    }

    pub(super) fn take(&mut self, key: &str, value: RawJson<'a>) {
        let slot = match key {
            "_meta" => &mut self.meta,
            "name" => &mut self.name,
            "arguments" => &mut self.arguments,
            "cursor" => &mut self.cursor,
            "protocolVersion" => &mut self.protocol_version,
            "level" => &mut self.level,
            "requestId" => &mut self.request_id,
            "uri" => &mut self.uri,
            "capabilities" => &mut self.capabilities,
            "ref" => &mut self.reference,
            "argument" => &mut self.argument,
            "inputResponses" => &mut self.input_responses,
            "requestState" => &mut self.request_state,
            "notifications" => &mut self.notifications,
            "taskId" => &mut self.task_id,
            "clientInfo" => &mut self.client_info,
            _ => return,
        };
        self.duplicate |= slot.replace(value).is_some();
    }

    /// A string member, or -32602 naming it.
    pub(super) fn string(
        value: Option<RawJson<'a>>,
        name: &str,
    ) -> Result<Option<Cow<'a, str>>, RpcError> {
        match value {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| RpcError::invalid_params(format!("\"{name}\" must be a string"))),
        }
    }
}

/// An object of string values (prompt arguments) as pairs; -32602 otherwise.
pub(super) fn string_pairs(
    raw: Option<RawJson<'_>>,
    name: &str,
) -> Result<Vec<(String, String)>, RpcError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    if !raw.is_object() {
        return Err(RpcError::invalid_params(format!(
            "\"{name}\" must be an object"
        )));
    }
    let mut pairs = Vec::new();
    let mut bad = None;
    let scanned = each_member(raw, |k, v| match v.as_str() {
        Some(s) => pairs.push((k.into_owned(), s.into_owned())),
        None => bad = Some(k.into_owned()),
    });
    if scanned.is_err() {
        return Err(RpcError::invalid_params(format!("\"{name}\" is malformed")));
    }
    match bad {
        Some(k) => Err(RpcError::invalid_params(format!(
            "argument {:?} must be a string",
            crate::util::Brief(&k)
        ))),
        None => Ok(pairs),
    }
}

pub(super) fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}
