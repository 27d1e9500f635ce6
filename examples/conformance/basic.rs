//! The fixtures of the handshake versions: resources, prompts, requests to
//! the client, and a tool list that changes.

use super::*;

pub(super) fn resources(b: McpServerBuilder) -> McpServerBuilder {
    b.resource(
        Resource::text(
            "test://static-text",
            "static-text",
            "text/plain",
            "This is the content of the static text resource.",
        )
        .title("Static Text Resource")
        .description("A static text resource for testing"),
    )
    .resource(
        Resource::new(
            "test://static-binary",
            "static-binary",
            |_ctx, uri| async move {
                Ok(vec![ResourceContents::Blob {
                    uri,
                    mime_type: Some("image/png".into()),
                    blob: IMAGE_PNG.into(),
                }])
            },
        )
        .title("Static Binary Resource")
        .description("A static binary resource (image) for testing")
        .mime_type("image/png"),
    )
    .resource(
        Resource::template(
            "test://template/{id}/data",
            "template",
            |_ctx, uri, vars| async move {
                let id = arg(&vars, "id");
                let body =
                    json!({ "id": id, "templateTest": true, "data": format!("Data for ID: {id}") });
                Ok(vec![ResourceContents::Text {
                    uri,
                    mime_type: Some("application/json".into()),
                    text: body.to_string(),
                }])
            },
        )
        .title("Resource Template")
        .description("A resource template with parameter substitution")
        .mime_type("application/json"),
    )
    .resource(
        Resource::text(
            "test://watched-resource",
            "watched-resource",
            "text/plain",
            "Watched resource content",
        )
        .title("Watched Resource")
        .description("A resource that auto-updates every 3 seconds"),
    )
}

pub(super) fn prompts(b: McpServerBuilder) -> McpServerBuilder {
    b.prompt(
        Prompt::new("test_simple_prompt", |_ctx, _args| async {
            Ok(PromptOutput::new(vec![user(text(
                "This is a simple prompt for testing.",
            ))]))
        })
        .title("Simple Test Prompt")
        .description("A simple prompt without arguments"),
    )
    .prompt(
        Prompt::new("test_prompt_with_arguments", |_ctx, args| async move {
            let line = format!(
                "Prompt with arguments: arg1='{}', arg2='{}'",
                arg(&args, "arg1"),
                arg(&args, "arg2")
            );
            Ok(PromptOutput::new(vec![user(text(&line))]))
        })
        .title("Prompt With Arguments")
        .description("A prompt with required arguments")
        .argument("arg1", "First test argument", true)
        .argument("arg2", "Second test argument", true)
        .complete("arg1", |typed| {
            ["alpha", "beta", "gamma"]
                .iter()
                .filter(|v| v.starts_with(typed))
                .map(|v| v.to_string())
                .collect()
        }),
    )
    .prompt(
        Prompt::new(
            "test_prompt_with_embedded_resource",
            |_ctx, args| async move {
                let resource = json!({
                    "uri": arg(&args, "resourceUri"),
                    "mimeType": "text/plain",
                    "text": "Embedded resource content for testing."
                });
                Ok(PromptOutput::new(vec![
                    user(Content::Resource { resource }),
                    user(text("Please process the embedded resource above.")),
                ]))
            },
        )
        .title("Prompt With Embedded Resource")
        .description("A prompt that includes an embedded resource")
        .argument("resourceUri", "URI of the resource to embed", true),
    )
    .prompt(
        Prompt::new("test_prompt_with_image", |_ctx, _args| async {
            Ok(PromptOutput::new(vec![
                user(Content::Image {
                    data: IMAGE_PNG.into(),
                    mime_type: "image/png".into(),
                }),
                user(text("Please analyze the image above.")),
            ]))
        })
        .title("Prompt With Image")
        .description("A prompt that includes image content"),
    )
}

