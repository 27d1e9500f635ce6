//! Large messages are read off the async workers: scanning, checking and
//! copying a body of megabytes takes milliseconds, and a worker busy that
//! long also leaves the runtime's I/O unpolled, so every other client's
//! request would wait behind it. From [`LARGE_MESSAGE`] bytes on, a
//! message is dispatched on a blocking thread, one such job at a time per
//! principal (the heavy-work gate), and the async worker moves on.

use std::sync::Arc;

use bytes::Bytes;

use super::batch::BatchPlan;
use super::{Dispatched, RequestCheck, Session};
use crate::jsonrpc::write::write_error;
use crate::jsonrpc::{INTERNAL_ERROR, RpcError};
use crate::mcp::call::OwnedCall;
use crate::mcp::heavy::{HeavyLane, UNKNOWN_PRINCIPAL};
use crate::util::IO_PIECE;

/// Messages of at least this many bytes are dispatched off the async
/// workers. Default: 64 KiB (a typical MCP message is well under 1 KiB).
pub(crate) const LARGE_MESSAGE: usize = 64 * 1024;

/// An owned copy of a large message that lives in a connection's buffer,
/// made a piece at a time with a yield between pieces: the copy (and the
/// page faults of its fresh memory) of megabytes never holds the worker
/// for more than one piece, so other connections are served in between.
pub(crate) async fn owned_in_pieces(message: &[u8]) -> Bytes {
    let mut owned = Vec::with_capacity(message.len());
    for piece in message.chunks(IO_PIECE) {
        owned.extend_from_slice(piece);
        if owned.len() < message.len() {
            crate::util::give_way().await;
        }
    }
    Bytes::from(owned)
}

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
    /// This session's principal's turn at the heavy-work gate, for the
    /// large answers of what it dispatches (framing, joining, copying).
    pub(crate) fn heavy_lane(&self) -> HeavyLane {
        HeavyLane::new(
            &self.server.0.heavy,
            self.principal().unwrap_or(UNKNOWN_PRINCIPAL),
        )
    }

    /// Dispatches `body` on a blocking thread (at most one large message or
    /// other heavy job of this session's principal at a time), with the
    /// transport's `check` (see [`Session::dispatch_checked`]).
    pub(crate) async fn dispatch_large(
        self: &Arc<Self>,
        body: Bytes,
        check: Option<Box<dyn RequestCheck + Send>>,
    ) -> Handled {
        let session = Arc::clone(self);
        let work = move || {
            let mut out = Vec::new();
            let check = check.as_deref().map(|c| c as &dyn RequestCheck);
            match session.dispatch_checked(&body, &mut out, check) {
                Dispatched::Done => Handled::Done(out),
                Dispatched::Call(call) => Handled::Call(Box::new(call.into_owned(&session))),
                Dispatched::Batch => Handled::Batch(session.plan_batch(&body)),
            }
        };
        match self.heavy_lane().run(work).await {
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
