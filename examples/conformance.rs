//! A server with the fixture tools the official MCP conformance suite expects
//! (those of its reference "everything server"), for the suite and for tests.
//!
//! ```text
//! cargo run --example conformance            # MCP over stdio
//! ```
//!
//! Streamable HTTP and WebSocket join once those transports exist.

use std::time::Duration;

use serde_json::{Value, json};
use snowflake_mcp::mcp::{Content, Context, LogLevel, McpServer, Tool, ToolOutput};

/// A 1x1 red PNG.
const IMAGE_PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/// A minimal WAV file.
const AUDIO_WAV: &str = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";

fn no_args() -> Value {
    json!({ "type": "object", "properties": {} })
}

fn fixed(name: &str, description: &str, output: ToolOutput) -> Tool {
    Tool::raw(
        name,
        description,
        no_args(),
        move |_ctx: Context, _args: Value| {
            let output = output.clone();
            async move { output }
        },
    )
}

fn server() -> McpServer {
    let image = Content::Image {
        data: IMAGE_PNG.into(),
        mime_type: "image/png".into(),
    };
    McpServer::builder("mcp-conformance-test-server", "1.0.0")
        .tool(fixed(
            "test_simple_text",
            "Tests simple text content response",
            ToolOutput::text("This is a simple text response for testing."),
        ))
        .tool(fixed(
            "test_image_content",
            "Tests image content response",
            ToolOutput::content(vec![image.clone()]),
        ))
        .tool(fixed(
            "test_audio_content",
            "Tests audio content response",
            ToolOutput::content(vec![Content::Audio {
                data: AUDIO_WAV.into(),
                mime_type: "audio/wav".into(),
            }]),
        ))
        .tool(fixed(
            "test_embedded_resource",
            "Tests embedded resource content response",
            ToolOutput::content(vec![Content::Resource {
                resource: json!({
                    "uri": "test://embedded-resource",
                    "mimeType": "text/plain",
                    "text": "This is an embedded resource content."
                }),
            }]),
        ))
        .tool(fixed(
            "test_multiple_content_types",
            "Tests response with multiple content types (text, image, resource)",
            ToolOutput::content(vec![
                Content::Text {
                    text: "Multiple content types test:".into(),
                },
                image,
                Content::Resource {
                    resource: json!({
                        "uri": "test://mixed-content-resource",
                        "mimeType": "application/json",
                        "text": json!({"test": "data", "value": 123}).to_string()
                    }),
                },
            ]),
        ))
        .tool(Tool::raw(
            "test_tool_with_logging",
            "Tests tool that emits log messages during execution",
            no_args(),
            |ctx: Context, _args: Value| async move {
                for (i, text) in [
                    "Tool execution started",
                    "Tool processing data",
                    "Tool execution completed",
                ]
                .into_iter()
                .enumerate()
                {
                    if i > 0 {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    ctx.log(LogLevel::Info, text.into()).await;
                }
                ToolOutput::text("Tool with logging executed successfully")
            },
        ))
        .tool(Tool::raw(
            "test_tool_with_progress",
            "Tests tool that reports progress notifications",
            no_args(),
            |ctx: Context, _args: Value| async move {
                for step in [0.0, 50.0, 100.0] {
                    if step > 0.0 {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    let message = format!("Completed step {step} of 100");
                    ctx.progress(step, Some(100.0), Some(&message)).await;
                }
                // The token as JSON text would show a string token with quotes; show it bare.
                let token = match ctx
                    .progress_token()
                    .map(|t| serde_json::from_str::<Value>(t.get()))
                {
                    Some(Ok(Value::String(s))) => s,
                    Some(Ok(other)) => other.to_string(),
                    _ => "0".to_owned(),
                };
                ToolOutput::text(token)
            },
        ))
        .tool(fixed(
            "test_error_handling",
            "Tests error response handling",
            ToolOutput::error("This tool intentionally returns an error for testing"),
        ))
        .build()
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--transport=stdio" | "stdio" | "--transport" => {}
            "-h" | "--help" => {
                println!("usage: conformance [--transport stdio]");
                return Ok(());
            }
            other => {
                eprintln!("error: unknown argument {other:?} (only stdio is served for now)");
                std::process::exit(2);
            }
        }
    }
    snowflake_mcp::transport::stdio::serve(server(), tokio::io::stdin(), tokio::io::stdout()).await
}
