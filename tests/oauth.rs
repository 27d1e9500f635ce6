#![cfg(all(feature = "sqlite", feature = "oauth"))]
//! The OAuth resource server over real sockets, against an authorization
//! server stand-in served on loopback (its metadata and its key set, which
//! the test rotates): the 401 challenge and the metadata it points at,
//! tokens accepted and scoped, the WebSocket handshake, key rotation
//! fetched once, unknown keys fetched at most once per interval, and no
//! fetch per request. The Python SDK's OAuth flow against a real provider
//! is in `tests/python/test_oauth.py`.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use parking_lot::Mutex;
use serde_json::{Value, json};
use snowflake_mcp::guard::oauth::OAuth;
use snowflake_mcp::http::{Method, Request, Response, Router};
use snowflake_mcp::mcp::McpServer;
use snowflake_mcp::tools::ToolsConfig;
use snowflake_mcp::tools::sql_guard::{SqlGuard, StatementKind};

use snowflake_mcp::warehouse::Warehouse;
use snowflake_mcp::warehouse::sqlite::{SqliteConfig, SqliteWarehouse};
use snowflake_mcp::{Config, Server, Service};
use support::Client;

const KEY_A: &str = include_str!("data/oauth/key_a.pem");
const KEY_B: &str = include_str!("data/oauth/key_b.pem");

fn encoding(pem: &str) -> EncodingKey {
    use base64::Engine as _;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("test key");
    EncodingKey::from_ec_der(&der)
}

fn public_jwk(pem: &str, kid: &str) -> Jwk {
    let mut jwk = Jwk::from_encoding_key(&encoding(pem), Algorithm::ES256).expect("jwk");
    jwk.common.key_id = Some(kid.to_owned());
    jwk
}

/// The authorization server stand-in: its issuer URL, the key set it
/// serves (the test swaps it), and how often the key set was fetched.
struct Provider {
    issuer: String,
    jwks: Arc<Mutex<JwkSet>>,
    fetches: Arc<AtomicUsize>,
}

async fn provider() -> Provider {
    let issuer = Arc::new(std::sync::OnceLock::<String>::new());
    let jwks = Arc::new(Mutex::new(JwkSet {
        keys: vec![public_jwk(KEY_A, "a")],
    }));
    let fetches = Arc::new(AtomicUsize::new(0));
    let metadata = {
        let issuer = Arc::clone(&issuer);
        move |_: Request<'_>| {
            let iss = issuer.get().cloned().unwrap_or_default();
            let doc = json!({"issuer": iss, "jwks_uri": format!("{iss}/jwks"),
                             "token_endpoint": format!("{iss}/token")});
            Response::json(200, doc.to_string())
        }
    };
    let keys = {
        let (jwks, fetches) = (Arc::clone(&jwks), Arc::clone(&fetches));
        move |_: Request<'_>| {
            fetches.fetch_add(1, Ordering::SeqCst);
            Response::json(200, serde_json::to_string(&*jwks.lock()).expect("json"))
        }
    };
    let router = Router::new()
        .route(
            Method::Get,
            "/.well-known/oauth-authorization-server",
            metadata,
        )
        .route(Method::Get, "/jwks", keys);
    let server = Server::bind(
        Config {
            port: 0,
            ..Config::default()
        },
        router,
    )
    .await
    .expect("bind");
    let url = format!("http://{}", server.local_addr());
    issuer.set(url.clone()).expect("once");
    tokio::spawn(server.serve(std::future::pending()));
    Provider {
        issuer: url,
        jwks,
        fetches,
    }
}

/// The MCP server, requiring tokens of `issuer`: its address and the
/// resource server.
async fn mcp(issuer: &str) -> (std::net::SocketAddr, Arc<OAuth>) {
    mcp_with(issuer, Setup::default()).await
}

/// How [`mcp_with`] differs from [`mcp`].
struct Setup {
    /// Whether the keys are loaded at start.
    load: bool,
    /// A rate limit (per second, burst).
    rate: Option<(f64, u32)>,
    /// Whether `execute_query` needs the scope `mcp:sql`.
    scoped_tool: bool,
    /// Whether `mcp:ddl` grants CREATE (and there is no write scope).
    ddl_scope: bool,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            load: true,
            rate: None,
            scoped_tool: false,
            ddl_scope: false,
        }
    }
}

