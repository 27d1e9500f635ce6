//! Large messages are read off the async workers: scanning, checking and
//! copying a body of megabytes takes milliseconds, and a worker busy that
//! long also leaves the runtime's I/O unpolled, so every other client's
//! request would wait behind it. From [`LARGE_MESSAGE`] bytes on, a
//! message is dispatched on a blocking thread, one such job at a time per
//! principal (the heavy-work gate), and the async worker moves on.

use std::sync::Arc;

use super::batch::BatchPlan;
use super::{Dispatched, Session};
use crate::jsonrpc::write::write_error;
use crate::jsonrpc::{INTERNAL_ERROR, RpcError};
use crate::mcp::call::OwnedCall;

/// Messages of at least this many bytes are dispatched off the async
/// workers. Default: 64 KiB (a typical MCP message is well under 1 KiB).
pub(crate) const LARGE_MESSAGE: usize = 64 * 1024;

/// What a message dispatched with [`Session::dispatch_large`] left to do:
/// [`Dispatched`], owned.
pub(crate) enum Handled {
    /// Done: the answer, empty when there is none.
    Done(Vec<u8>),
    /// A call to run.
    Call(Box<OwnedCall>),
    /// A batch, read and checked, to run with [`Session::run_batch`].
    Batch(BatchPlan),
}

impl Session {
    /// Dispatches `body` on a blocking thread (at most one large message or
    /// other heavy job of this session's principal at a time).
    pub(crate) async fn dispatch_large(self: &Arc<Self>, body: Arc<[u8]>) -> Handled {
        let session = Arc::clone(self);
        let principal = self.principal().unwrap_or("unknown").to_owned();
        let work = move || {
            let mut out = Vec::new();
            match session.dispatch(&body, &mut out) {
                Dispatched::Done => Handled::Done(out),
                Dispatched::Call(call) => Handled::Call(Box::new(call.into_owned(&session))),
                Dispatched::Batch => Handled::Batch(session.plan_batch(&body)),
            }
        };
        match self.server.0.heavy.run(&principal, work).await {
            Some(handled) => handled,
            None => {
                let mut out = Vec::new();
                let e = RpcError::new(INTERNAL_ERROR, "internal error while reading the message");
                write_error(&mut out, None, &e);
                Handled::Done(out)
            }
        }
    }
}
