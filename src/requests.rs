//! The request manager: every statement-running tool call, registered,
//! bounded, timed out and fairly scheduled.
//!
//! A call is registered with its id, client, tool and start time (the list
//! is what the status endpoint shows). At most `max_concurrent` run at once,
//! and one client at most `max_per_client` of them; the rest wait in a
//! bounded queue (full: a clear "server busy" error at once). When a slot
//! frees it goes to the next waiting client in turn that is under its
//! share, and within that client to its next party (session or
//! connection) in turn: turns rotate over clients first, so a client with
//! many connections gets no more turns than one with a single one, and
//! one busy client cannot starve a quiet one. The whole call,
//! queue included, is bounded by `timeout`; when it passes, or the client
//! cancels (the call's future is dropped: an MCP cancel, a closed stream or
//! WebSocket), the work future is dropped, which interrupts the running
//! statement where the warehouse allows it, and the slot is freed.

use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::oneshot;

/// Default longest a call may take, queue included: 5 minutes.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Default calls running at once: 8 (the default pool size: more would
/// only wait for a session).
pub(crate) const DEFAULT_MAX_CONCURRENT: usize = 8;
/// Default calls one client may run at once: 4, half the slots, so one
/// client busy with long statements always leaves room for others. A
/// "client" is a principal (a key, or a client address): see
/// [`crate::guard::Admitted`].
pub(crate) const DEFAULT_MAX_PER_CLIENT: usize = 4;
/// Default calls waiting at most: 256.
pub(crate) const DEFAULT_MAX_QUEUE: usize = 256;
/// Default calls of one client waiting at most: 64, a quarter of the
/// queue, so one client cannot fill it and turn everyone else away.
pub(crate) const DEFAULT_MAX_QUEUE_PER_CLIENT: usize = 64;

/// Settings of the request manager.
#[derive(Clone, Debug)]
pub struct RequestsConfig {
    /// Default: 5 minutes.
    pub timeout: Duration,
    /// Default: 8.
    pub max_concurrent: usize,
    /// Default: 4.
    pub max_per_client: usize,
    /// Default: 256.
    pub max_queue: usize,
    /// Default: 64.
    pub max_queue_per_client: usize,
}

impl Default for RequestsConfig {
    fn default() -> Self {
        RequestsConfig {
            timeout: DEFAULT_TIMEOUT,
            max_concurrent: DEFAULT_MAX_CONCURRENT,
            max_per_client: DEFAULT_MAX_PER_CLIENT,
            max_queue: DEFAULT_MAX_QUEUE,
            max_queue_per_client: DEFAULT_MAX_QUEUE_PER_CLIENT,
        }
    }
}

/// Why a call did not run to its end.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum RequestError {
    /// The queue was full.
    #[error("server busy: {running} calls running and {queued} waiting; try again shortly")]
    Busy {
        /// Calls running.
        running: usize,
        /// Calls waiting.
        queued: usize,
    },
    /// The call took longer than the timeout (queue included).
    #[error("the call took longer than {}s and was stopped", .0.as_secs_f64())]
    Timeout(Duration),
}

/// One registered call, as the status endpoint shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ActiveRequest {
    /// The manager's number for it.
    pub id: u64,
    /// Who asked (the client's name, and its session).
    pub client: String,
    /// The tool.
    pub tool: String,
    /// When it was registered.
    pub started: SystemTime,
    /// How long it has been registered.
    pub age: Duration,
    /// Whether it is running (else waiting for a slot).
    pub running: bool,
}

struct Entry {
    client: String,
    /// Its queue: the client's, split by party (see [`RequestManager::run_as`]).
    party: String,
    tool: String,
    started: SystemTime,
    since: Instant,
    running: bool,
}

struct Queued {
    id: u64,
    tx: oneshot::Sender<()>,
}

#[derive(Default)]
struct State {
    entries: HashMap<u64, Entry>,
    running: usize,
    running_by_client: HashMap<String, usize>,
    /// Waiting calls by party.
    queues: HashMap<String, VecDeque<Queued>>,
    /// Waiting calls by client (all its parties).
    queued_by_client: HashMap<String, usize>,
    /// Clients with waiting calls, in turn order.
    turn: VecDeque<String>,
    /// Each of those clients' parties with waiting calls, in turn order.
    parties: HashMap<String, VecDeque<String>>,
    queued: usize,
}

