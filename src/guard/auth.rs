//! Bearer-token authentication for the MCP endpoints (and, optionally, the
//! operations endpoints).
//!
//! Keys are kept only as SHA-256 digests; a presented token is hashed and
//! compared with every stored digest in constant time (no early exit, no
//! length leak: digests are all 32 bytes). Each key has a scope: a
//! read-only key can run only read-only statements, whatever the server
//! allows others. A missing or wrong token gets 401 with
//! `WWW-Authenticate: Bearer`. Tokens never reach logs, errors or `Debug`.

use sha2::{Digest as _, Sha256};

use crate::http::{KnownHeader, Request, Response};
use crate::jsonrpc::{INVALID_REQUEST, RpcError};

/// What a key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Read-only statements only (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN).
    ReadOnly,
    /// Whatever the server's statement allow-list permits.
    Full,
}

struct Key {
    name: String,
    /// `key:<name>`, whom its requests count against: made once, shared
    /// by every request it admits.
    principal: std::sync::Arc<str>,
    digest: [u8; 32],
    scope: Scope,
}

/// The accepted keys.
#[derive(Default)]
pub struct Auth {
    keys: Vec<Key>,
    protect_ops: bool,
}

impl std::fmt::Debug for Auth {
    // Names and scopes only; digests are not secrets but say nothing useful.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field(
                "keys",
                &self
                    .keys
                    .iter()
                    .map(|k| (&k.name, k.scope))
                    .collect::<Vec<_>>(),
            )
            .field("protect_ops", &self.protect_ops)
            .finish()
    }
}

/// A key specification that could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("key entry {index}: {problem}")]
pub struct KeySpecError {
    /// Which entry (from 1).
    pub index: usize,
    /// What is wrong (never the token itself).
    pub problem: String,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Auth {
    /// No keys yet.
    pub fn new() -> Auth {
        Auth::default()
    }

    /// Accepts `token` (stored as its digest) with `scope`, under `name`.
    pub fn key(mut self, name: impl Into<String>, token: &str, scope: Scope) -> Auth {
        let name = name.into();
        self.keys.push(Key {
            principal: format!("key:{name}").into(),
            name,
            digest: digest(token),
            scope,
        });
        self
    }

    /// Also requires a key for `/health/detailed`, `/status` and `/metrics`
    /// (`/health` stays open for load balancers). Default: open.
    pub fn protect_ops(mut self, protect: bool) -> Auth {
        self.protect_ops = protect;
        self
    }

    /// Whether the ops endpoints need a key.
    pub fn ops_protected(&self) -> bool {
        self.protect_ops
    }

    /// Reads `token[:readonly|:full],...` (the `MCP_API_KEYS` format; keys
    /// are named `key1`, `key2`, ... in order). Tokens must be at least 16
    /// characters.
    pub fn parse(spec: &str) -> Result<Auth, KeySpecError> {
        let mut auth = Auth::new();
        for (i, entry) in spec
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .enumerate()
        {
            let index = i + 1;
            let (token, scope) = match entry.rsplit_once(':') {
                Some((t, "readonly" | "read-only" | "ro")) => (t, Scope::ReadOnly),
                Some((t, "full" | "rw")) => (t, Scope::Full),
                _ => (entry, Scope::Full),
            };
            if token.len() < 16 {
                return Err(KeySpecError {
                    index,
                    problem: "a token must be at least 16 characters".into(),
                });
            }
            auth = auth.key(format!("key{index}"), token, scope);
        }
        Ok(auth)
    }

    /// Whether no key is configured (then nothing is checked).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The scope of the request's `Authorization: Bearer` token, or why not
    /// ([`AuthError::response`] is the 401 to send).
    pub(crate) fn check(&self, req: &Request<'_>) -> Result<Scope, AuthError> {
        let token = bearer_token(req)?;
        self.find(token)
            .map(|key| key.scope)
            .ok_or(AuthError::Invalid)
    }

    /// The scope and the principal (`key:<name>`) of the key the request's
    /// `Authorization: Bearer` token matches, or why not. The scheme is
    /// matched without regard to case (RFC 9110, 11.1).
    pub(crate) fn identify_principal(
        &self,
        req: &Request<'_>,
    ) -> Result<(Scope, std::sync::Arc<str>), AuthError> {
        self.admit(bearer_token(req)?).ok_or(AuthError::Invalid)
    }

    /// [`Auth::verify`] with the key's principal (`key:<name>`).
    pub(crate) fn admit(&self, token: &str) -> Option<(Scope, std::sync::Arc<str>)> {
        self.find(token)
            .map(|key| (key.scope, std::sync::Arc::clone(&key.principal)))
    }

    /// The scope and the name of the key `token` matches, if any (for
    /// hosts that take tokens on a path of their own). Every key is
    /// compared, match or not: timing says nothing of which.
    pub fn verify(&self, token: &str) -> Option<(Scope, &str)> {
        self.find(token).map(|key| (key.scope, key.name.as_str()))
    }

    /// The key `token` matches, every key compared.
    fn find(&self, token: &str) -> Option<&Key> {
        let presented = digest(token);
        let mut found = None;
        for key in &self.keys {
            if crate::util::constant_time_eq(&key.digest, &presented) && found.is_none() {
                found = Some(key);
            }
        }
        found
    }
}

/// The token of the request's `Authorization: Bearer` header (the scheme
/// matched without regard to case, RFC 9110, 11.1), or why there is none.
pub(crate) fn bearer_token<'a>(req: &Request<'a>) -> Result<&'a str, AuthError> {
    let Some(header) = req.known_header(KnownHeader::Authorization) else {
        return Err(AuthError::Missing);
    };
    let text = std::str::from_utf8(header).unwrap_or_default().trim();
    match text.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(AuthError::NotBearer),
    }
}

