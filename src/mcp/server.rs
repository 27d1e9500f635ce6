//! The server a host builds once: its identity, its tools, and every fixed
//! answer serialized ahead of time.

use parking_lot::Mutex;
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::prompt::Prompt;
use super::resource::Resource;
use super::tool::Tool;
use super::version::{HANDSHAKE_VERSIONS, ProtocolVersion, supported_json};

/// Server events queued per session before the oldest are dropped. Default: 256.
const EVENT_QUEUE: usize = 256;

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
pub struct McpServerBuilder {
    name: String,
    version: String,
    instructions: Option<String>,
    tools: Vec<Tool>,
    resources: Vec<Resource>,
    prompts: Vec<Prompt>,
    page_size: usize,
    /// Keys `requestState` is sealed with (none: a random one).
    state_keys: Vec<[u8; 32]>,
    /// Where tasks are also kept, for other replicas.
    #[cfg(feature = "redis")]
    shared_tasks: Option<super::tasks::SharedTasks>,
}

impl std::fmt::Debug for McpServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServerBuilder")
            .field("name", &self.name)
            .field("tools", &self.tools.len())
            .field("state_keys", &self.state_keys.len())
            .finish_non_exhaustive()
    }
}

impl McpServerBuilder {
    /// The version the server will report.
    pub(crate) fn server_version(&self) -> &str {
        &self.version
    }

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

    /// The keys 2026-07-28 `requestState` is sealed with, shared by every
    /// replica behind a load balancer, so a round that comes back to
    /// another replica opens there: the first key seals, every key opens
    /// (add the new key first and keep the old one while rounds in flight
    /// may still carry it, then drop it). Default: one random key per
    /// process (state does not survive a restart or cross replicas).
    pub fn state_keys(mut self, keys: Vec<[u8; 32]>) -> Self {
        self.state_keys = keys;
        self
    }

    /// Sets how many tools one `tools/list` page holds. Default: 100.
    pub fn page_size(mut self, size: usize) -> Self {
        self.page_size = size.max(1);
        self
    }

    /// Keeps tasks (the tasks extension) in `store` too, so that every
    /// replica attached to the same store answers `tasks/get`,
    /// `tasks/update` and `tasks/cancel` for them, wherever the request
    /// lands. One store serves one server.
    #[cfg(feature = "redis")]
    pub fn shared_tasks(mut self, store: super::tasks::SharedTasks) -> Self {
        self.shared_tasks = Some(store);
        self
    }

    /// Builds the server, serializing every fixed answer once.
    pub fn build(self) -> McpServer {
        let settings = Settings {
            name: self.name,
            version: self.version,
            instructions: self.instructions,
            page_size: self.page_size,
        };
        let catalog = Catalog::build(&settings, self.tools, self.resources, self.prompts);
        let (events, _) = broadcast::channel(EVENT_QUEUE);
        McpServer(Arc::new(Inner {
            settings,
            catalog: ArcSwap::from_pointee(catalog),
            edits: Mutex::new(()),
            events,
            state_key: super::state::StateKeys::given(&self.state_keys),
            #[cfg(feature = "redis")]
            tasks: super::tasks::TaskStore::with_shared(self.shared_tasks),
            #[cfg(not(feature = "redis"))]
            tasks: super::tasks::TaskStore::default(),
            metrics: Arc::default(),
            abort: tokio::sync::watch::channel(None).0,
            heavy: Arc::default(),
            memory: ArcSwap::new(crate::budget::Memory::unbounded()),
        }))
    }
}

/// What stays fixed for the server's life.
#[derive(Debug)]
struct Settings {
    name: String,
    version: String,
    instructions: Option<String>,
    page_size: usize,
}

/// Everything a server offers at one moment, with its fixed answers serialized.
///
/// Replaced whole (never edited in place) when the host adds or removes
/// something, so a request in flight keeps the catalog it started with.
#[derive(Debug)]
pub(crate) struct Catalog {
    pub(crate) tools: Vec<Tool>,
    pub(crate) resources: Vec<Resource>,
    pub(crate) prompts: Vec<Prompt>,
    /// Tool names sorted by length, then bytes, for binary search: no
    /// hashing on the hot path, and most steps decided by the length alone.
    index: Vec<(String, usize)>,
    /// Each tool's `x-mcp-header` arguments (by tool index), read from its
    /// schema once here; `None` for a tool that mirrors none.
    header_params: Vec<Option<HeaderParams>>,
    initialize: Vec<(ProtocolVersion, Vec<u8>)>,
    pub(crate) discover: Vec<u8>,
    /// Pages of each list (indexed by [`List`]), each in every variant.
    lists: [Vec<[Vec<u8>; 3]>; 4],
}

