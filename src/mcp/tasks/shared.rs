//! Tasks shared by every replica through Redis (feature `redis`).
//!
//! A task runs on the replica whose call created it (its *owner*): the
//! handler is a future in that process. What the others need is kept in
//! Redis:
//!
//! - `{prefix}task:{id}`: the task's last state, the JSON a `tasks/get`
//!   answers with, beside the owner's name and whether it is still live.
//!   The owner writes it after every change, in order (one writer per
//!   replica); it expires `ttlMs` after the last write, and live tasks'
//!   keys are refreshed while their owner runs.
//! - `{prefix}replica:{name}`: the owner's heartbeat, refreshed every
//!   [`HEARTBEAT`] and expiring after [`HEARTBEAT_EXPIRES`].
//! - The channel `{prefix}to:{name}`: `tasks/update` and `tasks/cancel`
//!   that land on another replica are relayed to the owner there, and the
//!   owner answers on the sender's channel once the new state is written,
//!   so a `tasks/get` anywhere right after sees it.
//!
//! A task whose owner stopped heartbeating (the process died) is reported
//! `failed` with an error saying so: the client learns its end instead of
//! polling a task nobody runs. A replica that shuts down first lets its
//! live tasks finish within the shutdown deadline; those still running at
//! the deadline end `failed` with the reason, written before it exits
//! ([`SharedTasks::flush`]).
//!
//! The Redis URL may carry a password: it is never logged, nor shown by
//! `Debug`.

use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};

use super::{LocalTasks, Task};
use crate::jsonrpc::{INTERNAL_ERROR, RpcError};
use crate::util::date::format_rfc3339;

/// How often a replica says it is alive. Default: 2 s.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// How long after its last heartbeat a replica counts as gone. Default: 7 s.
pub const HEARTBEAT_EXPIRES: Duration = Duration::from_secs(7);
/// How long a relayed `tasks/update` or `tasks/cancel` waits for the
/// owner's answer. Default: 5 s.
pub const RELAY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one Redis command may take (connecting included). Default: 3 s.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);
/// Most snapshot writes sent in one pipeline.
const WRITE_BATCH: usize = 256;
/// Most snapshot writes waiting for Redis (while it is slow or gone);
/// past it, or past [`WRITE_QUEUE_BYTES`], a write is dropped and its task
/// marked stale: the heartbeat writes its state again once Redis answers.
const WRITE_QUEUE: usize = 16 * 1024;
/// Most bytes of task states waiting for Redis, the batch being written
/// included: 32 MiB, half what one replica keeps of results. (A state
/// carries its result: without a bound in bytes, a slow Redis and clients
/// making tasks with megabyte results would fill memory.)
pub const WRITE_QUEUE_BYTES: usize = 32 * 1024 * 1024;
/// Most bytes of values sent to Redis in one pipeline (at least one write).
const PIPELINE_BYTES: usize = 4 * 1024 * 1024;
/// Most task ids remembered as stale at once.
const MAX_STALE: usize = 16 * 1024;

/// Tasks kept in Redis so that any replica can answer `tasks/get`,
/// `tasks/update` and `tasks/cancel` for them (see the module's docs).
/// Attach it with [`crate::mcp::McpServerBuilder::shared_tasks`]; one
/// store serves one server.
#[derive(Clone)]
pub struct SharedTasks(Arc<Shared>);

struct Shared {
    /// This replica's name: 64 random bits, new at every start.
    replica: String,
    prefix: String,
    conn: ConnectionManager,
    /// The ordered writer of task snapshots (bounded: [`WRITE_QUEUE`]).
    writes: mpsc::Sender<Write>,
    /// What waits for that writer, and what it failed to write.
    pending: Arc<Pending>,
    /// Relayed requests waiting for their owner's answer, by number.
    waiting: Mutex<HashMap<u64, oneshot::Sender<bool>>>,
    next: AtomicU64,
    /// The attached server's tasks (the owner's side of a relay).
    local: OnceLock<Weak<LocalTasks>>,
    /// Dropped with the store: the relay listener then stops.
    _stop: watch::Sender<()>,
}

impl std::fmt::Debug for SharedTasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may carry a password.
        f.debug_struct("SharedTasks")
            .field("replica", &self.0.replica)
            .field("prefix", &self.0.prefix)
            .finish_non_exhaustive()
    }
}

