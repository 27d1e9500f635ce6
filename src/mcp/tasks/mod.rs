//! The tasks extension (`io.modelcontextprotocol/tasks`, SEP-2663, on 2026-07-28).
//!
//! A tool may declare task support ([`TaskSupport`]). When a client that
//! negotiated the extension (in its request's `_meta` capabilities) calls
//! such a tool and the call has not answered within the tool's threshold,
//! the server turns it into a task: the caller gets a `CreateTaskResult`
//! (`resultType: "task"`, `taskId`, `status`, timestamps, `ttlMs`,
//! `pollIntervalMs`) and the handler runs on in the background. Clients
//! then use `tasks/get` (status; the result or error inlined once
//! terminal; `inputRequests` while the task waits on the client),
//! `tasks/update` (answers to those requests) and `tasks/cancel`.
//!
//! A call that needs input before the threshold uses the ephemeral
//! `InputRequiredResult` rounds instead, so a tool can gather input first
//! and become a task on its last round. A tool that reports an error is a
//! `completed` task whose result has `isError`; `failed` is kept for
//! protocol errors (a handler that panicked, say). Task ids are 128 random
//! bits, and a task answers only the principal whose call created it (the
//! key, OAuth subject or client address the transport admitted): to
//! another, its id is unknown. Finished tasks are kept for `ttlMs` after
//! their last change, within bounds: at most [`MAX_TASKS_PER_PRINCIPAL`]
//! per principal and [`MAX_KEPT_RESULT_BYTES`] of results in all (past
//! either, the oldest finished task of the principal holding the most goes
//! first, and its id is unknown from then on). A task still running when the server
//! aborts its calls ([`crate::mcp::McpServer::abort_calls`]) ends `failed`
//! with the reason.
//!
//! Tasks live in the memory of the process that runs them. With the
//! `redis` feature, [`SharedTasks`] also keeps them in Redis so that every
//! replica behind a load balancer can answer for them (see [`shared`]).

use parking_lot::Mutex;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, watch};

use crate::budget::{Memory, Pool, Shed};
use crate::jsonrpc::{INTERNAL_ERROR, RpcError};
use crate::util::date::format_rfc3339;

#[cfg(feature = "redis")]
pub mod shared;
#[cfg(feature = "redis")]
pub use shared::SharedTasks;

/// The extension's name, as clients declare it under `capabilities.extensions`.
pub const TASKS_EXTENSION: &str = "io.modelcontextprotocol/tasks";
/// How long a finished task stays readable after its last change. Default: 5 minutes.
pub const DEFAULT_TASK_TTL: Duration = Duration::from_secs(5 * 60);
/// The poll interval suggested to clients, in milliseconds. Default: 500.
pub const TASK_POLL_INTERVAL_MS: u64 = 500;
/// How long a task-supporting call may run before it becomes a task. Default: 100 ms.
pub const DEFAULT_TASK_AFTER: Duration = Duration::from_millis(100);
/// Most tasks kept at once; past it, calls run without becoming tasks
/// (and `required` tools fail). Default: 10 000.
pub const MAX_TASKS: usize = 10_000;
/// Most tasks one principal has kept at once: at it, its oldest finished
/// task goes to make room, and with none finished its calls run without
/// becoming tasks. A tenth of [`MAX_TASKS`], so one client cannot take the
/// whole table. Default: 1 000.
pub const MAX_TASKS_PER_PRINCIPAL: usize = 1_000;
/// Most bytes of finished tasks' results (as encoded JSON, which is how
/// they are held) kept at once: past it, the oldest finished tasks of the
/// principal holding the most bytes go first. Default: 64 MiB.
pub const MAX_KEPT_RESULT_BYTES: usize = 64 * 1024 * 1024;

/// Whether a tool can run as a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskSupport {
    /// It becomes a task for clients that negotiated the extension, and runs
    /// as a plain call for others.
    Optional,
    /// Only clients that negotiated the extension may call it (others get -32021).
    Required,
}

impl TaskSupport {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TaskSupport::Optional => "optional",
            TaskSupport::Required => "required",
        }
    }
}

/// Whether `capabilities` (a client's) include the tasks extension.
pub(crate) fn negotiated(capabilities: Option<&Value>) -> bool {
    capabilities.is_some_and(|c| c["extensions"].get(TASKS_EXTENSION).is_some())
}