/// The MCP server as `setup` says.
async fn mcp_with(issuer: &str, setup: Setup) -> (std::net::SocketAddr, Arc<OAuth>) {
    let Setup {
        load,
        rate,
        scoped_tool,
        ddl_scope,
    } = setup;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut oauth = OAuth::new(issuer, &format!("http://{addr}/mcp"))
        .expect("settings")
        .required_scopes(&["mcp:read"])
        .refetch_interval(Duration::from_millis(500));
    if ddl_scope {
        oauth = oauth.kind_scope(StatementKind::Create, "mcp:ddl");
    } else {
        oauth = oauth.write_scope("mcp:write");
    }
    if scoped_tool {
        oauth = oauth.tool_scope("execute_query", "mcp:sql");
    }
    let oauth = Arc::new(oauth);
    if load {
        oauth.load_keys().await.expect("keys");
    }
    let warehouse: Arc<dyn Warehouse> = SqliteWarehouse::open(SqliteConfig {
        allow_writes: true,
        ..SqliteConfig::default()
    })
    .await
    .expect("demo");
    let tools = ToolsConfig {
        guard: SqlGuard::allowing(
            StatementKind::READ_ONLY
                .into_iter()
                .chain([StatementKind::Create]),
        ),
        ..ToolsConfig::default()
    };
    let service = Service::new(McpServer::builder("t", "0"))
        .warehouse(warehouse, tools)
        .streamable_http("/mcp")
        .websocket("/ws")
        .oauth(Arc::clone(&oauth));
    let service = match rate {
        Some((per_second, burst)) => service.rate_limit(per_second, burst),
        None => service,
    };
    let server = service.build().on_listener(listener).expect("serve");
    tokio::spawn(server.serve(std::future::pending()));
    (addr, oauth)
}

fn token(pem: &str, kid: &str, issuer: &str, addr: std::net::SocketAddr, scope: &str) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = json!({"iss": issuer, "aud": format!("http://{addr}/mcp"), "sub": "alice",
                        "client_id": "agent", "exp": now + 300, "iat": now, "scope": scope});
    sign(pem, kid, &claims)
}

fn sign(pem: &str, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    header.typ = Some("at+jwt".to_owned());
    jsonwebtoken::encode(&header, claims, &encoding(pem)).expect("sign")
}

async fn request(addr: std::net::SocketAddr, head: &str, body: &str) -> support::Resp {
    let mut c = Client::connect(addr).await;
    c.send(
        format!(
            "{head}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await;
    c.read_response_to(head.split(' ').next().unwrap_or("GET"))
        .await
}

async fn post(addr: std::net::SocketAddr, token: Option<&str>, body: &str) -> support::Resp {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMcp-Protocol-Version: 2025-11-25\r\n{auth}"
    );
    request(addr, &head, body).await
}

/// The head of a 2025-11-25 POST in session `sid` with `token`.
fn session_head(token: &str, sid: &str) -> String {
    format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMcp-Protocol-Version: 2025-11-25\r\nAuthorization: Bearer {token}\r\nMcp-Session-Id: {sid}\r\n"
    )
}

/// A 2025-11-25 `tools/call` of `execute_query` in a new session.
async fn query(addr: std::net::SocketAddr, token: &str, sql: &str) -> Value {
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                      "params": {"name": "execute_query", "arguments": {"query": sql}}});
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}});
    let r = post(addr, Some(token), &init.to_string()).await;
    assert_eq!(r.status, 200, "{}", r.body_str());
    let sid = r.header("mcp-session-id").expect("session").to_owned();
    let r = request(addr, &session_head(token, &sid), &call.to_string()).await;
    support::answer_of(&r.body_str())
}