/// Counters (`Relaxed`: standalone tallies).
#[derive(Debug, Default)]
struct Counters {
    started: AtomicU64,
    busy: AtomicU64,
    timeouts: AtomicU64,
    cancelled: AtomicU64,
}

/// The request manager's counters at a moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RequestStats {
    /// Calls registered since start.
    pub started: u64,
    /// Calls refused because the queue was full.
    pub busy: u64,
    /// Calls stopped by the timeout.
    pub timeouts: u64,
    /// Calls dropped by their client before the end.
    pub cancelled: u64,
}

/// The request manager. Share it (`Arc`).
pub(crate) struct RequestManager {
    config: RequestsConfig,
    /// How long calls ran (their work, after the queue).
    pub(crate) statement_duration: crate::histogram::Histogram,
    /// How long calls waited for a slot (those that waited).
    pub(crate) queue_wait: crate::histogram::Histogram,
    next_id: AtomicU64,
    /// A std mutex: held to register, schedule or unregister, never across an `.await`.
    state: Mutex<State>,
    counters: Counters,
}

impl std::fmt::Debug for RequestManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestManager")
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl RequestManager {
    /// A manager with these settings.
    pub fn new(config: RequestsConfig) -> Arc<RequestManager> {
        Arc::new(RequestManager {
            config: RequestsConfig {
                max_concurrent: config.max_concurrent.max(1),
                max_per_client: config.max_per_client.max(1),
                ..config
            },
            next_id: AtomicU64::new(1),
            statement_duration: crate::histogram::Histogram::default(),
            queue_wait: crate::histogram::Histogram::default(),
            state: Mutex::new(State::default()),
            counters: Counters::default(),
        })
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Runs `work` for `client`'s call of `tool` under the limits.
    ///
    /// Dropping the returned future (a cancel) drops `work` and frees the slot.
    #[cfg(test)]
    pub(crate) async fn run<T, F>(
        &self,
        client: &str,
        tool: &str,
        work: F,
    ) -> Result<T, RequestError>
    where
        F: Future<Output = T>,
    {
        self.run_as(client, client, tool, work).await
    }

    /// Like [`RequestManager::run`], for one `party` of `client` (a session
    /// or connection of it). Limits count per client; waiting calls take
    /// turns per client, then per party within it, so within one client
    /// (all keyless clients of one address, say) a party with many calls
    /// queued does not hold back another's single call, and a client's
    /// many parties buy it no more turns than another client's one.
    pub(crate) async fn run_as<T, F>(
        &self,
        client: &str,
        party: &str,
        tool: &str,
        work: F,
    ) -> Result<T, RequestError>
    where
        F: Future<Output = T>,
    {
        let started = Instant::now();
        let (id, wait) = self.register(client, party, tool)?;
        let mut guard = Registered {
            manager: self,
            id,
            finished: false,
        };
        let deadline = tokio::time::Instant::from_std(started + self.config.timeout);
        let timeout = RequestError::Timeout(self.config.timeout);
        if let Some(rx) = wait {
            match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(())) => self.queue_wait.record(started.elapsed()),
                // Its place was given to a client with fewer calls waiting
                // (or the manager dropped the queue): busy, as if refused.
                Ok(Err(_)) => {
                    guard.finished = true;
                    self.unregister(id);
                    let (running, queued) = self.load();
                    return Err(RequestError::Busy { running, queued });
                }
                Err(_) => {
                    self.counters.timeouts.fetch_add(1, Ordering::Relaxed);
                    guard.finished = true;
                    self.unregister(id);
                    return Err(timeout);
                }
            }
        }
        let running = Instant::now();
        let outcome = tokio::time::timeout_at(deadline, work).await;
        self.statement_duration.record(running.elapsed());
        guard.finished = true;
        self.unregister(id);
        match outcome {
            Ok(v) => Ok(v),
            Err(_) => {
                self.counters.timeouts.fetch_add(1, Ordering::Relaxed);
                Err(timeout)
            }
        }
    }

    /// Registers a call; returns its id and, when it must wait, the receiver of its turn.
    fn register(
        &self,
        client: &str,
        party: &str,
        tool: &str,
    ) -> Result<(u64, Option<oneshot::Receiver<()>>), RequestError> {
        let mut state = self.lock();
        let mine = state.running_by_client.get(client).copied().unwrap_or(0);
        let mine_queued = state.queued_by_client.get(client).copied().unwrap_or(0);
        // While any call of the client waits, a new one does not pass it.
        let can_run = state.running < self.config.max_concurrent
            && mine < self.config.max_per_client
            && mine_queued == 0;
        // A full queue makes room for a client with fewer calls waiting
        // than another has: that one's newest waiting call is refused
        // instead, so clients that fill the queue cannot shut others out.
        if !can_run
            && state.queued >= self.config.max_queue
            && mine_queued < self.config.max_queue_per_client.max(1)
        {
            displace_for(&mut state, mine_queued);
        }
        if !can_run
            && (state.queued >= self.config.max_queue
                || mine_queued >= self.config.max_queue_per_client.max(1))
        {
            self.counters.busy.fetch_add(1, Ordering::Relaxed);
            return Err(RequestError::Busy {
                running: state.running,
                queued: state.queued,
            });
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.counters.started.fetch_add(1, Ordering::Relaxed);
        state.entries.insert(
            id,
            Entry {
                client: client.to_owned(),
                party: party_key(client, party),
                tool: tool.to_owned(),
                started: SystemTime::now(),
                since: Instant::now(),
                running: can_run,
            },
        );
        if can_run {
            state.running += 1;
            *state
                .running_by_client
                .entry(client.to_owned())
                .or_default() += 1;
            return Ok((id, None));
        }
        let (tx, rx) = oneshot::channel();
        let key = party_key(client, party);
        let queue = state.queues.entry(key.clone()).or_default();
        let first = queue.is_empty();
        queue.push_back(Queued { id, tx });
        if first {
            // Through a plain reference, so fields borrow apart.
            let st = &mut *state;
            let parties = st.parties.entry(client.to_owned()).or_default();
            if parties.is_empty() {
                st.turn.push_back(client.to_owned());
            }
            parties.push_back(key);
        }
        *state.queued_by_client.entry(client.to_owned()).or_default() += 1;
        state.queued += 1;
        Ok((id, Some(rx)))
    }

    /// Removes a call (running or queued) and hands freed slots on.
    fn unregister(&self, id: u64) {
        let mut guard = self.lock();
        // Through a plain reference, so fields borrow apart.
        let state = &mut *guard;
        let Some(entry) = state.entries.remove(&id) else {
            return;
        };
        if entry.running {
            state.running -= 1;
            if let Some(n) = state.running_by_client.get_mut(&entry.client) {
                *n -= 1;
                if *n == 0 {
                    state.running_by_client.remove(&entry.client);
                }
            }
        } else if let Some(queue) = state.queues.get_mut(&entry.party)
            && let Some(pos) = queue.iter().position(|q| q.id == id)
        {
            queue.remove(pos);
            state.queued -= 1;
            take_queued(&mut state.queued_by_client, &entry.client);
            if queue.is_empty() {
                state.queues.remove(&entry.party);
                leave_turn(state, &entry.client, &entry.party);
            }
        }
        self.schedule(state);
    }

    /// Starts waiting calls while there is room: the next client in turn
    /// that is under its share goes first, with its next party in turn.
    fn schedule(&self, state: &mut State) {
        while state.running < self.config.max_concurrent {
            let mut picked = None;
            for _ in 0..state.turn.len() {
                let Some(client) = state.turn.pop_front() else {
                    break;
                };
                let mine = state.running_by_client.get(&client).copied().unwrap_or(0);
                if mine < self.config.max_per_client {
                    picked = Some(client);
                    break;
                }
                state.turn.push_back(client);
            }
            let Some(client) = picked else { return };
            let Some(parties) = state.parties.get_mut(&client) else {
                continue;
            };
            let Some(key) = parties.pop_front() else {
                state.parties.remove(&client);
                continue;
            };
            let Some(queue) = state.queues.get_mut(&key) else {
                continue;
            };
            let Some(next) = queue.pop_front() else {
                continue;
            };
            // Back of the line for their next calls: turns rotate between
            // clients, and between the parties of each.
            if queue.is_empty() {
                state.queues.remove(&key);
            } else {
                parties.push_back(key);
            }
            if parties.is_empty() {
                state.parties.remove(&client);
            } else {
                state.turn.push_back(client.clone());
            }
            take_queued(&mut state.queued_by_client, &client);
            state.queued -= 1;
            if next.tx.send(()).is_err() {
                // Its caller left meanwhile; its entry goes when its guard drops.
                continue;
            }
            if let Some(entry) = state.entries.get_mut(&next.id) {
                entry.running = true;
            }
            state.running += 1;
            *state.running_by_client.entry(client).or_default() += 1;
        }
    }

    /// The calls registered now, oldest first.
    pub(crate) fn active(&self) -> Vec<ActiveRequest> {
        let state = self.lock();
        let mut list: Vec<ActiveRequest> = state
            .entries
            .iter()
            .map(|(&id, e)| ActiveRequest {
                id,
                client: e.client.clone(),
                tool: e.tool.clone(),
                started: e.started,
                age: e.since.elapsed(),
                running: e.running,
            })
            .collect();
        list.sort_by_key(|r| r.id);
        list
    }

    /// Calls running and waiting now.
    pub(crate) fn load(&self) -> (usize, usize) {
        let state = self.lock();
        (state.running, state.queued)
    }

    /// The counters.
    pub(crate) fn stats(&self) -> RequestStats {
        RequestStats {
            started: self.counters.started.load(Ordering::Relaxed),
            busy: self.counters.busy.load(Ordering::Relaxed),
            timeouts: self.counters.timeouts.load(Ordering::Relaxed),
            cancelled: self.counters.cancelled.load(Ordering::Relaxed),
        }
    }
}