/// The -32021 error for a client that did not negotiate the extension.
pub(crate) fn extension_required(what: &str) -> RpcError {
    RpcError::new(
        super::MISSING_CLIENT_CAPABILITY,
        format!("{what} needs the {TASKS_EXTENSION} extension, which the client did not declare"),
    )
    .with_data(
        json!({ "requiredCapabilities": { "extensions": { TASKS_EXTENSION: {} } } }).to_string(),
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Working,
    InputRequired,
    Completed,
    Failed,
    Cancelled,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Working => "working",
            Status::InputRequired => "input_required",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    fn is_terminal(self) -> bool {
        matches!(self, Status::Completed | Status::Failed | Status::Cancelled)
    }
}

#[derive(Debug)]
struct State {
    status: Status,
    last_updated: SystemTime,
    /// The tool's result once `completed`, encoded (held as the bytes a
    /// `tasks/get` sends: no copy of a tree per poll).
    result: Option<Box<RawValue>>,
    /// The JSON-RPC error once `failed`.
    error: Option<Value>,
    /// Requests the client has not answered yet, by key.
    pending: Map<String, Value>,
    /// Answers delivered by `tasks/update`, not yet taken by the handler.
    answers: Map<String, Value>,
}

/// One task.
#[derive(Debug)]
pub(crate) struct Task {
    id: String,
    /// The principal whose call created it: the only one it answers.
    principal: Option<Arc<str>>,
    /// The table it is kept in, told of its result's bytes when it ends.
    table: std::sync::Weak<LocalTasks>,
    created: SystemTime,
    ttl: Duration,
    /// A std mutex: held to read or change the state, never across an `.await`.
    state: Mutex<State>,
    /// Wakes a handler waiting for answers.
    answered: Notify,
    /// Set when the client cancels; the runner aborts the handler.
    cancel: watch::Sender<bool>,
    /// Where every change is also written, for the other replicas.
    #[cfg(feature = "redis")]
    shared: Option<SharedTasks>,
}

impl Task {
    fn lock(&self) -> parking_lot::MutexGuard<'_, State> {
        self.state.lock()
    }

    /// The task's id.
    #[cfg(feature = "redis")]
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// How long the task stays readable after its last change.
    #[cfg(feature = "redis")]
    pub(crate) fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Whether the task has not ended yet.
    pub(crate) fn is_live(&self) -> bool {
        !self.lock().status.is_terminal()
    }

    /// The principal whose call created it.
    #[cfg(feature = "redis")]
    pub(crate) fn principal(&self) -> Option<&str> {
        self.principal.as_deref()
    }

    /// Whether `principal` may see it: the one whose call created it.
    fn answers_to(&self, principal: Option<&str>) -> bool {
        self.principal.as_deref() == principal
    }

    /// Bytes its result holds.
    fn result_bytes(&self) -> usize {
        self.lock().result.as_ref().map_or(0, |r| r.get().len())
    }

    /// Hands `f` whether it is live and its `tasks/get` answer, read at
    /// one instant, and holds the task's state until `f` returns.
    #[cfg(feature = "redis")]
    pub(crate) fn with_snapshot<R>(&self, f: impl FnOnce(bool, &[u8]) -> R) -> R {
        let state = self.lock();
        f(!state.status.is_terminal(), &self.detailed_of(&state))
    }

    /// Writes the task's new state to the shared store, if there is one;
    /// the receiver says when it is written.
    fn mirror(&self) -> Option<tokio::sync::oneshot::Receiver<bool>> {
        #[cfg(feature = "redis")]
        if let Some(shared) = &self.shared {
            return Some(shared.publish(self));
        }
        None
    }

    /// Once the task's state is in the shared store (at once without one;
    /// at most 3 s): so another replica asked about it right after knows it.
    pub(crate) async fn published(&self) {
        if let Some(written) = self.mirror() {
            let _ = tokio::time::timeout(Duration::from_secs(3), written).await;
        }
    }

    /// The fields every task answer carries.
    fn envelope(&self, state: &State) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("taskId".into(), self.id.clone().into());
        m.insert("status".into(), state.status.as_str().into());
        m.insert("createdAt".into(), format_rfc3339(self.created).into());
        m.insert(
            "lastUpdatedAt".into(),
            format_rfc3339(state.last_updated).into(),
        );
        m.insert("ttlMs".into(), (self.ttl.as_millis() as u64).into());
        m.insert("pollIntervalMs".into(), TASK_POLL_INTERVAL_MS.into());
        m
    }

    /// The `CreateTaskResult` answering the call that created the task.
    pub(crate) fn create_result(&self) -> Value {
        let state = self.lock();
        let mut m = self.envelope(&state);
        m.insert("resultType".into(), "task".into());
        Value::Object(m)
    }

    /// The `tasks/get` answer, encoded: status, and the result, error or
    /// pending requests.
    #[cfg(any(test, feature = "redis"))]
    pub(crate) fn detailed(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.detailed_into(&mut out);
        out
    }

    /// Appends the `tasks/get` answer to `out` (a large result is copied
    /// once, from where it is kept to the answer).
    pub(crate) fn detailed_into(&self, out: &mut Vec<u8>) {
        let state = self.lock();
        self.write_detailed(&state, out);
    }

    #[cfg(feature = "redis")]
    fn detailed_of(&self, state: &State) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_detailed(state, &mut out);
        out
    }

    fn write_detailed(&self, state: &State, out: &mut Vec<u8>) {
        let mut m = self.envelope(state);
        m.insert("resultType".into(), "complete".into());
        let result = match state.status {
            Status::Completed => state.result.as_deref(),
            _ => None,
        };
        match state.status {
            Status::Completed => {}
            Status::Failed => {
                if let Some(e) = &state.error {
                    m.insert("error".into(), e.clone());
                }
            }
            Status::InputRequired => {
                m.insert("inputRequests".into(), Value::Object(state.pending.clone()));
            }
            Status::Working | Status::Cancelled => {}
        }
        let envelope = Value::Object(m).to_string();
        let Some(result) = result else {
            out.extend_from_slice(envelope.as_bytes());
            return;
        };
        // The envelope is an object with fields: its closing brace gives
        // way to the result, spliced in as it is held.
        out.reserve(envelope.len() + result.get().len() + 11);
        out.extend_from_slice(&envelope.as_bytes()[..envelope.len() - 1]);
        out.extend_from_slice(b",\"result\":");
        out.extend_from_slice(result.get().as_bytes());
        out.push(b'}');
    }

    /// Delivers the client's answers (keys the task is not waiting on are ignored).
    pub(crate) fn update(&self, responses: Map<String, Value>) {
        let mut state = self.lock();
        for (key, answer) in responses {
            if state.pending.remove(&key).is_some() {
                state.answers.insert(key, answer);
            }
        }
        if state.pending.is_empty() && state.status == Status::InputRequired {
            state.status = Status::Working;
        }
        state.last_updated = SystemTime::now();
        drop(state);
        self.mirror();
        self.answered.notify_waiters();
    }

    /// Cancels the task unless it already ended.
    pub(crate) fn cancel(&self) {
        let mut state = self.lock();
        if state.status.is_terminal() {
            return;
        }
        state.status = Status::Cancelled;
        state.pending.clear();
        state.last_updated = SystemTime::now();
        drop(state);
        self.mirror();
        self.cancel.send_replace(true);
    }

    /// Waits until the client answered every request in `requests` (by key),
    /// showing the unanswered ones as `inputRequests` meanwhile.
    pub(crate) async fn input(&self, requests: Map<String, Value>) -> Map<String, Value> {
        let keys: Vec<String> = requests.keys().cloned().collect();
        {
            let mut state = self.lock();
            for (key, request) in requests {
                if !state.answers.contains_key(&key) {
                    state.pending.insert(key, request);
                }
            }
            if !state.pending.is_empty() && !state.status.is_terminal() {
                state.status = Status::InputRequired;
                state.last_updated = SystemTime::now();
            }
        }
        self.mirror();
        loop {
            // Registered before the check, so an update in between is not missed.
            let notified = self.answered.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.lock();
                if keys.iter().all(|k| state.answers.contains_key(k)) {
                    return keys
                        .iter()
                        .filter_map(|k| state.answers.remove(k).map(|a| (k.clone(), a)))
                        .collect();
                }
            }
            notified.await;
        }
    }

    /// Records how the handler ended (ignored once cancelled), and counts
    /// its result's bytes in its table, which may make room by dropping
    /// older tasks.
    fn finish(&self, outcome: Result<Box<RawValue>, Value>) {
        let table = self.table.upgrade();
        // The table's lock first, as everywhere: a sweep between the end
        // and the count would miscount.
        let mut tasks = table.as_ref().map(|t| t.lock());
        let mut state = self.lock();
        if state.status.is_terminal() {
            return;
        }
        let mut bytes = 0;
        match outcome {
            Ok(result) => {
                state.status = Status::Completed;
                bytes = result.get().len();
                state.result = Some(result);
            }
            Err(error) => {
                state.status = Status::Failed;
                state.error = Some(error);
            }
        }
        state.pending.clear();
        state.last_updated = SystemTime::now();
        drop(state);
        if let Some(tasks) = tasks.as_mut()
            && tasks.by_id.contains_key(&self.id)
        {
            tasks.keep(bytes);
            tasks.within(MAX_KEPT_RESULT_BYTES);
            tasks.within_memory();
            if !tasks.by_id.contains_key(&self.id) {
                // Dropped at once to keep within the bound: nothing to tell.
                return;
            }
        }
        drop(tasks);
        self.mirror();
    }

    fn expired(&self, now: SystemTime) -> bool {
        let state = self.lock();
        state.status.is_terminal()
            && now
                .duration_since(state.last_updated)
                .is_ok_and(|age| age > self.ttl)
    }
}

