//! The requests a session sent to its client and is waiting on, and the
//! matching of the client's answers to them by id.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use tokio::sync::oneshot;

use crate::jsonrpc::{INTERNAL_ERROR, RawJson, RpcError};

type Answer = Result<Value, RpcError>;

/// Requests this session sent and is waiting on.
#[derive(Debug, Default)]
pub(crate) struct Outgoing {
    /// Ids are numbers counting up; Relaxed: uniqueness is all that matters.
    next: AtomicU64,
    /// Waiting requests. A std mutex: held only to insert or remove, never across `.await`.
    pending: Mutex<HashMap<u64, oneshot::Sender<Answer>>>,
}

impl Outgoing {
    pub(crate) fn register(&self) -> (u64, oneshot::Receiver<Answer>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.lock().insert(id, tx);
        (id, rx)
    }

    pub(crate) fn forget(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, HashMap<u64, oneshot::Sender<Answer>>> {
        self.pending.lock()
    }

    /// Hands a response from the client to the request waiting for it (ids not ours are ignored).
    pub(crate) fn resolve(&self, id: Option<&str>, outcome: Result<RawJson<'_>, RawJson<'_>>) {
        let Some(id) = id.and_then(|i| i.parse::<u64>().ok()) else {
            return;
        };
        let Some(tx) = self.lock().remove(&id) else {
            return;
        };
        let answer = match outcome {
            Ok(result) => serde_json::from_str(result.get())
                .map_err(|e| RpcError::new(INTERNAL_ERROR, e.to_string())),
            Err(error) => Err(client_error(error)),
        };
        let _ = tx.send(answer);
    }
}

fn client_error(error: RawJson<'_>) -> RpcError {
    let v: Value = serde_json::from_str(error.get()).unwrap_or_default();
    let code = v["code"]
        .as_i64()
        .and_then(|c| i32::try_from(c).ok())
        .unwrap_or(INTERNAL_ERROR);
    let message = v["message"]
        .as_str()
        .unwrap_or("the client answered with an error")
        .to_owned();
    let mut e = RpcError::new(code, message);
    if let Some(data) = v.get("data") {
        e = e.with_data(data.to_string());
    }
    e
}
