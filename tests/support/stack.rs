//! The daemon's HTTP stack, in process: `/mcp` with the warehouse tools and
//! the operations routes, on a free port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use snowflake_mcp::mcp::McpServer;
use snowflake_mcp::requests::RequestsConfig;
use snowflake_mcp::tools::ToolsConfig;
use snowflake_mcp::warehouse::Warehouse;
use snowflake_mcp::{Config, Service};

/// Serves `warehouse` (database checks cached for `ttl`, warehouse calls
/// under `limits`) on the current runtime until the process ends, through
/// the library's composition root.
pub async fn serve(
    warehouse: Arc<dyn Warehouse>,
    ttl: Duration,
    limits: RequestsConfig,
) -> SocketAddr {
    let server = Service::new(McpServer::builder("t", "test"))
        .warehouse(warehouse, ToolsConfig::default())
        .requests(limits)
        .streamable_http("/mcp")
        .ops()
        .db_check(Duration::from_secs(2), ttl)
        .config(Config {
            port: 0,
            security_headers: true,
            hsts_max_age: None,
            ..Config::default()
        })
        .build()
        .bind()
        .await
        .expect("bind");
    let addr = server.local_addr();
    tokio::spawn(server.serve(std::future::pending()));
    addr
}
