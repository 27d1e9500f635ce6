//! The daemon's HTTP stack, in process: `/mcp` with the warehouse tools and
//! the operations routes, on a free port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use snowflake_mcp::http::Router;
use snowflake_mcp::mcp::McpServer;
use snowflake_mcp::ops::Ops;
use snowflake_mcp::requests::{RequestManager, RequestsConfig};
use snowflake_mcp::tools::{self, ToolsConfig};
use snowflake_mcp::transport::streamable_http::{HttpMcpConfig, StreamableHttp};
use snowflake_mcp::warehouse::Warehouse;
use snowflake_mcp::{Config, Registry, Server};

/// Serves `warehouse` (database checks cached for `ttl`, warehouse calls
/// under `limits`) on the current runtime until the process ends.
pub async fn serve(
    warehouse: Arc<dyn Warehouse>,
    ttl: Duration,
    limits: RequestsConfig,
) -> SocketAddr {
    let registry = Registry::new();
    let requests = RequestManager::new(limits);
    let ops = Arc::new(
        Ops::new(
            "test",
            Arc::clone(&registry),
            Arc::clone(&requests),
            Arc::clone(&warehouse),
        )
        .db_check(Duration::from_secs(2), ttl),
    );
    let mcp = tools::register(
        McpServer::builder("t", "0"),
        warehouse,
        ToolsConfig::default(),
        requests,
    )
    .build();
    ops.set_mcp_servers(vec![mcp.clone()]);
    let http = StreamableHttp::with_registry(mcp, HttpMcpConfig::default(), Arc::clone(&registry));
    let router = http.routes(ops.routes(Router::new()), "/mcp");
    let server = Server::bind(Config::new().port(0).security_headers(None), router)
        .await
        .expect("bind")
        .with_registry(registry);
    let addr = server.local_addr();
    ops.set_http_stats(server.stats());
    ops.set_transports(vec![(
        "streamable_http".into(),
        format!("http://{addr}/mcp"),
    )]);
    tokio::spawn(server.serve(std::future::pending()));
    addr
}
