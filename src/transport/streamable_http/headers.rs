//! What a POST's headers must say: `Accept`, the 2026-07-28 headers that
//! repeat the body, and the HTTP status an answer calls for.

use super::*;

/// The HTTP status a 2026-07-28 answer carries: errors that mean "no such
/// method" are 404, malformed or unsupported requests 400.
pub(super) fn modern_status(answer: &[u8]) -> u16 {
    match parse(answer) {
        Ok(Message::Response(r)) => match r.outcome {
            Err(error) => {
                let code = serde_json::from_str::<serde_json::Value>(error.get())
                    .ok()
                    .and_then(|e| e["code"].as_i64());
                match code.and_then(|c| i32::try_from(c).ok()) {
                    Some(METHOD_NOT_FOUND) => 404,
                    Some(
                        INVALID_PARAMS
                        | INVALID_REQUEST
                        | PARSE_ERROR
                        | MISSING_CLIENT_CAPABILITY
                        | UNSUPPORTED_PROTOCOL_VERSION,
                    ) => 400,
                    _ => 200,
                }
            }
            Ok(_) => 200,
        },
        _ => 200,
    }
}

/// Whether an Accept header allows the answers this endpoint sends.
pub(super) fn accepts_mcp(accept: &[u8]) -> bool {
    let accept = String::from_utf8_lossy(accept).to_ascii_lowercase();
    let allows = |t: &str| accept.contains(t) || accept.contains("*/*");
    allows("application/json") && allows("text/event-stream")
}

/// 2026-07-28: `Mcp-Method` must name the body's method, `Mcp-Name` the tool,
/// resource or prompt, and `MCP-Protocol-Version` the body's `_meta` version
/// (400 with -32020 on a mismatch).
/// Returns the refusal to send, if any.
pub(super) fn check_modern_headers(
    req: &Request<'_>,
    body: &[u8],
    server: &McpServer,
) -> Option<Response> {
    let Ok(Message::Request(r)) = parse(body) else {
        return None;
    };
    let id = Some(r.id);
    let mismatch = |what: &str| {
        let error = RpcError::new(HEADER_MISMATCH, format!("header mismatch: {what}"));
        Some(super::super::error_response(400, id, &error))
    };
    let invalid = |what: &str| {
        let error = RpcError::new(INVALID_PARAMS, format!("invalid params: {what}"));
        Some(super::super::error_response(400, id, &error))
    };
    let params: serde_json::Value = r
        .params
        .and_then(|p| serde_json::from_str(p.get()).ok())
        .unwrap_or_default();
    let meta = &params["_meta"];
    if !meta.is_object() {
        return invalid("a 2026-07-28 request needs _meta");
    }
    let meta_version = meta[crate::mcp::version::PROTOCOL_VERSION_META_KEY].as_str();
    let Some(meta_version) = meta_version else {
        return invalid("_meta needs io.modelcontextprotocol/protocolVersion");
    };
    if !meta["io.modelcontextprotocol/clientCapabilities"].is_object() {
        return invalid("_meta needs io.modelcontextprotocol/clientCapabilities");
    }
    if meta_version != "2026-07-28" {
        return mismatch("MCP-Protocol-Version differs from the body's _meta version");
    }
    match req.header("mcp-method") {
        Some(m) if m == r.method.as_bytes() => {}
        Some(_) => return mismatch("Mcp-Method differs from the body's method"),
        None => return mismatch("Mcp-Method is missing"),
    }
    let named = match &*r.method {
        "tools/call" | "prompts/get" => params["name"].as_str(),
        "resources/read" => params["uri"].as_str(),
        "tasks/get" | "tasks/update" | "tasks/cancel" => params["taskId"].as_str(),
        _ => return None,
    };
    let header = req.header("mcp-name").map(String::from_utf8_lossy);
    match (header, named) {
        (Some(h), Some(n)) if h == n => {}
        (None, _) => return mismatch("Mcp-Name is missing"),
        _ => return mismatch("Mcp-Name differs from the body"),
    }
    if r.method == "tools/call"
        && let Some(tool) = named.and_then(|n| server.tool_header_params(n))
    {
        for (property, suffix) in tool {
            let header_name = format!("mcp-param-{suffix}");
            let header = req.header(&header_name);
            let argument = &params["arguments"][&property];
            if let Err(why) = check_param_header(header, argument) {
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