/// A server's own tasks.
#[derive(Debug, Default)]
pub(crate) struct LocalTasks(Mutex<Table>);

/// The tasks of a server, by id, and the bytes their results hold.
#[derive(Debug, Default)]
pub(crate) struct Table {
    by_id: HashMap<String, Arc<Task>>,
    /// Bytes of the results of the tasks in `by_id`.
    kept: usize,
    /// The server's budget over all its pools, which the results count
    /// against too (as [`Pool::Tasks`]), if the store was given one.
    memory: Option<Arc<Memory>>,
}

/// Finished tasks of one principal: their results' bytes in all, and each
/// one's last change, id and bytes, newest first (the oldest pops first).
type Finished = (usize, Vec<(SystemTime, String, usize)>);

impl Drop for Table {
    fn drop(&mut self) {
        if let Some(memory) = &self.memory {
            memory.discharge(self.kept);
        }
    }
}

impl Shed for LocalTasks {
    /// Drops finished tasks, oldest of the principal holding the most
    /// first, until `bytes` of results are given up.
    fn shed(&self, bytes: usize) -> usize {
        let mut table = self.lock();
        let before = table.kept;
        table.within(before.saturating_sub(bytes));
        before - table.kept
    }
}

impl LocalTasks {
    /// Counts the results kept against `memory` too, and lets other pools'
    /// growth take from them.
    fn use_memory(self: &Arc<Self>, memory: &Arc<Memory>) {
        let mut table = self.lock();
        if let Some(before) = table.memory.take() {
            before.discharge(table.kept);
        }
        memory.charge(table.kept);
        table.memory = Some(Arc::clone(memory));
        drop(table);
        let shed: Arc<dyn Shed> = self.clone();
        memory.register(Pool::Tasks, Arc::downgrade(&shed));
    }