/// The `initialize` answer for each handshake version, and the
/// 2026-07-28 `server/discover` answer, encoded once.
fn handshakes(
    settings: &Settings,
    capabilities: &Value,
) -> (Vec<(ProtocolVersion, Vec<u8>)>, Vec<u8>) {
    let server_info = json!({ "name": settings.name, "version": settings.version });
    let initialize = HANDSHAKE_VERSIONS
        .iter()
        .map(|v| {
            let mut r = json!({
                "protocolVersion": v.as_str(),
                "capabilities": capabilities,
                "serverInfo": server_info,
            });
            if let Some(text) = &settings.instructions {
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
    if let Some(text) = &settings.instructions {
        discover["instructions"] = text.clone().into();
    }
    (initialize, discover.to_string().into_bytes())
}

/// A tool's `(property, header suffix)` pairs of `x-mcp-header` arguments.
pub(crate) type HeaderParams = Arc<[(String, String)]>;

/// The order of the tool index: by length, then by bytes.
fn by_length(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

impl Catalog {
    fn build(
        settings: &Settings,
        tools: Vec<Tool>,
        resources: Vec<Resource>,
        prompts: Vec<Prompt>,
    ) -> Catalog {
        let mut index: Vec<(String, usize)> = tools
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name().to_owned(), i))
            .collect();
        index.sort_by(|(a, _), (b, _)| by_length(a, b));
        let header_params = tools
            .iter()
            .map(|t| {
                Some(t.header_params())
                    .filter(|p| !p.is_empty())
                    .map(Arc::from)
            })
            .collect();
        let capabilities = capabilities(&tools, &resources, &prompts);
        let (initialize, discover) = handshakes(settings, &capabilities);
        let size = settings.page_size;
        let tool_list = list_pages(
            tools
                .iter()
                .map(|t| serde_json::to_value(&t.def).unwrap_or_default())
                .collect(),
            "tools",
            size,
            &["title", "outputSchema"],
            &["execution"],
        );
        let (templates, fixed): (Vec<&Resource>, Vec<&Resource>) =
            resources.iter().partition(|r| r.is_template());
        let resource_list = list_pages(
            fixed
                .iter()
                .map(|r| serde_json::to_value(&r.def).unwrap_or_default())
                .collect(),
            "resources",
            size,
            &["title"],
            &[],
        );
        let template_list = list_pages(
            templates
                .iter()
                .map(|r| serde_json::to_value(&r.def).unwrap_or_default())
                .collect(),
            "resourceTemplates",
            size,
            &["title"],
            &[],
        );
        let prompt_list = list_pages(
            prompts
                .iter()
                .map(|p| serde_json::to_value(&p.def).unwrap_or_default())
                .collect(),
            "prompts",
            size,
            &["title"],
            &[],
        );
        Catalog {
            tools,
            resources,
            prompts,
            index,
            header_params,
            initialize,
            discover,
            lists: [tool_list, resource_list, template_list, prompt_list],
        }
    }

    /// The `(property, header suffix)` pairs of the tool at `tool`'s
    /// `x-mcp-header` arguments (SEP-2243); `None` for one that mirrors no
    /// argument in a header.
    pub(crate) fn header_params(&self, tool: usize) -> Option<&[(String, String)]> {
        self.header_params.get(tool)?.as_deref()
    }

    pub(crate) fn tool_index(&self, name: &str) -> Option<usize> {
        let idx = &self.index;
        idx.binary_search_by(|(n, _)| by_length(n, name))
            .ok()
            .map(|i| idx[i].1)
    }

    pub(crate) fn initialize_result(&self, v: ProtocolVersion) -> &[u8] {
        self.initialize
            .iter()
            .find(|(iv, _)| *iv == v)
            .or(self.initialize.last())
            .map_or(&b"{}"[..], |(_, r)| r)
    }

    pub(crate) fn page_count(&self, list: List) -> usize {
        self.lists[list as usize].len()
    }

    pub(crate) fn list_page(&self, list: List, page: usize, variant: ListVariant) -> &[u8] {
        &self.lists[list as usize][page][variant as usize]
    }

    /// The resource at `uri` (fixed URIs first, then templates), with its variables.
    pub(crate) fn find_resource(&self, uri: &str) -> Option<(usize, Vec<(String, String)>)> {
        let rs = &self.resources;
        let fixed = rs.iter().enumerate().filter(|(_, r)| !r.is_template());
        let templates = rs.iter().enumerate().filter(|(_, r)| r.is_template());
        fixed
            .chain(templates)
            .find_map(|(i, r)| r.matches(uri).map(|vars| (i, vars)))
    }

    pub(crate) fn prompt_index(&self, name: &str) -> Option<usize> {
        self.prompts.iter().position(|p| p.name() == name)
    }
}

fn capabilities(tools: &[Tool], resources: &[Resource], prompts: &[Prompt]) -> Value {
    let mut caps = json!({ "logging": {} });
    if !tools.is_empty() {
        caps["tools"] = json!({ "listChanged": true });
    }
    if !resources.is_empty() {
        caps["resources"] = json!({ "subscribe": true, "listChanged": true });
    }
    if !prompts.is_empty() {
        caps["prompts"] = json!({ "listChanged": true });
    }
    if !prompts.is_empty() || resources.iter().any(Resource::is_template) {
        caps["completions"] = json!({});
    }
    if tools.iter().any(|t| t.task.is_some()) {
        caps["extensions"] = json!({ super::tasks::TASKS_EXTENSION: {} });
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
    modern_only: &[&str],
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
                        if let Some(obj) = d.as_object_mut() {
                            if variant == ListVariant::Basic {
                                for f in basic_drops {
                                    obj.remove(*f);
                                }
                            }
                            if variant != ListVariant::Modern {
                                for f in modern_only {
                                    obj.remove(*f);
                                }
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

/// Something that changed on the server, for transports to tell their clients.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// A resource's contents changed (`notifications/resources/updated` to subscribers).
    ResourceUpdated(Arc<str>),
    /// The tools changed (`notifications/tools/list_changed`).
    ToolsChanged,
    /// The resources or templates changed (`notifications/resources/list_changed`).
    ResourcesChanged,
    /// The prompts changed (`notifications/prompts/list_changed`).
    PromptsChanged,
}

/// An MCP server definition, cheap to clone and shared by every session.
///
/// Tools, resources and prompts can be added and removed while it serves;
/// sessions see the change on their next request and are told with a
/// `list_changed` notification.
#[derive(Clone, Debug)]
pub struct McpServer(pub(crate) Arc<Inner>);

#[derive(Debug)]
pub(crate) struct Inner {
    settings: Settings,
    /// The current catalog: read without locking on every request, replaced whole on edits.
    catalog: ArcSwap<Catalog>,
    /// Serializes edits so none is lost between load and store; never held across `.await`.
    edits: Mutex<()>,
    /// Changes, fanned out to every session's transport.
    events: broadcast::Sender<ServerEvent>,
    /// Seals and checks 2026-07-28 `requestState`.
    pub(crate) state_key: super::state::StateKeys,
    /// Tasks (the 2026-07-28 tasks extension), shared by every session.
    pub(crate) tasks: super::tasks::TaskStore,
    /// Requests by method and outcome, and their durations.
    pub(crate) metrics: Arc<super::metrics::McpMetrics>,
    /// Set once by [`McpServer::abort_calls`]: the reason every running and
    /// later call is answered with.
    pub(crate) abort: tokio::sync::watch::Sender<Option<Arc<str>>>,
    /// CPU-heavy work, one job at a time per principal.
    pub(crate) heavy: Arc<super::heavy::HeavyGate>,
    /// The budget a batch's gathered answers count against (unbounded
    /// until [`McpServer::use_memory`]).
    pub(crate) memory: ArcSwap<crate::budget::Memory>,
}

impl McpServer {
    /// Counts the results its tasks keep and the answers its batches gather
    /// against `memory` (the service's budget over all its pools) too.
    pub(crate) fn use_memory(&self, memory: &std::sync::Arc<crate::budget::Memory>) {
        self.0.tasks.use_memory(memory);
        self.0.memory.store(Arc::clone(memory));
    }

    /// The version clients see in `serverInfo`.
    pub(crate) fn server_version(&self) -> &str {
        &self.0.settings.version
    }

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
            state_keys: Vec::new(),
            #[cfg(feature = "redis")]
            shared_tasks: None,
        }
    }

    /// The current catalog.
    pub(crate) fn catalog(&self) -> arc_swap::Guard<Arc<Catalog>> {
        self.0.catalog.load()
    }

    /// Requests served by every session of this server, by method and outcome.
    pub(crate) fn metrics(&self) -> Arc<super::metrics::McpMetrics> {
        Arc::clone(&self.0.metrics)
    }

    /// Every registered tool's calls by outcome (`ALL` order).
    pub fn tool_calls(&self) -> Vec<(String, [u64; 4])> {
        self.catalog()
            .tools
            .iter()
            .map(|t| (t.name().to_owned(), t.calls.counts()))
            .collect()
    }

    /// The registered tool names, in registration order.
    pub fn tool_names(&self) -> Vec<String> {
        self.catalog()
            .tools
            .iter()
            .map(|t| t.name().to_owned())
            .collect()
    }

    /// Adds a tool, or replaces the one with its name, and tells the clients.
    pub fn add_tool(&self, tool: Tool) {
        self.edit(ServerEvent::ToolsChanged, |tools, _, _| {
            tools.retain(|t| t.name() != tool.name());
            tools.push(tool);
            true
        });
    }

    /// Removes a tool by name; returns whether there was one.
    pub fn remove_tool(&self, name: &str) -> bool {
        self.edit(ServerEvent::ToolsChanged, |tools, _, _| {
            let before = tools.len();
            tools.retain(|t| t.name() != name);
            tools.len() != before
        })
    }

    /// Adds a resource or template, and tells the clients.
    pub fn add_resource(&self, resource: Resource) {
        self.edit(ServerEvent::ResourcesChanged, |_, resources, _| {
            resources.push(resource);
            true
        });
    }

    /// Removes the resource with this URI (or template); returns whether there was one.
    pub fn remove_resource(&self, uri_or_template: &str) -> bool {
        self.edit(ServerEvent::ResourcesChanged, |_, resources, _| {
            let before = resources.len();
            resources.retain(|r| {
                r.def.uri.as_deref() != Some(uri_or_template)
                    && r.def.uri_template.as_deref() != Some(uri_or_template)
            });
            resources.len() != before
        })
    }

    /// Adds a prompt, or replaces the one with its name, and tells the clients.
    pub fn add_prompt(&self, prompt: Prompt) {
        self.edit(ServerEvent::PromptsChanged, |_, _, prompts| {
            prompts.retain(|p| p.name() != prompt.name());
            prompts.push(prompt);
            true
        });
    }

    /// Removes a prompt by name; returns whether there was one.
    pub fn remove_prompt(&self, name: &str) -> bool {
        self.edit(ServerEvent::PromptsChanged, |_, _, prompts| {
            let before = prompts.len();
            prompts.retain(|p| p.name() != name);
            prompts.len() != before
        })
    }

    /// Applies an edit to copies of the lists, swaps in the rebuilt catalog, announces it.
    fn edit(
        &self,
        event: ServerEvent,
        change: impl FnOnce(&mut Vec<Tool>, &mut Vec<Resource>, &mut Vec<Prompt>) -> bool,
    ) -> bool {
        let guard = self.0.edits.lock();
        let current = self.0.catalog.load_full();
        let mut tools = current.tools.clone();
        let mut resources = current.resources.clone();
        let mut prompts = current.prompts.clone();
        if !change(&mut tools, &mut resources, &mut prompts) {
            return false;
        }
        let next = Catalog::build(&self.0.settings, tools, resources, prompts);
        self.0.catalog.store(Arc::new(next));
        drop(guard);
        // No receiver means no session is listening: nothing to tell.
        let _ = self.0.events.send(event);
        true
    }

    /// Tells every session subscribed to `uri` that it changed
    /// (`notifications/resources/updated`).
    pub fn resource_updated(&self, uri: &str) {
        let _ = self
            .0
            .events
            .send(ServerEvent::ResourceUpdated(Arc::from(uri)));
    }

    /// Ends every call still running, and every later one, with a JSON-RPC
    /// error [`crate::mcp::SERVER_STOPPING`] carrying `reason`: for a host
    /// whose shutdown deadline passed, so clients learn why their call
    /// stopped instead of seeing the connection drop. The handlers' futures
    /// are dropped (a warehouse statement is interrupted).
    pub fn abort_calls(&self, reason: &str) {
        self.0.abort.send_replace(Some(Arc::from(reason)));
    }

    /// How many of this server's tasks (the tasks extension) have not
    /// ended: a host shutting down waits for them to reach zero (within its
    /// deadline) before [`McpServer::abort_calls`] ends the rest.
    pub fn live_tasks(&self) -> usize {
        self.0.tasks.live()
    }

    /// A feed of changes, for transports that forward them to clients.
    pub fn events(&self) -> broadcast::Receiver<ServerEvent> {
        self.0.events.subscribe()
    }
}
