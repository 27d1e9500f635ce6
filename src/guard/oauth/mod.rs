//! An OAuth 2.1 resource server, as MCP's authorization spec asks of an
//! MCP server (2025-11-25 and 2026-07-28, `basic/authorization`).
//!
//! - It publishes RFC 9728 protected-resource metadata
//!   ([`OAuth::metadata_paths`]): this resource, its authorization
//!   server, the scopes it knows.
//! - A request without a valid token gets 401 with `WWW-Authenticate:
//!   Bearer resource_metadata="...", scope="..."` (and
//!   `error="invalid_token"` when a token was sent but is bad); a token
//!   without a required scope gets 403 `error="insufficient_scope"`.
//! - JWT access tokens (RFC 9068) are checked without a network round
//!   trip: the signature against the authorization server's keys (found
//!   through its metadata, fetched once and kept), an algorithm from an
//!   allow-list that fits the key (never `none`, never an HMAC), `iss`,
//!   `aud` (this resource, RFC 8707), `exp` and `nbf` with a small leeway,
//!   and `typ` `at+jwt`. A token naming a key the set lacks (key rotation)
//!   fetches the keys again, at most once per [`OAuth::refetch_interval`].
//!   A token that checked out is remembered by its SHA-256 until it
//!   expires, so a client pays for one signature check per token.
//! - Opaque tokens can be checked by RFC 7662 introspection
//!   ([`OAuth::introspection`]), remembered for a short while.
//! - Scopes decide what a caller may do: [`OAuth::write_scope`] lets it
//!   run what the statement allow-list permits, without it only read-only
//!   statements. Its subject names it to fair shares, session ownership,
//!   logs and the warehouse's `QUERY_TAG` (`sub:<subject>`).
//!
//! The token is never logged, never kept (only its digest), and never sent
//! anywhere but to the introspection endpoint when that is configured.

mod challenge;
mod introspect;
mod keys;
mod token;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;

use crate::util::sql_guard::StatementKind;
use jsonwebtoken::Validation;
use jsonwebtoken::errors::ErrorKind;

pub use challenge::MetadataEndpoint;
pub use introspect::MAX_INTROSPECTION_AGE;
/// The signature algorithms ([`OAuth::algorithms`]), as the JWT library names them.
pub use jsonwebtoken::Algorithm;
pub use keys::FetchError;
pub use token::Caller;

use keys::KeySet;
use token::{Claims, TokenCache, digest};

/// The leeway on `exp` and `nbf` for clock skew. Default: 30 s.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// The least time between two fetches of the keys (a token naming an
/// unknown key fetches them; more such tokens within this time are refused
/// without a fetch). Default: 30 s.
pub const DEFAULT_REFETCH_INTERVAL: Duration = Duration::from_secs(30);

/// Most bytes of a token read. Default: 16 KiB.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// A setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    /// A URL or another setting is wrong; the text says which.
    #[error("OAuth setting: {0}")]
    Setting(String),
    /// The authorization server's metadata or keys could not be fetched.
    #[error("OAuth keys: {0}")]
    Fetch(#[from] FetchError),
}

/// The resource server's settings and state: the keys it holds and the
/// tokens it has checked. Build one with [`OAuth::new`], load its keys
/// with [`OAuth::load_keys`] (or let the first token do it), and hand it to
/// `Service::oauth`.
pub struct OAuth {
    /// The authorization server's issuer identifier (its `iss`).
    issuer: String,
    /// This resource's canonical URL (the MCP endpoint), tokens' `aud`.
    resource: String,
    /// Where the metadata is published, as a path and as a URL.
    metadata_path: String,
    metadata_url: String,
    /// Scopes every token must carry.
    required: Vec<String>,
    /// The scope that lets a caller run more than read-only statements.
    write_scope: Option<String>,
    /// Further scopes the metadata lists.
    extra_scopes: Vec<String>,
    /// Tools that need a scope of their own, with it.
    tool_scopes: Vec<(String, String)>,
    /// Statement kinds a scope grants (beyond the read-only ones).
    kind_scopes: Vec<(StatementKind, String)>,
    /// Signature algorithms accepted.
    algorithms: Vec<Algorithm>,
    leeway: Duration,
    refetch_interval: Duration,
    /// Whether the JWT `typ` must be `at+jwt` (RFC 9068, 4).
    require_at_jwt: bool,
    /// The key set's URL when configured (else discovered).
    jwks_uri: Option<String>,
    /// Keys given by the host: never fetched.
    static_keys: bool,
    introspection: Option<introspect::Introspection>,
    /// The keys of the last fetch.
    keys: ArcSwap<KeySet>,
    /// Serializes fetches and remembers the last one. A tokio mutex: held
    /// across the fetch's `.await`, by one fetch at a time.
    fetch: tokio::sync::Mutex<FetchState>,
    /// Tokens already checked. A std mutex: held for a lookup or an
    /// insert, never across an `.await`.
    cache: parking_lot::Mutex<TokenCache>,
    client: reqwest::Client,
}

