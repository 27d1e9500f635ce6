//! What a client is told: the protected-resource metadata (RFC 9728) and
//! the `WWW-Authenticate` challenges of 401 and 403 answers (RFC 6750, 3,
//! with RFC 9728's `resource_metadata`).

use std::sync::Arc;

use super::{OAuth, Refusal};
use crate::http::{Handler, Method, Reply, Request, Response};
use crate::jsonrpc::{INVALID_REQUEST, RpcError};

/// The well-known path of protected-resource metadata (RFC 9728, 3).
pub(crate) const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// How long clients may keep the metadata. Default: 300 s.
const METADATA_CACHE_CONTROL: &str = "public, max-age=300";

/// The 401, 403 or 503 answer to a refused request, with its challenge.
pub(crate) fn refusal(oauth: &OAuth, refusal: Refusal) -> Response {
    let scope = oauth.required.join(" ");
    let (status, message, challenge) = match refusal {
        Refusal::Missing => (
            401,
            "unauthorized: missing bearer token".to_owned(),
            format!("Bearer resource_metadata=\"{}\"", oauth.metadata_url),
        ),
        Refusal::Invalid(why) => (
            401,
            format!("unauthorized: {why}"),
            format!(
                "Bearer error=\"invalid_token\", error_description=\"{why}\", resource_metadata=\"{}\"",
                oauth.metadata_url
            ),
        ),
        Refusal::InsufficientScope => (
            403,
            format!("forbidden: the token lacks a required scope ({scope})"),
            format!(
                "Bearer error=\"insufficient_scope\", error_description=\"the token lacks a required scope\", resource_metadata=\"{}\"",
                oauth.metadata_url
            ),
        ),
        Refusal::Unavailable => {
            let e = RpcError::new(
                crate::jsonrpc::INTERNAL_ERROR,
                "the authorization server could not be reached to check the token; try again",
            );
            return super::super::error_response(503, None, &e).header("retry-after", "5");
        }
    };
    let challenge = if scope.is_empty() {
        challenge
    } else {
        format!("{challenge}, scope=\"{scope}\"")
    };
    let e = RpcError::new(INVALID_REQUEST, message);
    let response = super::super::error_response(status, None, &e);
    // The values are ours (settings checked as URLs and scope names): a
    // header they would break is a setting error, answered without it.
    match response.try_header("www-authenticate", challenge) {
        Ok(response) => response,
        Err(_) => super::super::error_response(status, None, &e),
    }
}

/// The 403 `insufficient_scope` answer to a call refused for a tool's
/// scope: `answer` is that refusal (kept as the body, with its id); the
/// challenge asks for the required scopes and the tool's.
pub(crate) fn scope_refusal(oauth: &OAuth, answer: &[u8]) -> Option<Response> {
    let code = format!("\"code\":{}", crate::mcp::INSUFFICIENT_SCOPE);
    memchr::memmem::find(answer, code.as_bytes())?;
    let parsed: serde_json::Value = serde_json::from_slice(answer).ok()?;
    let error = parsed.get("error")?;
    if error.get("code")?.as_i64()? != i64::from(crate::mcp::INSUFFICIENT_SCOPE) {
        return None;
    }
    let needed = error.get("data")?.get("scope")?.as_str()?;
    let mut scopes: Vec<&str> = oauth.required.iter().map(String::as_str).collect();
    if !scopes.contains(&needed) {
        scopes.push(needed);
    }
    let challenge = format!(
        "Bearer error=\"insufficient_scope\", error_description=\"the token lacks the scope this tool needs\", resource_metadata=\"{}\", scope=\"{}\"",
        oauth.metadata_url,
        scopes.join(" ")
    );
    Response::json_vec(403, answer.to_vec())
        .try_header("www-authenticate", challenge)
        .ok()
}

/// Serves the protected-resource metadata document, readable from any
/// origin (it is public, and browsers' clients fetch it).
pub struct MetadataEndpoint {
    document: bytes::Bytes,
}

impl std::fmt::Debug for MetadataEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataEndpoint").finish_non_exhaustive()
    }
}

impl MetadataEndpoint {
    /// The document of `oauth`'s resource.
    pub fn new(oauth: &Arc<OAuth>) -> MetadataEndpoint {
        let mut scopes: Vec<&str> = oauth
            .required
            .iter()
            .chain(oauth.write_scope.iter())
            .chain(oauth.tool_scopes.iter().map(|(_, s)| s))
            .chain(oauth.kind_scopes.iter().map(|(_, s)| s))
            .chain(oauth.extra_scopes.iter())
            .map(String::as_str)
            .collect();
        scopes.sort_unstable();
        scopes.dedup();
        let algorithms: Vec<String> = oauth.algorithms.iter().map(|a| format!("{a:?}")).collect();
        let document = serde_json::json!({
            "resource": oauth.resource,
            "authorization_servers": [oauth.issuer],
            "scopes_supported": scopes,
            "bearer_methods_supported": ["header"],
            "resource_signing_alg_values_supported": algorithms,
            "resource_name": "snowflake-mcp",
        });
        MetadataEndpoint {
            document: serde_json::to_vec(&document).unwrap_or_default().into(),
        }
    }
}

impl Handler for MetadataEndpoint {
    fn call<'a>(&'a self, req: Request<'a>) -> Reply<'a> {
        let response = if req.method() == Method::Options {
            // A preflight (a browser client that adds MCP's headers).
            Response::new(204)
                .header("access-control-allow-methods", "GET, OPTIONS")
                .header("access-control-allow-headers", "*")
                .header("access-control-max-age", "600")
        } else {
            Response::json(200, self.document.clone())
                .header("cache-control", METADATA_CACHE_CONTROL)
        };
        Reply::ready(response.header("access-control-allow-origin", "*"))
    }
}