enum Write {
    /// `SET key value PX ms`: `task`'s state.
    Set {
        task: String,
        key: String,
        value: String,
        /// What [`WRITE_QUEUE_BYTES`] counts of it.
        bytes: usize,
        ttl_ms: u64,
        done: Option<oneshot::Sender<bool>>,
    },
    /// `DEL key`: a task this replica dropped.
    Delete { task: String, key: String },
    /// Answered once every write queued before it was sent.
    Flush(oneshot::Sender<bool>),
}

/// The bytes of task states queued for Redis, and the tasks whose last
/// change was not written there (dropped for room, or Redis failed).
#[derive(Default)]
struct Pending {
    bytes: AtomicUsize,
    stale: Mutex<HashSet<String>>,
    /// Whether writes are being dropped (warned once per spell).
    dropping: AtomicBool,
    /// The server's budget over all its pools, which queued states count
    /// against too (ranked with the task results they mirror).
    memory: std::sync::OnceLock<Arc<crate::budget::Memory>>,
}

impl Pending {
    /// Counts `bytes` as queued, unless that would pass [`WRITE_QUEUE_BYTES`].
    /// Past the memory budget, once the pools worth less gave way, the
    /// state is not queued either.
    fn reserve(&self, bytes: usize) -> bool {
        let queued = self
            .bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                queued
                    .checked_add(bytes)
                    .filter(|&total| total <= WRITE_QUEUE_BYTES)
            })
            .is_ok();
        if !queued {
            return false;
        }
        if let Some(memory) = self.memory.get() {
            memory.charge(bytes);
            if !memory.make_room(crate::budget::Pool::Tasks) {
                memory.discharge(bytes);
                self.bytes.fetch_sub(bytes, Ordering::AcqRel);
                return false;
            }
        }
        true
    }

    fn release(&self, bytes: usize) {
        self.bytes.fetch_sub(bytes, Ordering::AcqRel);
        if let Some(memory) = self.memory.get() {
            memory.discharge(bytes);
        }
    }

    /// Counts what is queued against `memory` from now on (once).
    fn use_memory(&self, memory: &Arc<crate::budget::Memory>) {
        if self.memory.set(Arc::clone(memory)).is_ok() {
            memory.charge(self.bytes.load(Ordering::Acquire));
        }
    }

    /// Remembers that `task`'s state in Redis is behind, to be written again.
    fn mark_stale(&self, task: &str) {
        let mut stale = self.stale.lock();
        if stale.len() < MAX_STALE {
            stale.insert(task.to_owned());
        }
        drop(stale);
        if !self.dropping.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                "task states wait for Redis past their bound; they are written again once it answers"
            );
        }
    }

    fn take_stale(&self) -> HashSet<String> {
        std::mem::take(&mut *self.stale.lock())
    }
}

impl Write {
    /// The bytes of its value (what [`WRITE_QUEUE_BYTES`] counts).
    fn bytes(&self) -> usize {
        match self {
            Write::Set { bytes, .. } => *bytes,
            Write::Delete { .. } | Write::Flush(_) => 0,
        }
    }
}

/// A relayed request, or the owner's answer to one.
#[derive(serde::Serialize, serde::Deserialize)]
struct Relay {
    /// `update`, `cancel` or `reply`.
    op: String,
    /// The request's number at its sender.
    n: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    task: String,
    /// The sender's name (where the reply goes).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    responses: Option<serde_json::Map<String, Value>>,
    /// In a reply: whether the owner still had the task.
    #[serde(default)]
    found: bool,
}

/// What a `tasks/*` request answered through the store does.
#[derive(Debug)]
pub(crate) enum Op {
    Get,
    Update(serde_json::Map<String, Value>),
    Cancel,
}

impl Op {
    /// The JSON-RPC method.
    pub(crate) fn method(&self) -> &'static str {
        match self {
            Op::Get => "tasks/get",
            Op::Update(_) => "tasks/update",
            Op::Cancel => "tasks/cancel",
        }
    }
}

