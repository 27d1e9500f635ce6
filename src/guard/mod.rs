//! Admission: who may talk to the server and how often, in one place.
//!
//! `origin` checks `Origin` and `Host` (DNS rebinding), [`auth`] bearer
//! keys, `oauth` OAuth 2.1 access tokens, `rate` per-address rate limits;
//! `admit` runs rate then key or token in that order and says who the
//! request comes from (`Admitted`). The
//! transports (`/mcp`, `/ws`) and the operations endpoints call this module;
//! the HTTP engine and the WebSocket handshake know nothing of it.

pub mod auth;
#[cfg(feature = "oauth")]
pub mod oauth;
#[cfg(feature = "fuzzing")]
pub mod origin;
#[cfg(not(feature = "fuzzing"))]
pub(crate) mod origin;
pub(crate) mod rate;

use std::sync::Arc;

use crate::http::{Reply, Request, Response};
use crate::jsonrpc::write::write_error;
use crate::jsonrpc::{Id, RpcError};

/// A JSON-RPC error answer to the request `id` (null when unknown) as an
/// HTTP response with `status`: what the MCP endpoints, the key check and
/// the rate limiter refuse with.
pub(crate) fn error_response(status: u16, id: Option<Id<'_>>, error: &RpcError) -> Response {
    let mut out = Vec::with_capacity(128);
    write_error(&mut out, id, error);
    Response::json_vec(status, out)
}

/// Who a request comes from, once admitted: what its calls may do, and
/// whom they count against (fair shares, session caps, session ownership).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Admitted {
    /// What the key lets it run (full when no key is configured).
    pub scope: auth::Scope,
    /// `key:<name>` for a bearer key, `sub:<subject>` for an OAuth
    /// token, else `addr:<client IP>`: clients without keys are told
    /// apart only by their address.
    pub principal: Arc<str>,
    /// Tools its token lacks the scopes of (with the scope each needs).
    pub denied_tools: Option<crate::mcp::DeniedTools>,
    /// The statement kinds its token's scopes grant, when they limit them.
    pub statement_kinds: Option<crate::mcp::StatementKinds>,
}

/// Why a request was not admitted (yet).
pub(crate) enum Refused {
    /// Refused: this answer (429, 401, 403), boxed: refusals are the cold
    /// path.
    Now(Box<Response>),
    /// The access token can only be checked over the network (its key is
    /// not held yet, or it is opaque and introspected).
    #[cfg(feature = "oauth")]
    Later(oauth::Pending, Option<Arc<rate::RateLimiter>>),
}

impl Refused {
    /// The reply to a request not admitted at once: the refusal, or the
    /// network check and then `then` with who was admitted.
    pub(crate) fn reply<'a, F>(self, then: F) -> Reply<'a>
    where
        F: FnOnce(Admitted) -> Reply<'a> + Send + 'a,
    {
        // Without OAuth every refusal is at once: nobody is admitted later.
        #[cfg(not(feature = "oauth"))]
        drop(then);
        match self {
            Refused::Now(refused) => Reply::ready(*refused),
            #[cfg(feature = "oauth")]
            Refused::Later(pending, limiter) => Reply::new(async move {
                match pending.resolve().await {
                    (oauth, Ok(caller)) => {
                        let admitted = admitted_by_token(&oauth, &caller);
                        match check_caller(limiter.as_deref(), &admitted) {
                            Ok(()) => then(admitted).await,
                            Err(refused) => *refused,
                        }
                    }
                    (oauth, Err(refusal)) => oauth.refusal(refusal),
                }
            }),
        }
    }
}

/// What the MCP endpoints (`/mcp` and the WebSocket upgrade) check after
/// the Origin: the client's rate first (so a flood of bad keys is throttled
/// too), then the bearer key or access token. Returns who the request
/// comes from, or the refusal (429 with `Retry-After`, 401 with
/// `WWW-Authenticate`, 403 for a token without a required scope), or the
/// network check a token needs first.
pub(crate) fn admit(req: &Request<'_>, admission: &Admission) -> Result<Admitted, Refused> {
    if let Some(limiter) = admission.rate_limit.as_deref()
        && let Err(wait) = limiter.check(req.remote_addr().ip())
    {
        return Err(Refused::Now(Box::new(rate::RateLimiter::refusal(wait))));
    }
    let keys = admission.keys.as_deref().filter(|k| !k.is_empty());
    #[cfg(feature = "oauth")]
    if let Some(oauth) = &admission.oauth {
        return admit_token(req, keys, oauth, admission.rate_limit.as_ref());
    }
    match keys {
        Some(keys) => {
            let (scope, principal) = keys
                .identify_principal(req)
                .map_err(|e| Refused::Now(Box::new(e.response())))?;
            Ok(Admitted {
                scope,
                principal,
                denied_tools: None,
                statement_kinds: None,
            })
        }
        None => Ok(Admitted {
            scope: auth::Scope::Full,
            principal: address_principal(req.remote_addr().ip()),
            denied_tools: None,
            statement_kinds: None,
        }),
    }
}

