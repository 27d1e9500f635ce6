//! A host serving its own typed tool over Streamable HTTP (`/mcp`) and
//! WebSocket (`/ws`), with `/health`, `/health/detailed`, `/status` and
//! `/metrics`, through the library's composition root (`Service`).
//!
//! ```text
//! cargo run --example embed_http            # 127.0.0.1:8000
//! cargo run --example embed_http -- 9000    # another port
//! ```

use schemars::JsonSchema;
use serde::Deserialize;
use snowflake_mcp::prelude::*;

/// Whom to greet (the tool's input schema is derived from this type).
#[derive(Deserialize, JsonSchema)]
struct Greet {
    /// A name.
    name: String,
}

async fn greet(_ctx: Context, args: Greet) -> ToolOutput {
    ToolOutput::text(format!("Hello, {}!", args.name))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let greet = Tool::derived("greet", "Greets someone by name.", greet);
    Service::new(McpServer::builder("my-host", "1.0").tool(greet))
        .streamable_http("/mcp")
        .websocket("/ws")
        .ops()
        .config(config())
        .serve(ctrl_c())
        .await
}

/// The defaults, on the port the first argument names (else 8000).
fn config() -> Config {
    let port = std::env::args().nth(1).and_then(|p| p.parse().ok());
    Config {
        port: port.unwrap_or(8000),
        ..Config::default()
    }
}

async fn ctrl_c() {
    let _ = tokio::signal::ctrl_c().await;
}