    /// The table. A std mutex: held to insert, find or sweep, never across
    /// an `.await`; a task's own lock is taken after it, never before.
    fn lock(&self) -> parking_lot::MutexGuard<'_, Table> {
        self.0.lock()
    }

    /// The task with this id, whoever created it.
    #[cfg(feature = "redis")]
    pub(crate) fn find(&self, id: &str) -> Option<Arc<Task>> {
        self.lock().by_id.get(id).cloned()
    }

    /// The tasks that have not ended yet.
    #[cfg(feature = "redis")]
    pub(crate) fn live(&self) -> Vec<Arc<Task>> {
        self.lock()
            .by_id
            .values()
            .filter(|t| t.is_live())
            .cloned()
            .collect()
    }
}

impl Table {
    /// Forgets `id`, and its result's bytes (in the shared store too).
    fn remove(&mut self, id: &str) {
        if let Some(task) = self.by_id.remove(id) {
            let kept = self.kept.saturating_sub(task.result_bytes());
            if let Some(memory) = &self.memory {
                memory.recount(self.kept, kept);
            }
            self.kept = kept;
            #[cfg(feature = "redis")]
            if let Some(shared) = &task.shared {
                shared.forget(id);
            }
        }
    }

    /// Forgets the tasks past their time.
    fn sweep(&mut self, now: SystemTime) {
        let expired: Vec<String> = self
            .by_id
            .values()
            .filter(|t| t.expired(now))
            .map(|t| t.id.clone())
            .collect();
        for id in expired {
            self.remove(&id);
        }
    }

