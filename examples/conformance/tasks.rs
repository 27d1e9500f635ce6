//! The tasks-extension fixtures, the `sleep` tools for cancellation tests,
//! and a JSON Schema 2020-12 tool.

use super::*;

/// The tasks-extension fixtures (SEP-2663) the conformance suite calls.
pub(super) fn task_fixtures(b: McpServerBuilder) -> McpServerBuilder {
    task_fixtures_2(task_fixtures_1(b))
}

/// Part 1 of [`task_fixtures`].
fn task_fixtures_1(b: McpServerBuilder) -> McpServerBuilder {
    b.tool(Tool::raw(
        "greet",
        "Greets by name (always answers at once; never a task)",
        json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}),
        |_ctx: Context, args: Value| async move {
            ToolOutput::text(format!(
                "Hello, {}!",
                args["name"].as_str().unwrap_or("world")
            ))
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
}

/// Part 2 of [`task_fixtures`].
fn task_fixtures_2(b: McpServerBuilder) -> McpServerBuilder {
    let confirm_form = json!({"type": "object", "properties": {"confirm": {"type": "boolean"}}, "required": ["confirm"]});
    let name_form =
        json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]});
    let c1 = confirm_form.clone();
    let n1 = name_form.clone();
    let n2 = name_form.clone();
    b.tool(
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
pub(super) fn sleep_tools(b: McpServerBuilder) -> McpServerBuilder {
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
pub(super) fn json_schema_2020_12_tool() -> Tool {
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
