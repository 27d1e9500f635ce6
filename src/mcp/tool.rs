//! Tools: definitions, handlers with typed arguments, and their results.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;

use super::context::Context;
use super::schema;

/// The future a tool handler returns.
pub type ToolFuture = Pin<Box<dyn Future<Output = ToolOutput> + Send>>;

/// Runs a tool. Implemented for you by [`Tool::typed`] and [`Tool::raw`].
pub trait ToolHandler: Send + Sync + 'static {
    /// Runs the tool with its (already schema-checked) arguments.
    fn call(&self, ctx: Context, arguments: Option<&RawValue>) -> ToolFuture;
}

/// A tool a server offers.
///
/// ```
/// use serde::Deserialize;
/// use snowflake_mcp::mcp::{Tool, ToolOutput};
///
/// #[derive(Deserialize)]
/// struct Args { a: f64, b: f64 }
///
/// let add = Tool::typed(
///     "add",
///     "Adds two numbers.",
///     serde_json::json!({
///         "type": "object",
///         "properties": { "a": { "type": "number" }, "b": { "type": "number" } },
///         "required": ["a", "b"]
///     }),
///     |_ctx, args: Args| async move { ToolOutput::text((args.a + args.b).to_string()) },
/// );
/// assert_eq!(add.name(), "add");
/// ```
#[derive(Clone)]
pub struct Tool {
    pub(crate) def: ToolDef,
    pub(crate) handler: Arc<dyn ToolHandler>,
    /// Task support, and how long a call runs before it becomes a task.
    pub(crate) task: Option<(super::tasks::TaskSupport, std::time::Duration)>,
    /// Its calls by outcome (shared by the clones the catalog keeps).
    pub(crate) calls: Arc<super::metrics::ToolCalls>,
    /// Its input schema read once, to check arguments on their text.
    arguments: Arc<schema::Compiled>,
}

impl std::fmt::Debug for Tool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tool")
            .field("name", &self.def.name)
            .finish_non_exhaustive()
    }
}

/// The definition `tools/list` shows.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ToolDef {
    pub(crate) name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) title: Option<String>,
    pub(crate) description: String,
    pub(crate) input_schema: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) output_schema: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) annotations: Option<Value>,
    /// `{"taskSupport": ...}` for tools that can run as tasks (2026-07-28 lists only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) execution: Option<Value>,
}

/// The JSON Schema of `T`, as a tool's input or output schema: derived by
/// `schemars` from the type (doc comments become descriptions), draft
/// 2020-12 (MCP's default dialect), every subschema inlined, no `$schema`.
pub fn schema_of<T: schemars::JsonSchema>() -> Value {
    let mut settings = schemars::generate::SchemaSettings::draft2020_12();
    settings.inline_subschemas = true;
    settings.meta_schema = None;
    settings.into_generator().into_root_schema_for::<T>().into()
}