/// What the fetches learned.
#[derive(Default)]
struct FetchState {
    /// When the keys were last fetched (or tried).
    last: Option<Instant>,
    /// The key set's URL, once known.
    jwks_uri: Option<String>,
    /// The introspection endpoint the metadata named.
    introspection_endpoint: Option<String>,
}

impl std::fmt::Debug for OAuth {
    // Settings only: no token, no secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth")
            .field("issuer", &self.issuer)
            .field("resource", &self.resource)
            .field("required", &self.required)
            .field("write_scope", &self.write_scope)
            .field("algorithms", &self.algorithms)
            .field("keys", &self.keys.load().len())
            .field("introspection", &self.introspection.is_some())
            .finish_non_exhaustive()
    }
}

impl OAuth {
    /// A resource server for `resource` (the MCP endpoint's canonical URL,
    /// as clients reach it: `https://mcp.example.com/mcp`) trusting tokens
    /// of `issuer` (the authorization server's issuer identifier). Both
    /// must be `https` URLs, or `http` on a loopback address.
    pub fn new(issuer: &str, resource: &str) -> Result<OAuth, OAuthError> {
        let setting = |e: FetchError| OAuthError::Setting(e.0);
        keys::checked_url(issuer).map_err(setting)?;
        let parsed = keys::checked_url(resource).map_err(setting)?;
        if parsed.query().is_some() {
            return Err(OAuthError::Setting(format!(
                "the resource URL {resource} must not have a query"
            )));
        }
        let path = parsed.path().trim_end_matches('/');
        let metadata_path = format!("{}{path}", challenge::WELL_KNOWN);
        let metadata_url = format!("{}{metadata_path}", parsed.origin().ascii_serialization());
        Ok(OAuth {
            issuer: issuer.to_owned(),
            resource: resource.to_owned(),
            metadata_path,
            metadata_url,
            required: Vec::new(),
            write_scope: None,
            extra_scopes: Vec::new(),
            tool_scopes: Vec::new(),
            kind_scopes: Vec::new(),
            algorithms: vec![Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA],
            leeway: DEFAULT_LEEWAY,
            refetch_interval: DEFAULT_REFETCH_INTERVAL,
            require_at_jwt: true,
            jwks_uri: None,
            static_keys: false,
            introspection: None,
            keys: ArcSwap::from_pointee(KeySet::default()),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
            cache: parking_lot::Mutex::new(TokenCache::default()),
            client: keys::client()?,
        })
    }

