//! Requests that run a host's code: tool calls, resource reads, prompt renders.

use std::sync::Arc;
use std::task::Poll;

use serde_json::value::RawValue;
use tokio::sync::watch;

use super::LARGE_MESSAGE;
use super::context::{CallSetup, Context, InputRound, LogLevel, SessionLink, Wanted};
use super::encoded::Encoded;
use super::kept::Kept;
use super::lazy::LazyJson;
use super::listen::ListenFilter;
use super::peer::Peer;
use super::resource::ReadError;
use super::server::Catalog;
use super::server::McpServer;
use super::tasks::TaskSupport;
use super::tool::{Content, ToolOutput};
use super::version::ProtocolVersion;
use crate::jsonrpc::write::{
    RESULT_FRAME_BYTES, write_error, write_json_string, write_result_head, write_result_tail,
    write_result_with,
};
use crate::jsonrpc::{INTERNAL_ERROR, Id, RawJson, RpcError};

/// JSON-RPC code for a resource that does not exist.
pub const RESOURCE_NOT_FOUND: i32 = -32002;
/// The call was stopped because the server is shutting down
/// ([`super::McpServer::abort_calls`]).
pub const SERVER_STOPPING: i32 = -32000;

/// What a [`Call`] runs.
#[derive(Debug)]
pub(crate) enum CallKind<'a> {
    Tool {
        tool: usize,
        arguments: Option<RawJson<'a>>,
    },
    Read {
        resource: usize,
        uri: std::borrow::Cow<'a, str>,
        vars: Vec<(String, String)>,
    },
    Prompt {
        prompt: usize,
        args: Vec<(String, String)>,
    },
    /// 2026-07-28 `subscriptions/listen`.
    Listen(ListenFilter),
    /// `tasks/*` answered through the shared store (a task another
    /// replica runs, or a change the store must hold before the answer).
    #[cfg(feature = "redis")]
    Task {
        task_id: String,
        op: super::tasks::shared::Op,
    },
}

/// A request that runs host code, borrowing the request bytes.
#[derive(Debug)]
pub struct Call<'a> {
    /// The catalog the call was dispatched against (indexes point into it).
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) id: Id<'a>,
    pub(crate) kind: CallKind<'a>,
    pub(crate) progress_token: Option<RawJson<'a>>,
    pub(crate) version: ProtocolVersion,
    pub(crate) log_level: Option<LogLevel>,
    /// 2026-07-28: the client's `_meta` capabilities and `inputResponses`.
    pub(crate) client_capabilities: Option<RawJson<'a>>,
    pub(crate) client_info: Option<RawJson<'a>>,
    pub(crate) input_responses: Option<RawJson<'a>>,
    /// 2026-07-28: the sealed `requestState` of an earlier round.
    pub(crate) request_state: Option<RawJson<'a>>,
    /// The whole message the pieces above are slices of.
    pub(crate) message: &'a str,
}

#[derive(Debug)]
enum OwnedKind {
    Tool {
        tool: usize,
        arguments: Option<Arguments>,
    },
    Read {
        resource: usize,
        uri: String,
        vars: Vec<(String, String)>,
    },
    Prompt {
        prompt: usize,
        args: Vec<(String, String)>,
    },
    Listen(ListenFilter),
    #[cfg(feature = "redis")]
    Task {
        task_id: String,
        op: super::tasks::shared::Op,
    },
}

impl OwnedKind {
    /// The JSON-RPC method that asked for it.
    fn method(&self) -> &'static str {
        match self {
            OwnedKind::Tool { .. } => "tools/call",
            OwnedKind::Read { .. } => "resources/read",
            OwnedKind::Prompt { .. } => "prompts/get",
            OwnedKind::Listen(_) => "subscriptions/listen",
            #[cfg(feature = "redis")]
            OwnedKind::Task { op, .. } => op.method(),
        }
    }
}

/// A tool call's arguments, as the call keeps them.
#[derive(Debug)]
enum Arguments {
    /// Kept with the call's other pieces: valid JSON (the scanner read
    /// it), handed to the tool as serde_json's view of it when it runs.
    Kept(Kept),
    /// Arguments of [`LARGE_MESSAGE`] bytes or more, made serde_json's own
    /// when the call is (off the async workers, as a large message is
    /// read), so that the async worker that runs the tool does not read
    /// them again first.
    Raw(Box<RawValue>),
}

/// What a call's `requestState` is bound to, written out only when a
/// state is opened or sealed (most calls do neither; `format!` of it on
/// every call cost close to a thousand instructions).
struct Binding {
    catalog: Arc<Catalog>,
    of: BindingOf,
}

