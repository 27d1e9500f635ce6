//! Server-wide response headers (security headers) and CORS, over real sockets.

mod support;

use snowflake_mcp::http::{Cors, Router};
use snowflake_mcp::{Config, Server};
use support::TestServer;

async fn ask(server: &TestServer, request: &str) -> support::Resp {
    let mut c = server.connect().await;
    c.send(request.as_bytes()).await;
    c.read_response().await
}

fn config() -> Config {
    let cors = Cors {
        allow_headers: format!(
            "Content-Type, Authorization, {}",
            snowflake_mcp::transport::MCP_CORS_ALLOW_HEADERS
        ),
        expose_headers: snowflake_mcp::transport::MCP_CORS_EXPOSE_HEADERS.into(),
        ..Cors::origins(vec!["https://app.example".into()])
    };
    Config {
        security_headers: true,
        hsts_max_age: Some(std::time::Duration::from_secs(31_536_000)),
        cors: Some(cors),
        ..Config::default()
    }
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let server = TestServer::start(config()).await;
    for request in [
        "GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n",
        "DELETE /health HTTP/1.1\r\nHost: x\r\n\r\n",
        // Refused by the head parser before any route is looked at.
        "GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
    ] {
        let r = ask(&server, request).await;
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{request:?}"
        );
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
        assert_eq!(
            r.header("content-security-policy"),
            Some("default-src 'none'; frame-ancestors 'none'")
        );
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(
            r.header("strict-transport-security"),
            Some("max-age=31536000")
        );
        assert!(r.header("access-control-allow-origin").is_none());
    }
    server.shutdown().await;
}

#[tokio::test]
async fn allowed_origins_get_cors_headers_and_others_do_not() {
    let server = TestServer::start(config()).await;
    let r = ask(
        &server,
        "GET /health HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(r.header("vary"), Some("Origin"));
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some("Mcp-Session-Id")
    );

    let r = ask(
        &server,
        "GET /health HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.header("access-control-allow-origin").is_none());
    assert!(r.header("vary").is_none());

    // Preflight: 204 with what MCP clients need.
    let preflight = "OPTIONS /health HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type, mcp-session-id\r\n\r\n";
    let r = ask(&server, preflight).await;
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(
        r.header("access-control-allow-methods"),
        Some("GET, POST, DELETE, OPTIONS")
    );
    let allowed = r
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    for h in [
        "content-type",
        "authorization",
        "mcp-session-id",
        "mcp-protocol-version",
        "mcp-method",
        "mcp-name",
        "last-event-id",
    ] {
        assert!(allowed.contains(h), "{h} in {allowed}");
    }
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    let r = ask(&server, &preflight.replace("app.example", "evil.example")).await;
    assert_eq!(r.status, 204);
    assert!(r.header("access-control-allow-origin").is_none());
    server.shutdown().await;
}

#[tokio::test]
async fn bad_header_values_are_refused() {
    let with = |name: &str, value: &str| Config {
        port: 0,
        response_headers: vec![(name.into(), value.into())],
        ..Config::default()
    };
    let bind = |config| Server::bind(config, Router::new());
    assert!(bind(with("X-Ok", "fine")).await.is_ok());
    for (name, value) in [("X-Bad", "a\r\nInjected: yes"), ("Bad Name", "v")] {
        match bind(with(name, value)).await {
            Err(snowflake_mcp::Error::Config { setting, why }) => {
                assert_eq!(setting, "response_headers");
                assert!(why.starts_with(name), "{why}");
            }
            other => panic!("{name:?}: {other:?}"),
        }
    }
    let cors = |origin: &str| Config {
        port: 0,
        cors: Some(Cors::origins(vec![origin.into()])),
        ..Config::default()
    };
    assert!(bind(cors("https://app.example")).await.is_ok());
    match bind(cors("https://app.example\r\nSet-Cookie: x=1")).await {
        Err(snowflake_mcp::Error::Config { setting, .. }) => assert_eq!(setting, "cors"),
        other => panic!("{other:?}"),
    }
}