    /// Finished tasks by principal (of `only` one, when given).
    fn finished(&self, only: Option<Option<&str>>) -> HashMap<Option<Arc<str>>, Finished> {
        let mut by: HashMap<Option<Arc<str>>, Finished> = HashMap::new();
        for task in self.by_id.values() {
            if only.is_some_and(|p| !task.answers_to(p)) {
                continue;
            }
            let state = task.lock();
            if !state.status.is_terminal() {
                continue;
            }
            let bytes = state.result.as_ref().map_or(0, |r| r.get().len());
            let entry = by.entry(task.principal.clone()).or_default();
            entry.0 += bytes;
            entry.1.push((state.last_updated, task.id.clone(), bytes));
        }
        for (_, tasks) in by.values_mut() {
            tasks.sort_by_key(|t| std::cmp::Reverse(t.0));
        }
        by
    }

    /// Counts `bytes` more of results kept.
    fn keep(&mut self, bytes: usize) {
        self.kept += bytes;
        if let Some(memory) = &self.memory {
            memory.charge(bytes);
        }
    }

    /// Past the memory budget, the pools worth less give way first, then
    /// the oldest results go (as past [`MAX_KEPT_RESULT_BYTES`]). The
    /// pools asked never take the table's lock: holding it is safe.
    fn within_memory(&mut self) {
        let Some(memory) = self.memory.clone() else {
            return;
        };
        if !memory.make_room(Pool::Tasks) {
            let excess = memory.used().saturating_sub(memory.max());
            self.within(self.kept.saturating_sub(excess));
        }
    }

    /// Drops finished tasks until their results hold at most `budget`
    /// bytes: expired ones first, then the oldest of the principal holding
    /// the most.
    fn within(&mut self, budget: usize) {
        if self.kept <= budget {
            return;
        }
        self.sweep(SystemTime::now());
        let mut by = self.finished(None);
        while self.kept > budget {
            let Some((total, tasks)) = by.values_mut().max_by_key(|(total, _)| *total) else {
                return;
            };
            let Some((_, id, bytes)) = tasks.pop() else {
                return;
            };
            *total -= bytes;
            self.remove(&id);
        }
    }
}

/// Every task of a server, by id.
#[derive(Debug, Default)]
pub(crate) struct TaskStore {
    tasks: Arc<LocalTasks>,
    /// Where tasks are also kept for other replicas.
    #[cfg(feature = "redis")]
    shared: Option<SharedTasks>,
}

impl TaskStore {
    /// A store whose tasks are also kept in `shared` (ignored, with a
    /// warning, when `shared` already serves another server).
    #[cfg(feature = "redis")]
    pub(crate) fn with_shared(shared: Option<SharedTasks>) -> TaskStore {
        let tasks = Arc::<LocalTasks>::default();
        let shared = shared.filter(|s| {
            let attached = s.attach(&tasks);
            if !attached {
                tracing::warn!(
                    "a SharedTasks store serves one server; this one keeps its tasks to itself"
                );
            }
            attached
        });
        TaskStore { tasks, shared }
    }

    /// Counts the results kept against `memory` (the server's budget over
    /// all its pools) too.
    pub(crate) fn use_memory(&self, memory: &Arc<Memory>) {
        self.tasks.use_memory(memory);
        #[cfg(feature = "redis")]
        if let Some(shared) = &self.shared {
            shared.use_memory(memory);
        }
    }