enum BindingOf {
    Tool(usize),
    Prompt(usize),
    Read(String),
    Fixed(&'static str),
}

impl Binding {
    /// `method\0name`: the tool, prompt or resource the call names.
    fn text(&self) -> String {
        match &self.of {
            BindingOf::Tool(tool) => format!("tools/call\0{}", self.catalog.tools[*tool].name()),
            BindingOf::Prompt(prompt) => {
                format!("prompts/get\0{}", self.catalog.prompts[*prompt].name())
            }
            BindingOf::Read(uri) => format!("resources/read\0{uri}"),
            BindingOf::Fixed(method) => (*method).to_owned(),
        }
    }
}

/// A [`Call`] that owns what it needs, to run on a task of its own.
#[derive(Debug)]
pub struct OwnedCall {
    session: Arc<dyn SessionLink>,
    server: McpServer,
    catalog: Arc<Catalog>,
    /// The JSON-RPC id as raw JSON, shared with the context and the tally
    /// (and kept in one allocation with the arguments and `_meta` parts).
    id: Kept,
    kind: OwnedKind,
    progress_token: Option<Box<RawValue>>,
    version: ProtocolVersion,
    log_level: Option<LogLevel>,
    client_capabilities: LazyJson,
    client_info: LazyJson,
    input_responses: serde_json::Map<String, serde_json::Value>,
    /// The sealed `requestState`, not yet checked; `Err` when it is not a string.
    request_state: Result<Option<String>, ()>,
    /// Where this call's own messages go, when not to the session's peer.
    peer: Option<Peer>,
}

impl Call<'_> {
    /// The tool a `tools/call` names (None for other calls).
    pub fn tool_name(&self) -> Option<&str> {
        match self.kind {
            CallKind::Tool { tool, .. } => Some(self.catalog.tools[tool].name()),
            _ => None,
        }
    }

    /// Copies what the call borrows so it can run on a task of its own, in
    /// `session` of `server` (`Session::own` is the public form).
    pub(crate) fn own(self, session: Arc<dyn SessionLink>, server: McpServer) -> OwnedCall {
        // The pieces a call keeps, copied in one allocation.
        let (arguments, large_arguments) = match &self.kind {
            CallKind::Tool {
                arguments: Some(a), ..
            } if a.get().len() >= LARGE_MESSAGE => (None, Some(a.to_raw_value())),
            CallKind::Tool { arguments, .. } => (arguments.map(|a| a.get()), None),
            _ => (None, None),
        };
        let [id, arguments, client_info, client_capabilities] = Kept::copy(
            self.message,
            [
                Some(self.id.raw()),
                arguments,
                self.client_info.map(|i| i.get()),
                self.client_capabilities.map(|c| c.get()),
            ],
        );
        let id = id.unwrap_or_else(|| Kept::one(self.id.raw()));
        let kind = match self.kind {
            CallKind::Tool { tool, .. } => OwnedKind::Tool {
                tool,
                arguments: match large_arguments {
                    Some(raw) => Some(Arguments::Raw(raw)),
                    None => arguments.map(Arguments::Kept),
                },
            },
            CallKind::Read {
                resource,
                uri,
                vars,
            } => OwnedKind::Read {
                resource,
                uri: uri.into_owned(),
                vars,
            },
            CallKind::Prompt { prompt, args } => OwnedKind::Prompt { prompt, args },
            CallKind::Listen(filter) => OwnedKind::Listen(filter),
            #[cfg(feature = "redis")]
            CallKind::Task { task_id, op } => OwnedKind::Task { task_id, op },
        };
        let client_info = match client_info {
            Some(info) => LazyJson::text(Some(info)),
            None => {
                // The session as the source of its `clientInfo` (an upcast).
                let source: Arc<dyn super::lazy::ClientInfoSource> = session.clone();
                LazyJson::session_info(source)
            }
        };
        OwnedCall {
            session,
            server,
            catalog: self.catalog,
            id,
            kind,
            progress_token: self.progress_token.map(|p| p.to_raw_value()),
            version: self.version,
            log_level: self.log_level,
            client_capabilities: LazyJson::text(client_capabilities),
            peer: None,
            request_state: match self.request_state {
                None => Ok(None),
                Some(raw) => raw.as_str().map(|s| Some(s.into_owned())).ok_or(()),
            },
            client_info,
            input_responses: self
                .input_responses
                .and_then(|r| serde_json::from_str(r.get()).ok())
                .unwrap_or_default(),
        }
    }
}

impl OwnedCall {
    /// Sends this call's progress, log messages and requests to the client
    /// through `peer` (the call's own response stream) instead of the session's.
    pub fn with_peer(mut self, peer: Peer) -> Self {
        self.set_peer(peer);
        self
    }

    /// [`OwnedCall::with_peer`] in place (the call is not moved).
    pub(crate) fn set_peer(&mut self, peer: Peer) {
        self.peer = Some(peer);
    }

    /// The raw JSON id of the request.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// [`OwnedCall::id`], as an `Arc` of its own.
    pub fn shared_id(&self) -> Arc<str> {
        Arc::from(self.id.as_str())
    }

    /// [`OwnedCall::id`], shared rather than copied.
    pub(crate) fn kept_id(&self) -> Kept {
        self.id.clone()
    }

    /// What `requestState` is bound to: the tool, prompt or resource the call names.
    fn binding(&self) -> Binding {
        let of = match &self.kind {
            OwnedKind::Tool { tool, .. } => BindingOf::Tool(*tool),
            OwnedKind::Prompt { prompt, .. } => BindingOf::Prompt(*prompt),
            OwnedKind::Read { uri, .. } => BindingOf::Read(uri.clone()),
            OwnedKind::Listen(_) => BindingOf::Fixed("subscriptions/listen"),
            #[cfg(feature = "redis")]
            OwnedKind::Task { op, .. } => BindingOf::Fixed(op.method()),
        };
        Binding {
            catalog: Arc::clone(&self.catalog),
            of,
        }
    }

