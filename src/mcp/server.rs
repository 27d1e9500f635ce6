//! The server a host builds once: its identity, its tools, and every fixed
//! answer serialized ahead of time.

use std::sync::Arc;

use serde_json::{Value, json};

use super::prompt::Prompt;
use super::resource::Resource;
use super::tool::Tool;
use super::version::{HANDSHAKE_VERSIONS, ProtocolVersion, supported_json};

/// Resource updates queued per session before the oldest are dropped. Default: 256.
const UPDATE_QUEUE: usize = 256;

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
    resources: Vec<Resource>,
    prompts: Vec<Prompt>,
    page_size: usize,
}

impl McpServerBuilder {
    /// Adds a resource or resource template.
    pub fn resource(mut self, resource: Resource) -> Self {
        self.resources.push(resource);
        self
    }

    /// Adds a prompt (a later prompt with the same name replaces the earlier one).
    pub fn prompt(mut self, prompt: Prompt) -> Self {
        self.prompts.retain(|p| p.name() != prompt.name());
        self.prompts.push(prompt);
        self
    }

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
        let size = self.page_size;
        let tools = list_pages(
            self.tools
                .iter()
                .map(|t| serde_json::to_value(&t.def).unwrap_or_default())
                .collect(),
            "tools",
            size,
            &["title", "outputSchema"],
        );
        let (templates, fixed): (Vec<&Resource>, Vec<&Resource>) =
            self.resources.iter().partition(|r| r.is_template());
        let resources = list_pages(
            fixed
                .iter()
                .map(|r| serde_json::to_value(&r.def).unwrap_or_default())
                .collect(),
            "resources",
            size,
            &["title"],
        );
        let resource_templates = list_pages(
            templates
                .iter()
                .map(|r| serde_json::to_value(&r.def).unwrap_or_default())
                .collect(),
            "resourceTemplates",
            size,
            &["title"],
        );
        let prompts = list_pages(
            self.prompts
                .iter()
                .map(|p| serde_json::to_value(&p.def).unwrap_or_default())
                .collect(),
            "prompts",
            size,
            &["title"],
        );
        let (updates, _) = tokio::sync::broadcast::channel(UPDATE_QUEUE);
        McpServer(Arc::new(Inner {
            updates,
            tools: self.tools,
            resources: self.resources,
            prompts: self.prompts,
            index,
            initialize,
            discover: discover.to_string().into_bytes(),
            lists: [tools, resources, resource_templates, prompts],
        }))
    }
}

fn capabilities(b: &McpServerBuilder) -> Value {
    let mut caps = json!({ "logging": {} });
    if !b.tools.is_empty() {
        caps["tools"] = json!({ "listChanged": true });
    }
    if !b.resources.is_empty() {
        caps["resources"] = json!({ "subscribe": true, "listChanged": true });
    }
    if !b.prompts.is_empty() {
        caps["prompts"] = json!({ "listChanged": true });
    }
    if !b.prompts.is_empty() || b.resources.iter().any(Resource::is_template) {
        caps["completions"] = json!({});
    }
    caps
}

/// Which list a `*/list` method pages through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum List {
    Tools = 0,
    Resources = 1,
    ResourceTemplates = 2,
    Prompts = 3,
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

/// One list result per page, in each variant, ready to send. `basic_drops`
/// are the fields versions before 2025-06-18 do not know.
fn list_pages(
    defs: Vec<Value>,
    field: &str,
    page_size: usize,
    basic_drops: &[&str],
) -> Vec<[Vec<u8>; 3]> {
    let chunks: Vec<&[Value]> = if defs.is_empty() {
        vec![&[]]
    } else {
        defs.chunks(page_size).collect()
    };
    let count = chunks.len();
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, chunk)| {
            let next = (i + 1 < count).then(|| cursor_for(i + 1));
            [ListVariant::Basic, ListVariant::Full, ListVariant::Modern].map(|variant| {
                let items: Vec<Value> = chunk
                    .iter()
                    .map(|d| {
                        let mut d = d.clone();
                        if variant == ListVariant::Basic
                            && let Some(obj) = d.as_object_mut()
                        {
                            for f in basic_drops {
                                obj.remove(*f);
                            }
                        }
                        d
                    })
                    .collect();
                let mut r = json!({ field: items });
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
    /// Resource URIs that changed, fanned out to every session's transport.
    updates: tokio::sync::broadcast::Sender<Arc<str>>,
    pub(crate) tools: Vec<Tool>,
    pub(crate) resources: Vec<Resource>,
    pub(crate) prompts: Vec<Prompt>,
    /// Tool names sorted, for binary search: no hashing on the hot path.
    index: Vec<(String, usize)>,
    initialize: Vec<(ProtocolVersion, Vec<u8>)>,
    pub(crate) discover: Vec<u8>,
    /// Pages of each list (indexed by [`List`]), each in every variant.
    lists: [Vec<[Vec<u8>; 3]>; 4],
}

impl McpServer {
    /// Starts a builder with the name and version clients see in `serverInfo`.
    pub fn builder(name: impl Into<String>, version: impl Into<String>) -> McpServerBuilder {
        McpServerBuilder {
            name: name.into(),
            version: version.into(),
            instructions: None,
            tools: Vec::new(),
            resources: Vec::new(),
            prompts: Vec::new(),
            page_size: DEFAULT_PAGE_SIZE,
        }
    }

    /// Tells every session subscribed to `uri` that it changed
    /// (`notifications/resources/updated`).
    pub fn resource_updated(&self, uri: &str) {
        // No receiver means no session is listening: nothing to do.
        let _ = self.0.updates.send(Arc::from(uri));
    }

    /// A feed of changed resource URIs, for transports that forward them.
    pub fn resource_updates(&self) -> tokio::sync::broadcast::Receiver<Arc<str>> {
        self.0.updates.subscribe()
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

    pub(crate) fn page_count(&self, list: List) -> usize {
        self.0.lists[list as usize].len()
    }

    pub(crate) fn list_page(&self, list: List, page: usize, variant: ListVariant) -> &[u8] {
        &self.0.lists[list as usize][page][variant as usize]
    }

    /// The resource at `uri` (fixed URIs first, then templates), with its variables.
    pub(crate) fn find_resource(&self, uri: &str) -> Option<(usize, Vec<(String, String)>)> {
        let rs = &self.0.resources;
        let fixed = rs.iter().enumerate().filter(|(_, r)| !r.is_template());
        let templates = rs.iter().enumerate().filter(|(_, r)| r.is_template());
        fixed
            .chain(templates)
            .find_map(|(i, r)| r.matches(uri).map(|vars| (i, vars)))
    }

    pub(crate) fn prompt_index(&self, name: &str) -> Option<usize> {
        self.0.prompts.iter().position(|p| p.name() == name)
    }
}