    /// The shared store, if tasks are kept in one.
    #[cfg(feature = "redis")]
    pub(crate) fn shared(&self) -> Option<&SharedTasks> {
        self.shared.as_ref()
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, Table> {
        self.tasks.lock()
    }

    /// A new task of `principal` (the one it will answer), stored before it
    /// is returned (so a `tasks/get` right after the `CreateTaskResult`
    /// finds it); `None` when the store is full, or the principal has
    /// [`MAX_TASKS_PER_PRINCIPAL`] and none of them finished.
    pub(crate) fn create(&self, principal: Option<&str>) -> Option<Arc<Task>> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).ok()?;
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let now = SystemTime::now();
        let mut tasks = self.lock();
        tasks.sweep(now);
        let mine = tasks
            .by_id
            .values()
            .filter(|t| t.answers_to(principal))
            .count();
        if mine >= MAX_TASKS_PER_PRINCIPAL {
            let oldest = tasks
                .finished(Some(principal))
                .into_values()
                .next()
                .and_then(|(_, mut finished)| finished.pop());
            let (_, oldest, _) = oldest?;
            tasks.remove(&oldest);
        }
        if tasks.by_id.len() >= MAX_TASKS {
            return None;
        }
        let (cancel, _) = watch::channel(false);
        let task = Arc::new(Task {
            id: id.clone(),
            principal: principal.map(Arc::from),
            table: Arc::downgrade(&self.tasks),
            created: now,
            ttl: DEFAULT_TASK_TTL,
            state: Mutex::new(State {
                status: Status::Working,
                last_updated: now,
                result: None,
                error: None,
                pending: Map::new(),
                answers: Map::new(),
            }),
            answered: Notify::new(),
            cancel,
            #[cfg(feature = "redis")]
            shared: self.shared.clone(),
        });
        tasks.by_id.insert(id, Arc::clone(&task));
        Some(task)
    }

    /// The task with this id, unless unknown, expired, or created by
    /// another principal than `principal`.
    pub(crate) fn get(&self, id: &str, principal: Option<&str>) -> Option<Arc<Task>> {
        let task = self.lock().by_id.get(id).cloned()?;
        (task.answers_to(principal) && !task.expired(SystemTime::now())).then_some(task)
    }

    /// Answers a `tasks/*` request through the shared store: a local task
    /// here (its change written before the answer), another replica's there.
    #[cfg(feature = "redis")]
    pub(crate) async fn answer(
        &self,
        task_id: &str,
        principal: Option<&str>,
        op: shared::Op,
    ) -> Result<Vec<u8>, RpcError> {
        const COMPLETE: &[u8] = br#"{"resultType":"complete"}"#;
        match (self.get(task_id, principal), &self.shared) {
            (Some(task), _) => {
                match op {
                    shared::Op::Get => return Ok(task.detailed()),
                    shared::Op::Update(responses) => task.update(responses),
                    shared::Op::Cancel => task.cancel(),
                }
                task.published().await;
                Ok(COMPLETE.to_vec())
            }
            (None, Some(shared)) => shared.remote(task_id, principal, op).await,
            (None, None) => Err(RpcError::invalid_params(format!(
                "unknown taskId {:?}",
                crate::util::Brief(task_id)
            ))),
        }
    }

    /// How many tasks have not ended yet.
    pub(crate) fn live(&self) -> usize {
        self.lock().by_id.values().filter(|t| t.is_live()).count()
    }
}

/// Runs `work` (a call's: its encoded result object, or its error) for
/// `task` in the background until it ends, is cancelled, or the server
/// aborts its calls (`abort` carries the reason).
pub(crate) fn run(
    task: Arc<Task>,
    work: impl Future<Output = Result<crate::mcp::encoded::Encoded, RpcError>> + Send + 'static,
    mut abort: watch::Receiver<Option<Arc<str>>>,
) {
    let mut cancelled = task.cancel.subscribe();
    tokio::spawn(async move {
        // Its own task, so a panicking handler fails the task instead of the runner.
        let mut handle = tokio::spawn(work);
        let joined = tokio::select! {
            joined = &mut handle => joined,
            _ = cancelled.wait_for(|&c| c) => {
                handle.abort();
                return;
            }
            Ok(reason) = abort.wait_for(Option::is_some) => {
                let reason = reason.as_deref().unwrap_or_default().to_owned();
                handle.abort();
                task.finish(Err(error_json(&RpcError::new(crate::mcp::SERVER_STOPPING, reason))));
                return;
            }
        };
        let outcome = match joined {
            // A large result is re-encoded off the async workers.
            Ok(Ok(body)) if body.result_bytes().len() >= crate::mcp::LARGE_MESSAGE => {
                crate::util::offload::off_worker(move || kept_result(body.result_bytes()))
                    .await
                    .unwrap_or_else(|| {
                        Err(error_json(&RpcError::new(
                            INTERNAL_ERROR,
                            "internal error: the result could not be kept",
                        )))
                    })
            }
            Ok(Ok(body)) => kept_result(body.result_bytes()),
            Ok(Err(e)) => Err(error_json(&e)),
            Err(_) => Err(error_json(&RpcError::new(
                INTERNAL_ERROR,
                "internal error: the tool's handler panicked",
            ))),
        };
        task.finish(outcome);
    });
}