    /// Runs the call and encodes its answer; `None` if the client cancelled it.
    ///
    /// The call is set up when this is called (tracked for cancellation,
    /// its context made); the future holds only what its waits need. A
    /// future dropped before it ends, even before its first poll, counts
    /// as a cancelled call in the metrics.
    pub fn run(self) -> impl std::future::Future<Output = Option<Vec<u8>>> + Send + 'static {
        let answer = self.run_answer();
        async move { answer.await.map(|answer| answer.bytes) }
    }

    /// [`OwnedCall::run`], with the answer's error code when it is an
    /// error (a transport that answers with an HTTP status reads it here
    /// instead of from the bytes).
    ///
    /// Not an `async fn`: one of those keeps the call in its state twice
    /// (as given and as moved into its body), and the call's own setup
    /// needs no wait.
    pub(crate) fn run_answer(
        self,
    ) -> impl std::future::Future<Output = Option<Answer>> + Send + 'static {
        let tally = self.tally();
        let setup = self.set_up();
        async move {
            let ran = match setup {
                Ok(mut running) => {
                    // The work's first poll, with this task's waker.
                    let first = std::future::poll_fn(|cx| Poll::Ready(running.first_poll(cx)));
                    match first.await {
                        Some(answer) => running.ran(answer),
                        None => running.rest().await,
                    }
                }
                Err(done) => done,
            };
            encode(tally, ran?)
        }
    }

    /// Starts the call: sets it up and polls its work once with `cx`. Most
    /// calls answer at that poll, and their answer is encoded here, with
    /// no future of their own to allocate and poll. One that is not done
    /// comes back as the rest of its run: the caller polls it next, with
    /// the waker it should wake from then on (a future wakes the waker of
    /// its latest poll).
    ///
    /// Counted in the metrics as [`OwnedCall::run_answer`] is.
    pub(crate) fn start(self, cx: &mut std::task::Context<'_>) -> Started {
        let tally = self.tally();
        let ran = match self.set_up() {
            Ok(mut running) => match running.first_poll(cx) {
                Some(answer) => running.ran(answer),
                None => {
                    return Started::Running(Box::pin(async move {
                        let ran = running.rest().await?;
                        encode(tally, ran)
                    }));
                }
            },
            Err(done) => done,
        };
        Started::Answered(ran.and_then(|ran| encode(tally, ran)))
    }

    /// What records the call's outcome and duration when dropped; a call
    /// dropped before it ends counts as cancelled.
    fn tally(&self) -> Tally {
        Tally {
            metrics: self.server.metrics(),
            method: self.kind.method(),
            request_id: self.id.clone(),
            started: std::time::Instant::now(),
            outcome: super::metrics::Outcome::Cancelled,
            tool: match &self.kind {
                OwnedKind::Tool { tool, .. } => Some(Arc::clone(&self.catalog.tools[*tool].calls)),
                _ => None,
            },
            tool_error: false,
        }
    }

    /// The `requestState` of an earlier round, unsealed and checked (it
    /// must be this request's, sealed by this server), or the refusal.
    fn unsealed_state(&self, binding: &Binding) -> Result<Option<String>, Ran> {
        match &self.request_state {
            Ok(None) => Ok(None),
            Ok(Some(sealed)) => self.server.0.state_key.open(&binding.text(), sealed).map(Some).ok_or_else(|| {
                Ran::error(RpcError::invalid_params(
                    "requestState failed its integrity check (altered, from another request, or from before a restart)",
                ))
            }),
            Err(()) => Err(Ran::error(RpcError::invalid_params(
                "requestState must be a string",
            ))),
        }
    }

    /// The tasks extension: after how long a task-supporting tool called by
    /// a client that negotiated it becomes a task; a `required` one called
    /// without the extension is refused.
    fn escalation(&self) -> Result<Option<std::time::Duration>, Ran> {
        let task_policy = match &self.kind {
            OwnedKind::Tool { tool, .. } if self.version.is_modern() => {
                self.catalog.tools[*tool].task
            }
            _ => None,
        };
        if task_policy.is_none() {
            return Ok(None);
        }
        let negotiated = super::tasks::negotiated(self.client_capabilities.get());
        if let Some((TaskSupport::Required, _)) = task_policy
            && !negotiated
        {
            return Err(Ran::error(super::tasks::extension_required("this tool")));
        }
        Ok(task_policy.filter(|_| negotiated).map(|(_, after)| after))
    }

    /// The call made ready to run: tracked for cancellation (when its
    /// session is reachable), its context made, its handler's work built;
    /// or what it ends with at once (`None` for an id that is not one, or
    /// a refusal of its state or task policy).
    fn set_up(self) -> Result<Running, Option<Ran>> {
        if Id::from_raw(RawJson(&self.id)).is_none() {
            return Err(None);
        }
        let binding = self.binding();
        let checked = self.unsealed_state(&binding);
        let (request_state, escalate_after) =
            match checked.and_then(|s| Ok((s, self.escalation()?))) {
                Ok(checked) => checked,
                Err(refused) => return Err(Some(refused)),
            };
        let session = self.session;
        let server = self.server;
        // Tracked so a cancellation can reach it, and untracked however the
        // call ends, dropped mid-way (a closed stream) included; a call of a
        // session no later message can reach is cancelled only by its drop.
        let (cancel_rx, tracked) = if session.reachable() {
            let (cancel_tx, cancel_rx) = watch::channel(false);
            session.track(&self.id, cancel_tx);
            let tracked = Tracked {
                session: Arc::clone(&session),
                id: self.id.clone(),
            };
            (Some(cancel_rx), Some(tracked))
        } else {
            (None, None)
        };
        let input = InputRound::new(
            self.client_capabilities,
            self.input_responses,
            request_state,
        );
        let peer = self.peer.or_else(|| session.peer().cloned());
        let setup = CallSetup {
            session: Some(session),
            request_id: self.id,
            version: self.version,
            progress_token: self.progress_token,
            peer,
            min_log_level: self.log_level,
            client_info: self.client_info,
            input,
        };
        let ctx = Context::new(setup, cancel_rx);
        let watcher = ctx.clone();
        let catalog = self.catalog;
        let (kind, version) = (self.kind, self.version);
        let work = match kind {
            // A tool's handler future is the work: not boxed once more.
            OwnedKind::Tool { tool, arguments } => {
                Work::tool(catalog, tool, arguments, ctx, version)
            }
            kind => {
                let answering = server.clone();
                let framer = ctx.clone();
                Work::boxed(async move {
                    let out = answer(&catalog, &answering, kind, ctx, version).await?;
                    framed_if_large(&framer, out).await
                })
            }
        };
        Ok(Running {
            binding,
            escalate_after,
            server,
            tracked,
            watcher,
            work,
        })
    }
}