    /// Scopes every token must carry (403 `insufficient_scope` without
    /// them; named in the 401 challenge). Default: none.
    pub fn required_scopes(mut self, scopes: &[&str]) -> OAuth {
        self.required = scopes.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// The scope that lets a caller run whatever the statement allow-list
    /// permits; tokens without it run read-only statements only (and the
    /// kinds [`OAuth::kind_scope`] grants). Default: none (every token may
    /// do what the allow-list permits, unless kind scopes are set).
    pub fn write_scope(mut self, scope: &str) -> OAuth {
        self.write_scope = Some(scope.to_owned());
        self
    }

    /// Lets tokens with `scope` run statements of `kind` (when the
    /// statement allow-list permits it) without the write scope: a scope
    /// per write kind (`mcp:insert` for INSERT, say). Tokens without any
    /// such scope, or the write scope, run read-only statements only.
    pub fn kind_scope(mut self, kind: StatementKind, scope: &str) -> OAuth {
        self.kind_scopes.retain(|(k, _)| *k != kind);
        self.kind_scopes.push((kind, scope.to_owned()));
        self
    }

    /// A tool only tokens with `scope` may call: a call with a token
    /// without it is answered 403 `insufficient_scope` naming the scope
    /// (over Streamable HTTP; so a client can step up), or a JSON-RPC error
    /// ([`crate::mcp::INSUFFICIENT_SCOPE`]) over a WebSocket. Default:
    /// every tool for every token with the required scopes.
    pub fn tool_scope(mut self, tool: &str, scope: &str) -> OAuth {
        self.tool_scopes.retain(|(t, _)| t != tool);
        self.tool_scopes.push((tool.to_owned(), scope.to_owned()));
        self
    }

    /// More scopes the metadata lists in `scopes_supported`.
    pub fn more_scopes(mut self, scopes: &[&str]) -> OAuth {
        self.extra_scopes = scopes.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// The signature algorithms accepted, of RS256, RS384, RS512, PS256,
    /// PS384, PS512, ES256, ES384 and EdDSA (HMACs are refused: a public
    /// key set never verifies one). Default: RS256, ES256, EdDSA.
    pub fn algorithms(mut self, algorithms: &[Algorithm]) -> Result<OAuth, OAuthError> {
        if algorithms.is_empty()
            || algorithms
                .iter()
                .any(|a| a.family() == jsonwebtoken::AlgorithmFamily::Hmac)
        {
            return Err(OAuthError::Setting(
                "the algorithms must be public-key ones (no HS256/384/512), at least one".into(),
            ));
        }
        self.algorithms = algorithms.to_vec();
        Ok(self)
    }

    /// The leeway on `exp` and `nbf`. Default: [`DEFAULT_LEEWAY`].
    pub fn leeway(mut self, leeway: Duration) -> OAuth {
        self.leeway = leeway;
        self
    }

    /// The least time between two fetches of the keys. Default:
    /// [`DEFAULT_REFETCH_INTERVAL`].
    pub fn refetch_interval(mut self, interval: Duration) -> OAuth {
        self.refetch_interval = interval;
        self
    }

    /// Whether tokens must say `typ: at+jwt` (RFC 9068, 4: so an ID token
    /// is never taken for an access token). Turn off only for a provider
    /// that issues access tokens typed `JWT`. Default: required.
    pub fn require_at_jwt_type(mut self, require: bool) -> OAuth {
        self.require_at_jwt = require;
        self
    }

    /// The key set's URL, instead of the one the issuer's metadata names.
    pub fn jwks_uri(mut self, url: &str) -> Result<OAuth, OAuthError> {
        keys::checked_url(url).map_err(|e| OAuthError::Setting(e.0))?;
        self.jwks_uri = Some(url.to_owned());
        Ok(self)
    }

    /// Verifies tokens with the keys of `jwks` (a JWK Set document, RFC
    /// 7517, 5) instead of fetching the issuer's: for a host without a
    /// route to the issuer, or keys it distributes itself. No fetch is made
    /// then; a token under another key is refused.
    pub fn static_keys(mut self, jwks: &str) -> Result<OAuth, OAuthError> {
        let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(jwks)
            .map_err(|e| OAuthError::Setting(format!("not a JWK Set: {e}")))?;
        let keys = KeySet::from_jwks(&set, &self.algorithms);
        if keys.len() == 0 {
            return Err(OAuthError::Setting(
                "the JWK Set holds no signing key of an accepted algorithm".into(),
            ));
        }
        self.keys = ArcSwap::from_pointee(keys);
        self.static_keys = true;
        Ok(self)
    }

    /// Checks opaque tokens (those that are not JWTs) by RFC 7662
    /// introspection at the issuer's `introspection_endpoint` (or
    /// `endpoint` when given), authenticating as `client_id` with
    /// `client_secret` (HTTP Basic). Answers are remembered for at most
    /// [`MAX_INTROSPECTION_AGE`]. Default: off (opaque tokens
    /// are refused).
    pub fn introspection(
        mut self,
        client_id: &str,
        client_secret: &str,
        endpoint: Option<&str>,
    ) -> Result<OAuth, OAuthError> {
        if let Some(url) = endpoint {
            keys::checked_url(url).map_err(|e| OAuthError::Setting(e.0))?;
        }
        self.introspection = Some(introspect::Introspection::new(
            client_id,
            client_secret,
            endpoint,
        ));
        Ok(self)
    }

    /// The resource's canonical URL.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The paths the metadata is served at: the well-known path with the
    /// resource's path appended (RFC 9728, 3.1), and the bare one.
    pub fn metadata_paths(&self) -> Vec<String> {
        let mut paths = vec![self.metadata_path.clone()];
        if self.metadata_path != challenge::WELL_KNOWN {
            paths.push(challenge::WELL_KNOWN.to_owned());
        }
        paths
    }

    /// The metadata's URL, as the 401 challenge names it.
    pub fn metadata_url(&self) -> &str {
        &self.metadata_url
    }

    /// Fetches the authorization server's metadata and keys now (the
    /// daemon does at start, so the first request does not wait).
    pub async fn load_keys(&self) -> Result<usize, OAuthError> {
        if self.static_keys {
            return Ok(self.keys.load().len());
        }
        let mut state = self.fetch.lock().await;
        self.fetch_keys(&mut state).await
    }

    /// Fetches the keys again if none were fetched within the refetch
    /// interval: what a token naming an unknown key waits for.
    pub(crate) async fn refresh_keys(&self) {
        if self.static_keys {
            return;
        }
        let mut state = self.fetch.lock().await;
        if state
            .last
            .is_some_and(|last| last.elapsed() < self.refetch_interval)
        {
            return;
        }
        if let Err(e) = self.fetch_keys(&mut state).await {
            tracing::warn!(target: "snowflake_mcp::oauth", error = %e, "could not fetch the authorization server's keys");
        }
    }

    async fn fetch_keys(&self, state: &mut FetchState) -> Result<usize, OAuthError> {
        state.last = Some(Instant::now());
        let jwks_uri = match (&self.jwks_uri, &state.jwks_uri) {
            (Some(uri), _) | (None, Some(uri)) => uri.clone(),
            (None, None) => {
                let meta = keys::discover(&self.client, &self.issuer).await?;
                state.introspection_endpoint = meta.introspection_endpoint;
                let uri = meta.jwks_uri.ok_or_else(|| {
                    FetchError(format!("the metadata of {} names no jwks_uri", self.issuer))
                })?;
                state.jwks_uri = Some(uri.clone());
                uri
            }
        };
        let jwks: jsonwebtoken::jwk::JwkSet = keys::get_json(&self.client, &jwks_uri).await?;
        let set = KeySet::from_jwks(&jwks, &self.algorithms);
        let count = set.len();
        self.keys.store(Arc::new(set));
        tracing::info!(target: "snowflake_mcp::oauth", keys = count, "fetched the authorization server's keys");
        Ok(count)
    }

    /// The introspection endpoint: the configured one, else the one the
    /// metadata named (discovered now if needed).
    async fn introspection_endpoint(&self) -> Result<String, FetchError> {
        if let Some(url) = self.introspection.as_ref().and_then(|i| i.endpoint.clone()) {
            return Ok(url);
        }
        let mut state = self.fetch.lock().await;
        if state.introspection_endpoint.is_none() {
            let meta = keys::discover(&self.client, &self.issuer).await?;
            state.jwks_uri = state.jwks_uri.take().or(meta.jwks_uri);
            state.introspection_endpoint = meta.introspection_endpoint;
        }
        state.introspection_endpoint.clone().ok_or_else(|| {
            FetchError(format!(
                "the metadata of {} names no introspection_endpoint",
                self.issuer
            ))
        })
    }

    /// Checks an access token as a request's would be: the caller, or why
    /// it is refused. Returns at once for a token checked before or signed
    /// by a key held; fetches the keys (a key not held yet) or asks the
    /// introspection endpoint (an opaque token) otherwise. For hosts that
    /// take tokens on a path of their own.
    pub async fn verify(self: &Arc<Self>, token: &str) -> Result<Arc<Caller>, Refusal> {
        match self.check(token) {
            Verdict::Valid(caller) => Ok(caller),
            Verdict::Refused(refusal) => Err(refusal),
            Verdict::UnknownKey => Pending::new(self, token, false).resolve().await.1,
            Verdict::Introspect => Pending::new(self, token, true).resolve().await.1,
        }
    }

    /// Checks `token` with what is at hand: the cache, then the keys held.
    pub(crate) fn check(&self, token: &str) -> Verdict {
        let now = unix_now();
        let leeway = self.leeway.as_secs();
        if token.len() > MAX_TOKEN_BYTES {
            return Verdict::Refused(Refusal::Invalid("the token is too long"));
        }
        let digest = digest(token);
        let cached = self.cache.lock().get(&digest, now, leeway);
        if let Some(caller) = cached {
            return self.authorize(caller);
        }
        if token.split('.').count() != 3 {
            return match self.introspection {
                Some(_) => Verdict::Introspect,
                None => Verdict::Refused(Refusal::Invalid("not a JWT access token")),
            };
        }
        let header = match jsonwebtoken::decode_header(token) {
            Ok(header) => header,
            Err(_) => {
                return Verdict::Refused(Refusal::Invalid(
                    "the token header is malformed or names an unsupported algorithm",
                ));
            }
        };
        if !self.algorithms.contains(&header.alg) {
            return Verdict::Refused(Refusal::Invalid("the token's algorithm is not accepted"));
        }
        if self.require_at_jwt
            && !header.typ.as_deref().is_some_and(|t| {
                t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
            })
        {
            return Verdict::Refused(Refusal::Invalid(
                "not an access token (its typ must be at+jwt)",
            ));
        }
        let keys = self.keys.load();
        let Some(key) = keys.find(header.kid.as_deref(), header.alg) else {
            return Verdict::UnknownKey;
        };
        let mut validation = Validation::new(key.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.resource]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = leeway;
        let claims = match jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation) {
            Ok(data) => data.claims,
            Err(e) => return Verdict::Refused(Refusal::Invalid(why_refused(e.kind()))),
        };
        let Some(subject) = claims.sub.clone().or_else(|| claims.client_id.clone()) else {
            return Verdict::Refused(Refusal::Invalid("the token names no sub or client_id"));
        };
        let caller = Arc::new(Caller {
            subject,
            client_id: claims.client_id.clone(),
            scopes: claims.scopes(),
            expires: claims.exp,
            limits: Default::default(),
        });
        tracing::debug!(target: "snowflake_mcp::oauth", subject = %caller.subject, client_id = ?caller.client_id, "access token accepted");
        self.cache.lock().insert(digest, Arc::clone(&caller), now);
        self.authorize(caller)
    }

    /// Checks an opaque token at the introspection endpoint.
    pub(crate) async fn introspect(&self, token: &str) -> Verdict {
        let Some(introspection) = &self.introspection else {
            return Verdict::Refused(Refusal::Invalid("not a JWT access token"));
        };
        let endpoint = match self.introspection_endpoint().await {
            Ok(url) => url,
            Err(e) => {
                tracing::warn!(target: "snowflake_mcp::oauth", error = %e, "no introspection endpoint");
                return Verdict::Refused(Refusal::Unavailable);
            }
        };
        let now = unix_now();
        let checked = introspection
            .check(
                &self.client,
                &endpoint,
                token,
                &self.issuer,
                &self.resource,
                now,
            )
            .await;
        match checked {
            Ok(caller) => {
                let caller = Arc::new(caller);
                self.cache
                    .lock()
                    .insert(digest(token), Arc::clone(&caller), now);
                self.authorize(caller)
            }
            Err(introspect::Outcome::Refused(why)) => Verdict::Refused(Refusal::Invalid(why)),
            Err(introspect::Outcome::Failed(e)) => {
                tracing::warn!(target: "snowflake_mcp::oauth", error = %e, "token introspection failed");
                Verdict::Refused(Refusal::Unavailable)
            }
        }
    }

    /// A checked caller, held to the required scopes.
    fn authorize(&self, caller: Arc<Caller>) -> Verdict {
        if self.required.iter().all(|s| caller.has_scope(s)) {
            Verdict::Valid(caller)
        } else {
            Verdict::Refused(Refusal::InsufficientScope)
        }
    }

    /// The tools `caller`'s token lacks the scopes of, if any.
    pub(crate) fn denied_tools(&self, caller: &Caller) -> Option<crate::mcp::DeniedTools> {
        let denied: Vec<(String, String)> = self
            .tool_scopes
            .iter()
            .filter(|(_, scope)| !caller.has_scope(scope))
            .cloned()
            .collect();
        (!denied.is_empty()).then(|| Arc::new(denied))
    }

    /// The 403 for a dispatched answer that refused a tool for its scope
    /// (see [`crate::guard::Admission::scope_refusal`]).
    pub(crate) fn scope_refusal(&self, answer: &[u8]) -> Option<crate::http::Response> {
        if self.tool_scopes.is_empty() {
            return None;
        }
        challenge::scope_refusal(self, answer)
    }

    /// Whether `caller` may run whatever the statement allow-list permits.
    pub(crate) fn may_write(&self, caller: &Caller) -> bool {
        match &self.write_scope {
            Some(scope) => caller.has_scope(scope),
            None => self.kind_scopes.is_empty(),
        }
    }

    /// The statement kinds `caller` may run when its scopes limit them:
    /// the read-only ones and those its scopes grant.
    pub(crate) fn statement_kinds(&self, caller: &Caller) -> Option<crate::mcp::StatementKinds> {
        if self.may_write(caller) {
            return None;
        }
        let granted = self
            .kind_scopes
            .iter()
            .filter(|(_, scope)| caller.has_scope(scope))
            .map(|(kind, _)| *kind);
        Some(Arc::new(
            StatementKind::READ_ONLY
                .into_iter()
                .chain(granted)
                .collect(),
        ))
    }

    /// The answer to a refused request.
    pub(crate) fn refusal(&self, refusal: Refusal) -> crate::http::Response {
        challenge::refusal(self, refusal)
    }
}

/// What checking a token decided.
pub(crate) enum Verdict {
    /// The token checked out and carries the required scopes.
    Valid(Arc<Caller>),
    /// The token was refused.
    Refused(Refusal),
    /// The token names a key the set lacks: fetch the keys, then check again.
    UnknownKey,
    /// An opaque token: ask the introspection endpoint.
    Introspect,
}

/// Why a token, or a request without one, was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// No token (401, the challenge without an error).
    Missing,
    /// A token that is not good (401 `invalid_token`), and why.
    Invalid(&'static str),
    /// A good token without a required scope (403 `insufficient_scope`).
    InsufficientScope,
    /// The authorization server could not be asked (503).
    Unavailable,
}

/// The description of a JWT the library refused (fixed texts: nothing of
/// the token is echoed).
fn why_refused(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ExpiredSignature => "the token has expired",
        ErrorKind::ImmatureSignature => "the token is not valid yet",
        ErrorKind::InvalidAudience => "the token is for another audience",
        ErrorKind::InvalidIssuer => "the token is from another issuer",
        ErrorKind::InvalidSignature => "the token's signature does not verify",
        ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim (exp, iss, aud)",
        ErrorKind::InvalidAlgorithm => "the token's algorithm does not fit its key",
        _ => "the token is malformed",
    }
}

