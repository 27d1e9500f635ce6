//! Token checks against keys installed by hand (the fetches are covered by
//! `tests/oauth.rs` over real sockets, and by the Python SDK against a real
//! authorization server).

use super::*;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

/// Test keys (P-256, PKCS#8), made for the tests only (the integration
/// tests and the Python tests sign with them too).
const KEY_A: &str = include_str!("../../../tests/data/oauth/key_a.pem");
const KEY_B: &str = include_str!("../../../tests/data/oauth/key_b.pem");

const ISSUER: &str = "https://issuer.example";
const RESOURCE: &str = "https://mcp.example/mcp";

fn encoding(pem: &str) -> EncodingKey {
    use base64::Engine as _;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("test key");
    EncodingKey::from_ec_der(&der)
}

/// The public JWK of a test key, named `kid`.
fn public_jwk(pem: &str, kid: &str) -> Jwk {
    let mut jwk = Jwk::from_encoding_key(&encoding(pem), Algorithm::ES256).expect("jwk");
    jwk.common.key_id = Some(kid.to_owned());
    jwk
}

fn oauth() -> OAuth {
    let oauth = OAuth::new(ISSUER, RESOURCE)
        .expect("settings")
        .required_scopes(&["mcp:read"])
        .write_scope("mcp:write");
    oauth.keys.store(Arc::new(KeySet::from_jwks(
        &JwkSet {
            keys: vec![public_jwk(KEY_A, "a")],
        },
        &oauth.algorithms,
    )));
    oauth
}

/// Good claims, with `change` applied.
fn claims(change: impl FnOnce(&mut serde_json::Value)) -> serde_json::Value {
    let now = unix_now();
    let mut c = json!({
        "iss": ISSUER, "aud": RESOURCE, "sub": "alice", "client_id": "agent",
        "exp": now + 300, "iat": now, "nbf": now, "scope": "mcp:read mcp:write",
    });
    change(&mut c);
    c
}

fn sign(pem: &str, kid: &str, typ: &str, claims: &serde_json::Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    header.typ = Some(typ.to_owned());
    jsonwebtoken::encode(&header, claims, &encoding(pem)).expect("sign")
}

fn good(change: impl FnOnce(&mut serde_json::Value)) -> String {
    sign(KEY_A, "a", "at+jwt", &claims(change))
}

fn refused(verdict: Verdict) -> Refusal {
    match verdict {
        Verdict::Refused(r) => r,
        Verdict::Valid(c) => panic!("accepted: {c:?}"),
        Verdict::UnknownKey => panic!("unknown key"),
        Verdict::Introspect => panic!("introspect"),
    }
}

#[test]
fn a_good_token_names_its_caller_and_scopes() {
    let oauth = oauth();
    let Verdict::Valid(caller) = oauth.check(&good(|_| {})) else {
        panic!("refused");
    };
    assert_eq!(caller.subject, "alice");
    assert_eq!(caller.client_id.as_deref(), Some("agent"));
    assert!(oauth.may_write(&caller));
    let Verdict::Valid(reader) = oauth.check(&good(|c| c["scope"] = json!("mcp:read"))) else {
        panic!("refused");
    };
    assert!(!oauth.may_write(&reader), "no write scope: read-only");
    // A client-credentials token may name only its client.
    let machine = good(|c| {
        c.as_object_mut().expect("object").remove("sub");
    });
    let Verdict::Valid(machine) = oauth.check(&machine) else {
        panic!("refused");
    };
    assert_eq!(machine.subject, "agent");
}

#[test]
fn bad_tokens_are_refused_with_the_reason() {
    let oauth = oauth();
    let now = unix_now();
    let cases: Vec<(&str, String)> = vec![
        ("expired", good(|c| c["exp"] = json!(now - 120))),
        ("not valid yet", good(|c| c["nbf"] = json!(now + 120))),
        (
            "another audience",
            good(|c| c["aud"] = json!("https://other/mcp")),
        ),
        (
            "another issuer",
            good(|c| c["iss"] = json!("https://evil.example")),
        ),
        (
            "no audience",
            good(|c| {
                c.as_object_mut().expect("object").remove("aud");
            }),
        ),
        ("an ID token", sign(KEY_A, "a", "JWT", &claims(|_| {}))),
        (
            "signed by another key under a known kid",
            sign(KEY_B, "a", "at+jwt", &claims(|_| {})),
        ),
        ("not a JWT", "opaque-token-value".to_owned()),
    ];
    for (what, token) in cases {
        assert!(
            matches!(refused(oauth.check(&token)), Refusal::Invalid(_)),
            "{what}"
        );
    }
    // Within the leeway an expired token still passes (clock skew).
    assert!(matches!(
        oauth.check(&good(|c| c["exp"] = json!(now - 5))),
        Verdict::Valid(_)
    ));
}