/// A call set up to run ([`OwnedCall::set_up`]).
struct Running {
    binding: Binding,
    escalate_after: Option<std::time::Duration>,
    server: McpServer,
    /// Untracks the call when dropped, however it ends.
    tracked: Option<Tracked>,
    /// The call's context, as the handler has it.
    watcher: Context,
    /// The handler's work.
    work: Work,
}

impl Running {
    /// The work's first poll, with `cx`'s waker: its answer, if it gave
    /// one; `None` when it is not done, or was not polled because the call
    /// is to end another way (a task at once, a cancellation, the server's
    /// abort), which [`Running::rest`] then finds.
    fn first_poll(&mut self, cx: &mut std::task::Context<'_>) -> Option<Result<Encoded, RpcError>> {
        if self.escalates_at_once() || self.watcher.is_cancelled() || aborting(&self.server) {
            return None;
        }
        match std::pin::Pin::new(&mut self.work).poll(cx) {
            Poll::Ready(out) => Some(out),
            Poll::Pending => None,
        }
    }

    /// Whether the call becomes a task at once (a threshold of zero).
    fn escalates_at_once(&self) -> bool {
        self.escalate_after == Some(std::time::Duration::ZERO)
    }

    /// What the call ran to, given its answer ([`ran`]).
    fn ran(&self, answer: Result<Encoded, RpcError>) -> Option<Ran> {
        ran(&self.watcher, answer)
    }

    /// The rest of a run whose first poll gave no answer: its waits (for
    /// the answer, a cancellation, the server's abort, the task
    /// threshold), then what it ran to.
    async fn rest(self) -> Option<Ran> {
        let at_once = self.escalates_at_once();
        let Running {
            binding,
            escalate_after,
            server,
            tracked: _tracked,
            watcher,
            mut work,
        } = self;
        let output = if at_once {
            Outcome::Escalate
        } else {
            // Boxed: the waits of a call that did not finish at once (the
            // abort, the task threshold's timer) are most of this future's
            // size, and every call's future is allocated and moved whole.
            Box::pin(wait_for_answer(
                &server,
                &watcher,
                &binding,
                &mut work,
                escalate_after,
            ))
            .await
        };
        let answer = match output {
            Outcome::Cancelled => return None,
            Outcome::Answer(a) => a,
            // Boxed, as the wait above: rare, and large.
            Outcome::Escalate => Box::pin(escalate(&server, &watcher, work)).await,
        };
        ran(&watcher, answer)
    }
}

/// What a call ran to, given its answer; `None` if it was cancelled
/// meanwhile (a handler that ends because it saw the cancellation must not
/// have its answer sent).
fn ran(watcher: &Context, answer: Result<Encoded, RpcError>) -> Option<Ran> {
    if watcher.is_cancelled() {
        return None;
    }
    Some(Ran {
        answer,
        tool_failed: watcher.tool_failed(),
    })
}

/// A call after its first poll ([`OwnedCall::start`]).
pub(crate) enum Started {
    /// It answered at that poll: its answer (`None`: none is sent, as for
    /// a cancelled call).
    Answered(Option<Answer>),
    /// It is not done: the rest of its run, to be polled with the waker
    /// that should be woken.
    Running(RunningAnswer),
}

/// A call's run to its answer (`None`: cancelled).
pub(crate) type RunningAnswer =
    std::pin::Pin<Box<dyn std::future::Future<Output = Option<Answer>> + Send>>;

/// Encodes what a call ran to into its JSON-RPC answer (`None`: an id
/// that is not one), recording its outcome in `tally`, which records the
/// call when dropped. A result that is already framed (every tool output,
/// and any other large result: [`framed_if_large`]) is sent as made.
fn encode(mut tally: Tally, ran: Ran) -> Option<Answer> {
    tally.tool_error = ran.tool_failed;
    let id = Id::from_raw(RawJson(tally.request_id.as_str()))?;
    let mut out = Vec::new();
    let mut error = None;
    match ran.answer {
        Ok(Encoded {
            bytes,
            framed_at: Some(_),
        }) => {
            tally.outcome = super::metrics::Outcome::Ok;
            out = bytes;
        }
        Ok(Encoded { bytes: body, .. }) => {
            tally.outcome = super::metrics::Outcome::Ok;
            out.reserve(body.len() + tally.request_id.len() + RESULT_FRAME_BYTES);
            write_result_with(&mut out, id, |out| out.extend_from_slice(&body));
        }
        Err(e) => {
            tally.outcome = super::metrics::Outcome::Error;
            out.reserve(256);
            write_error(&mut out, Some(id), &e);
            error = Some(e.code);
        }
    }
    Some(Answer { bytes: out, error })
}