impl SharedTasks {
    /// Connects to the Redis server at `url` (`redis://[:password@]host:port[/db]`)
    /// and starts this replica's heartbeat, writer and relay listener. Keys
    /// and channels begin with `prefix` (for example `mcp:`), so several
    /// deployments can share one Redis. Must be called on a Tokio runtime.
    pub async fn connect(url: &str, prefix: &str) -> Result<SharedTasks, crate::Error> {
        let store_error = |why: String| crate::Error::Config {
            setting: "shared_tasks",
            why,
        };
        let client = redis::Client::open(url)
            .map_err(|e| store_error(format!("not a usable Redis URL: {}", e.category())))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(3);
        let mut conn = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(|e| store_error(format!("cannot reach Redis: {e}")))?;
        let replica = random_name().ok_or_else(|| store_error("no randomness".into()))?;
        let heartbeat = format!("{prefix}replica:{replica}");
        beat(&mut conn, &heartbeat)
            .await
            .map_err(|e| store_error(format!("cannot write to Redis: {e}")))?;
        let (writes, queue) = mpsc::channel(WRITE_QUEUE);
        let pending = Arc::new(Pending::default());
        let (stop, stopped) = watch::channel(());
        let shared = Arc::new(Shared {
            replica,
            prefix: prefix.to_owned(),
            conn,
            writes,
            pending: Arc::clone(&pending),
            waiting: Mutex::default(),
            next: AtomicU64::new(1),
            local: OnceLock::new(),
            _stop: stop,
        });
        // A relay sent before the listener subscribed would be lost: wait for it.
        let (subscribed, ready) = oneshot::channel();
        tokio::spawn(write_loop(shared.conn.clone(), queue, pending));
        tokio::spawn(heartbeat_loop(Arc::downgrade(&shared), heartbeat));
        tokio::spawn(listen_loop(
            client,
            Arc::downgrade(&shared),
            subscribed,
            stopped,
        ));
        match tokio::time::timeout(COMMAND_TIMEOUT, ready).await {
            Ok(Ok(())) => Ok(SharedTasks(shared)),
            _ => Err(store_error("cannot subscribe to the relay channel".into())),
        }
    }

    /// This replica's name in the store (random, new at every start).
    pub fn replica(&self) -> &str {
        &self.0.replica
    }

    /// Waits until every task state written so far is in Redis (at most
    /// the command timeout per batch); `false` if a write failed. Call it
    /// after the server stopped, before the process exits.
    pub async fn flush(&self) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.0.writes.send(Write::Flush(tx)).await.is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    /// Counts the task states queued for Redis against `memory` (the
    /// server's budget over all its pools) too.
    pub(crate) fn use_memory(&self, memory: &Arc<crate::budget::Memory>) {
        self.0.pending.use_memory(memory);
    }

    /// Ties the store to a server's tasks; `false` if it already serves one.
    pub(crate) fn attach(&self, local: &Arc<LocalTasks>) -> bool {
        self.0.local.set(Arc::downgrade(local)).is_ok()
    }

    fn task_key(&self, id: &str) -> String {
        format!("{}task:{id}", self.0.prefix)
    }

    /// Queues `task`'s current state for Redis; the receiver says when it is written.
    pub(crate) fn publish(&self, task: &Task) -> oneshot::Receiver<bool> {
        let (done, written) = oneshot::channel();
        // Read and queued under the task's lock: states reach the queue in
        // the order they were, whoever publishes them.
        task.with_snapshot(|live, detailed| {
            let pending = &self.0.pending;
            // The task's answer spliced in as it is encoded (it may hold a
            // large result): no tree is built of it.
            let head = json!({
                "owner": self.0.replica,
                "principal": task.principal(),
                "live": live,
            })
            .to_string();
            let bytes = head.len() + ",\"task\":".len() + detailed.len();
            if !pending.reserve(bytes) {
                pending.mark_stale(task.id());
                return;
            }
            let mut value = String::with_capacity(bytes);
            value.push_str(&head[..head.len() - 1]);
            value.push_str(",\"task\":");
            value.push_str(&String::from_utf8_lossy(detailed));
            value.push('}');
            let queued = self.0.writes.try_send(Write::Set {
                task: task.id().to_owned(),
                key: self.task_key(task.id()),
                value,
                bytes,
                ttl_ms: ttl_ms(task.ttl()),
                done: Some(done),
            });
            if queued.is_err() {
                pending.release(bytes);
                pending.mark_stale(task.id());
            }
        });
        written
    }

    /// Writes again the tasks whose last state did not reach Redis: their
    /// current state, or their removal when this replica no longer holds
    /// them.
    fn write_stale(&self) {
        let stale = self.0.pending.take_stale();
        if stale.is_empty() {
            return;
        }
        let local = self.0.local.get().and_then(Weak::upgrade);
        for id in stale {
            match local.as_ref().and_then(|l| l.find(&id)) {
                Some(task) => drop(self.publish(&task)),
                None => self.forget(&id),
            }
        }
    }