/// Seconds since the epoch.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A token check that needs the network (a key fetch, or introspection):
/// what the transports await before they serve the request.
pub(crate) struct Pending {
    oauth: Arc<OAuth>,
    /// The token, held only until the check ends.
    token: String,
    introspect: bool,
}

impl Pending {
    /// A pending check of `token`.
    pub(crate) fn new(oauth: &Arc<OAuth>, token: &str, introspect: bool) -> Pending {
        Pending {
            oauth: Arc::clone(oauth),
            token: token.to_owned(),
            introspect,
        }
    }

    /// Runs the check: the caller, or the refusal to send.
    pub(crate) async fn resolve(self) -> (Arc<OAuth>, Result<Arc<Caller>, Refusal>) {
        let verdict = if self.introspect {
            self.oauth.introspect(&self.token).await
        } else {
            self.oauth.refresh_keys().await;
            self.oauth.check(&self.token)
        };
        let outcome = match verdict {
            Verdict::Valid(caller) => Ok(caller),
            Verdict::Refused(refusal) => Err(refusal),
            Verdict::UnknownKey => Err(Refusal::Invalid("the token is signed by an unknown key")),
            Verdict::Introspect => Err(Refusal::Invalid("the token could not be checked")),
        };
        (self.oauth, outcome)
    }
}

#[cfg(test)]
mod tests;