/// A large result that is not a tool output (a resource read, a prompt, a
/// task's result), framed inside its response in the call's heavy-work
/// turn: megabytes copied (and the result freed) on a blocking thread, not
/// on the worker other calls share. Any other result as it is.
async fn framed_if_large(ctx: &Context, out: Encoded) -> Result<Encoded, RpcError> {
    if out.framed_at.is_some() || out.bytes.len() < LARGE_MESSAGE {
        return Ok(out);
    }
    let id: Box<str> = ctx.request_id().into();
    let body = out.bytes;
    // Boxed: rare, and its wait would add to every such call's future.
    Box::pin(ctx.run_heavy(move || result_response(&id, &body)))
        .await
        .flatten()
        .ok_or_else(|| RpcError::new(INTERNAL_ERROR, "writing the answer failed"))
}

/// How a call that did not finish at its first poll ends: cancelled, with
/// the handler's answer (or its request for input, or the server's abort),
/// or past its task threshold.
async fn wait_for_answer(
    server: &McpServer,
    watcher: &Context,
    binding: &Binding,
    work: &mut Work,
    escalate_after: Option<std::time::Duration>,
) -> Outcome {
    let aborted = abort_reason(server);
    let threshold = async {
        match escalate_after {
            Some(after) => tokio::time::sleep(after).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        // Cancellation first: a handler that ends because it saw the
        // cancellation must not have its answer sent.
        biased;
        () = watcher.cancelled() => Outcome::Cancelled,
        () = watcher.round().wanted() => Outcome::Answer(match watcher.round().take_wanted() {
            Some(Wanted::Fail(e)) => Err(e),
            Some(Wanted::Input { requests, state }) => {
                let state = state.map(|s| server.0.state_key.seal(&binding.text(), &s));
                Ok(Encoded::result(input_required(requests, state)))
            }
            None => Err(RpcError::new(INTERNAL_ERROR, "input wanted but not recorded")),
        }),
        // Before the work: after abort_calls no call answers normally.
        reason = aborted => Outcome::Answer(Err(RpcError::new(SERVER_STOPPING, reason))),
        out = work => Outcome::Answer(out),
        () = threshold => Outcome::Escalate,
    }
}

/// A call that became a task: the handler goes on in the background (its
/// requests to the client now wait on the task, answered through
/// `tasks/update`) and the call answers with the task; with no room for
/// another task, the call just runs to its end here.
async fn escalate(server: &McpServer, ctx: &Context, work: Work) -> Result<Encoded, RpcError> {
    match server
        .0
        .tasks
        .create(ctx.session().and_then(|s| s.principal()))
    {
        Some(task) => {
            let _ = ctx.round().task.set(Arc::clone(&task));
            let created = task.create_result().to_string().into_bytes();
            // In the shared store before the client hears of it, so a
            // tasks/get on another replica finds it.
            task.published().await;
            super::tasks::run(task, work, server.0.abort.subscribe());
            Ok(Encoded::result(created))
        }
        None => work.await,
    }
}

/// Whether the server has begun aborting its calls
/// ([`McpServer::abort_calls`]).
fn aborting(server: &McpServer) -> bool {
    server.0.abort.borrow().is_some()
}

/// Resolves with the reason once the server aborts its calls
/// ([`McpServer::abort_calls`]); never if the server is gone.
async fn abort_reason(server: &McpServer) -> String {
    let mut abort = server.0.abort.subscribe();
    let reason = abort
        .wait_for(Option::is_some)
        .await
        .ok()
        .and_then(|r| r.as_deref().map(str::to_owned));
    match reason {
        Some(reason) => reason,
        // The server is gone: nothing will abort this call.
        None => std::future::pending().await,
    }
}

/// A call's answer as sent: its bytes, and its error code when it is an
/// error.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The whole JSON-RPC answer.
    pub(crate) bytes: Vec<u8>,
    /// The error's code, for an error answer.
    pub(crate) error: Option<i32>,
}

/// What a call ran to: its result body or error, and whether a tool
/// answered `isError` (a result, but a failed tool).
struct Ran {
    answer: Result<Encoded, RpcError>,
    tool_failed: bool,
}

impl Ran {
    fn error(e: RpcError) -> Ran {
        Ran {
            answer: Err(e),
            tool_failed: false,
        }
    }
}

/// Records a call's outcome and duration when dropped.
struct Tally {
    metrics: Arc<super::metrics::McpMetrics>,
    method: &'static str,
    /// The JSON-RPC id, as raw JSON (for the log line).
    request_id: Kept,
    started: std::time::Instant,
    outcome: super::metrics::Outcome,
    /// The tool's own counters, for `tools/call`.
    tool: Option<Arc<super::metrics::ToolCalls>>,
    /// A result with `isError: true`.
    tool_error: bool,
}

impl Drop for Tally {
    fn drop(&mut self) {
        let took = self.started.elapsed();
        self.metrics.record(self.method, self.outcome, took);
        if let Some(tool) = &self.tool {
            use super::metrics::{Outcome, ToolOutcome};
            tool.record(match self.outcome {
                Outcome::Ok if self.tool_error => ToolOutcome::ToolError,
                Outcome::Ok => ToolOutcome::Ok,
                Outcome::Error => ToolOutcome::Error,
                Outcome::Cancelled => ToolOutcome::Cancelled,
            });
        }
        // Never arguments or results: they may hold data or secrets.
        tracing::info!(
            target: "snowflake_mcp::calls",
            method = self.method,
            request_id = %self.request_id,
            outcome = self.outcome.name(),
            duration_ms = took.as_secs_f64() * 1000.0,
            "call ended"
        );
    }
}

