//! Resources (fixed URIs), resource templates (`{var}` URIs), and their contents.

use std::future::Future;
use std::sync::Arc;

use serde::Serialize;

use super::context::Context;

pub use crate::util::BoxFuture;

/// One item of a `resources/read` answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum ResourceContents {
    /// Text contents.
    Text {
        /// The URI read.
        uri: String,
        /// MIME type.
        #[serde(rename = "mimeType", skip_serializing_if = "Option::is_none")]
        mime_type: Option<String>,
        /// The text.
        text: String,
    },
    /// Binary contents, base64-encoded.
    Blob {
        /// The URI read.
        uri: String,
        /// MIME type.
        #[serde(rename = "mimeType", skip_serializing_if = "Option::is_none")]
        mime_type: Option<String>,
        /// Base64 data.
        blob: String,
    },
}

/// Why a resource could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadError {
    /// There is nothing at that URI (answered with -32002).
    NotFound,
    /// Reading failed; the message is sent to the client.
    Failed(String),
}

type ReadFn = dyn Fn(
        Context,
        String,
        Vec<(String, String)>,
    ) -> BoxFuture<'static, Result<Vec<ResourceContents>, ReadError>>
    + Send
    + Sync;

/// The description `resources/list` or `resources/templates/list` shows.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ResourceDef {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) uri_template: Option<String>,
    pub(crate) name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) mime_type: Option<String>,
}

/// A resource at a fixed URI, or a template of URIs with `{name}` parts.
///
/// ```
/// use snowflake_mcp::mcp::{Resource, ResourceContents};
///
/// let readme = Resource::text("docs://readme", "readme", "text/plain", "Hello.");
/// let rows = Resource::template("db://{table}/rows", "rows", |_ctx, uri, vars| async move {
///     let table = vars.iter().find(|(k, _)| k == "table").map(|(_, v)| v.clone()).unwrap_or_default();
///     Ok(vec![ResourceContents::Text { uri, mime_type: None, text: format!("rows of {table}") }])
/// });
/// assert!(rows.is_template() && !readme.is_template());
/// ```
#[derive(Clone)]
pub struct Resource {
    pub(crate) def: ResourceDef,
    pattern: Option<Vec<Part>>,
    read: Arc<ReadFn>,
    pub(crate) completions: Vec<(String, Arc<super::prompt::CompleteFn>)>,
}

impl std::fmt::Debug for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resource")
            .field("uri", &self.def.uri)
            .field("uri_template", &self.def.uri_template)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    Var(String),
}

impl Resource {
    /// A resource at `uri` whose contents `read` produces.
    pub fn new<F, Fut>(uri: impl Into<String>, name: impl Into<String>, read: F) -> Resource
    where
        F: Fn(Context, String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<ResourceContents>, ReadError>> + Send + 'static,
    {
        Resource {
            def: ResourceDef {
                uri: Some(uri.into()),
                uri_template: None,
                name: name.into(),
                title: None,
                description: None,
                mime_type: None,
            },
            pattern: None,
            read: Arc::new(move |ctx, uri, _| Box::pin(read(ctx, uri))),
            completions: Vec::new(),
        }
    }

    /// A resource with fixed text.
    pub fn text(uri: &str, name: &str, mime_type: &str, text: &str) -> Resource {
        let contents = ResourceContents::Text {
            uri: uri.to_owned(),
            mime_type: Some(mime_type.to_owned()),
            text: text.to_owned(),
        };
        Resource::new(uri, name, move |_ctx, _uri| {
            let contents = contents.clone();
            async move { Ok(vec![contents]) }
        })
        .mime_type(mime_type)
    }

    /// A template: `uri_template` has `{name}` parts that each match one or more
    /// characters other than `/`; `read` gets the URI and the values of the parts.
    pub fn template<F, Fut>(uri_template: &str, name: impl Into<String>, read: F) -> Resource
    where
        F: Fn(Context, String, Vec<(String, String)>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<ResourceContents>, ReadError>> + Send + 'static,
    {
        Resource {
            def: ResourceDef {
                uri: None,
                uri_template: Some(uri_template.to_owned()),
                name: name.into(),
                title: None,
                description: None,
                mime_type: None,
            },
            pattern: Some(parse_template(uri_template)),
            read: Arc::new(move |ctx, uri, vars| Box::pin(read(ctx, uri, vars))),
            completions: Vec::new(),
        }
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

    /// Sets the MIME type shown in listings.
    pub fn mime_type(mut self, mime_type: impl Into<String>) -> Self {
        self.def.mime_type = Some(mime_type.into());
        self
    }

    /// Offers completions for a template variable (`completion/complete`).
    pub fn complete<F>(mut self, variable: &str, complete: F) -> Self
    where
        F: Fn(&str) -> Vec<String> + Send + Sync + 'static,
    {
        self.completions
            .push((variable.to_owned(), Arc::new(complete)));
        self
    }

    /// Whether this is a template.
    pub fn is_template(&self) -> bool {
        self.pattern.is_some()
    }

    /// The variables if `uri` is this resource (or matches this template).
    pub(crate) fn matches(&self, uri: &str) -> Option<Vec<(String, String)>> {
        match &self.pattern {
            None => (self.def.uri.as_deref() == Some(uri)).then(Vec::new),
            Some(parts) => match_template(parts, uri),
        }
    }

    pub(crate) fn read(
        &self,
        ctx: Context,
        uri: String,
        vars: Vec<(String, String)>,
    ) -> BoxFuture<'static, Result<Vec<ResourceContents>, ReadError>> {
        (self.read)(ctx, uri, vars)
    }
}

fn parse_template(t: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        if open > 0 {
            parts.push(Part::Literal(rest[..open].to_owned()));
        }
        parts.push(Part::Var(rest[open + 1..open + close].to_owned()));
        rest = &rest[open + close + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Literal(rest.to_owned()));
    }
    parts
}

fn match_template(parts: &[Part], uri: &str) -> Option<Vec<(String, String)>> {
    let mut vars = Vec::new();
    let mut rest = uri;
    for (i, part) in parts.iter().enumerate() {
        match part {
            Part::Literal(l) => rest = rest.strip_prefix(l.as_str())?,
            Part::Var(name) => {
                // Up to the next literal (or the end), never across a '/'.
                let end = match parts.get(i + 1) {
                    Some(Part::Literal(next)) => rest.find(next.as_str())?,
                    _ => rest.len(),
                };
                let value = &rest[..end];
                if value.is_empty() || value.contains('/') {
                    return None;
                }
                vars.push((name.clone(), value.to_owned()));
                rest = &rest[end..];
            }
        }
    }
    rest.is_empty().then_some(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_matching() {
        let p = parse_template("test://template/{id}/data");
        assert_eq!(
            match_template(&p, "test://template/42/data"),
            Some(vec![("id".to_owned(), "42".to_owned())])
        );
        assert_eq!(match_template(&p, "test://template//data"), None);
        assert_eq!(match_template(&p, "test://template/a/b/data"), None);
        assert_eq!(match_template(&p, "test://template/42/data/x"), None);
        let p = parse_template("db://{schema}.{table}");
        assert_eq!(
            match_template(&p, "db://public.sales"),
            Some(vec![
                ("schema".into(), "public".into()),
                ("table".into(), "sales".into())
            ])
        );
    }
}