impl Tool {
    /// A tool whose arguments are deserialized into `A` and whose input
    /// schema is derived from `A` ([`schema_of`]): no schema to write by
    /// hand. [`Tool::typed`] takes a declared one instead.
    ///
    /// ```
    /// use schemars::JsonSchema;
    /// use serde::Deserialize;
    /// use snowflake_mcp::mcp::{Context, Tool, ToolOutput};
    ///
    /// /// What to greet.
    /// #[derive(Deserialize, JsonSchema)]
    /// struct Greet {
    ///     /// Whom to greet.
    ///     name: String,
    /// }
    ///
    /// let tool = Tool::derived("greet", "Greets someone.", |_: Context, a: Greet| async move {
    ///     ToolOutput::text(format!("Hello, {}!", a.name))
    /// });
    /// ```
    pub fn derived<A, F, Fut>(
        name: impl Into<String>,
        description: impl Into<String>,
        handler: F,
    ) -> Tool
    where
        A: DeserializeOwned + schemars::JsonSchema + Send + 'static,
        F: Fn(Context, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ToolOutput> + Send + 'static,
    {
        Tool::typed(name, description, schema_of::<A>(), handler)
    }

    /// Sets the output schema to the one derived from `O` ([`schema_of`]).
    pub fn output_of<O: schemars::JsonSchema>(self) -> Self {
        self.output_schema(schema_of::<O>())
    }

    /// A tool whose arguments are deserialized into `A`.
    ///
    /// `input_schema` is the JSON Schema clients see and the arguments are
    /// checked against before `A` is built; a failure of either becomes an
    /// `isError` result that names the field and the reason.
    pub fn typed<A, F, Fut>(
        name: impl Into<String>,
        description: impl Into<String>,
        input_schema: Value,
        handler: F,
    ) -> Tool
    where
        A: DeserializeOwned + Send + 'static,
        F: Fn(Context, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ToolOutput> + Send + 'static,
    {
        struct Typed<F, A>(F, std::marker::PhantomData<fn() -> A>);
        impl<A, F, Fut> ToolHandler for Typed<F, A>
        where
            A: DeserializeOwned + Send + 'static,
            F: Fn(Context, A) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = ToolOutput> + Send + 'static,
        {
            fn call(&self, ctx: Context, arguments: Option<&RawValue>) -> ToolFuture {
                let text = arguments.map_or("{}", RawValue::get);
                match serde_json::from_str::<A>(text) {
                    Ok(args) => Box::pin((self.0)(ctx, args)),
                    Err(e) => {
                        let out = ToolOutput::error(format!("invalid arguments: {e}"));
                        Box::pin(async move { out })
                    }
                }
            }
        }
        Tool::with_handler(
            name,
            description,
            input_schema,
            Arc::new(Typed(handler, std::marker::PhantomData)),
        )
    }

    /// A tool that receives its arguments as raw JSON (after the schema check).
    pub fn raw<F, Fut>(
        name: impl Into<String>,
        description: impl Into<String>,
        input_schema: Value,
        handler: F,
    ) -> Tool
    where
        F: Fn(Context, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ToolOutput> + Send + 'static,
    {
        Tool::typed(name, description, input_schema, handler)
    }

    /// A tool with a handler of your own type.
    pub fn with_handler(
        name: impl Into<String>,
        description: impl Into<String>,
        input_schema: Value,
        handler: Arc<dyn ToolHandler>,
    ) -> Tool {
        Tool {
            arguments: Arc::new(schema::Compiled::new(&input_schema)),
            def: ToolDef {
                name: name.into(),
                title: None,
                description: description.into(),
                input_schema,
                output_schema: None,
                annotations: None,
                execution: None,
            },
            handler,
            task: None,
            calls: Arc::default(),
        }
    }

    /// Sets a display title.
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.def.title = Some(title.into());
        self
    }

    /// Declares the schema of `structuredContent` (shown to clients from 2025-06-18 on).
    pub fn output_schema(mut self, schema: Value) -> Self {
        self.def.output_schema = Some(schema);
        self
    }

    /// Sets behaviour hints (`readOnlyHint`, `destructiveHint`, ...).
    pub fn annotations(mut self, annotations: Value) -> Self {
        self.def.annotations = Some(annotations);
        self
    }

    /// Lets the tool run as a task for clients that negotiated the tasks
    /// extension (see `tasks`): a call still running after
    /// 100 ms becomes a task.
    pub fn task_support(mut self, support: super::tasks::TaskSupport) -> Self {
        let after = self
            .task
            .map_or(super::tasks::DEFAULT_TASK_AFTER, |(_, a)| a);
        self.task = Some((support, after));
        self.def.execution = Some(serde_json::json!({ "taskSupport": support.as_str() }));
        self
    }

    /// How long a call runs before it becomes a task (zero: at once).
    /// Only meaningful with [`Tool::task_support`].
    pub fn task_after(mut self, after: std::time::Duration) -> Self {
        if let Some((_, a)) = &mut self.task {
            *a = after;
        }
        self
    }

    /// The tool's name.
    pub fn name(&self) -> &str {
        &self.def.name
    }

    /// Checks a successful result against the declared output schema: it must
    /// carry `structuredContent` that matches. Failed results are not checked.
    /// Arguments mirrored in HTTP headers (SEP-2243): `(property, header
    /// suffix)` for each input property with an `x-mcp-header` annotation.
    pub(crate) fn header_params(&self) -> Vec<(String, String)> {
        let Some(props) = self.def.input_schema["properties"].as_object() else {
            return Vec::new();
        };
        props
            .iter()
            .filter_map(|(name, p)| Some((name.clone(), p["x-mcp-header"].as_str()?.to_owned())))
            .collect()
    }

    pub(crate) fn check_output(&self, output: &ToolOutput) -> Result<(), String> {
        let Some(schema) = &self.def.output_schema else {
            return Ok(());
        };
        if output.is_error {
            return Ok(());
        }
        match &output.structured_content {
            None => Err("no structuredContent".to_owned()),
            Some(value) => schema::check(schema, value, "structuredContent"),
        }
    }

    /// Checks arguments against the input schema; `Err` says which field and why.
    pub(crate) fn check_arguments(&self, arguments: Option<&RawValue>) -> Result<(), String> {
        if self.arguments.surely_accepts(arguments.map(RawValue::get)) {
            return Ok(());
        }
        let value: Value = match arguments {
            None => Value::Object(Default::default()),
            Some(raw) => serde_json::from_str(raw.get()).map_err(|e| e.to_string())?,
        };
        schema::check(&self.def.input_schema, &value, "arguments")
    }
}

/// One content block of a tool result.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
#[non_exhaustive]
pub enum Content {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// An image, base64-encoded.
    Image {
        /// Base64 data.
        data: String,
        /// MIME type such as `image/png`.
        #[serde(rename = "mimeType")]
        mime_type: String,
    },
    /// Audio, base64-encoded.
    Audio {
        /// Base64 data.
        data: String,
        /// MIME type such as `audio/wav`.
        #[serde(rename = "mimeType")]
        mime_type: String,
    },
    /// A resource embedded in the result.
    Resource {
        /// The resource contents (`uri`, `mimeType`, and `text` or `blob`).
        resource: Value,
    },
}

/// What a tool call returns.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolOutput {
    /// The content blocks.
    pub content: Vec<Content>,
    /// Machine-readable output matching the tool's output schema.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub structured_content: Option<Value>,
    /// Whether the tool failed (the error is in `content`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub is_error: bool,
}

impl ToolOutput {
    /// A successful text result.
    pub fn text(text: impl Into<String>) -> Self {
        ToolOutput {
            content: vec![Content::Text { text: text.into() }],
            structured_content: None,
            is_error: false,
        }
    }

    /// A failed result whose text says what went wrong.
    pub fn error(message: impl Into<String>) -> Self {
        ToolOutput {
            is_error: true,
            ..ToolOutput::text(message)
        }
    }

    /// A structured result, also given as its JSON text for clients that only read text.
    pub fn structured(value: Value) -> Self {
        ToolOutput {
            content: vec![Content::Text {
                text: value.to_string(),
            }],
            structured_content: Some(value),
            is_error: false,
        }
    }

    /// The same result with `text` as its content (a readable form of the
    /// structured content, for clients that show text).
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.content = vec![Content::Text { text: text.into() }];
        self
    }

    /// A result made of these content blocks.
    pub fn content(content: Vec<Content>) -> Self {
        ToolOutput {
            content,
            structured_content: None,
            is_error: false,
        }
    }
}