#[test]
fn algorithm_tricks_are_refused() {
    let oauth = oauth();
    let b64 = |v: serde_json::Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let body = b64(claims(|_| {}));
    // alg none, with and without a signature.
    for header in [
        json!({"alg": "none", "typ": "at+jwt", "kid": "a"}),
        json!({"alg": "None", "typ": "at+jwt", "kid": "a"}),
    ] {
        for sig in ["", "AAAA"] {
            let token = format!("{}.{body}.{sig}", b64(header.clone()));
            assert!(matches!(refused(oauth.check(&token)), Refusal::Invalid(_)));
        }
    }
    // An HMAC keyed with the public key's bytes (the classic confusion).
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("a".into());
    header.typ = Some("at+jwt".into());
    let public = serde_json::to_vec(&public_jwk(KEY_A, "a")).expect("json");
    let token = jsonwebtoken::encode(
        &header,
        &claims(|_| {}),
        &EncodingKey::from_secret(&public).expect("key"),
    )
    .expect("sign");
    assert!(matches!(refused(oauth.check(&token)), Refusal::Invalid(_)));
    assert!(
        OAuth::new(ISSUER, RESOURCE)
            .expect("settings")
            .algorithms(&[Algorithm::HS256])
            .is_err(),
        "an HMAC cannot be allowed"
    );
}

#[test]
fn an_unknown_key_asks_for_a_fetch_and_scopes_are_enforced() {
    let oauth = oauth();
    assert!(matches!(
        oauth.check(&sign(KEY_B, "b", "at+jwt", &claims(|_| {}))),
        Verdict::UnknownKey
    ));
    assert_eq!(
        refused(oauth.check(&good(|c| c["scope"] = json!("other")))),
        Refusal::InsufficientScope
    );
}

#[test]
fn a_checked_token_is_remembered_until_it_expires() {
    let oauth = oauth();
    let token = good(|_| {});
    assert!(matches!(oauth.check(&token), Verdict::Valid(_)));
    // The keys rotate away: the token already checked is still good (its
    // digest is remembered), a new token under the old key is not.
    oauth.keys.store(Arc::new(KeySet::default()));
    assert!(matches!(oauth.check(&token), Verdict::Valid(_)));
    assert!(matches!(
        oauth.check(&good(|c| c["sub"] = json!("bob"))),
        Verdict::UnknownKey
    ));
}

#[test]
fn challenges_and_metadata() {
    let oauth = Arc::new(oauth());
    assert_eq!(
        oauth.metadata_paths(),
        [
            "/.well-known/oauth-protected-resource/mcp",
            "/.well-known/oauth-protected-resource"
        ]
    );
    assert_eq!(
        oauth.metadata_url(),
        "https://mcp.example/.well-known/oauth-protected-resource/mcp"
    );
    let challenge = |r: Refusal| {
        let response = oauth.refusal(r);
        let header = response
            .header_value("www-authenticate")
            .map(|v| String::from_utf8_lossy(v).into_owned());
        (response.status(), header)
    };
    let url = "resource_metadata=\"https://mcp.example/.well-known/oauth-protected-resource/mcp\"";
    let (status, header) = challenge(Refusal::Missing);
    assert_eq!(status, 401);
    assert_eq!(
        header.as_deref(),
        Some(format!("Bearer {url}, scope=\"mcp:read\"").as_str())
    );
    let (status, header) = challenge(Refusal::Invalid("the token has expired"));
    assert_eq!(status, 401);
    let header = header.expect("challenge");
    assert!(
        header.starts_with("Bearer error=\"invalid_token\""),
        "{header}"
    );
    assert!(header.contains("error_description=\"the token has expired\""));
    let (status, header) = challenge(Refusal::InsufficientScope);
    assert_eq!(status, 403);
    assert!(
        header
            .expect("challenge")
            .contains("error=\"insufficient_scope\"")
    );
    assert_eq!(challenge(Refusal::Unavailable).0, 503);
    for bad in ["http://issuer.example", "https://u:p@x/", "https://x/#f"] {
        assert!(OAuth::new(bad, RESOURCE).is_err(), "{bad}");
    }
    assert!(OAuth::new(ISSUER, "https://x/mcp?q=1").is_err());
    let debug = format!("{oauth:?}");
    assert!(debug.contains("issuer.example") && !debug.contains("secret"));
}

#[test]
fn scopes_grant_statement_kinds() {
    use crate::util::sql_guard::StatementKind;
    let caller = |scopes: &[&str]| Caller {
        subject: "s".into(),
        client_id: None,
        scopes: {
            let mut s: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
            s.sort();
            s
        },
        expires: u64::MAX,
        limits: Default::default(),
    };
    // No write scope and no kind scopes: whatever the allow-list permits.
    let open = OAuth::new(ISSUER, RESOURCE).expect("settings");
    assert_eq!(open.statement_kinds(&caller(&[])), None);
    let oauth = oauth().kind_scope(StatementKind::Insert, "mcp:insert");
    assert_eq!(
        oauth.statement_kinds(&caller(&["mcp:read", "mcp:write"])),
        None
    );
    let reader = oauth
        .statement_kinds(&caller(&["mcp:read"]))
        .expect("limited");
    assert_eq!(*reader, StatementKind::READ_ONLY.to_vec());
    let inserter = oauth
        .statement_kinds(&caller(&["mcp:read", "mcp:insert"]))
        .expect("limited");
    assert!(inserter.contains(&StatementKind::Insert));
    assert!(!inserter.contains(&StatementKind::Delete));
    // Kind scopes alone (no write scope) still limit.
    let kinds_only = OAuth::new(ISSUER, RESOURCE)
        .expect("settings")
        .kind_scope(StatementKind::Create, "mcp:ddl");
    assert!(kinds_only.statement_kinds(&caller(&[])).is_some());
    assert_eq!(
        kinds_only
            .statement_kinds(&caller(&["mcp:ddl"]))
            .expect("limited")
            .last(),
        Some(&StatementKind::Create)
    );
}