    /// Removes a task this replica dropped (to keep within its bounds), so
    /// that no replica answers for it any more.
    pub(crate) fn forget(&self, task_id: &str) {
        if self
            .0
            .writes
            .try_send(Write::Delete {
                task: task_id.to_owned(),
                key: self.task_key(task_id),
            })
            .is_err()
        {
            self.0.pending.mark_stale(task_id);
        }
    }

    /// Answers a `tasks/*` request for a task this replica does not hold.
    /// Like a local task, it answers only the principal whose call created it.
    pub(crate) async fn remote(
        &self,
        task_id: &str,
        principal: Option<&str>,
        op: Op,
    ) -> Result<Vec<u8>, RpcError> {
        let mut conn = self.0.conn.clone();
        let stored: Option<String> = redis::cmd("GET")
            .arg(self.task_key(task_id))
            .query_async(&mut conn)
            .await
            .map_err(unreachable)?;
        let unknown = || {
            RpcError::invalid_params(format!("unknown taskId {:?}", crate::util::Brief(task_id)))
        };
        let mut stored: Value = stored
            .and_then(|s| serde_json::from_str(&s).ok())
            .ok_or_else(unknown)?;
        if stored["principal"].as_str() != principal {
            return Err(unknown());
        }
        let owner = stored["owner"].as_str().unwrap_or_default().to_owned();
        let live = stored["live"].as_bool().unwrap_or(false);
        let orphaned = live && owner != self.0.replica && !self.alive(&owner).await?;
        if orphaned {
            stored = self.orphan(task_id, stored).await;
        }
        let relay = |op: &str, responses| Relay {
            op: op.to_owned(),
            n: self.0.next.fetch_add(1, Ordering::Relaxed),
            task: task_id.to_owned(),
            from: self.0.replica.clone(),
            responses,
            found: false,
        };
        match op {
            Op::Get => return Ok(stored["task"].to_string().into_bytes()),
            // A finished task takes no answers and cannot be cancelled.
            _ if !live || orphaned => {}
            Op::Update(responses) => self.relay(&owner, relay("update", Some(responses))).await?,
            Op::Cancel => self.relay(&owner, relay("cancel", None)).await?,
        }
        Ok(br#"{"resultType":"complete"}"#.to_vec())
    }

    /// Whether `replica`'s heartbeat is fresh.
    async fn alive(&self, replica: &str) -> Result<bool, RpcError> {
        let mut conn = self.0.conn.clone();
        redis::cmd("EXISTS")
            .arg(format!("{}replica:{replica}", self.0.prefix))
            .query_async::<bool>(&mut conn)
            .await
            .map_err(unreachable)
    }

    /// Marks a task whose owner is gone `failed`, and returns the new record.
    async fn orphan(&self, task_id: &str, mut stored: Value) -> Value {
        let ttl = stored["task"]["ttlMs"].as_u64().unwrap_or(300_000);
        if let Some(task) = stored["task"].as_object_mut() {
            task.insert("status".into(), "failed".into());
            task.remove("inputRequests");
            task.insert(
                "lastUpdatedAt".into(),
                format_rfc3339(SystemTime::now()).into(),
            );
            task.insert(
                "error".into(),
                json!({
                    "code": INTERNAL_ERROR,
                    "message": "the replica running this task stopped before it finished",
                }),
            );
        }
        stored["live"] = false.into();
        let mut conn = self.0.conn.clone();
        // XX: a record that expired meanwhile is not brought back.
        let written: Result<Option<String>, _> = redis::cmd("SET")
            .arg(self.task_key(task_id))
            .arg(stored.to_string())
            .arg("XX")
            .arg("PX")
            .arg(ttl.max(1))
            .query_async(&mut conn)
            .await;
        if let Err(e) = written {
            tracing::warn!(error = %e, "writing an orphaned task's end to Redis failed");
        }
        stored
    }

    /// Sends `relay` to `owner` and waits for its answer.
    async fn relay(&self, owner: &str, relay: Relay) -> Result<(), RpcError> {
        let n = relay.n;
        let (tx, rx) = oneshot::channel();
        self.0.waiting.lock().insert(n, tx);
        // Removed however this ends (a timeout, an error, a dropped request).
        let _waiting = Waiting(&self.0, n);
        let mut conn = self.0.conn.clone();
        let message = serde_json::to_string(&relay).unwrap_or_default();
        let receivers: u64 = redis::cmd("PUBLISH")
            .arg(format!("{}to:{owner}", self.0.prefix))
            .arg(message)
            .query_async(&mut conn)
            .await
            .map_err(unreachable)?;
        if receivers == 0 {
            return Err(RpcError::new(
                INTERNAL_ERROR,
                "the replica running this task is not listening (stopped or restarting); try tasks/get",
            ));
        }
        match tokio::time::timeout(RELAY_TIMEOUT, rx).await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err(RpcError::invalid_params(format!(
                "unknown taskId {:?}",
                crate::util::Brief(&relay.task)
            ))),
            _ => Err(RpcError::new(
                INTERNAL_ERROR,
                format!(
                    "the replica running this task did not answer within {} s",
                    RELAY_TIMEOUT.as_secs()
                ),
            )),
        }
    }