/// A finished call's result as a task keeps it: without the call's own
/// `resultType`, encoded.
fn kept_result(body: &[u8]) -> Result<Box<RawValue>, Value> {
    let mut result: Value = serde_json::from_slice(body).unwrap_or_default();
    if let Some(obj) = result.as_object_mut() {
        obj.remove("resultType");
    }
    serde_json::value::to_raw_value(&result).map_err(|e| {
        error_json(&RpcError::new(
            INTERNAL_ERROR,
            format!("internal error: the result could not be kept: {e}"),
        ))
    })
}

fn error_json(e: &RpcError) -> Value {
    let mut v = json!({ "code": e.code, "message": e.message });
    if let Some(data) = e
        .data
        .as_deref()
        .and_then(|d| serde_json::from_str::<Value>(d).ok())
    {
        v["data"] = data;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(v: Value) -> Box<RawValue> {
        serde_json::value::to_raw_value(&v).expect("raw")
    }

    impl Task {
        /// The `tasks/get` answer, parsed.
        fn detailed_json(&self) -> Value {
            serde_json::from_slice(&self.detailed()).expect("JSON")
        }
    }

    #[test]
    fn a_task_answers_only_its_principal() {
        let store = TaskStore::default();
        let task = store.create(Some("key:a")).expect("task");
        assert!(store.get(&task.id, Some("key:a")).is_some());
        assert!(store.get(&task.id, Some("key:b")).is_none());
        assert!(
            store.get(&task.id, None).is_none(),
            "no principal is not anyone"
        );
        let anonymous = store.create(None).expect("task");
        assert!(store.get(&anonymous.id, None).is_some());
        assert!(store.get(&anonymous.id, Some("key:a")).is_none());
    }

    #[test]
    fn a_principal_at_its_cap_makes_room_from_its_own_finished_tasks() {
        let store = TaskStore::default();
        let mine: Vec<Arc<Task>> = (0..MAX_TASKS_PER_PRINCIPAL)
            .map(|_| store.create(Some("key:a")).expect("task"))
            .collect();
        // All running: no room, for this principal only.
        assert!(store.create(Some("key:a")).is_none());
        assert!(store.create(Some("key:b")).is_some());
        // Two finish; the older of them makes room.
        mine[7].finish(Ok(raw(json!({"content": []}))));
        std::thread::sleep(Duration::from_millis(2));
        mine[3].finish(Ok(raw(json!({"content": []}))));
        assert!(store.create(Some("key:a")).is_some());
        assert!(
            store.get(&mine[7].id, Some("key:a")).is_none(),
            "the oldest finished went"
        );
        assert!(store.get(&mine[3].id, Some("key:a")).is_some());
        assert!(
            store.get(&mine[0].id, Some("key:a")).is_some(),
            "running ones stay"
        );
    }

    #[test]
    fn kept_results_past_the_budget_go_oldest_first_from_the_principal_holding_most() {
        let store = TaskStore::default();
        let result = |n: usize| raw(json!({"text": "x".repeat(n)}));
        let finished = |principal: &str, n: usize| {
            let task = store.create(Some(principal)).expect("task");
            task.finish(Ok(result(n)));
            std::thread::sleep(Duration::from_millis(2));
            task
        };
        let a: Vec<Arc<Task>> = (0..3).map(|_| finished("key:a", 1000)).collect();
        let b = finished("key:b", 1000);
        let each = a[0].result_bytes();
        assert_eq!(store.lock().kept, 4 * each);
        // Room for two and a half results: a, holding the most (three),
        // gives its oldest; still holding the most, its next oldest.
        store.lock().within(each * 5 / 2);
        let kept = |t: &Arc<Task>, p: &str| store.get(&t.id, Some(p)).is_some();
        assert!(!kept(&a[0], "key:a") && !kept(&a[1], "key:a"));
        assert!(kept(&a[2], "key:a") && kept(&b, "key:b"));
        assert_eq!(store.lock().kept, 2 * each);
        // A task that ends after it was dropped is not counted.
        let gone = store.create(Some("key:c")).expect("task");
        store.lock().remove(&gone.id.clone());
        gone.finish(Ok(result(1000)));
        assert_eq!(store.lock().kept, 2 * each);
        // The result is served as it is held, spliced into the answer.
        let d = a[2].detailed_json();
        assert_eq!(d["status"], "completed");
        assert_eq!(d["result"]["text"].as_str().map(str::len), Some(1000));
    }

    #[test]
    fn kept_results_count_against_the_memory_budget_and_give_way() {
        let store = TaskStore::default();
        let result = |n: usize| raw(json!({"text": "x".repeat(n)}));
        let finished = |principal: &str| {
            let task = store.create(Some(principal)).expect("task");
            task.finish(Ok(result(1000)));
            std::thread::sleep(Duration::from_millis(2));
            task
        };
        let early = finished("key:a");
        let each = early.result_bytes();
        let memory = Memory::new(each * 3);
        store.use_memory(&memory);
        assert_eq!(memory.used(), each, "what was kept before is counted");
        let a: Vec<Arc<Task>> = (0..2).map(|_| finished("key:a")).collect();
        assert_eq!(memory.used(), 3 * each);
        // Another pool holds one result's worth: the next result, within
        // the store's own bound, is past the memory's, and the oldest goes.
        memory.charge(each);
        let b = finished("key:b");
        let kept = |t: &Arc<Task>, p: &str| store.get(&t.id, Some(p)).is_some();
        assert!(!kept(&early, "key:a") && !kept(&a[0], "key:a"));
        assert!(kept(&a[1], "key:a") && kept(&b, "key:b"));
        assert_eq!(memory.used(), 3 * each);
        // A pool worth more needs room: the results give way.
        memory.charge(each);
        assert!(memory.make_room(Pool::Input));
        assert_eq!(memory.used(), 3 * each);
        assert_eq!(store.lock().kept, each);
        drop(store);
        assert_eq!(
            memory.used(),
            2 * each,
            "a dropped store gives its bytes back"
        );
    }

    #[tokio::test]
    async fn lifecycle_input_and_cancel() {
        let store = TaskStore::default();
        let task = store.create(None).expect("task");
        assert_eq!(task.create_result()["resultType"], "task");
        assert!(
            store
                .get(task.create_result()["taskId"].as_str().unwrap(), None)
                .is_some()
        );
        assert_eq!(task.detailed_json()["status"], "working");

        // Two requests pending; answered one at a time.
        let mut asked = Map::new();
        asked.insert(
            "a".into(),
            json!({"method": "elicitation/create", "params": {}}),
        );
        asked.insert(
            "b".into(),
            json!({"method": "elicitation/create", "params": {}}),
        );
        let waiter = {
            let task = Arc::clone(&task);
            tokio::spawn(async move { task.input(asked).await })
        };
        while task.detailed_json()["status"] != "input_required" {
            tokio::task::yield_now().await;
        }
        let mut one = Map::new();
        one.insert("a".into(), json!(1));
        one.insert("unknown".into(), json!(0));
        task.update(one);
        let d = task.detailed_json();
        assert_eq!(d["status"], "input_required");
        assert_eq!(d["inputRequests"].as_object().map(|m| m.len()), Some(1));
        assert!(d["inputRequests"].get("b").is_some());
        let mut two = Map::new();
        two.insert("b".into(), json!(2));
        task.update(two);
        let answers = waiter.await.expect("join");
        assert_eq!(answers["a"], 1);
        assert_eq!(answers["b"], 2);
        assert_eq!(task.detailed_json()["status"], "working");

        task.finish(Ok(raw(json!({"content": []}))));
        assert_eq!(task.detailed_json()["status"], "completed");
        task.cancel();
        assert_eq!(
            task.detailed_json()["status"],
            "completed",
            "cancel after the end changes nothing"
        );
        assert!(store.get("nope", None).is_none());
    }
}