/// Why a request was not let in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum AuthError {
    /// No `Authorization` header.
    #[error("missing bearer token")]
    Missing,
    /// Another scheme than `Bearer`.
    #[error("the Authorization scheme must be Bearer")]
    NotBearer,
    /// A token no key matches.
    #[error("invalid bearer token")]
    Invalid,
}

impl AuthError {
    /// The 401 answer, with the `WWW-Authenticate: Bearer` challenge.
    pub fn response(self) -> Response {
        unauthorized(&self.to_string(), self != AuthError::Missing)
    }
}

fn unauthorized(why: &str, invalid: bool) -> Response {
    let e = RpcError::new(INVALID_REQUEST, format!("unauthorized: {why}"));
    let challenge = if invalid {
        "Bearer realm=\"snowflake-mcp\", error=\"invalid_token\""
    } else {
        "Bearer realm=\"snowflake-mcp\""
    };
    super::error_response(401, None, &e).header("www-authenticate", challenge)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_and_debug() {
        let auth = Auth::parse("aaaaaaaaaaaaaaaa:readonly, bbbbbbbbbbbbbbbb").expect("ok");
        let debug = format!("{auth:?}");
        assert!(debug.contains("key1") && debug.contains("ReadOnly") && debug.contains("Full"));
        assert!(!debug.contains("aaaa"), "{debug}");
        let e = Auth::parse("short").expect_err("too short");
        assert_eq!(e.index, 1);
        assert!(
            !e.to_string().contains("short"),
            "the token is never echoed: {e}"
        );
        assert!(Auth::parse("").expect("empty").is_empty());
    }

    fn identify(auth: &Auth, authorization: &str) -> Result<(Scope, String), AuthError> {
        let raw = format!("GET / HTTP/1.1\r\nHost: x\r\nAuthorization: {authorization}\r\n\r\n");
        crate::http::request::with_parsed(raw.as_bytes(), |req| {
            let by_principal = auth.identify_principal(&req).map(|(s, _)| s);
            assert_eq!(auth.check(&req), by_principal, "check and identify agree");
            auth.identify_principal(&req)
                .map(|(s, p)| (s, p.to_string()))
        })
    }

    #[test]
    fn the_scheme_is_case_insensitive() {
        let auth = Auth::new().key("ops", "aaaaaaaaaaaaaaaa", Scope::Full);
        for header in [
            "Bearer aaaaaaaaaaaaaaaa",
            "bearer aaaaaaaaaaaaaaaa",
            "BEARER aaaaaaaaaaaaaaaa",
            "bEaReR   aaaaaaaaaaaaaaaa",
        ] {
            assert_eq!(
                identify(&auth, header),
                Ok((Scope::Full, "key:ops".to_owned())),
                "{header}"
            );
        }
        for (header, why) in [
            ("Basic aaaaaaaaaaaaaaaa", AuthError::NotBearer),
            ("Bearer", AuthError::NotBearer),
            ("BEARER bbbbbbbbbbbbbbbb", AuthError::Invalid),
        ] {
            assert_eq!(identify(&auth, header), Err(why), "{header}");
        }
    }
}