    /// The owner's side: applies a relayed request to a local task, waits
    /// until the new state is written, then answers the sender.
    async fn serve_relay(&self, relay: Relay) {
        let task = self
            .0
            .local
            .get()
            .and_then(Weak::upgrade)
            .and_then(|local| local.find(&relay.task));
        let found = match &task {
            Some(task) => {
                match relay.op.as_str() {
                    "update" => task.update(relay.responses.unwrap_or_default()),
                    _ => task.cancel(),
                }
                // The change queued its snapshot; this one comes after it.
                let _ = self.publish(task).await;
                true
            }
            None => false,
        };
        let reply = Relay {
            op: "reply".into(),
            n: relay.n,
            task: String::new(),
            from: String::new(),
            responses: None,
            found,
        };
        let mut conn = self.0.conn.clone();
        let sent: Result<u64, _> = redis::cmd("PUBLISH")
            .arg(format!("{}to:{}", self.0.prefix, relay.from))
            .arg(serde_json::to_string(&reply).unwrap_or_default())
            .query_async(&mut conn)
            .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, "answering a relayed task request failed");
        }
    }

    /// A relay message arrived on this replica's channel.
    fn received(&self, payload: &[u8]) {
        let Ok(relay) = serde_json::from_slice::<Relay>(payload) else {
            tracing::warn!("a malformed message on the task relay channel was ignored");
            return;
        };
        if relay.op == "reply" {
            if let Some(tx) = self.0.waiting.lock().remove(&relay.n) {
                let _ = tx.send(relay.found);
            }
            return;
        }
        let this = self.clone();
        tokio::spawn(async move { this.serve_relay(relay).await });
    }
}

/// Removes a relay's waiting entry when dropped.
struct Waiting<'a>(&'a Shared, u64);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.lock().remove(&self.1);
    }
}

fn unreachable(e: redis::RedisError) -> RpcError {
    RpcError::new(
        INTERNAL_ERROR,
        format!("the shared task store (Redis) failed: {}", e.category()),
    )
}

fn ttl_ms(ttl: Duration) -> u64 {
    (ttl.as_millis() as u64).max(1)
}

fn random_name() -> Option<String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

async fn beat(conn: &mut ConnectionManager, key: &str) -> redis::RedisResult<()> {
    redis::cmd("SET")
        .arg(key)
        .arg("1")
        .arg("PX")
        .arg(HEARTBEAT_EXPIRES.as_millis() as u64)
        .query_async(conn)
        .await
}

/// Writes snapshots in the order they were queued, many to a pipeline.
async fn write_loop(
    mut conn: ConnectionManager,
    mut queue: mpsc::Receiver<Write>,
    pending: Arc<Pending>,
) {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    let mut chunk = Vec::new();
    while queue.recv_many(&mut batch, WRITE_BATCH).await > 0 {
        // Whether every write of this batch so far reached Redis (what a
        // flush reports).
        let mut all_ok = true;
        let mut writes = batch.drain(..).peekable();
        while writes.peek().is_some() {
            // A pipeline copies its values twice (arguments, then the
            // command's bytes): at most PIPELINE_BYTES of them at a time.
            let mut bytes = 0;
            while bytes < PIPELINE_BYTES {
                let Some(write) = writes.next() else { break };
                bytes += write.bytes();
                chunk.push(write);
            }
            let ok = send(&mut conn, &chunk).await;
            all_ok &= ok;
            if ok {
                pending.dropping.store(false, Ordering::Release);
            }
            for write in chunk.drain(..) {
                match write {
                    Write::Set {
                        task, bytes, done, ..
                    } => {
                        pending.release(bytes);
                        if !ok {
                            pending.mark_stale(&task);
                        }
                        if let Some(d) = done {
                            let _ = d.send(ok);
                        }
                    }
                    Write::Delete { task, .. } => {
                        if !ok {
                            pending.mark_stale(&task);
                        }
                    }
                    Write::Flush(d) => {
                        let _ = d.send(all_ok);
                    }
                }
            }
        }
    }
}

