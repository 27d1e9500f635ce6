//! A host process adding its own tool and serving MCP over stdio.
//!
//! ```text
//! cargo run --example embed
//! ```

use serde::Deserialize;
use serde_json::json;
use snowflake_mcp::mcp::{Context, McpServer, Tool, ToolOutput};

#[derive(Deserialize)]
struct Greet {
    name: String,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let greet = Tool::typed(
        "greet",
        "Greets someone by name.",
        json!({
            "type": "object",
            "properties": { "name": { "type": "string", "minLength": 1 } },
            "required": ["name"]
        }),
        |_ctx: Context, args: Greet| async move { ToolOutput::text(format!("Hello, {}!", args.name)) },
    );
    let server = McpServer::builder("my-host", env!("CARGO_PKG_VERSION"))
        .tool(greet)
        .build();
    snowflake_mcp::transport::stdio::serve(server, tokio::io::stdin(), tokio::io::stdout()).await
}
