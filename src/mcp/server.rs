//! The server a host builds once: its identity, its tools, and every fixed
//! answer serialized ahead of time.

use std::sync::Arc;

use serde_json::{Value, json};

use super::tool::Tool;
use super::version::{HANDSHAKE_VERSIONS, ProtocolVersion, supported_json};

/// Tools per `tools/list` page. Default: 100.
pub const DEFAULT_PAGE_SIZE: usize = 100;

/// Builds an [`McpServer`].
///
/// ```
/// use snowflake_mcp::mcp::{McpServer, Tool, ToolOutput};
///
/// let server = McpServer::builder("my-host", "1.0.0")
///     .instructions("Ask me for the time.")
///     .tool(Tool::raw("now", "The time.", serde_json::json!({"type": "object"}),
///         |_ctx, _args| async { ToolOutput::text("noon") }))
///     .build();
/// assert_eq!(server.tool_names(), ["now"]);
/// ```
#[derive(Debug)]
pub struct McpServerBuilder {
    name: String,
    version: String,
    instructions: Option<String>,
    tools: Vec<Tool>,
    page_size: usize,
}

impl McpServerBuilder {
    /// Adds a tool (a later tool with the same name replaces the earlier one).
    pub fn tool(mut self, tool: Tool) -> Self {
        self.tools.retain(|t| t.name() != tool.name());
        self.tools.push(tool);
        self
    }

    /// Sets the instructions clients may show to their model.
    pub fn instructions(mut self, text: impl Into<String>) -> Self {
        self.instructions = Some(text.into());
        self
    }

    /// Sets how many tools one `tools/list` page holds. Default: [`DEFAULT_PAGE_SIZE`].
    pub fn page_size(mut self, size: usize) -> Self {
        self.page_size = size.max(1);
        self
    }

    /// Builds the server, serializing every fixed answer once.
    pub fn build(self) -> McpServer {
        let mut index: Vec<(String, usize)> = self
            .tools
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name().to_owned(), i))
            .collect();
        index.sort();
        let capabilities = capabilities(&self);
        let server_info = json!({ "name": self.name, "version": self.version });
        let initialize = HANDSHAKE_VERSIONS
            .iter()
            .map(|v| {
                let mut r = json!({
                    "protocolVersion": v.as_str(),
                    "capabilities": capabilities,
                    "serverInfo": server_info,
                });
                if let Some(text) = &self.instructions {
                    r["instructions"] = text.clone().into();
                }
                (*v, r.to_string().into_bytes())
            })
            .collect();
        let mut discover = json!({
            "supportedVersions": serde_json::from_str::<Value>(supported_json()).unwrap_or_default(),
            "capabilities": capabilities,
            "_meta": { "io.modelcontextprotocol/serverInfo": server_info },
            "resultType": "complete",
            "ttlMs": 0,
            "cacheScope": "public",
        });
        if let Some(text) = &self.instructions {
            discover["instructions"] = text.clone().into();
        }
        let pages = tool_pages(&self.tools, self.page_size);
        McpServer(Arc::new(Inner {
            tools: self.tools,
            index,
            initialize,
            discover: discover.to_string().into_bytes(),
            pages,
        }))
    }
}

fn capabilities(b: &McpServerBuilder) -> Value {
    let mut caps = json!({ "logging": {} });
    if !b.tools.is_empty() {
        caps["tools"] = json!({ "listChanged": true });
    }
    caps
}

/// How `tools/list` shows a tool to a client of some version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ListVariant {
    /// 2024-11-05 and 2025-03-26: no `title`, no `outputSchema`.
    Basic,
    /// 2025-06-18 and 2025-11-25.
    Full,
    /// 2026-07-28: full, plus `resultType`, `ttlMs`, `cacheScope`.
    Modern,
}

impl ListVariant {
    pub(crate) fn of(v: ProtocolVersion) -> ListVariant {
        if v.is_modern() {
            ListVariant::Modern
        } else if v.has_structured_output() {
            ListVariant::Full
        } else {
            ListVariant::Basic
        }
    }
}

/// One `tools/list` result per page, in each variant, ready to send.
fn tool_pages(tools: &[Tool], page_size: usize) -> Vec<[Vec<u8>; 3]> {
    let chunks: Vec<&[Tool]> = if tools.is_empty() {
        vec![&[]]
    } else {
        tools.chunks(page_size).collect()
    };
    let count = chunks.len();
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, chunk)| {
            let next = (i + 1 < count).then(|| cursor_for(i + 1));
            [ListVariant::Basic, ListVariant::Full, ListVariant::Modern].map(|variant| {
                let defs: Vec<Value> = chunk
                    .iter()
                    .map(|t| {
                        let mut d = serde_json::to_value(&t.def).unwrap_or_default();
                        if variant == ListVariant::Basic
                            && let Some(obj) = d.as_object_mut()
                        {
                            obj.remove("title");
                            obj.remove("outputSchema");
                        }
                        d
                    })
                    .collect();
                let mut r = json!({ "tools": defs });
                if let Some(next) = &next {
                    r["nextCursor"] = next.clone().into();
                }
                if variant == ListVariant::Modern {
                    r["resultType"] = "complete".into();
                    r["ttlMs"] = 0.into();
                    r["cacheScope"] = "public".into();
                }
                r.to_string().into_bytes()
            })
        })
        .collect()
}

/// The opaque cursor of page `page`.
fn cursor_for(page: usize) -> String {
    format!("page-{page}")
}

/// The page a cursor names, if it is one of ours.
pub(crate) fn page_of(cursor: &str, pages: usize) -> Option<usize> {
    let n: usize = cursor.strip_prefix("page-")?.parse().ok()?;
    (n > 0 && n < pages && cursor_for(n) == cursor).then_some(n)
}

/// An MCP server definition, cheap to clone and shared by every session.
#[derive(Clone, Debug)]
pub struct McpServer(pub(crate) Arc<Inner>);

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) tools: Vec<Tool>,
    /// Tool names sorted, for binary search: no hashing on the hot path.
    index: Vec<(String, usize)>,
    initialize: Vec<(ProtocolVersion, Vec<u8>)>,
    pub(crate) discover: Vec<u8>,
    pages: Vec<[Vec<u8>; 3]>,
}

impl McpServer {
    /// Starts a builder with the name and version clients see in `serverInfo`.
    pub fn builder(name: impl Into<String>, version: impl Into<String>) -> McpServerBuilder {
        McpServerBuilder {
            name: name.into(),
            version: version.into(),
            instructions: None,
            tools: Vec::new(),
            page_size: DEFAULT_PAGE_SIZE,
        }
    }

    /// The registered tool names, in registration order.
    pub fn tool_names(&self) -> Vec<&str> {
        self.0.tools.iter().map(Tool::name).collect()
    }

    pub(crate) fn tool_index(&self, name: &str) -> Option<usize> {
        let idx = &self.0.index;
        idx.binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| idx[i].1)
    }

    pub(crate) fn initialize_result(&self, v: ProtocolVersion) -> &[u8] {
        self.0
            .initialize
            .iter()
            .find(|(iv, _)| *iv == v)
            .or(self.0.initialize.last())
            .map_or(&b"{}"[..], |(_, r)| r)
    }

    pub(crate) fn page_count(&self) -> usize {
        self.0.pages.len()
    }

    pub(crate) fn tools_page(&self, page: usize, variant: ListVariant) -> &[u8] {
        &self.0.pages[page][variant as usize]
    }
}