/// How a call's run ended.
enum Outcome {
    Cancelled,
    Answer(Result<Encoded, RpcError>),
    /// The call outlived its task threshold: it becomes a task.
    Escalate,
}

/// The JSON-RPC response carrying `result` (JSON) for the request whose raw
/// id is `request_id`, framed around it.
fn result_response(request_id: &str, result: &[u8]) -> Option<Encoded> {
    let id = Id::from_raw(RawJson(request_id))?;
    // Exactly: one byte short and the push of the closing brace doubled
    // the buffer, so each megabyte answer held twice its size.
    let mut out = Vec::with_capacity(result.len() + request_id.len() + RESULT_FRAME_BYTES);
    let mut at = 0;
    write_result_with(&mut out, id, |out| {
        at = out.len();
        out.extend_from_slice(result);
    });
    Some(Encoded {
        bytes: out,
        framed_at: Some(at),
    })
}

/// Runs the host code and encodes the result object (or the error).
async fn answer(
    inner: &Arc<Catalog>,
    server: &McpServer,
    kind: OwnedKind,
    ctx: Context,
    version: ProtocolVersion,
) -> Result<Encoded, RpcError> {
    let mut value = match kind {
        OwnedKind::Tool { tool, arguments } => {
            return Work::tool(Arc::clone(inner), tool, arguments, ctx, version).await;
        }
        OwnedKind::Read {
            resource,
            uri,
            vars,
        } => match inner.resources[resource].read(ctx, uri.clone(), vars).await {
            Ok(contents) => {
                let mut v = serde_json::json!({ "contents": contents });
                if version.is_modern() {
                    v["ttlMs"] = 0.into();
                    v["cacheScope"] = "private".into();
                }
                v
            }
            Err(ReadError::NotFound) => return Err(not_found(&uri, version)),
            Err(ReadError::Failed(why)) => {
                return Err(RpcError::new(
                    INTERNAL_ERROR,
                    format!("reading {uri} failed: {why}"),
                ));
            }
        },
        OwnedKind::Listen(filter) => super::listen::listen(inner, server, filter, &ctx).await?,
        #[cfg(feature = "redis")]
        OwnedKind::Task { task_id, op } => {
            let principal = ctx.session().and_then(|s| s.principal());
            return server
                .0
                .tasks
                .answer(&task_id, principal, op)
                .await
                .map(Encoded::result);
        }
        OwnedKind::Prompt { prompt, args } => match inner.prompts[prompt].get(ctx, args).await {
            Ok(output) => serde_json::to_value(&output).unwrap_or_default(),
            Err(why) => {
                return Err(RpcError::new(
                    INTERNAL_ERROR,
                    format!("prompt failed: {why}"),
                ));
            }
        },
    };
    if version.is_modern()
        && let Some(obj) = value.as_object_mut()
    {
        obj.insert("resultType".into(), "complete".into());
    }
    Ok(Encoded::result(value.to_string().into_bytes()))
}

/// A call's work: its encoded result object, or its error. A tool call's
/// is its handler's future as the handler returned it (boxed once, by the
/// handler), its output checked and encoded when it ends; any other's is
/// a future of its own.
pub(crate) struct Work(WorkState);

enum WorkState {
    /// A tool's handler runs; its output is checked and encoded at its end.
    Tool {
        handler: super::tool::ToolFuture,
        catalog: Arc<Catalog>,
        tool: usize,
        version: ProtocolVersion,
        /// The call's context: its id frames the answer, and it is marked
        /// when the tool failed.
        marker: Context,
    },
    /// Any other call's work, or a large tool output being encoded.
    Boxed(std::pin::Pin<Box<dyn std::future::Future<Output = Result<Encoded, RpcError>> + Send>>),
    /// It ended.
    Done,
}

impl Work {
    /// The work of a call of tool `tool`: its arguments read and checked
    /// against its schema (a failure is the tool's error output), then its
    /// handler called.
    fn tool(
        catalog: Arc<Catalog>,
        tool: usize,
        arguments: Option<Arguments>,
        ctx: Context,
        version: ProtocolVersion,
    ) -> Work {
        let def = &catalog.tools[tool];
        let marker = ctx.clone();
        // serde_json's view of the text the scanner read (no copy).
        let raw = match &arguments {
            None => Ok(None),
            Some(Arguments::Raw(raw)) => Ok(Some(&**raw)),
            Some(Arguments::Kept(text)) => serde_json::from_str::<&RawValue>(text).map(Some),
        };
        let refused = |why: String| -> super::tool::ToolFuture {
            Box::pin(std::future::ready(ToolOutput::error(format!(
                "invalid arguments: {why}"
            ))))
        };
        let handler = match raw {
            Err(e) => refused(e.to_string()),
            Ok(raw) => match def.check_arguments(raw) {
                Err(why) => refused(why.to_string()),
                Ok(()) => def.handler.call(ctx, raw),
            },
        };
        Work(WorkState::Tool {
            handler,
            catalog,
            tool,
            version,
            marker,
        })
    }

    /// Work that is a future of its own.
    fn boxed(
        work: impl std::future::Future<Output = Result<Encoded, RpcError>> + Send + 'static,
    ) -> Work {
        Work(WorkState::Boxed(Box::pin(work)))
    }
}

