//! JSON-RPC batches (2025-03-26 only): bounded in members before any runs,
//! and in answer bytes while they run.

use std::ops::Range;
use std::sync::Arc;

use super::{LARGE_MESSAGE, MAX_BATCH_ANSWER_BYTES, MAX_BATCH_MEMBERS, ProtocolVersion, Session};
use crate::budget::{Charge, Pool};
use crate::jsonrpc::write::write_error;
use crate::jsonrpc::{INTERNAL_ERROR, INVALID_REQUEST, Message, RpcError, is_batch, parse_batch};

/// A batch read and checked: where each member lies in the body, or the
/// answer that refuses the batch whole.
pub(crate) type BatchPlan = Result<Vec<Range<usize>>, Vec<u8>>;

impl Session {
    /// Reads a batch's members (synchronous: a large body is planned off
    /// the async workers, with the rest of its dispatch).
    pub(crate) fn plan_batch(&self, bytes: &[u8]) -> BatchPlan {
        let mut out = Vec::new();
        if !self
            .protocol_version()
            .is_some_and(ProtocolVersion::allows_batches)
        {
            let e = RpcError::new(
                INVALID_REQUEST,
                "invalid request: JSON-RPC batches are only allowed in protocol version 2025-03-26",
            );
            write_error(&mut out, None, &e);
            return Err(out);
        }
        match parse_batch(bytes, MAX_BATCH_MEMBERS) {
            Ok(members) => Ok(members
                .iter()
                .map(|m| {
                    let start = m.get().as_ptr() as usize - bytes.as_ptr() as usize;
                    start..start + m.get().len()
                })
                .collect()),
            Err(e) => {
                write_error(&mut out, e.id, &e.error);
                Err(out)
            }
        }
    }

    /// Runs a planned batch's members in order; the array of their answers,
    /// or `None` when none has one.
    pub(crate) async fn run_batch(
        self: &Arc<Self>,
        bytes: &[u8],
        plan: BatchPlan,
    ) -> Option<Vec<u8>> {
        let members = match plan {
            Ok(members) => members,
            Err(refusal) => return Some(refusal),
        };
        let mut answers = Vec::new();
        let mut answer_bytes = 0usize;
        // The answers gathered count against the server's memory budget
        // until the batch's answer leaves (to its socket, or to the backlog,
        // which counts it again); a client waits for them, so they make the
        // kept pools give way, but once those have nothing left to give, the
        // rest of the batch is not run.
        let mut gathered = Charge::new(self.server.0.memory.load_full(), Pool::Answers);
        let mut short_of_memory = false;
        for range in members {
            let member = &bytes[range];
            let why_not = if answer_bytes > MAX_BATCH_ANSWER_BYTES {
                Some(format!(
                    "not run: the batch's answers passed {MAX_BATCH_ANSWER_BYTES} bytes; send the rest in another request"
                ))
            } else if short_of_memory {
                Some(
                    "not run: the server holds all the memory it may for its clients now; send the rest in another request shortly"
                        .to_owned(),
                )
            } else {
                None
            };
            if let Some(why) = why_not {
                // Nothing more runs; each request still gets an answer.
                if let Ok(Message::Request(r)) = crate::jsonrpc::parse(member) {
                    let e = RpcError::new(INTERNAL_ERROR, why);
                    let mut one = Vec::new();
                    write_error(&mut one, Some(r.id), &e);
                    answers.push(one);
                }
                continue;
            }
            if is_batch(member) {
                let e = RpcError::new(INVALID_REQUEST, "invalid request: nested batch");
                let mut one = Vec::new();
                write_error(&mut one, None, &e);
                answers.push(one);
                continue;
            }
            if let Some(a) = Box::pin(self.handle(member)).await {
                answer_bytes += a.len();
                short_of_memory = !gathered.grow(a.len());
                answers.push(a);
            }
        }
        if answers.is_empty() {
            return None;
        }
        let total: usize = answers.iter().map(|a| a.len() + 1).sum();
        if total >= LARGE_MESSAGE {
            // Megabytes joined (and the parts freed) on a blocking thread,
            // in the principal's heavy-work turn. The joined copy counts
            // too while the parts live (the answer is made either way).
            gathered.grow(total);
            let joined = self.heavy_lane().run(move || join_answers(&answers)).await;
            return Some(joined.unwrap_or_else(|| {
                // Still an answer: the client never waits for one.
                let mut out = Vec::new();
                let e = RpcError::new(INTERNAL_ERROR, "writing the batch's answers failed");
                write_error(&mut out, None, &e);
                out
            }));
        }
        Some(join_answers(&answers))
    }
}

/// The answers as one JSON array.
fn join_answers(answers: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(answers.iter().map(|a| a.len() + 1).sum::<usize>() + 1);
    out.push(b'[');
    for (i, a) in answers.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(a);
    }
    out.push(b']');
    out
}