/// A request every client may send without a session.
const PING: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_challenge_points_at_metadata_and_good_tokens_get_in() {
    let provider = provider().await;
    let (addr, oauth) = mcp(&provider.issuer).await;
    let r = post(addr, None, PING).await;
    assert_eq!(r.status, 401);
    let challenge = r.header("www-authenticate").expect("challenge");
    let metadata_url = format!("http://{addr}/.well-known/oauth-protected-resource/mcp");
    assert_eq!(
        challenge,
        format!("Bearer resource_metadata=\"{metadata_url}\", scope=\"mcp:read\"")
    );
    assert_eq!(oauth.metadata_url(), metadata_url);
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let r = request(
            addr,
            &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: https://app.example\r\n"),
            "",
        )
        .await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
        let doc: Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(doc["resource"], format!("http://{addr}/mcp"));
        assert_eq!(doc["authorization_servers"], json!([provider.issuer]));
        assert_eq!(doc["scopes_supported"], json!(["mcp:read", "mcp:write"]));
        assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
    }
    // A browser's preflight for the metadata (clients add MCP's headers).
    let r = request(
        addr,
        "OPTIONS /.well-known/oauth-protected-resource/mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: https://app.example\r\nAccess-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: mcp-protocol-version\r\n",
        "",
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));

    let fetched = provider.fetches.load(Ordering::SeqCst);
    let writer = token(KEY_A, "a", &provider.issuer, addr, "mcp:read mcp:write");
    let v = query(addr, &writer, "CREATE TABLE notes (body TEXT)").await;
    assert_eq!(v["result"]["isError"], Value::Null, "{v}");
    // Without the write scope: read-only statements only.
    let reader = token(KEY_A, "a", &provider.issuer, addr, "mcp:read");
    let v = query(addr, &reader, "CREATE TABLE more (body TEXT)").await;
    assert_eq!(v["result"]["isError"], true, "{v}");
    let v = query(addr, &reader, "SELECT COUNT(*) FROM orders").await;
    assert_eq!(
        v["result"]["structuredContent"]["rows"],
        json!([[200]]),
        "{v}"
    );
    // Without the required scope: 403 naming it.
    let r = post(
        addr,
        Some(&token(KEY_A, "a", &provider.issuer, addr, "other")),
        PING,
    )
    .await;
    assert_eq!(r.status, 403);
    let challenge = r.header("www-authenticate").expect("challenge");
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"mcp:read\""), "{challenge}");
    // A token for another resource, a forged one, one from another issuer.
    let now = jsonwebtoken::get_current_timestamp();
    let elsewhere = sign(
        KEY_A,
        "a",
        &json!({"iss": provider.issuer, "aud": "http://127.0.0.1:1/mcp",
        "sub": "alice", "exp": now + 300, "scope": "mcp:read"}),
    );
    let r = post(addr, Some(&elsewhere), PING).await;
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .expect("challenge")
            .contains("another audience")
    );
    let forged = token(KEY_B, "a", &provider.issuer, addr, "mcp:read");
    let r = post(addr, Some(&forged), PING).await;
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .expect("challenge")
            .contains("signature")
    );
    let evil = token(KEY_A, "a", "http://127.0.0.1:1", addr, "mcp:read");
    let r = post(addr, Some(&evil), PING).await;
    assert_eq!(r.status, 401);
    let challenge = r.header("www-authenticate").expect("challenge");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(challenge.contains("another issuer"), "{challenge}");
    assert!(!r.body_str().contains(&evil), "the token is not echoed");
    // Many requests, no fetch: the keys and the checked tokens are kept.
    for _ in 0..20 {
        assert_eq!(post(addr, Some(&reader), PING).await.status, 200);
    }
    assert_eq!(provider.fetches.load(Ordering::SeqCst), fetched);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_websocket_handshake_needs_a_token() {
    let provider = provider().await;
    let (addr, _) = mcp(&provider.issuer).await;
    let handshake = |token: Option<&str>| {
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        format!(
            "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{auth}\r\n"
        )
    };
    let mut c = Client::connect(addr).await;
    c.send(handshake(None).as_bytes()).await;
    let r = c.read_response().await;
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .expect("challenge")
            .contains("resource_metadata=")
    );
    let mut c = Client::connect(addr).await;
    let good = token(KEY_A, "a", &provider.issuer, addr, "mcp:read");
    c.send(handshake(Some(&good)).as_bytes()).await;
    let head = String::from_utf8(c.read_exact_raw(12).await).expect("utf-8");
    assert_eq!(head, "HTTP/1.1 101");
    // A token under a key fetched on demand upgrades too.
    *provider.jwks.lock() = JwkSet {
        keys: vec![public_jwk(KEY_A, "a"), public_jwk(KEY_B, "b")],
    };
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut c = Client::connect(addr).await;
    let rotated = token(KEY_B, "b", &provider.issuer, addr, "mcp:read");
    c.send(handshake(Some(&rotated)).as_bytes()).await;
    let head = String::from_utf8(c.read_exact_raw(12).await).expect("utf-8");
    assert_eq!(head, "HTTP/1.1 101");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_keys_are_fetched_once_and_unknown_keys_at_most_once_per_interval() {
    let provider = provider().await;
    let (addr, _) = mcp(&provider.issuer).await;
    assert_eq!(
        provider.fetches.load(Ordering::SeqCst),
        1,
        "loaded at start"
    );
    // The provider rotates to key B.
    *provider.jwks.lock() = JwkSet {
        keys: vec![public_jwk(KEY_B, "b")],
    };
    tokio::time::sleep(Duration::from_millis(600)).await;
    let rotated = token(KEY_B, "b", &provider.issuer, addr, "mcp:read");
    // Ten requests with the new key at once: one fetch between them.
    let answers = futures_util::future::join_all((0..10).map(|_| {
        let rotated = rotated.clone();
        async move { post(addr, Some(&rotated), PING).await.status }
    }))
    .await;
    assert_eq!(answers, vec![200; 10]);
    assert_eq!(provider.fetches.load(Ordering::SeqCst), 2);
    // Tokens naming keys nobody has: refused, and the provider is asked at
    // most once more however many arrive.
    let mut statuses = Vec::new();
    for i in 0..20 {
        let bogus = token(
            KEY_A,
            &format!("nobody-{i}"),
            &provider.issuer,
            addr,
            "mcp:read",
        );
        let r = post(addr, Some(&bogus), PING).await;
        statuses.push(r.status);
        if i == 0 {
            let challenge = r.header("www-authenticate").expect("challenge").to_owned();
            assert!(challenge.contains("unknown key"), "{challenge}");
        }
    }
    assert_eq!(statuses, vec![401; 20]);
    let fetches = provider.fetches.load(Ordering::SeqCst);
    assert!(fetches <= 4, "{fetches} fetches for 20 unknown keys");
    // The old key is gone from the set, but a token checked before stays
    // good until it expires; a new token under it is refused.
    let old = token(KEY_A, "a", &provider.issuer, addr, "mcp:read");
    assert_eq!(post(addr, Some(&old), PING).await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_provider_is_a_clear_refusal_not_a_hang() {
    // An issuer on a port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let issuer = format!("http://{closed}");
    let setup = Setup {
        load: false,
        ..Setup::default()
    };
    let (addr, oauth) = mcp_with(&issuer, setup).await;
    assert!(oauth.load_keys().await.is_err());
    let started = std::time::Instant::now();
    let r = post(
        addr,
        Some(&token(KEY_A, "a", &issuer, addr, "mcp:read")),
        PING,
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .expect("challenge")
            .contains("invalid_token")
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_is_held_to_its_rate_from_any_address() {
    let provider = provider().await;
    let setup = Setup {
        rate: Some((0.5, 3)),
        ..Setup::default()
    };
    let (addr, _) = mcp_with(&provider.issuer, setup).await;
    let token = token(KEY_A, "a", &provider.issuer, addr, "mcp:read");
    // Each request from an address of its own (fresh address buckets): the
    // caller's own bucket still runs out after its burst.
    let mut statuses = Vec::new();
    for i in 2..7u8 {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(std::net::SocketAddr::from(([127, 0, 0, i], 0)))
            .expect("bind");
        let stream = socket.connect(addr).await.expect("connect");
        let mut c = Client::from_stream(stream);
        let req = format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{PING}",
            PING.len()
        );
        c.send(req.as_bytes()).await;
        statuses.push(c.read_response_to("POST").await.status);
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_with_a_scope_of_its_own_asks_for_it() {
    let provider = provider().await;
    let setup = Setup {
        scoped_tool: true,
        ..Setup::default()
    };
    let (addr, _) = mcp_with(&provider.issuer, setup).await;
    let reader = token(KEY_A, "a", &provider.issuer, addr, "mcp:read");
    let init = post(addr, Some(&reader), PING).await;
    let sid = init.header("mcp-session-id").expect("session").to_owned();
    let call = |name: &str| {
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
               "params": {"name": name, "arguments": {"query": "SELECT 1"}}})
        .to_string()
    };
    let head = |token: &str| session_head(token, &sid);
    // Without mcp:sql: 403, the challenge asking for it, the JSON-RPC
    // refusal (with its id) as the body.
    let r = request(addr, &head(&reader), &call("execute_query")).await;
    assert_eq!(r.status, 403, "{}", r.body_str());
    let challenge = r.header("www-authenticate").expect("challenge");
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(
        challenge.contains("scope=\"mcp:read mcp:sql\""),
        "{challenge}"
    );
    let body: Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(body["id"], 2);
    assert_eq!(
        body["error"]["code"],
        snowflake_mcp::mcp::INSUFFICIENT_SCOPE
    );
    assert_eq!(body["error"]["data"]["scope"], "mcp:sql");
    // Other tools are the token's.
    let r = request(addr, &head(&reader), &call("list_databases")).await;
    assert_eq!(r.status, 200, "{}", r.body_str());
    // A token with the scope (a step-up) calls it in the same session.
    let stepped = token(KEY_A, "a", &provider.issuer, addr, "mcp:read mcp:sql");
    let r = request(addr, &head(&stepped), &call("execute_query")).await;
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert!(r.body_str().contains("\"rows\":[[1]]"), "{}", r.body_str());
    // And the narrower token is refused again after it.
    let r = request(addr, &head(&reader), &call("execute_query")).await;
    assert_eq!(r.status, 403);
    // Over a WebSocket the handshake's token decides: a JSON-RPC error.
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    let mut request = support::ws_request(&addr.to_string());
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {reader}").parse().expect("header"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("handshake");
    ws.send(Message::text(PING)).await.expect("send");
    let _ = ws.next().await.expect("initialize answer");
    ws.send(Message::text(
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    ))
    .await
    .expect("send");
    ws.send(Message::text(call("execute_query")))
        .await
        .expect("send");
    let answer = loop {
        let frame = ws.next().await.expect("frame").expect("ok");
        let v: Value = serde_json::from_str(frame.to_text().expect("text")).expect("json");
        if v["id"] == 2 {
            break v;
        }
    };
    assert_eq!(
        answer["error"]["code"],
        snowflake_mcp::mcp::INSUFFICIENT_SCOPE,
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scope_grants_a_statement_kind_and_lifts_in_the_same_session() {
    let provider = provider().await;
    let setup = Setup {
        ddl_scope: true,
        ..Setup::default()
    };
    let (addr, _) = mcp_with(&provider.issuer, setup).await;
    let reader = token(KEY_A, "a", &provider.issuer, addr, "mcp:read");
    let ddl = token(KEY_A, "a", &provider.issuer, addr, "mcp:read mcp:ddl");
    let init = post(addr, Some(&reader), PING).await;
    let sid = init.header("mcp-session-id").expect("session").to_owned();
    let call = |token: &str, sql: &str| {
        let head = session_head(token, &sid);
        let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                          "params": {"name": "execute_query", "arguments": {"query": sql}}})
        .to_string();
        async move { request(addr, &head, &body).await.body_str() }
    };
    let refused = call(&reader, "CREATE TABLE t1 (x INT)").await;
    assert!(refused.contains("not granted by the token"), "{refused}");
    let created = call(&ddl, "CREATE TABLE t2 (x INT)").await;
    assert!(!created.contains("Refused"), "{created}");
    assert!(!created.contains("\"isError\":true"), "{created}");
    // The limit follows each request's token: the narrower one is refused
    // again after the wider one lifted it.
    let again = call(&reader, "CREATE TABLE t3 (x INT)").await;
    assert!(again.contains("not granted by the token"), "{again}");
}
