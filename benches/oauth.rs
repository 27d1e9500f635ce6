//! What an OAuth access token costs a request, against a bearer key:
//!
//! - `bearer_key`: the static key check (SHA-256 of the token, compared in
//!   constant time with every key), the reference;
//! - `token_seen_before`: a token checked on an earlier request (SHA-256 of
//!   the token, a map lookup, the expiry and scopes): every request after a
//!   client's first;
//! - `token_first_check`: a token never seen (header, ES256 signature,
//!   claims): once per token.
//!
//! Keys are installed with `OAuth::static_keys`, so nothing waits on a
//! network. `cargo bench --bench oauth`; `cargo test --benches` runs each
//! once.

use std::sync::Arc;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use futures_util::FutureExt as _;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use snowflake_mcp::guard::auth::{Auth, Scope};
use snowflake_mcp::guard::oauth::OAuth;

const KEY: &str = include_str!("../tests/data/oauth/key_a.pem");
const ISSUER: &str = "https://issuer.example";
const RESOURCE: &str = "https://mcp.example/mcp";

fn encoding() -> EncodingKey {
    use base64::Engine as _;
    let body: String = KEY.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("test key");
    EncodingKey::from_ec_der(&der)
}

/// A token as a provider issues it (typ at+jwt, kid a), unique by `jti`.
fn token(jti: u64) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = json!({"iss": ISSUER, "aud": RESOURCE, "sub": "alice", "client_id": "agent",
                        "exp": now + 3600, "iat": now, "jti": jti.to_string(),
                        "scope": "mcp:read mcp:write"});
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("a".into());
    header.typ = Some("at+jwt".into());
    jsonwebtoken::encode(&header, &claims, &encoding()).expect("sign")
}

fn oauth() -> Arc<OAuth> {
    let mut jwk = Jwk::from_encoding_key(&encoding(), Algorithm::ES256).expect("jwk");
    jwk.common.key_id = Some("a".into());
    let jwks = serde_json::to_string(&JwkSet { keys: vec![jwk] }).expect("json");
    Arc::new(
        OAuth::new(ISSUER, RESOURCE)
            .expect("settings")
            .required_scopes(&["mcp:read"])
            .static_keys(&jwks)
            .expect("keys"),
    )
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("admission");
    let auth = Auth::new()
        .key("a", "key-one-0123456789abcdef", Scope::Full)
        .key("b", "key-two-0123456789abcdef", Scope::ReadOnly);
    group.bench_function("bearer_key", |b| {
        b.iter(|| auth.verify(std::hint::black_box("key-two-0123456789abcdef")))
    });
    let oauth = oauth();
    let seen = token(0);
    let check = |token: &str| {
        oauth
            .verify(token)
            .now_or_never()
            .expect("no network")
            .expect("accepted")
    };
    check(&seen);
    group.bench_function("token_seen_before", |b| {
        b.iter(|| check(std::hint::black_box(&seen)))
    });
    let mut jti = 1;
    group.bench_function("token_first_check", |b| {
        b.iter_batched(
            || {
                jti += 1;
                token(jti)
            },
            |fresh| check(&fresh),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
