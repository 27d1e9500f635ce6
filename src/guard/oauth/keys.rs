//! The authorization server's signing keys: where they are (its metadata,
//! RFC 8414 or OpenID discovery), fetching them (its `jwks_uri`, with a
//! byte and a time limit), and the set kept between fetches.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

/// Most bytes of a metadata document or key set read from the
/// authorization server. Default: 256 KiB.
pub(crate) const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// How long one exchange with the authorization server may take.
/// Default: 10 s.
pub(crate) const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// How long connecting to the authorization server may take. Default: 5 s.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One verification key and the one algorithm it verifies.
pub(crate) struct Key {
    /// The public key.
    pub decoding: DecodingKey,
    /// Its algorithm: the key's own `alg`, or the one its type implies.
    pub alg: Algorithm,
}

/// The keys of one fetch, by `kid`; keys without a `kid` apart.
#[derive(Default)]
pub(crate) struct KeySet {
    by_kid: HashMap<String, Arc<Key>>,
    unnamed: Vec<Arc<Key>>,
}

impl KeySet {
    /// The usable keys of `jwks`: signature keys whose algorithm is in
    /// `allowed` (others, and keys that do not parse, are skipped).
    pub(crate) fn from_jwks(jwks: &JwkSet, allowed: &[Algorithm]) -> KeySet {
        let mut set = KeySet::default();
        for jwk in &jwks.keys {
            if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
                continue;
            }
            let Some(alg) = algorithm_of(jwk) else {
                continue;
            };
            if !allowed.contains(&alg) {
                continue;
            }
            let Ok(decoding) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            let key = Arc::new(Key { decoding, alg });
            match &jwk.common.key_id {
                Some(kid) => {
                    set.by_kid.insert(kid.clone(), key);
                }
                None => set.unnamed.push(key),
            }
        }
        set
    }

    /// The key a token names (`kid`), for the algorithm its header says; a
    /// token without `kid` is matched only when the set has one key of no
    /// name and that algorithm.
    pub(crate) fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<&Arc<Key>> {
        let key = match kid {
            Some(kid) => self.by_kid.get(kid)?,
            None => {
                let mut same = self.unnamed.iter().filter(|k| k.alg == alg);
                let only = same.next()?;
                if same.next().is_some() {
                    return None;
                }
                only
            }
        };
        (key.alg == alg).then_some(key)
    }

    /// How many keys the set holds.
    pub(crate) fn len(&self) -> usize {
        self.by_kid.len() + self.unnamed.len()
    }
}

/// The one algorithm a key verifies: its `alg` when it names one, else
/// the one its type and curve imply (RSA: RS256; P-256: ES256; P-384:
/// ES384; Ed25519: EdDSA). Symmetric keys have none: a public key set
/// never verifies an HMAC.
fn algorithm_of(jwk: &jsonwebtoken::jwk::Jwk) -> Option<Algorithm> {
    let implied = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        _ => return None,
    };
    let named = match jwk.common.key_algorithm {
        None => return Some(implied),
        Some(KeyAlgorithm::RS256) => Algorithm::RS256,
        Some(KeyAlgorithm::RS384) => Algorithm::RS384,
        Some(KeyAlgorithm::RS512) => Algorithm::RS512,
        Some(KeyAlgorithm::PS256) => Algorithm::PS256,
        Some(KeyAlgorithm::PS384) => Algorithm::PS384,
        Some(KeyAlgorithm::PS512) => Algorithm::PS512,
        Some(KeyAlgorithm::ES256) => Algorithm::ES256,
        Some(KeyAlgorithm::ES384) => Algorithm::ES384,
        Some(KeyAlgorithm::EdDSA) => Algorithm::EdDSA,
        Some(_) => return None,
    };
    // The named algorithm must fit the key's type (an RSA key is never
    // an EC key's algorithm).
    (named.family() == implied.family()).then_some(named)
}

/// What the daemon reads of the authorization server's metadata.
#[derive(Deserialize)]
pub(crate) struct ServerMetadata {
    /// Must equal the configured issuer (RFC 8414, 3.3).
    pub issuer: String,
    /// Where its keys are.
    pub jwks_uri: Option<String>,
    /// RFC 7662 token introspection, when it offers it.
    pub introspection_endpoint: Option<String>,
}

/// Why the keys could not be fetched (never holds a token or a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FetchError(pub String);

