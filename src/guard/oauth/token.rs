//! What an access token says once its signature and claims check out, and
//! the tokens already checked (by digest, until they expire), so a client
//! that sends the same token on every request pays for one signature check.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

/// The claims read from a JWT access token (RFC 9068, 2.2); `iss`, `aud`,
/// `exp` and `nbf` are checked by the JWT library against the settings.
#[derive(Deserialize)]
pub(crate) struct Claims {
    /// The resource owner, or the client itself in a client-credentials grant.
    #[serde(default)]
    pub sub: Option<String>,
    /// The OAuth client the token was issued to.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Space-separated scopes (RFC 9068, 2.2.3).
    #[serde(default)]
    pub scope: Option<String>,
    /// Scopes as some providers name them (a list, or a string).
    #[serde(default)]
    pub scp: Option<ScopeList>,
    /// Expiry, seconds since the epoch (required).
    pub exp: u64,
}

/// `scp` as a list or as one space-separated string.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum ScopeList {
    /// `["a", "b"]`
    List(Vec<String>),
    /// `"a b"`
    Text(String),
}

impl Claims {
    /// Every scope the token grants.
    pub(crate) fn scopes(&self) -> Vec<String> {
        let mut text = self.scope.clone().unwrap_or_default();
        match &self.scp {
            Some(ScopeList::List(list)) => {
                for scope in list {
                    text.push(' ');
                    text.push_str(scope);
                }
            }
            Some(ScopeList::Text(more)) => {
                text.push(' ');
                text.push_str(more);
            }
            None => {}
        }
        scope_list(&text)
    }
}

/// The scopes of a space-separated `scope` value, sorted, each once.
pub(crate) fn scope_list(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text.split_ascii_whitespace().map(str::to_owned).collect();
    out.sort();
    out.dedup();
    out
}

/// A caller whose token checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Caller {
    /// Who it is: the token's `sub`, else its `client_id`.
    pub subject: String,
    /// The OAuth client the token was issued to, when it says.
    pub client_id: Option<String>,
    /// The scopes it was granted, sorted.
    pub scopes: Vec<String>,
    /// When the token expires, seconds since the epoch.
    pub expires: u64,
    /// What its scopes leave it, worked out at its first request.
    pub(crate) limits: Limits,
}

/// The tools a caller's scopes deny it and the statement kinds they grant,
/// worked out once per checked token (every later request of it shares them).
#[derive(Clone, Default)]
pub(crate) struct Limits(
    std::sync::OnceLock<(
        Option<crate::mcp::DeniedTools>,
        Option<crate::mcp::StatementKinds>,
    )>,
);

impl Limits {
    /// The limits, from `work` the first time.
    pub(crate) fn get(
        &self,
        work: impl FnOnce() -> (
            Option<crate::mcp::DeniedTools>,
            Option<crate::mcp::StatementKinds>,
        ),
    ) -> &(
        Option<crate::mcp::DeniedTools>,
        Option<crate::mcp::StatementKinds>,
    ) {
        self.0.get_or_init(work)
    }
}

/// A memo, not part of who the caller is.
impl PartialEq for Limits {
    fn eq(&self, _: &Limits) -> bool {
        true
    }
}

impl Eq for Limits {}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Limits")
    }
}

impl Caller {
    /// Whether the token grants `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes
            .binary_search_by(|s| s.as_str().cmp(scope))
            .is_ok()
    }
}

/// Most tokens kept as checked. Default: 10 000 (when full, expired ones
/// go first, then all: the next request of each pays one check again).
pub(crate) const MAX_CACHED_TOKENS: usize = 10_000;

/// The SHA-256 of a token: what the cache keys on (the token itself is
/// never kept).
pub(crate) fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Tokens already checked, by digest.
#[derive(Default)]
pub(crate) struct TokenCache {
    checked: HashMap<[u8; 32], Arc<Caller>>,
}

impl TokenCache {
    /// The caller of a token checked before, if it has not expired by
    /// `now` (seconds since the epoch, `leeway` allowed).
    pub(crate) fn get(&mut self, digest: &[u8; 32], now: u64, leeway: u64) -> Option<Arc<Caller>> {
        let caller = self.checked.get(digest)?;
        if caller.expires.saturating_add(leeway) < now {
            self.checked.remove(digest);
            return None;
        }
        Some(Arc::clone(caller))
    }

    /// Keeps a checked token's caller.
    pub(crate) fn insert(&mut self, digest: [u8; 32], caller: Arc<Caller>, now: u64) {
        if self.checked.len() >= MAX_CACHED_TOKENS {
            self.checked.retain(|_, c| c.expires >= now);
            if self.checked.len() >= MAX_CACHED_TOKENS {
                self.checked.clear();
            }
        }
        self.checked.insert(digest, caller);
    }

    /// How many tokens are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.checked.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_from_scope_and_scp() {
        let claims: Claims = serde_json::from_str(
            r#"{"exp": 1, "scope": "mcp:read  mcp:write", "scp": ["tools:x", "mcp:read"]}"#,
        )
        .expect("claims");
        assert_eq!(claims.scopes(), ["mcp:read", "mcp:write", "tools:x"]);
        let claims: Claims = serde_json::from_str(r#"{"exp": 1, "scp": "a b"}"#).expect("claims");
        assert_eq!(claims.scopes(), ["a", "b"]);
        let caller = Caller {
            subject: "s".into(),
            client_id: None,
            scopes: claims.scopes(),
            expires: 10,
            limits: Limits::default(),
        };
        assert!(caller.has_scope("b") && !caller.has_scope("c"));
    }

    #[test]
    fn the_cache_forgets_expired_tokens_and_stays_bounded() {
        let mut cache = TokenCache::default();
        let caller = |expires| {
            Arc::new(Caller {
                subject: "s".into(),
                client_id: None,
                scopes: Vec::new(),
                expires,
                limits: Limits::default(),
            })
        };
        cache.insert(digest("a"), caller(100), 50);
        assert!(cache.get(&digest("a"), 100, 0).is_some());
        assert!(
            cache.get(&digest("a"), 130, 30).is_some(),
            "within the leeway"
        );
        assert!(cache.get(&digest("a"), 131, 30).is_none());
        assert_eq!(cache.len(), 0, "an expired token is dropped when seen");
        for i in 0..MAX_CACHED_TOKENS + 10 {
            cache.insert(digest(&i.to_string()), caller(1_000), 50);
        }
        assert!(cache.len() <= MAX_CACHED_TOKENS);
    }
}
