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

fn resources(b: McpServerBuilder) -> McpServerBuilder {
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

fn prompts(b: McpServerBuilder) -> McpServerBuilder {
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

fn client_requests(b: McpServerBuilder) -> McpServerBuilder {
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
    .tool(asking(
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
static SERVER: std::sync::OnceLock<McpServer> = std::sync::OnceLock::new();

/// A tool that adds `dynamic_tool` (or removes it, if present), so clients
/// see `notifications/tools/list_changed`.
fn toggle_tool() -> Tool {
    Tool::raw(
        "toggle_dynamic_tool",
        "Adds dynamic_tool, or removes it if it is there",
        no_args(),
        |ctx: Context, args: Value| async move { toggle(ctx, args).await },
    )
}

/// Adds `dynamic_tool`, or removes it if it is there.
async fn toggle(_ctx: Context, _args: Value) -> ToolOutput {
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

/// The 2026-07-28 fixtures of the conformance suite: `InputRequiredResult`
/// rounds (SEP-2322), the stateless diagnostics (logging without a level,
/// a missing client capability, a streamed elicitation) and the hooks that
/// change the tool and prompt lists for `subscriptions/listen`.
fn modern_fixtures(b: McpServerBuilder) -> McpServerBuilder {
    let form = |field: &str, kind: &str| json!({"type": "object", "properties": {field: {"type": kind}}, "required": [field]});
    let name_form = form("name", "string");
    let color_form = form("color", "string");
    let ok_form = form("ok", "boolean");
    let context_form = form("context", "string");
    let capital = json!({
        "messages": [{"role": "user", "content": {"type": "text", "text": "What is the capital of France?"}}],
        "maxTokens": 100
    });
    let greeting = json!({
        "messages": [{"role": "user", "content": {"type": "text", "text": "Generate a greeting"}}],
        "maxTokens": 50
    });
    let n1 = name_form.clone();
    let n2 = name_form.clone();
    let n3 = name_form.clone();
    let capital2 = capital.clone();
    let ok2 = ok_form.clone();
    b.tool(Tool::raw(
        "test_input_required_result_elicitation",
        "Asks the user's name (InputRequiredResult with one elicitation)",
        no_args(),
        move |ctx: Context, _args: Value| {
            let form = n1.clone();
            async move {
                let asked = InputRequests::new().elicit("user_name", "What is your name?", form);
                match ctx.input(asked).await {
                    Ok(a) => ToolOutput::text(format!("Hello, {}!", a["user_name"]["content"]["name"].as_str().unwrap_or("stranger"))),
                    Err(e) => ToolOutput::error(e.message),
                }
            }
        },
    ))
    .tool(Tool::raw(
        "test_input_required_result_sampling",
        "Asks the client's model a question (InputRequiredResult with one sampling request)",
        no_args(),
        move |ctx: Context, _args: Value| {
            let params = capital.clone();
            async move {
                match ctx.input(InputRequests::new().sample("capital_question", params)).await {
                    Ok(a) => ToolOutput::text(format!(
                        "The model answered: {}",
                        a["capital_question"]["content"]["text"].as_str().unwrap_or("(no text)")
                    )),
                    Err(e) => ToolOutput::error(e.message),
                }
            }
        },
    ))
    .tool(Tool::raw(
        "test_input_required_result_list_roots",
        "Lists the client's roots (InputRequiredResult with one roots/list request)",
        no_args(),
        |ctx: Context, _args: Value| async move {
            match ctx.input(InputRequests::new().list_roots("client_roots")).await {
                Ok(a) => {
                    let uris: Vec<&str> = a["client_roots"]["roots"]
                        .as_array()
                        .map(|r| r.iter().filter_map(|r| r["uri"].as_str()).collect())
                        .unwrap_or_default();
                    ToolOutput::text(format!("Roots: {}", uris.join(", ")))
                }
                Err(e) => ToolOutput::error(e.message),
            }
        },
    ))
    .tool(Tool::raw(
        "test_input_required_result_request_state",
        "Asks for a confirmation and checks the requestState it gets back",
        no_args(),
        move |ctx: Context, _args: Value| {
            let form = ok_form.clone();
            async move {
                let asked = InputRequests::new()
                    .elicit("confirm", "Please confirm", form)
                    .state("awaiting-confirmation");
                match ctx.input(asked).await {
                    Ok(_) if ctx.request_state() == Some("awaiting-confirmation") => {
                        ToolOutput::text("Confirmed; state-ok")
                    }
                    Ok(_) => ToolOutput::error("the confirmation came without its requestState"),
                    Err(e) => ToolOutput::error(e.message),
                }
            }
        },
    ))
    .tool(Tool::raw(
        "test_input_required_result_tampered_state",
        "Like the request-state tool; a tampered requestState is refused with -32602",
        no_args(),
        move |ctx: Context, _args: Value| {
            let form = ok2.clone();
            async move {
                let asked = InputRequests::new()
                    .elicit("confirm", "Please confirm", form)
                    .state("awaiting-confirmation");
                match ctx.input(asked).await {
                    Ok(_) => ToolOutput::text("Confirmed; state-ok"),
                    Err(e) => ToolOutput::error(e.message),
                }
            }
        },
    ))
    .tool(Tool::raw(
        "test_input_required_result_multi_round",
        "Asks a name, then a favorite color, carrying state between rounds",
        no_args(),
        move |ctx: Context, _args: Value| {
            let name_form = n2.clone();
            let color_form = color_form.clone();
            async move {
                if ctx.request_state() != Some("have-name") {
                    let step1 = InputRequests::new()
                        .elicit("step1", "Step 1: What is your name?", name_form)
                        .state("asking-name");
                    if let Err(e) = ctx.input(step1).await {
                        return ToolOutput::error(e.message);
                    }
                }
                let step2 = InputRequests::new()
                    .elicit("step2", "Step 2: What is your favorite color?", color_form)
                    .state("have-name");
                match ctx.input(step2).await {
                    Ok(a) => ToolOutput::text(format!(
                        "Favorite color: {}",
                        a["step2"]["content"]["color"].as_str().unwrap_or("?")
                    )),
                    Err(e) => ToolOutput::error(e.message),
                }
            }
        },
    ))
    .tool(Tool::raw(
        "test_input_required_result_multiple_inputs",
        "Asks for an elicitation, a sampling and the roots at once",
        no_args(),
        move |ctx: Context, _args: Value| {
            let form = n3.clone();
            let greeting = greeting.clone();
            async move {
                let asked = InputRequests::new()
                    .elicit("user_name", "What is your name?", form)
                    .sample("greeting", greeting)
                    .list_roots("client_roots")
                    .state("all-three");
                match ctx.input(asked).await {
                    Ok(a) => ToolOutput::text(format!("Got {} answers", a.len())),
                    Err(e) => ToolOutput::error(e.message),
                }
            }
        },
    ))
    .tool(Tool::raw(
        "test_input_required_result_capabilities",
        "Asks only for what the client declared it can do",
        no_args(),
        move |ctx: Context, _args: Value| {
            let form = name_form.clone();
            let question = capital2.clone();
            async move {
                let caps = ctx.client_capabilities().unwrap_or_default();
                let mut asked = InputRequests::new();
                if caps.get("elicitation").is_some() {
                    asked = asked.elicit("user_name", "What is your name?", form);
                }
                if caps.get("sampling").is_some() {
                    asked = asked.sample("capital_question", question);
                }
                if asked.is_empty() {
                    return ToolOutput::text("The client can answer nothing; nothing asked");
                }
                match ctx.input(asked).await {
                    Ok(a) => ToolOutput::text(format!("Got {} answers", a.len())),
                    Err(e) => ToolOutput::error(e.message),
                }
            }
        },
    ))
    .prompt(
        Prompt::new("test_input_required_result_prompt", move |ctx, _args| {
            let form = context_form.clone();
            async move {
                let asked = InputRequests::new().elicit(
                    "user_context",
                    "What context should the prompt use?",
                    form,
                );
                let answers = ctx.input(asked).await.map_err(|e| e.message)?;
                let context = answers["user_context"]["content"]["context"]
                    .as_str()
                    .unwrap_or("none")
                    .to_owned();
                Ok(PromptOutput::new(vec![user(text(&format!(
                    "Use this context: {context}"
                )))]))
            }
        })
        .description("A prompt that asks the user for context first (InputRequiredResult)"),
    )
    .tool(Tool::raw(
        "test_header_param",
        "Echoes a region that is also sent as the Mcp-Param-Region header (SEP-2243)",
        json!({
            "type": "object",
            "properties": {"region": {"type": "string", "x-mcp-header": "Region"}},
            "required": ["region"]
        }),
        |_ctx: Context, args: Value| async move {
            ToolOutput::text(format!("region: {}", args["region"].as_str().unwrap_or("")))
        },
    ))
    .tool(Tool::raw(
        "test_missing_capability",
        "Needs sampling; a client that did not declare it gets -32021",
        no_args(),
        |ctx: Context, _args: Value| async move {
            let params = json!({"messages": [{"role": "user", "content": {"type": "text", "text": "hi"}}], "maxTokens": 10});
            match ctx.request("sampling/createMessage", params).await {
                Ok(_) => ToolOutput::text("sampled"),
                Err(e) => ToolOutput::error(e.message),
            }
        },
    ))
    .tool(Tool::raw(
        "test_streaming_elicitation",
        "Reports progress, then asks the user (the elicitation travels in the result, never as a request on the stream)",
        no_args(),
        |ctx: Context, _args: Value| async move {
            ctx.progress(1.0, Some(2.0), Some("about to ask")).await;
            let form = json!({"type": "object", "properties": {"answer": {"type": "string"}}});
            match ctx.input(InputRequests::new().elicit("answer", "Anything to add?", form)).await {
                Ok(_) => ToolOutput::text("thanks"),
                Err(e) => ToolOutput::error(e.message),
            }
        },
    ))
    .tool(Tool::raw(
        "test_logging_tool",
        "Logs three messages (sent only to requests that set a log level)",
        no_args(),
        |ctx: Context, _args: Value| async move {
            for step in ["started", "working", "done"] {
                ctx.log(LogLevel::Info, format!("logging tool {step}").into()).await;
            }
            ToolOutput::text("logged")
        },
    ))
    .tool(Tool::raw(
        "test_trigger_tool_change",
        "Adds or removes dynamic_tool, so tools/list changes",
        no_args(),
        |ctx: Context, args: Value| async move { toggle(ctx, args).await },
    ))
    .tool(Tool::raw(
        "test_trigger_prompt_change",
        "Adds or removes dynamic_prompt, so prompts/list changes",
        no_args(),
        |_ctx: Context, _args: Value| async move {
            let Some(server) = SERVER.get() else {
                return ToolOutput::error("server not running");
            };
            if server.remove_prompt("dynamic_prompt") {
                return ToolOutput::text("removed dynamic_prompt");
            }
            server.add_prompt(
                Prompt::new("dynamic_prompt", |_ctx, _args| async {
                    Ok(PromptOutput::new(vec![user(text("A prompt added at run time"))]))
                })
                .description("A prompt added at run time"),
            );
            ToolOutput::text("added dynamic_prompt")
        },
    ))
}

/// The tasks-extension fixtures (SEP-2663) the conformance suite calls.
fn task_fixtures(b: McpServerBuilder) -> McpServerBuilder {
    let confirm_form = json!({"type": "object", "properties": {"confirm": {"type": "boolean"}}, "required": ["confirm"]});
    let name_form =
        json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]});
    let (c1, n1, n2) = (confirm_form.clone(), name_form.clone(), name_form.clone());
    b.tool(Tool::raw(
        "greet",
        "Greets by name (always answers at once; never a task)",
        json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}),
        |_ctx: Context, args: Value| async move {
            ToolOutput::text(format!("Hello, {}!", args["name"].as_str().unwrap_or("world")))
        },
    ))
    .tool(
        Tool::raw(
            "slow_compute",
            "Waits `seconds` seconds, then answers (a task for clients that support tasks)",
            json!({"type": "object", "properties": {
                "seconds": {"type": "number", "minimum": 0},
                "label": {"type": "string"}
            }, "required": ["seconds"]}),
            |_ctx: Context, args: Value| async move {
                let seconds = args["seconds"].as_f64().unwrap_or(0.0).clamp(0.0, 3600.0);
                tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
                ToolOutput::text(format!(
                    "computed {} after {seconds}s",
                    args["label"].as_str().unwrap_or("result")
                ))
            },
        )
        .task_support(TaskSupport::Optional),
    )
    .tool(
        Tool::raw(
            "failing_job",
            "Works for a second, then reports a tool error (tasks required)",
            no_args(),
            |_ctx: Context, _args: Value| async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                ToolOutput::error("the job failed, as it always does")
            },
        )
        .task_support(TaskSupport::Required),
    )
    .tool(
        Tool::raw(
            "protocol_error_job",
            "Works for a second, then its handler panics (a protocol-level failure)",
            no_args(),
            |_ctx: Context, _args: Value| async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                panic!("protocol_error_job fails on purpose");
            },
        )
        .task_support(TaskSupport::Optional),
    )
    .tool(
        Tool::raw(
            "confirm_delete",
            "Asks the user to confirm deleting `filename` (a task that waits on input)",
            json!({"type": "object", "properties": {"filename": {"type": "string"}}, "required": ["filename"]}),
            move |ctx: Context, args: Value| {
                let form = c1.clone();
                async move {
                    let file = args["filename"].as_str().unwrap_or("?").to_owned();
                    let asked = InputRequests::new().elicit("confirm", &format!("Delete {file}?"), form);
                    match ctx.input(asked).await {
                        Ok(a) if a["confirm"]["content"]["confirm"] == true => ToolOutput::text(format!("deleted {file}")),
                        Ok(_) => ToolOutput::text(format!("kept {file}")),
                        Err(e) => ToolOutput::error(e.message),
                    }
                }
            },
        )
        .task_support(TaskSupport::Optional)
        .task_after(Duration::ZERO),
    )
    .tool(
        Tool::raw(
            "multi_input",
            "Asks two questions at once (a task with two pending input requests)",
            no_args(),
            move |ctx: Context, _args: Value| {
                let (first, second) = (n1.clone(), n2.clone());
                async move {
                    let asked = InputRequests::new()
                        .elicit("first", "First name?", first)
                        .elicit("second", "Second name?", second);
                    match ctx.input(asked).await {
                        Ok(a) => ToolOutput::text(format!(
                            "{} and {}",
                            a["first"]["content"]["name"].as_str().unwrap_or("?"),
                            a["second"]["content"]["name"].as_str().unwrap_or("?")
                        )),
                        Err(e) => ToolOutput::error(e.message),
                    }
                }
            },
        )
        .task_support(TaskSupport::Optional)
        .task_after(Duration::ZERO),
    )
    .tool(
        Tool::raw(
            "test_tool_with_task",
            "Asks the user's name (InputRequiredResult), then works on as a task",
            no_args(),
            move |ctx: Context, _args: Value| {
                let form = name_form.clone();
                async move {
                    let asked = InputRequests::new().elicit("user_name", "What is your name?", form);
                    let name = match ctx.input(asked).await {
                        Ok(a) => a["user_name"]["content"]["name"].as_str().unwrap_or("?").to_owned(),
                        Err(e) => return ToolOutput::error(e.message),
                    };
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    ToolOutput::text(format!("Finished the long job for {name}"))
                }
            },
        )
        .task_support(TaskSupport::Required),
    )
}