impl std::future::Future for Work {
    type Output = Result<Encoded, RpcError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Self::Output> {
        let state = &mut self.0;
        // Taken out, and put back if not done: what a finished handler
        // leaves is then owned here, and a work polled after its end
        // finds `Done`.
        let (output, catalog, tool, version, marker) =
            match std::mem::replace(state, WorkState::Done) {
                WorkState::Boxed(mut work) => {
                    let out = work.as_mut().poll(cx);
                    if out.is_pending() {
                        *state = WorkState::Boxed(work);
                    }
                    return out;
                }
                WorkState::Tool {
                    mut handler,
                    catalog,
                    tool,
                    version,
                    marker,
                } => match handler.as_mut().poll(cx) {
                    Poll::Ready(output) => (output, catalog, tool, version, marker),
                    Poll::Pending => {
                        *state = WorkState::Tool {
                            handler,
                            catalog,
                            tool,
                            version,
                            marker,
                        };
                        return Poll::Pending;
                    }
                },
                WorkState::Done => {
                    return Poll::Ready(Err(RpcError::new(
                        INTERNAL_ERROR,
                        "internal error: a call's work was polled after its end",
                    )));
                }
            };
        // Checking and encoding a large output takes milliseconds of
        // CPU: off the async workers, so other clients' calls go on.
        if output_weight(&output) > BLOCKING_ENCODE_BYTES {
            // Written inside its response at once: the answer sent is
            // the buffer made here (a task keeps the result part).
            let id: Box<str> = marker.request_id().into();
            *state = WorkState::Boxed(Box::pin(async move {
                let (answer, failed) = marker
                    .run_heavy(move || {
                        let frame = Id::from_raw(RawJson(&id));
                        encode_tool_output(&catalog, tool, output, version, frame)
                    })
                    .await
                    .ok_or_else(|| RpcError::new(INTERNAL_ERROR, "encoding the result failed"))?;
                if failed {
                    marker.mark_tool_failed();
                }
                Ok(answer)
            }));
            return self.poll(cx);
        }
        // Framed too: the answer is this buffer, with no second one to
        // copy the result into.
        let frame = Id::from_raw(RawJson(marker.request_id()));
        let (answer, failed) = encode_tool_output(&catalog, tool, output, version, frame);
        if failed {
            marker.mark_tool_failed();
        }
        Poll::Ready(Ok(answer))
    }
}

/// Tool outputs with more text than this are checked and encoded on a
/// blocking thread. Default: 64 KiB.
const BLOCKING_ENCODE_BYTES: usize = 64 * 1024;

/// About how much text a tool output carries (its text blocks), cheaply.
fn output_weight(output: &ToolOutput) -> usize {
    output
        .content
        .iter()
        .map(|c| match c {
            super::tool::Content::Text { text } => text.len(),
            _ => 64,
        })
        .sum()
}

/// Bytes of an encoded answer besides its texts, as first reserved: the
/// JSON-RPC frame, the id and the content items' keys.
const ENCODED_FRAME_GUESS: usize = 256;

/// Unused bytes an encoded answer may keep rather than be shrunk to fit.
const SPARE_KEPT_BYTES: usize = 1024;

/// Checks tool `tool`'s output against its output schema and encodes the
/// result object for `version`, inside the response to the request with
/// id `frame` when there is one; the second value says whether it is a
/// tool failure (`isError`).
fn encode_tool_output(
    catalog: &Catalog,
    tool: usize,
    output: ToolOutput,
    version: ProtocolVersion,
    frame: Option<Id<'_>>,
) -> (Encoded, bool) {
    let output = match catalog.tools[tool].check_output(&output) {
        Ok(()) => output,
        // A tool that breaks its own contract is a tool failure, reported as one.
        Err(why) => ToolOutput::error(format!(
            "tool output does not match its outputSchema: {why}"
        )),
    };
    let failed = output.is_error;
    // Written straight into the answer's bytes: no tree of the output is
    // built (for a large output that was two more copies of it).
    // Room for the texts and the frame around them, so a small answer is
    // written without growing its buffer.
    let mut out = Vec::with_capacity(ENCODED_FRAME_GUESS + output_weight(&output));
    if let Some(id) = frame {
        write_result_head(&mut out, id);
    }
    let start = out.len();
    out.extend_from_slice(b"{\"content\":");
    if write_content(&mut out, &output.content).is_err() {
        out.truncate(start + b"{\"content\":".len());
        out.extend_from_slice(b"[]");
    }
    if let Some(structured) = &output.structured_content
        && version.has_structured_output()
    {
        out.extend_from_slice(b",\"structuredContent\":");
        // A `Value` always serializes.
        let _ = serde_json::to_writer(crate::util::offload::WithTurns::new(&mut out), structured);
    }
    if failed {
        out.extend_from_slice(b",\"isError\":true");
    }
    if version.is_modern() {
        out.extend_from_slice(b",\"resultType\":\"complete\"");
    }
    out.push(b'}');
    if frame.is_some() {
        write_result_tail(&mut out);
        // Grown by doubling: what it did not use goes back (in place)
        // before the answer waits for its client (a small one's few
        // spare bytes are not worth the call).
        let spare = out.capacity() - out.len();
        if spare > SPARE_KEPT_BYTES && spare > out.len() / 16 {
            out.shrink_to_fit();
        }
    }
    let framed_at = frame.map(|_| start);
    (
        Encoded {
            bytes: out,
            framed_at,
        },
        failed,
    )
}

