//! Prompts: templates of messages a client can ask for by name.

use std::future::Future;
use std::sync::Arc;

use serde::Serialize;

use super::context::Context;
use super::tool::Content;
use crate::util::BoxFuture;

/// Completes a partly typed argument value into suggestions.
pub type CompleteFn = dyn Fn(&str) -> Vec<String> + Send + Sync;

type GetFn = dyn Fn(Context, Vec<(String, String)>) -> BoxFuture<'static, Result<PromptOutput, String>>
    + Send
    + Sync;

/// Who a prompt message speaks as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The user.
    User,
    /// The assistant.
    Assistant,
}

/// One message of a prompt.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PromptMessage {
    /// Who speaks.
    pub role: Role,
    /// What is said.
    pub content: Content,
}

/// What `prompts/get` returns.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PromptOutput {
    /// A description of this rendering.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The messages.
    pub messages: Vec<PromptMessage>,
}

impl PromptOutput {
    /// A prompt of these messages.
    pub fn new(messages: Vec<PromptMessage>) -> Self {
        PromptOutput {
            description: None,
            messages,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct ArgumentDef {
    pub(crate) name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
    pub(crate) required: bool,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct PromptDef {
    pub(crate) name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) arguments: Vec<ArgumentDef>,
}

/// A prompt a server offers.
///
/// ```
/// use snowflake_mcp::mcp::{Content, Prompt, PromptMessage, PromptOutput, Role};
///
/// let p = Prompt::new("summarize", |_ctx, args| async move {
///     let table = args.iter().find(|(k, _)| k == "table").map(|(_, v)| v.clone()).unwrap_or_default();
///     Ok(PromptOutput::new(vec![PromptMessage {
///         role: Role::User,
///         content: Content::Text { text: format!("Summarize the table {table}.") },
///     }]))
/// })
/// .argument("table", "The table to summarize", true);
/// assert_eq!(p.name(), "summarize");
/// ```
#[derive(Clone)]
pub struct Prompt {
    pub(crate) def: PromptDef,
    get: Arc<GetFn>,
    pub(crate) completions: Vec<(String, Arc<CompleteFn>)>,
}

impl std::fmt::Debug for Prompt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prompt")
            .field("name", &self.def.name)
            .finish_non_exhaustive()
    }
}

impl Prompt {
    /// A prompt rendered by `get` from its string arguments.
    pub fn new<F, Fut>(name: impl Into<String>, get: F) -> Prompt
    where
        F: Fn(Context, Vec<(String, String)>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<PromptOutput, String>> + Send + 'static,
    {
        Prompt {
            def: PromptDef {
                name: name.into(),
                title: None,
                description: None,
                arguments: Vec::new(),
            },
            get: Arc::new(move |ctx, args| Box::pin(get(ctx, args))),
            completions: Vec::new(),
        }
    }

    /// Declares an argument.
    pub fn argument(mut self, name: &str, description: &str, required: bool) -> Self {
        self.def.arguments.push(ArgumentDef {
            name: name.to_owned(),
            description: (!description.is_empty()).then(|| description.to_owned()),
            required,
        });
        self
    }

    /// Sets a display title.
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.def.title = Some(title.into());
        self
    }

    /// Sets a description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.def.description = Some(description.into());
        self
    }

    /// Offers completions for an argument (`completion/complete`).
    pub fn complete<F>(mut self, argument: &str, complete: F) -> Self
    where
        F: Fn(&str) -> Vec<String> + Send + Sync + 'static,
    {
        self.completions
            .push((argument.to_owned(), Arc::new(complete)));
        self
    }

    /// The prompt's name.
    pub fn name(&self) -> &str {
        &self.def.name
    }

    /// Checks the arguments: every required one present, no unknown ones.
    pub(crate) fn check(&self, args: &[(String, String)]) -> Result<(), String> {
        for a in &self.def.arguments {
            if a.required && !args.iter().any(|(k, _)| *k == a.name) {
                return Err(format!("missing required argument {:?}", a.name));
            }
        }
        for (k, _) in args {
            if !self.def.arguments.iter().any(|a| a.name == *k) {
                return Err(format!("unknown argument {:?}", crate::util::Brief(k)));
            }
        }
        Ok(())
    }

    pub(crate) fn get(
        &self,
        ctx: Context,
        args: Vec<(String, String)>,
    ) -> BoxFuture<'static, Result<PromptOutput, String>> {
        (self.get)(ctx, args)
    }
}