/// Unregisters a call however its future ends (a drop is a cancellation).
struct Registered<'m> {
    manager: &'m RequestManager,
    id: u64,
    finished: bool,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.manager
                .counters
                .cancelled
                .fetch_add(1, Ordering::Relaxed);
            self.manager.unregister(self.id);
        }
    }
}

/// The queue key of one party of a client.
fn party_key(client: &str, party: &str) -> String {
    format!("{client}\u{0}{party}")
}

/// In a full queue, refuses the newest waiting call of the client with the
/// most calls waiting, when it has at least two more than a newcomer with
/// `mine` waiting: the newcomer takes its place. The refused call's turn
/// signal is dropped, and its caller answers "server busy".
fn displace_for(state: &mut State, mine: usize) {
    let Some((busiest, most)) = state
        .queued_by_client
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(c, n)| (c.clone(), *n))
    else {
        return;
    };
    if most < mine + 2 {
        return;
    }
    // Its party whose last call is the newest.
    let Some(key) = state
        .parties
        .get(&busiest)
        .into_iter()
        .flatten()
        .filter_map(|k| Some((k, state.queues.get(k)?.back()?.id)))
        .max_by_key(|(_, id)| *id)
        .map(|(k, _)| k.clone())
    else {
        return;
    };
    let Some(queue) = state.queues.get_mut(&key) else {
        return;
    };
    let Some(refused) = queue.pop_back() else {
        return;
    };
    if queue.is_empty() {
        state.queues.remove(&key);
        leave_turn(state, &busiest, &key);
    }
    state.queued -= 1;
    take_queued(&mut state.queued_by_client, &busiest);
    // Dropping the sender wakes its caller with the refusal.
    drop(refused);
}

/// `party` of `client` has no call waiting any more: it leaves the
/// client's turns, and the client the turns of clients when it was its last.
fn leave_turn(state: &mut State, client: &str, party: &str) {
    if let Some(parties) = state.parties.get_mut(client) {
        parties.retain(|p| p != party);
        if parties.is_empty() {
            state.parties.remove(client);
            state.turn.retain(|c| c != client);
        }
    }
}

/// One call of `client` left the queue.
fn take_queued(queued: &mut HashMap<String, usize>, client: &str) {
    if let Some(n) = queued.get_mut(client) {
        *n -= 1;
        if *n == 0 {
            queued.remove(client);
        }
    }
}

#[cfg(test)]
mod tests;