/// `addr:` and the address: the principal of a client without a key or a
/// token. Every request of such a client needs one: each thread keeps the
/// last it made, so a client's requests share it (a count's change, where
/// writing it out and allocating cost about 400 instructions a request).
fn address_principal(ip: std::net::IpAddr) -> Arc<str> {
    /// The thread's last address and its principal, and the scratch text
    /// a new one is written into (so a miss allocates the shared text only).
    #[derive(Default)]
    struct Last {
        seen: Option<(std::net::IpAddr, Arc<str>)>,
        scratch: String,
    }
    thread_local! {
        static LAST: std::cell::RefCell<Last> = std::cell::RefCell::default();
    }
    let made = |ip, out: &mut String| {
        out.clear();
        out.push_str("addr:");
        crate::util::addr::push_ip(out, ip);
        Arc::<str>::from(out.as_str())
    };
    LAST.try_with(|last| {
        let last = &mut *last.borrow_mut();
        match &last.seen {
            Some((seen, principal)) if *seen == ip => Arc::clone(principal),
            _ => {
                let principal = made(ip, &mut last.scratch);
                last.seen = Some((ip, Arc::clone(&principal)));
                principal
            }
        }
    })
    .unwrap_or_else(|_| made(ip, &mut String::new()))
}

/// Admission by OAuth access token (a bearer key, when some are set, is
/// taken too: simple clients keep working beside OAuth ones).
#[cfg(feature = "oauth")]
fn admit_token(
    req: &Request<'_>,
    keys: Option<&auth::Auth>,
    oauth: &Arc<oauth::OAuth>,
    limiter: Option<&Arc<rate::RateLimiter>>,
) -> Result<Admitted, Refused> {
    use oauth::{Refusal, Verdict};
    let Ok(token) = auth::bearer_token(req) else {
        return Err(Refused::Now(Box::new(oauth.refusal(Refusal::Missing))));
    };
    // The header read once: the token is a key's, or a bearer token's.
    if let Some((scope, principal)) = keys.and_then(|k| k.admit(token)) {
        return Ok(Admitted {
            scope,
            principal,
            denied_tools: None,
            statement_kinds: None,
        });
    }
    match oauth.check(token) {
        Verdict::Valid(caller) => {
            let admitted = admitted_by_token(oauth, &caller);
            check_caller(limiter.map(|l| &**l), &admitted).map_err(Refused::Now)?;
            Ok(admitted)
        }
        Verdict::Refused(refusal) => Err(Refused::Now(Box::new(oauth.refusal(refusal)))),
        Verdict::UnknownKey => Err(Refused::Later(
            oauth::Pending::new(oauth, token, false),
            limiter.cloned(),
        )),
        Verdict::Introspect => Err(Refused::Later(
            oauth::Pending::new(oauth, token, true),
            limiter.cloned(),
        )),
    }
}

/// An OAuth caller's own rate (its subject's bucket, besides its
/// address's): one token used from many addresses is held to one rate.
#[cfg(feature = "oauth")]
fn check_caller(
    limiter: Option<&rate::RateLimiter>,
    admitted: &Admitted,
) -> Result<(), Box<Response>> {
    match limiter.map(|l| l.check_caller(&admitted.principal)) {
        Some(Err(wait)) => Err(Box::new(rate::RateLimiter::refusal(wait))),
        _ => Ok(()),
    }
}

/// Who a caller with a good token is: its subject, and what its scopes
/// let it run.
#[cfg(feature = "oauth")]
fn admitted_by_token(oauth: &oauth::OAuth, caller: &oauth::Caller) -> Admitted {
    // Worked out at the token's first request; later ones share them.
    let (denied_tools, statement_kinds) = caller
        .limits
        .get(|| (oauth.denied_tools(caller), oauth.statement_kinds(caller)))
        .clone();
    Admitted {
        // What it may run is the statement kinds' business: a token with
        // more scopes later lifts a limit (a key's read-only never is).
        scope: auth::Scope::Full,
        principal: format!("sub:{}", caller.subject).into(),
        denied_tools,
        statement_kinds,
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
    /// OAuth 2.1 access tokens requests must carry (401 or 403
    /// otherwise). Default: none.
    #[cfg(feature = "oauth")]
    pub oauth: Option<Arc<oauth::OAuth>>,
}

impl Admission {
    /// The 403 `insufficient_scope` answer for a call the caller's token
    /// does not cover, when `answer` (a dispatched JSON answer) is the
    /// refusal of one ([`crate::mcp::INSUFFICIENT_SCOPE`]): its challenge
    /// names the scope to ask for (step-up), its body is the answer.
    pub(crate) fn scope_refusal(&self, answer: &[u8]) -> Option<Response> {
        #[cfg(feature = "oauth")]
        if let Some(oauth) = &self.oauth {
            return oauth.scope_refusal(answer);
        }
        let _ = answer;
        None
    }

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

    /// The client's rate, then its key or token: who it is, or the
    /// refusal, or the network check its token needs first.
    pub(crate) fn admit(&self, req: &Request<'_>) -> Result<Admitted, Refused> {
        admit(req, self)
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

#[cfg(test)]
mod tests {
    use super::address_principal;

    #[test]
    fn an_address_principal_reads_as_the_address() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.9.99.100",
            "255.255.255.255",
            "192.168.1.20",
            "::1",
            "2001:db8::7",
        ] {
            let ip: std::net::IpAddr = ip.parse().expect("an address");
            let first = address_principal(ip);
            assert_eq!(*first, format!("addr:{ip}"));
            // The client's next request shares it.
            assert!(std::sync::Arc::ptr_eq(&first, &address_principal(ip)));
        }
        // Another client's is its own, and the first's is made again after it.
        let (a, b) = (
            "10.0.0.1".parse().expect("ip"),
            "10.0.0.2".parse().expect("ip"),
        );
        let (first, other) = (address_principal(a), address_principal(b));
        assert_eq!((&*first, &*other), ("addr:10.0.0.1", "addr:10.0.0.2"));
        assert_eq!(*address_principal(a), *"addr:10.0.0.1");
    }
}
