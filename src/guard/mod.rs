//! Admission: who may talk to the server and how often, in one place.
//!
//! [`origin`] checks `Origin` and `Host` (DNS rebinding), [`auth`] bearer
//! keys, [`rate`] per-address rate limits; `admit` runs rate then key in
//! that order and says who the request comes from ([`Admitted`]). The
//! transports (`/mcp`, `/ws`) and the operations endpoints call this module;
//! the HTTP engine and the WebSocket handshake know nothing of it.

pub mod auth;
pub mod origin;
pub mod rate;

use crate::http::{Request, Response};
use crate::jsonrpc::write::write_error;
use crate::jsonrpc::{Id, RpcError};

/// A JSON-RPC error answer to the request `id` (null when unknown) as an
/// HTTP response with `status`: what the MCP endpoints, the key check and
/// the rate limiter refuse with.
pub(crate) fn error_response(status: u16, id: Option<Id<'_>>, error: &RpcError) -> Response {
    let mut out = Vec::with_capacity(128);
    write_error(&mut out, id, error);
    Response::json(status, out)
}

/// Who a request comes from, once admitted: what its calls may do, and
/// whom they count against (fair shares, session caps, session ownership).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admitted {
    /// What the key lets it run (full when no key is configured).
    pub scope: auth::Scope,
    /// `key:<name>` for a bearer key, else `addr:<client IP>`: clients
    /// without keys are told apart only by their address.
    pub principal: String,
}

/// What the MCP endpoints (`/mcp` and the WebSocket upgrade) check after
/// the Origin: the client's rate first (so a flood of bad keys is throttled
/// too), then the bearer key. Returns who the request comes from, or the
/// refusal to send (429 with `Retry-After`, 401 with `WWW-Authenticate`),
/// boxed: refusals are the cold path.
pub(crate) fn admit(
    req: &Request<'_>,
    keys: Option<&auth::Auth>,
    limiter: Option<&rate::RateLimiter>,
) -> Result<Admitted, Box<Response>> {
    if let Some(limiter) = limiter
        && let Err(wait) = limiter.check(req.remote_addr().ip())
    {
        return Err(Box::new(rate::RateLimiter::refusal(wait)));
    }
    match keys {
        Some(keys) if !keys.is_empty() => {
            let (scope, name) = keys.identify(req).map_err(|e| Box::new(e.response()))?;
            Ok(Admitted {
                scope,
                principal: format!("key:{name}"),
            })
        }
        _ => Ok(Admitted {
            scope: auth::Scope::Full,
            principal: format!("addr:{}", req.remote_addr().ip()),
        }),
    }
}
