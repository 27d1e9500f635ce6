//! A server with the fixture tools the official MCP conformance suite expects
//! (those of its reference "everything server"), for the suite and for tests.
//!
//! ```text
//! cargo run --example conformance                          # MCP over stdio
//! cargo run --example conformance -- --transport http      # /mcp and /ws on a free port
//! ```

use std::time::Duration;

use serde_json::{Value, json};
use snowflake_mcp::mcp::{
    Content, Context, InputRequests, LogLevel, McpServer, McpServerBuilder, Prompt, PromptMessage,
    PromptOutput, Resource, ResourceContents, Role, TaskSupport, Tool, ToolOutput,
};
use snowflake_mcp::{Config, Service};

/// A 1x1 red PNG.
const IMAGE_PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/// A minimal WAV file.
const AUDIO_WAV: &str = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";

fn no_args() -> Value {
    json!({ "type": "object", "properties": {} })
}

/// A tool that answers `output` whatever it is sent: its arguments are
/// skipped as they are read (serde's `IgnoredAny`), not built into a value
/// it would drop unread.
fn fixed(name: &str, description: &str, output: ToolOutput) -> Tool {
    Tool::typed(
        name,
        description,
        no_args(),
        move |_ctx: Context, _args: serde::de::IgnoredAny| {
            let output = output.clone();
            async move { output }
        },
    )
}

fn user(content: Content) -> PromptMessage {
    PromptMessage {
        role: Role::User,
        content,
    }
}

fn text(t: &str) -> Content {
    Content::Text { text: t.to_owned() }
}

fn arg(args: &[(String, String)], name: &str) -> String {
    args.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

mod basic;
mod modern;
mod tasks;

use basic::{SERVER, client_requests, prompts, resources, toggle, toggle_tool};
use modern::modern_fixtures;
use tasks::{json_schema_2020_12_tool, sleep_tools, task_fixtures};

fn server() -> McpServer {
    let b = McpServer::builder("mcp-conformance-test-server", "1.0.0");
    let b = task_fixtures(modern_fixtures(sleep_tools(client_requests(prompts(
        resources(b),
    )))));
    let b = b.tool(toggle_tool()).tool(json_schema_2020_12_tool());
    notifying_tools(content_tools(b)).build()
}

/// Tools answering fixed content: text, image, audio, an embedded
/// resource, several types at once, an error.
fn content_tools(b: McpServerBuilder) -> McpServerBuilder {
    let image = Content::Image {
        data: IMAGE_PNG.into(),
        mime_type: "image/png".into(),
    };
    b.tool(fixed(
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
    .tool(fixed(
        "test_error_handling",
        "Tests error response handling",
        ToolOutput::error("This tool intentionally returns an error for testing"),
    ))
}

/// Tools that log and report progress while they run.
fn notifying_tools(b: McpServerBuilder) -> McpServerBuilder {
    b.tool(Tool::raw(
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
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut http_port: Option<u16> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--transport" => match args.next().as_deref() {
                Some("stdio") => http_port = None,
                Some("http") => http_port = Some(http_port.unwrap_or(0)),
                other => {
                    eprintln!("error: --transport must be stdio or http, not {other:?}");
                    std::process::exit(2);
                }
            },
            "--port" => {
                let port = args.next().and_then(|p| p.parse().ok());
                let Some(port) = port else {
                    eprintln!("error: --port needs a number (0-65535)");
                    std::process::exit(2);
                };
                http_port = Some(port);
            }
            "-h" | "--help" => {
                println!("usage: conformance [--transport stdio|http] [--port N]");
                return Ok(());
            }
            other => {
                eprintln!("error: unknown argument {other:?}");
                std::process::exit(2);
            }
        }
    }
    let server = SERVER.get_or_init(server).clone();
    // The watched resource changes every 3 seconds.
    let watched = server.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3));
        tick.tick().await;
        loop {
            tick.tick().await;
            watched.resource_updated("test://watched-resource");
        }
    });
    let Some(port) = http_port else {
        return snowflake_mcp::transport::stdio::serve(
            server,
            tokio::io::stdin(),
            tokio::io::stdout(),
        )
        .await;
    };
    let http = Service::from_server(server)
        .streamable_http("/mcp")
        .websocket("/ws")
        .config(Config {
            port,
            ..Config::default()
        })
        .build()
        .bind()
        .await
        .map_err(std::io::Error::other)?;
    println!("listening on http://{}", http.local_addr());
    http.serve(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .map_err(std::io::Error::other)
}