/// A tool's content blocks as JSON, as serde writes them; a text block
/// (most are) written directly, its text with our escaping.
fn write_content(out: &mut Vec<u8>, content: &[Content]) -> serde_json::Result<()> {
    out.push(b'[');
    for (i, block) in content.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match block {
            Content::Text { text } => {
                out.extend_from_slice(b"{\"type\":\"text\",\"text\":");
                write_json_string(out, text);
                out.push(b'}');
            }
            other => serde_json::to_writer(crate::util::offload::WithTurns::new(out), other)?,
        }
    }
    out.push(b']');
    Ok(())
}

/// The 2026-07-28 answer of a call that needs the client to answer requests first.
fn input_required(
    requests: serde_json::Map<String, serde_json::Value>,
    state: Option<String>,
) -> Vec<u8> {
    let mut v = serde_json::json!({ "resultType": "input_required", "inputRequests": requests });
    if let Some(state) = state {
        v["requestState"] = state.into();
    }
    v.to_string().into_bytes()
}

/// A missing resource, with the URI in `data`: -32002 before 2026-07-28,
/// -32602 (invalid params) from 2026-07-28 on (SEP-2164).
pub(crate) fn not_found(uri: &str, version: ProtocolVersion) -> RpcError {
    let code = if version.is_modern() {
        crate::jsonrpc::INVALID_PARAMS
    } else {
        RESOURCE_NOT_FOUND
    };
    RpcError::new(code, format!("resource not found: {uri}"))
        .with_data(serde_json::json!({ "uri": uri }).to_string())
}

/// Removes a call from its session's in-flight table when dropped.
struct Tracked {
    session: Arc<dyn SessionLink>,
    id: Kept,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.session.untrack(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_answer_is_made_in_a_buffer_of_its_own_size() {
        // One byte short, and the closing brace doubled a megabyte answer's buffer.
        let mut result = vec![b'x'; 1_500_000];
        (result[0], result[1_499_999]) = (b'"', b'"');
        for id in ["1", "\"a string id\"", "123456789012"] {
            let framed = result_response(id, &result).expect("an answer");
            assert_eq!(framed.result_bytes(), &result[..]);
            let out = framed.bytes;
            assert_eq!(out.len(), result.len() + id.len() + RESULT_FRAME_BYTES);
            assert_eq!(out.capacity(), out.len(), "id {id}");
            let v: serde_json::Value = serde_json::from_slice(&out).expect("JSON");
            assert_eq!(v["result"].as_str().map(str::len), Some(1_499_998));
            assert_eq!(v["id"].to_string(), id);
        }
    }

    #[test]
    fn a_framed_output_is_the_whole_response_around_the_same_result() {
        // The large path writes the response around the result in one
        // buffer; the result inside is byte for byte what the plain
        // encoding makes, and a task reads back exactly that.
        let server = McpServer::builder("t", "0")
            .tool(super::super::Tool::raw(
                "big",
                "Answers a lot.",
                serde_json::json!({"type": "object"}),
                |_ctx, _| async { ToolOutput::text("unused") },
            ))
            .build();
        let catalog = server.catalog();
        let text = "a \"quoted\" row\n".repeat(20_000);
        let output =
            || ToolOutput::structured(serde_json::json!({"rows": [[&text]]})).with_text(&text);
        for version in [ProtocolVersion::V2025_06_18, ProtocolVersion::V2026_07_28] {
            let (plain, _) = encode_tool_output(&catalog, 0, output(), version, None);
            assert_eq!(plain.framed_at, None);
            let id = r#""id \"7\"""#;
            let frame = Id::from_raw(RawJson(id));
            let (framed, failed) = encode_tool_output(&catalog, 0, output(), version, frame);
            assert!(!failed);
            let mut expected = Vec::new();
            write_result_with(
                &mut expected,
                Id::from_raw(RawJson(id)).expect("an id"),
                |out| out.extend_from_slice(&plain.bytes),
            );
            assert_eq!(framed.bytes, expected, "{version:?}");
            assert_eq!(framed.result_bytes(), &plain.bytes[..]);
            assert!(framed.bytes.capacity() - framed.bytes.len() <= framed.bytes.len() / 16);
        }
    }

    #[test]
    fn large_arguments_are_made_serde_json_s_when_the_call_is_owned() {
        let server = McpServer::builder("args", "0")
            .tool(crate::mcp::Tool::raw(
                "echo",
                "",
                serde_json::json!({"type": "object"}),
                |_ctx, _args: serde_json::Value| async { ToolOutput::text("") },
            ))
            .build();
        let session = Arc::new(crate::mcp::Session::new(server, None));
        for (len, large) in [(10, false), (LARGE_MESSAGE, true)] {
            let message = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "echo", "arguments": {"t": "x".repeat(len)},
                "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}})
            .to_string();
            let mut out = Vec::new();
            let crate::mcp::Dispatched::Call(call) = session.dispatch(message.as_bytes(), &mut out)
            else {
                panic!("not a call: {}", String::from_utf8_lossy(&out));
            };
            let owned = call.into_owned(&session);
            let OwnedKind::Tool {
                arguments: Some(arguments),
                ..
            } = &owned.kind
            else {
                panic!("no arguments");
            };
            let text = match arguments {
                Arguments::Kept(kept) => {
                    assert!(!large, "{len}: kept as text");
                    kept.as_str()
                }
                Arguments::Raw(raw) => {
                    assert!(large, "{len}: made serde_json's");
                    raw.get()
                }
            };
            assert_eq!(text, format!(r#"{{"t":"{}"}}"#, "x".repeat(len)));
        }
    }
}