/// Sends `writes` to Redis in one pipeline, trying three times; whether it
/// went through.
async fn send(conn: &mut ConnectionManager, writes: &[Write]) -> bool {
    let mut pipe = redis::pipe();
    for write in writes {
        match write {
            Write::Set {
                key, value, ttl_ms, ..
            } => {
                pipe.cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("PX")
                    .arg(*ttl_ms)
                    .ignore();
            }
            Write::Delete { key, .. } => {
                pipe.cmd("DEL").arg(key).ignore();
            }
            Write::Flush(_) => {}
        }
    }
    if pipe.is_empty() {
        return true;
    }
    for attempt in 0..3u32 {
        match pipe.query_async::<()>(conn).await {
            Ok(()) => return true,
            Err(e) => {
                tracing::warn!(error = %e, attempt, "writing task states to Redis failed");
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
        }
    }
    false
}

/// Refreshes this replica's heartbeat, and the keys of its live tasks
/// (so a long task's record does not expire while it runs).
async fn heartbeat_loop(shared: Weak<Shared>, key: String) {
    let mut ticks = tokio::time::interval(HEARTBEAT);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut beats = 0u64;
    loop {
        ticks.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let mut conn = shared.conn.clone();
        match beat(&mut conn, &key).await {
            // Redis answers again: what it missed is written now.
            Ok(()) => SharedTasks(Arc::clone(&shared)).write_stale(),
            Err(e) => tracing::warn!(error = %e, "the replica's heartbeat to Redis failed"),
        }
        beats += 1;
        // About every minute: live tasks' records get their full ttl again.
        if beats % 30 == 0 {
            let store = SharedTasks(Arc::clone(&shared));
            let live: Vec<Arc<Task>> = shared
                .local
                .get()
                .and_then(Weak::upgrade)
                .map(|l| l.live())
                .unwrap_or_default();
            for task in live {
                drop(store.publish(&task));
            }
        }
    }
}

/// Listens on this replica's relay channel, reconnecting when Redis goes.
async fn listen_loop(
    client: redis::Client,
    shared: Weak<Shared>,
    subscribed: oneshot::Sender<()>,
    mut stopped: watch::Receiver<()>,
) {
    let mut subscribed = Some(subscribed);
    loop {
        let Some(channel) = shared
            .upgrade()
            .map(|s| format!("{}to:{}", s.prefix, s.replica))
        else {
            return;
        };
        let connected = tokio::time::timeout(COMMAND_TIMEOUT, async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        let mut pubsub = match connected {
            Ok(Ok(pubsub)) => pubsub,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "subscribing to the task relay channel failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(_) => {
                tracing::warn!("subscribing to the task relay channel timed out");
                continue;
            }
        };
        if let Some(s) = subscribed.take() {
            let _ = s.send(());
        }
        let mut messages = pubsub.on_message();
        loop {
            let message = tokio::select! {
                m = messages.next() => m,
                // The store was dropped.
                _ = stopped.changed() => return,
            };
            let Some(message) = message else { break };
            let Some(shared) = shared.upgrade() else {
                return;
            };
            SharedTasks(shared).received(message.get_payload_bytes());
        }
        tracing::warn!("the task relay channel closed; subscribing again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::Memory;

    #[test]
    fn queued_states_count_against_the_memory_budget() {
        let pending = Pending::default();
        assert!(
            pending.reserve(100),
            "no budget yet: the queue's own bound only"
        );
        let memory = Memory::new(1000);
        pending.use_memory(&memory);
        assert_eq!(memory.used(), 100, "what was queued before is counted");
        memory.charge(700);
        assert!(pending.reserve(200));
        assert!(
            !pending.reserve(1),
            "within the queue's own bound, past the budget"
        );
        assert_eq!(
            (pending.bytes.load(Ordering::Acquire), memory.used()),
            (300, 1000)
        );
        pending.release(300);
        assert_eq!(memory.used(), 700);
    }
}