/// The HTTP client for the authorization server: no redirects (the
/// issuer's own URLs only), bounded times, no cookies.
pub(crate) fn client() -> Result<reqwest::Client, FetchError> {
    reqwest::ClientBuilder::new()
        .user_agent(concat!("snowflake-mcp/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(FETCH_TIMEOUT)
        .build()
        .map_err(|e| FetchError(format!("could not build the HTTP client: {e}")))
}

/// Whether `url` may be fetched: `https`, or `http` to a loopback host
/// (a provider on the same machine, as in tests). Returns it parsed.
pub(crate) fn checked_url(url: &str) -> Result<reqwest::Url, FetchError> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| FetchError(format!("not a URL ({e}): {url}")))?;
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(FetchError(format!(
                "{url}: only https (or http to a loopback address) is allowed"
            )));
        }
    }
    if !parsed.username().is_empty() || parsed.password().is_some() || parsed.fragment().is_some() {
        return Err(FetchError(format!(
            "{url}: no user information or fragment allowed"
        )));
    }
    Ok(parsed)
}

/// GETs `url` as JSON, reading at most [`MAX_DOCUMENT_BYTES`].
pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
) -> Result<T, FetchError> {
    let parsed = checked_url(url)?;
    let response = client
        .get(parsed)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| FetchError(format!("GET {url}: {}", without_url(&e))))?;
    read_json(response, url).await
}

/// Reads a JSON answer of at most [`MAX_DOCUMENT_BYTES`].
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    mut response: reqwest::Response,
    url: &str,
) -> Result<T, FetchError> {
    let status = response.status();
    if !status.is_success() {
        return Err(FetchError(format!("{url} answered {status}")));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| FetchError(format!("reading {url}: {}", without_url(&e))))?
    {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(FetchError(format!(
                "{url}: the answer is larger than {MAX_DOCUMENT_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body)
        .map_err(|e| FetchError(format!("{url}: not the JSON expected: {e}")))
}

/// A reqwest error's text without its URL (the caller names the URL).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "");
    }
    text
}

/// The authorization server's metadata: RFC 8414's well-known document
/// first, then OpenID discovery's. The issuer it states must be `issuer`.
pub(crate) async fn discover(
    client: &reqwest::Client,
    issuer: &str,
) -> Result<ServerMetadata, FetchError> {
    let parsed = checked_url(issuer)?;
    let path = parsed.path().trim_end_matches('/');
    let origin = parsed.origin().ascii_serialization();
    let candidates = [
        // RFC 8414, 3.1: the well-known part goes between host and path.
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
        // OpenID Connect Discovery 1.0, 4: appended to the issuer.
        format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        ),
    ];
    let mut errors = Vec::new();
    for url in &candidates {
        match get_json::<ServerMetadata>(client, url).await {
            Ok(meta) if meta.issuer == issuer => return Ok(meta),
            Ok(meta) => errors.push(format!(
                "{url} names the issuer {:?}, not the configured {issuer:?}",
                meta.issuer
            )),
            Err(e) => errors.push(e.0),
        }
    }
    Err(FetchError(format!(
        "no metadata for the issuer {issuer}: {}",
        errors.join("; ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_https_or_loopback() {
        assert!(checked_url("https://issuer.example/").is_ok());
        assert!(checked_url("http://127.0.0.1:9000/").is_ok());
        assert!(checked_url("http://localhost:9000/x").is_ok());
        assert!(checked_url("http://[::1]:9000/").is_ok());
        for bad in [
            "http://issuer.example/",
            "http://127.0.0.1.evil.example/",
            "https://user:pw@issuer.example/",
            "ftp://issuer.example/",
            "https://issuer.example/#frag",
            "not a url",
        ] {
            assert!(checked_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_carry_one_algorithm_that_fits_their_type() {
        let jwks: JwkSet = serde_json::from_value(serde_json::json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "ec",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "EC", "crv": "P-256", "kid": "ec-says-rs", "alg": "RS256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0c2VjcmV0c2VjcmV0"},
            {"kty": "EC", "crv": "P-256", "kid": "enc", "use": "enc",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
        ]}))
        .expect("jwks");
        let set = KeySet::from_jwks(&jwks, &[Algorithm::ES256, Algorithm::RS256]);
        assert_eq!(set.len(), 1, "only the plain EC signing key is usable");
        assert!(set.find(Some("ec"), Algorithm::ES256).is_some());
        // A token may not pick another algorithm for the key.
        assert!(set.find(Some("ec"), Algorithm::RS256).is_none());
        assert!(set.find(Some("hmac"), Algorithm::HS256).is_none());
        assert!(set.find(Some("nope"), Algorithm::ES256).is_none());
        // Not allowed: none.
        let none = KeySet::from_jwks(&jwks, &[Algorithm::RS256]);
        assert_eq!(none.len(), 0);
    }
}
