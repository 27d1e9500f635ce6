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
//! bits (they are the only key to a task); finished tasks are kept for
//! `ttlMs` after their last change. A task still running when the server
//! aborts its calls ([`crate::mcp::McpServer::abort_calls`]) ends `failed`
//! with the reason.
//!
//! Tasks live in the memory of the process that runs them. With the
//! `redis` feature, [`SharedTasks`] also keeps them in Redis so that every
//! replica behind a load balancer can answer for them (see [`shared`]).

use parking_lot::Mutex;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};
use tokio::sync::{Notify, watch};

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
    /// The tool's result once `completed`.
    result: Option<Value>,
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

    /// Whether it is live, and its `tasks/get` answer, read at one instant.
    #[cfg(feature = "redis")]
    pub(crate) fn snapshot(&self) -> (bool, Value) {
        let state = self.lock();
        (!state.status.is_terminal(), self.detailed_of(&state))
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

    /// The `tasks/get` answer: status, and the result, error or pending requests.
    pub(crate) fn detailed(&self) -> Value {
        let state = self.lock();
        self.detailed_of(&state)
    }

    fn detailed_of(&self, state: &State) -> Value {
        let mut m = self.envelope(state);
        m.insert("resultType".into(), "complete".into());
        match state.status {
            Status::Completed => {
                if let Some(r) = &state.result {
                    m.insert("result".into(), r.clone());
                }
            }
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
        Value::Object(m)
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

    /// Records how the handler ended (ignored once cancelled).
    fn finish(&self, outcome: Result<Value, Value>) {
        let mut state = self.lock();
        if state.status.is_terminal() {
            return;
        }
        match outcome {
            Ok(result) => {
                state.status = Status::Completed;
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

/// A server's own tasks, by id.
pub(crate) type LocalTasks = Mutex<HashMap<String, Arc<Task>>>;

/// Every task of a server, by id.
#[derive(Debug, Default)]
pub(crate) struct TaskStore {
    /// A std mutex: held to insert, find or sweep, never across an `.await`.
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

    /// The shared store, if tasks are kept in one.
    #[cfg(feature = "redis")]
    pub(crate) fn shared(&self) -> Option<&SharedTasks> {
        self.shared.as_ref()
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, HashMap<String, Arc<Task>>> {
        self.tasks.lock()
    }

    /// A new task, stored before it is returned (so a `tasks/get` right after
    /// the `CreateTaskResult` finds it); `None` when the store is full.
    pub(crate) fn create(&self) -> Option<Arc<Task>> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).ok()?;
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let now = SystemTime::now();
        let mut tasks = self.lock();
        tasks.retain(|_, t| !t.expired(now));
        if tasks.len() >= MAX_TASKS {
            return None;
        }
        let (cancel, _) = watch::channel(false);
        let task = Arc::new(Task {
            id: id.clone(),
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
        tasks.insert(id, Arc::clone(&task));
        Some(task)
    }

    /// The task with this id, unless unknown or expired.
    pub(crate) fn get(&self, id: &str) -> Option<Arc<Task>> {
        let task = self.lock().get(id).cloned()?;
        (!task.expired(SystemTime::now())).then_some(task)
    }

    /// Answers a `tasks/*` request through the shared store: a local task
    /// here (its change written before the answer), another replica's there.
    #[cfg(feature = "redis")]
    pub(crate) async fn answer(&self, task_id: &str, op: shared::Op) -> Result<Vec<u8>, RpcError> {
        const COMPLETE: &[u8] = br#"{"resultType":"complete"}"#;
        match (self.get(task_id), &self.shared) {
            (Some(task), _) => {
                match op {
                    shared::Op::Get => return Ok(task.detailed().to_string().into_bytes()),
                    shared::Op::Update(responses) => task.update(responses),
                    shared::Op::Cancel => task.cancel(),
                }
                task.published().await;
                Ok(COMPLETE.to_vec())
            }
            (None, Some(shared)) => shared.remote(task_id, op).await,
            (None, None) => Err(RpcError::invalid_params(format!(
                "unknown taskId {task_id:?}"
            ))),
        }
    }

    /// How many tasks have not ended yet.
    pub(crate) fn live(&self) -> usize {
        self.lock().values().filter(|t| t.is_live()).count()
    }
}

/// A call's work: its encoded result object, or its error.
pub(crate) type Work = Pin<Box<dyn Future<Output = Result<Vec<u8>, RpcError>> + Send>>;

/// Runs `work` for `task` in the background until it ends, is cancelled,
/// or the server aborts its calls (`abort` carries the reason).
pub(crate) fn run(task: Arc<Task>, work: Work, mut abort: watch::Receiver<Option<Arc<str>>>) {
    let mut cancelled = task.cancel.subscribe();
    tokio::spawn(async move {
        // Its own task, so a panicking handler fails the task instead of the runner.
        let mut handle = tokio::spawn(work);
        tokio::select! {
            joined = &mut handle => {
                let outcome = match joined {
                    Ok(Ok(body)) => {
                        let mut result: Value = serde_json::from_slice(&body).unwrap_or_default();
                        if let Some(obj) = result.as_object_mut() {
                            obj.remove("resultType");
                        }
                        Ok(result)
                    }
                    Ok(Err(e)) => Err(error_json(&e)),
                    Err(_) => Err(error_json(&RpcError::new(
                        INTERNAL_ERROR,
                        "internal error: the tool's handler panicked",
                    ))),
                };
                task.finish(outcome);
            }
            _ = cancelled.wait_for(|&c| c) => handle.abort(),
            Ok(reason) = abort.wait_for(Option::is_some) => {
                let reason = reason.as_deref().unwrap_or_default().to_owned();
                handle.abort();
                task.finish(Err(error_json(&RpcError::new(crate::mcp::SERVER_STOPPING, reason))));
            }
        }
    });
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

    #[tokio::test]
    async fn lifecycle_input_and_cancel() {
        let store = TaskStore::default();
        let task = store.create().expect("task");
        assert_eq!(task.create_result()["resultType"], "task");
        assert!(
            store
                .get(task.create_result()["taskId"].as_str().unwrap())
                .is_some()
        );
        assert_eq!(task.detailed()["status"], "working");

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
        while task.detailed()["status"] != "input_required" {
            tokio::task::yield_now().await;
        }
        let mut one = Map::new();
        one.insert("a".into(), json!(1));
        one.insert("unknown".into(), json!(0));
        task.update(one);
        let d = task.detailed();
        assert_eq!(d["status"], "input_required");
        assert_eq!(d["inputRequests"].as_object().map(|m| m.len()), Some(1));
        assert!(d["inputRequests"].get("b").is_some());
        let mut two = Map::new();
        two.insert("b".into(), json!(2));
        task.update(two);
        let answers = waiter.await.expect("join");
        assert_eq!(answers["a"], 1);
        assert_eq!(answers["b"], 2);
        assert_eq!(task.detailed()["status"], "working");

        task.finish(Ok(json!({"content": []})));
        assert_eq!(task.detailed()["status"], "completed");
        task.cancel();
        assert_eq!(
            task.detailed()["status"],
            "completed",
            "cancel after the end changes nothing"
        );
        assert!(store.get("nope").is_none());
    }
}
