//! Admission: who may talk to the server and how often, in one place.
//!
//! `origin` checks `Origin` and `Host` (DNS rebinding), [`auth`] bearer
//! keys, `rate` per-address rate limits; `admit` runs rate then key in
//! that order and says who the request comes from (`Admitted`). The
//! transports (`/mcp`, `/ws`) and the operations endpoints call this module;
//! the HTTP engine and the WebSocket handshake know nothing of it.

pub mod auth;
#[cfg(feature = "fuzzing")]
pub mod origin;
#[cfg(not(feature = "fuzzing"))]
pub(crate) mod origin;
pub(crate) mod rate;

use std::sync::Arc;

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
pub(crate) struct Admitted {
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

/// Who may use an endpoint and how often: the one admission policy every
/// endpoint (`/mcp`, `/ws`, the operations endpoints) applies alike.
#[derive(Clone, Debug, Default)]
pub(crate) struct Admission {
    /// Browser origins accepted besides loopback ones (exact
    /// `scheme://host[:port]`). Default: none.
    pub allowed_origins: Vec<String>,
    /// `Host` names answered (any port); others get 403. Default: none
    /// (any name).
    pub allowed_hosts: Vec<String>,
    /// Bearer keys requests must carry (401 otherwise). Default: none (open).
    pub keys: Option<Arc<auth::Auth>>,
    /// Per-client-address limit (429 with `Retry-After`). Default: none.
    pub rate_limit: Option<Arc<rate::RateLimiter>>,
}

impl Admission {
    /// `Host` (DNS rebinding) and, when `origin` is true, `Origin`: the
    /// refusal (403 with a JSON-RPC error naming the rule), if any.
    pub(crate) fn check_host(&self, req: &Request<'_>, origin: bool) -> Result<(), Box<Response>> {
        let checked = origin::check_host(req, &self.allowed_hosts).and_then(|()| {
            if origin {
                origin::check(req, &self.allowed_origins)
            } else {
                Ok(())
            }
        });
        checked.map_err(|refused| {
            let e = RpcError::new(crate::jsonrpc::INVALID_REQUEST, refused.message());
            Box::new(error_response(403, None, &e))
        })
    }

    /// The `Origin` rule alone, as the WebSocket handshake's policy.
    pub(crate) fn check_origin(&self, req: &Request<'_>) -> Result<(), &'static str> {
        origin::check(req, &self.allowed_origins).map_err(|refused| refused.message())
    }

    /// The client's rate, then its key: who it is, or the refusal.
    pub(crate) fn admit(&self, req: &Request<'_>) -> Result<Admitted, Box<Response>> {
        admit(req, self.keys.as_deref(), self.rate_limit.as_deref())
    }

    /// The client's rate alone: the refusal (429), if any.
    pub(crate) fn check_rate(&self, req: &Request<'_>) -> Result<(), Box<Response>> {
        match &self.rate_limit {
            Some(limiter) => limiter
                .check(req.remote_addr().ip())
                .map_err(|wait| Box::new(rate::RateLimiter::refusal(wait))),
            None => Ok(()),
        }
    }
}