/// A tool that asks the client for something and reports the answer.
fn asking(
    name: &str,
    description: &str,
    schema: Value,
    ask: fn(&Value) -> (&'static str, Value),
    report: fn(&Value) -> String,
    failure: &'static str,
) -> Tool {
    Tool::raw(
        name,
        description,
        schema,
        move |ctx: Context, args: Value| async move {
            let (method, params) = ask(&args);
            match ctx.request(method, params).await {
                Ok(answer) => ToolOutput::text(report(&answer)),
                Err(e) => ToolOutput::text(format!("{failure}: {}", e.message)),
            }
        },
    )
}

fn elicitation_report(prefix: &str, answer: &Value) -> String {
    let content = answer.get("content").cloned().unwrap_or_else(|| json!({}));
    format!(
        "{prefix}: action={}, content={content}",
        answer["action"].as_str().unwrap_or("")
    )
}

pub(super) fn client_requests(b: McpServerBuilder) -> McpServerBuilder {
    client_requests_2(client_requests_1(b))
}

/// Part 1 of [`client_requests`].
fn client_requests_1(b: McpServerBuilder) -> McpServerBuilder {
    let string_arg = |name: &str, description: &str| json!({"type": "object", "properties": {name: {"type": "string", "description": description}}, "required": [name]});
    b.tool(asking(
        "test_sampling",
        "Tests server-initiated sampling (LLM completion request)",
        string_arg("prompt", "The prompt to send to the LLM"),
        |args| ("sampling/createMessage", json!({
            "messages": [{"role": "user", "content": {"type": "text", "text": args["prompt"]}}],
            "maxTokens": 100
        })),
        |answer| {
            let text = answer["content"]["text"].as_str().or(answer["message"]["content"]["text"].as_str());
            format!("LLM response: {}", text.unwrap_or("No response"))
        },
        "Sampling not supported or error",
    ))
    .tool(asking(
        "test_elicitation",
        "Tests server-initiated elicitation (user input request)",
        string_arg("message", "The message to show the user"),
        |args| ("elicitation/create", json!({
            "mode": "form",
            "message": args["message"],
            "requestedSchema": {
                "type": "object",
                "properties": {"response": {"type": "string", "description": "User's response"}},
                "required": ["response"]
            }
        })),
        |answer| elicitation_report("User response", answer),
        "Elicitation not supported or error",
    ))
    .tool(asking(
        "test_elicitation_sep1034_defaults",
        "Tests elicitation with default values per SEP-1034",
        no_args(),
        |_| ("elicitation/create", json!({
            "mode": "form",
            "message": "Please review and update the form fields with defaults",
            "requestedSchema": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "description": "User name", "default": "John Doe"},
                    "age": {"type": "integer", "description": "User age", "default": 30},
                    "score": {"type": "number", "description": "User score", "default": 95.5},
                    "status": {"type": "string", "description": "User status", "enum": ["active", "inactive", "pending"], "default": "active"},
                    "verified": {"type": "boolean", "description": "Verification status", "default": true}
                },
                "required": []
            }
        })),
        |answer| elicitation_report("Elicitation completed", answer),
        "Elicitation not supported or error",
    ))
}

/// Part 2 of [`client_requests`].
fn client_requests_2(b: McpServerBuilder) -> McpServerBuilder {
    b.tool(asking(
        "test_elicitation_sep1330_enums",
        "Tests elicitation with enum schema improvements per SEP-1330",
        no_args(),
        |_| ("elicitation/create", json!({
            "mode": "form",
            "message": "Please select options from the enum fields",
            "requestedSchema": {
                "type": "object",
                "properties": {
                    "untitledSingle": {"type": "string", "description": "Select one option", "enum": ["option1", "option2", "option3"]},
                    "titledSingle": {"type": "string", "description": "Select one option with titles", "oneOf": [
                        {"const": "value1", "title": "First Option"},
                        {"const": "value2", "title": "Second Option"},
                        {"const": "value3", "title": "Third Option"}
                    ]},
                    "legacyEnum": {"type": "string", "description": "Select one option (legacy)", "enum": ["opt1", "opt2", "opt3"], "enumNames": ["Option One", "Option Two", "Option Three"]},
                    "untitledMulti": {"type": "array", "description": "Select multiple options", "minItems": 1, "maxItems": 3, "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
                    "titledMulti": {"type": "array", "description": "Select multiple options with titles", "minItems": 1, "maxItems": 3, "items": {"anyOf": [
                        {"const": "value1", "title": "First Choice"},
                        {"const": "value2", "title": "Second Choice"},
                        {"const": "value3", "title": "Third Choice"}
                    ]}}
                },
                "required": []
            }
        })),
        |answer| elicitation_report("Elicitation completed", answer),
        "Elicitation not supported or error",
    ))
}

/// The running server, for the tool that changes its own catalog.
pub(super) static SERVER: std::sync::OnceLock<McpServer> = std::sync::OnceLock::new();

/// A tool that adds `dynamic_tool` (or removes it, if present), so clients
/// see `notifications/tools/list_changed`.
pub(super) fn toggle_tool() -> Tool {
    Tool::raw(
        "toggle_dynamic_tool",
        "Adds dynamic_tool, or removes it if it is there",
        no_args(),
        |ctx: Context, args: Value| async move { toggle(ctx, args).await },
    )
}

/// Adds `dynamic_tool`, or removes it if it is there.
pub(super) async fn toggle(_ctx: Context, _args: Value) -> ToolOutput {
    let Some(server) = SERVER.get() else {
        return ToolOutput::error("server not running");
    };
    if server.remove_tool("dynamic_tool") {
        return ToolOutput::text("removed dynamic_tool");
    }
    server.add_tool(fixed(
        "dynamic_tool",
        "A tool added at run time",
        ToolOutput::text("dynamic"),
    ));
    ToolOutput::text("added dynamic_tool")
}
