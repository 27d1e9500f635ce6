//! The 2026-07-28 fixtures.

use super::*;

/// The 2026-07-28 fixtures: input-required rounds, then catalog changes.
pub(super) fn modern_fixtures(b: McpServerBuilder) -> McpServerBuilder {
    catalog_changes(input_rounds(single_inputs(b)))
}

/// One input request per call: an elicitation, a sampling request, the
/// roots, a confirmation with its `requestState`.
fn single_inputs(b: McpServerBuilder) -> McpServerBuilder {
    single_inputs_2(single_inputs_1(b))
}

/// Part 1 of [`single_inputs`].
fn single_inputs_1(b: McpServerBuilder) -> McpServerBuilder {
    let name_form = form("name", "string");
    let capital = capital_question();
    let n1 = name_form.clone();
    b.tool(Tool::raw(
        "test_input_required_result_elicitation",
        "Asks the user's name (InputRequiredResult with one elicitation)",
        no_args(),
        move |ctx: Context, _args: Value| {
            let form = n1.clone();
            async move {
                let asked = InputRequests::new().elicit("user_name", "What is your name?", form);
                match ctx.input(asked).await {
                    Ok(a) => ToolOutput::text(format!(
                        "Hello, {}!",
                        a["user_name"]["content"]["name"]
                            .as_str()
                            .unwrap_or("stranger")
                    )),
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
                match ctx
                    .input(InputRequests::new().sample("capital_question", params))
                    .await
                {
                    Ok(a) => ToolOutput::text(format!(
                        "The model answered: {}",
                        a["capital_question"]["content"]["text"]
                            .as_str()
                            .unwrap_or("(no text)")
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
            match ctx
                .input(InputRequests::new().list_roots("client_roots"))
                .await
            {
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
}

/// Part 2 of [`single_inputs`].
fn single_inputs_2(b: McpServerBuilder) -> McpServerBuilder {
    let ok_form = form("ok", "boolean");
    b.tool(Tool::raw(
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
}

/// Tampered state, several rounds, mixed requests.
fn input_rounds(b: McpServerBuilder) -> McpServerBuilder {
    input_rounds_2(input_rounds_1(b))
}

/// Part 1 of [`input_rounds`].
fn input_rounds_1(b: McpServerBuilder) -> McpServerBuilder {
    let name_form = form("name", "string");
    let color_form = form("color", "string");
    let ok_form = form("ok", "boolean");
    let greeting = greeting_request();
    let n2 = name_form.clone();
    let n3 = name_form.clone();
    let ok2 = ok_form.clone();
    b.tool(Tool::raw(
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
}

/// Part 2 of [`input_rounds`].
fn input_rounds_2(b: McpServerBuilder) -> McpServerBuilder {
    let name_form = form("name", "string");
    let context_form = form("context", "string");
    let capital = capital_question();
    let capital2 = capital.clone();
    b.tool(Tool::raw(
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
}

/// Tools, resources and prompts added or removed at run time.
fn catalog_changes(b: McpServerBuilder) -> McpServerBuilder {
    b.tool(Tool::raw(
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

/// A form asking for one `field` of JSON type `kind`.
fn form(field: &str, kind: &str) -> Value {
    json!({"type": "object", "properties": {field: {"type": kind}}, "required": [field]})
}

/// A sampling request asking for the capital of France.
fn capital_question() -> Value {
    json!({
        "messages": [{"role": "user", "content": {"type": "text", "text": "What is the capital of France?"}}],
        "maxTokens": 100
    })
}

/// A sampling request asking for a greeting.
fn greeting_request() -> Value {
    json!({
        "messages": [{"role": "user", "content": {"type": "text", "text": "Generate a greeting"}}],
        "maxTokens": 50
    })
}