/// `sleep` calls that were cancelled before they finished, and that finished.
static SLEEPS_CANCELLED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static SLEEPS_FINISHED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Counts a `sleep` call that is dropped before it finishes.
struct SleepGuard {
    finished: bool,
}

impl Drop for SleepGuard {
    fn drop(&mut self) {
        let counter = if self.finished {
            &SLEEPS_FINISHED
        } else {
            &SLEEPS_CANCELLED
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Tools for client tests of cancellation (not part of the conformance
/// fixtures): `sleep` waits `ms` milliseconds, `sleep_stats` tells how many
/// sleeps finished and how many were cancelled.
fn sleep_tools(b: McpServerBuilder) -> McpServerBuilder {
    b.tool(Tool::raw(
        "sleep",
        "Waits ms milliseconds (default 1000), then answers",
        json!({"type": "object", "properties": {"ms": {"type": "integer", "minimum": 0}}}),
        |_ctx: Context, args: Value| async move {
            let mut guard = SleepGuard { finished: false };
            let ms = args.get("ms").and_then(Value::as_u64).unwrap_or(1000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            guard.finished = true;
            ToolOutput::text(format!("slept {ms} ms"))
        },
    ))
    .tool(Tool::raw(
        "sleep_stats",
        "How many sleep calls finished and how many were cancelled",
        no_args(),
        |_ctx: Context, _args: Value| async {
            let load =
                |c: &std::sync::atomic::AtomicUsize| c.load(std::sync::atomic::Ordering::SeqCst);
            ToolOutput::structured(json!({
                "finished": load(&SLEEPS_FINISHED),
                "cancelled": load(&SLEEPS_CANCELLED),
            }))
        },
    ))
}

/// A tool whose input schema uses JSON Schema 2020-12 features (`$schema`,
/// `$defs` with an `$anchor`, `$ref`, `allOf`/`anyOf`, `if`/`then`/`else`,
/// `additionalProperties`; SEP-1613 and SEP-2106), listed exactly as declared.
fn json_schema_2020_12_tool() -> Tool {
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "$anchor": "addressDef",
                "type": "object",
                "properties": { "street": { "type": "string" }, "city": { "type": "string" } }
            }
        },
        "properties": {
            "name": { "type": "string" },
            "address": { "$ref": "#/$defs/address" },
            "contactMethod": { "type": "string", "enum": ["phone", "email"] },
            "phone": { "type": "string" },
            "email": { "type": "string" }
        },
        "allOf": [{ "anyOf": [{ "required": ["phone"] }, { "required": ["email"] }] }],
        "if": { "properties": { "contactMethod": { "const": "phone" } }, "required": ["contactMethod"] },
        "then": { "required": ["phone"] },
        "else": { "required": ["email"] },
        "additionalProperties": false
    });
    Tool::raw(
        "json_schema_2020_12_tool",
        "Tool with JSON Schema 2020-12 features for conformance testing (SEP-1613)",
        schema,
        |_ctx: Context, args: Value| async move {
            ToolOutput::text(format!("JSON Schema 2020-12 tool called with: {args}"))
        },
    )
}

fn server() -> McpServer {
    let image = Content::Image {
        data: IMAGE_PNG.into(),
        mime_type: "image/png".into(),
    };
    let b = McpServer::builder("mcp-conformance-test-server", "1.0.0");
    task_fixtures(modern_fixtures(sleep_tools(client_requests(prompts(
        resources(b),
    )))))
    .tool(toggle_tool())
    .tool(json_schema_2020_12_tool())
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
