//! POST: one JSON-RPC message in, its answer (JSON or a stream of the
//! call's messages) out.

use super::headers::{Agreement, OwnedAgreement, accepts_mcp, modern_status, status_of};
use super::*;
use crate::mcp::{
    Handled, HeavyLane, Kept, LARGE_MESSAGE, OwnedCall, RequestCheck, RunningAnswer, Started,
    owned_in_pieces,
};
use std::task::Poll;

/// A session id: 128 bits from the operating system's CSPRNG, as hex.
fn new_session_id() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

pub(super) struct Post(pub(super) Arc<StreamableHttp>);

impl Handler for Post {
    fn call<'a>(&'a self, req: Request<'a>) -> Reply<'a> {
        match self.0.admit(&req) {
            Ok(admitted) => self.admitted(req, admitted),
            Err(refused) => refused.reply(move |admitted| self.admitted(req, admitted)),
        }
    }
}

impl Post {
    /// Serves a POST once its client was admitted.
    fn admitted<'a>(&'a self, req: Request<'a>, mut admitted: crate::guard::Admitted) -> Reply<'a> {
        let endpoint = &self.0;
        let modern = match check_post(&req) {
            Ok(modern) => modern,
            Err(refused) => return Reply::ready(*refused),
        };
        let body = req.body();
        let (session, new_id, replay) = match endpoint.session_for(&req, &mut admitted, modern) {
            Ok(found) => found,
            Err(refused) => return Reply::ready(*refused),
        };
        if admitted.scope == crate::guard::auth::Scope::ReadOnly {
            session.restrict_to_read_only();
        }
        // Tools the token does not cover: refused at dispatch, and answered
        // 403 naming the scope (below) so the client can step up.
        let scoped = admitted.denied_tools.is_some();
        session.restrict_tools(admitted.denied_tools);
        session.limit_statements(admitted.statement_kinds);
        if body.len() >= LARGE_MESSAGE {
            // Read off the async workers (see `Session::dispatch_large`),
            // the 2026-07-28 headers checked there against what is read.
            let check: Option<Box<dyn RequestCheck + Send>> =
                modern.then(|| Box::new(OwnedAgreement::of(&req)) as Box<_>);
            return Reply::new(async move {
                let to_start = Starting {
                    modern,
                    new_id,
                    replay,
                    session: Arc::clone(&session),
                };
                let body = owned_in_pieces(body).await;
                match session.dispatch_large(body.clone(), check).await {
                    Handled::Done(out) => {
                        match scoped.then(|| endpoint.admission.scope_refusal(&out)) {
                            Some(Some(refused)) => refused,
                            _ => to_start.done(endpoint, out),
                        }
                    }
                    Handled::Batch(plan) => to_start.batch(session.run_batch(&body, plan).await),
                    Handled::Call(call) => to_start.call(*call).await,
                }
            });
        }
        let to_start = Starting {
            modern,
            new_id,
            replay,
            session: Arc::clone(&session),
        };
        let mut out = Vec::new();
        // 2026-07-28: the headers that repeat the body are checked against
        // what dispatch reads of it (one pass over the body).
        let agreement = Agreement::new(&req);
        let check = modern.then_some(&agreement as &dyn RequestCheck);
        match session.dispatch_checked(body, &mut out, check) {
            Dispatched::Done => match scoped.then(|| endpoint.admission.scope_refusal(&out)) {
                Some(Some(refused)) => Reply::ready(refused),
                _ => Reply::ready(to_start.done(endpoint, out)),
            },
            Dispatched::Batch => Reply::new(async move {
                let plan = session.plan_batch(body);
                to_start.batch(session.run_batch(body, plan).await)
            }),
            Dispatched::Call(call) => to_start.call(call.into_owned(&session)),
        }
    }
}

/// How a dispatched POST is answered: whether it is a 2026-07-28 one, the
/// id of the session it created, and the replay record of its streams.
struct Starting {
    modern: bool,
    new_id: Option<String>,
    replay: Option<Arc<Replay>>,
    /// The session, whose principal's heavy-work turn frames the large
    /// answers of a stream, if one opens (the lane is built only then).
    session: Arc<Session>,
}

impl Starting {
    /// Adds the new session's id, if the request created one.
    fn with_id(&self, r: Response) -> Response {
        match &self.new_id {
            Some(id) => r
                .try_header("mcp-session-id", id)
                .unwrap_or_else(|_| Response::new(500)),
            None => r,
        }
    }

    /// A message handled at once: its answer as JSON, or 202 without one.
    /// An `initialize` that failed leaves no session behind.
    fn done(mut self, endpoint: &StreamableHttp, out: Vec<u8>) -> Response {
        if let Some(id) = &self.new_id
            && self.session.protocol_version().is_none()
        {
            if let Some(principal) = self.session.principal() {
                endpoint.remove(id, principal);
            }
            self.new_id = None;
        }
        if out.is_empty() {
            return self.with_id(Response::new(202));
        }
        let status = if self.modern {
            modern_status(&out)
        } else {
            200
        };
        self.with_id(Response::json_vec(status, out))
    }

    /// A batch's answers as JSON, or 202 when none has one.
    fn batch(self, answers: Option<Vec<u8>>) -> Response {
        match answers {
            Some(answer) => Response::json_vec(200, answer),
            None => Response::new(202),
        }
    }

    /// Starts a call: 2026-07-28 answers with JSON or SSE as the call goes.
    /// Older versions: a call that answers at its first poll without a
    /// message of its own gets a JSON answer (every version with sessions
    /// allows one); any other gets an SSE stream of its messages and answer,
    /// run on a task of its own (a dropped stream does not cancel it).
    ///
    /// The call is started here ([`OwnedCall::start`]), its work polled once
    /// on the connection's task with a waker that does nothing: most calls
    /// answer at that poll, and their reply is ready, with no future of
    /// their own to allocate and poll. One that is
    /// not done is polled again at once by its reply's future, with the
    /// connection's waker, which from then on is the one it wakes (a future
    /// wakes the waker of its latest poll; nothing that happened between
    /// the two polls is missed, since the second looks again).
    fn call(mut self, mut call: OwnedCall) -> Reply<'static> {
        let (peer, messages) = Peer::channel(STREAM_QUEUE);
        call.set_peer(peer);
        let stream_id = call.kept_id();
        let replay = self.replay.take();
        let mut idle = std::task::Context::from_waker(std::task::Waker::noop());
        let started = call.start(&mut idle);
        if self.modern {
            return match started {
                Started::Answered(answer) => Reply::ready(modern_reply(
                    answer,
                    messages,
                    stream_id,
                    replay,
                    &self.session,
                )),
                Started::Running(run) => Reply::new(answer_modern(
                    run,
                    messages,
                    stream_id,
                    replay,
                    self.session,
                )),
            };
        }
        let mut run = match started {
            Started::Answered(Some(answer)) if messages.is_empty() => {
                return Reply::ready(self.with_id(Response::json_vec(200, answer.bytes)));
            }
            answered @ Started::Answered(_) => {
                let lane = self.session.heavy_lane();
                let response =
                    CallStream::spawn(stream_id, replay, false, lane, answered, messages, None);
                return Reply::ready(self.with_id(response));
            }
            Started::Running(run) => run,
        };
        Reply::new(async move {
            // Polled again with this task's waker; a call not done by then
            // is polled again by its stream's task, which takes over the wake.
            let started = match futures_util::poll!(run.as_mut()) {
                Poll::Ready(Some(answer)) if messages.is_empty() => {
                    return self.with_id(Response::json_vec(200, answer.bytes));
                }
                Poll::Ready(answer) => Started::Answered(answer),
                Poll::Pending => Started::Running(run),
            };
            let lane = self.session.heavy_lane();
            let response =
                CallStream::spawn(stream_id, replay, false, lane, started, messages, None);
            self.with_id(response)
        })
    }
}

/// The checks of a POST before its body is read as MCP: `Accept`,
/// `Content-Type` and a known `MCP-Protocol-Version` (the 2026-07-28
/// headers that repeat the body are checked as it is read: [`Agreement`]).
/// Whether the request is a 2026-07-28 one, or the refusal.
fn check_post(req: &Request<'_>) -> Result<bool, Box<Response>> {
    if let Some(accept) = req.known_header(KnownHeader::Accept)
        && !accepts_mcp(accept)
    {
        return Err(Box::new(rpc_error(
            406,
            INVALID_REQUEST,
            "Accept must allow application/json and text/event-stream",
        )));
    }
    let content_type = req
        .known_header(KnownHeader::ContentType)
        .unwrap_or_default();
    if !content_type.starts_with(b"application/json") {
        return Err(Box::new(rpc_error(
            415,
            INVALID_REQUEST,
            "Content-Type must be application/json",
        )));
    }
    let version = req.known_header(KnownHeader::McpProtocolVersion);
    if let Some(v) = version
        && ProtocolVersion::from_bytes(v).is_none()
    {
        let error = RpcError::new(
            UNSUPPORTED_PROTOCOL_VERSION,
            "unsupported MCP-Protocol-Version",
        )
        .with_data(format!(
            r#"{{"supported":{},"requested":{}}}"#,
            crate::mcp::version::supported_json(),
            serde_json::Value::from(String::from_utf8_lossy(v))
        ));
        let id = match parse(req.body()) {
            Ok(Message::Request(r)) => Some(r.id),
            _ => None,
        };
        return Err(Box::new(super::super::error_response(400, id, &error)));
    }
    Ok(version == Some(&b"2026-07-28"[..]))
}

/// What a session-bound POST runs in: its session, the id of a session it
/// creates (an `initialize` without one), and the replay record of its
/// streams.
type SessionFor = (Arc<Session>, Option<String>, Option<Arc<Replay>>);

impl StreamableHttp {
    /// The session a POST runs in: a throwaway one for 2026-07-28 (no
    /// session across requests), the one its `MCP-Session-Id` names, or a
    /// new one for an `initialize`; else the refusal (404 for an unknown
    /// id, 400 for a request that is not `initialize` without one).
    fn session_for(
        &self,
        req: &Request<'_>,
        admitted: &mut crate::guard::Admitted,
        modern: bool,
    ) -> Result<SessionFor, Box<Response>> {
        let http = |session: Session, principal: Arc<str>| {
            let session = Arc::new(session);
            session.set_transport("http");
            session.set_principal(principal);
            session
        };
        if modern {
            // The session lives as long as this request: it takes the
            // principal rather than a copy; no session across requests, so
            // the connection is the party.
            let one_request = Session::one_http_request(
                self.server.clone(),
                std::mem::take(&mut admitted.principal),
                req.remote_addr(),
            );
            return Ok((Arc::new(one_request), None, None));
        }
        if let Some(id) = req.known_header(KnownHeader::McpSessionId) {
            let id = std::str::from_utf8(id).unwrap_or_default();
            return match self.session_entry(id, &admitted.principal) {
                Some((session, _, replay)) => Ok((session, None, Some(replay))),
                None => Err(Box::new(rpc_error(
                    404,
                    INVALID_REQUEST,
                    "unknown or expired session",
                ))),
            };
        }
        let is_initialize =
            matches!(parse(req.body()), Ok(Message::Request(r)) if r.method == "initialize");
        if !is_initialize {
            return Err(Box::new(rpc_error(
                400,
                INVALID_REQUEST,
                "missing MCP-Session-Id (send initialize first)",
            )));
        }
        let Some(id) = new_session_id() else {
            return Err(Box::new(rpc_error(
                500,
                INVALID_REQUEST,
                "no randomness for a session id",
            )));
        };
        let session = http(
            Session::new(self.server.clone(), None),
            Arc::clone(&admitted.principal),
        );
        self.insert(id.clone(), Arc::clone(&session), &admitted.principal);
        Ok((session, Some(id), None))
    }
}

/// 2026-07-28: a call that says nothing before its answer gets a plain
/// JSON answer (with the HTTP status its error calls for); one that
/// streams first gets SSE, its messages before its answer. For a call not
/// done at the poll `Starting::call` gave it.
async fn answer_modern(
    mut run: RunningAnswer,
    mut messages: crate::mcp::PeerReceiver,
    stream_id: Kept,
    replay: Option<Arc<Replay>>,
    session: Arc<Session>,
) -> Response {
    // Polled again, now with this task's waker (the first poll's did
    // nothing): a call done by now is answered without a select, and one
    // that is not wakes this task.
    let answer = match futures_util::poll!(run.as_mut()) {
        Poll::Ready(answer) => answer,
        Poll::Pending => tokio::select! {
            // A message first: when the answer is ready too, the stream
            // sends the messages before it.
            biased;
            Some(first) = messages.recv() => {
                let (lane, running) = (session.heavy_lane(), Started::Running(run));
                return CallStream::spawn(
                    stream_id, replay, true, lane, running, messages, Some(first),
                );
            }
            // Messages it sent in the poll that answered are looked for
            // in `modern_reply`.
            answer = &mut run => answer,
        },
    };
    modern_reply(answer, messages, stream_id, replay, &session)
}

/// A 2026-07-28 call's reply once it answered: plain JSON (with the HTTP
/// status its error calls for), or 202 when cancelled; SSE when it sent
/// messages before its answer (they go first), whichever poll that was in.
fn modern_reply(
    answer: Option<crate::mcp::Answer>,
    messages: crate::mcp::PeerReceiver,
    stream_id: Kept,
    replay: Option<Arc<Replay>>,
    session: &Session,
) -> Response {
    if !messages.is_empty() {
        let (lane, answered) = (session.heavy_lane(), Started::Answered(answer));
        return CallStream::spawn(stream_id, replay, true, lane, answered, messages, None);
    }
    match answer {
        // The status comes from the error the call answered, not from
        // reading the bytes again.
        Some(answer) => Response::json_vec(status_of(answer.error), answer.bytes),
        None => Response::new(202),
    }
}

/// The SSE stream of one call: its messages, then its answer.
struct CallStream {
    /// The call's request id; event ids are `<id>-<n>`.
    id: Kept,
    events: crate::http::sse::SseSender,
    replay: Option<Arc<Replay>>,
    /// 2026-07-28: the client closing the stream cancels the call. Before,
    /// a dropped stream is not a cancellation: the call runs to its end and
    /// what it would have sent is discarded (and kept for resumption).
    cancel_on_close: bool,
    /// The principal's heavy-work turn: large events are framed in it.
    lane: HeavyLane,
}

impl CallStream {
    /// The SSE response of call `id`'s stream, fed by a task of its own
    /// ([`CallStream::run`]) with `first` (a message already taken from the
    /// call), then the call's messages and its answer as they come: the
    /// one it gave, or the one the rest of its run gives.
    fn spawn(
        id: Kept,
        replay: Option<Arc<Replay>>,
        cancel_on_close: bool,
        lane: HeavyLane,
        started: Started,
        messages: crate::mcp::PeerReceiver,
        first: Option<Vec<u8>>,
    ) -> Response {
        let (response, events) = Response::sse(STREAM_QUEUE);
        let stream = CallStream {
            id,
            events,
            replay,
            cancel_on_close,
            lane,
        };
        tokio::spawn(stream.run(started, messages, first));
        response
    }

    /// Sends the priming event, `first`, then the call's messages and
    /// answer as they come.
    async fn run(
        self,
        started: Started,
        mut messages: crate::mcp::PeerReceiver,
        first: Option<Vec<u8>>,
    ) {
        // An answer already given is not boxed again to be awaited.
        let run = async move {
            match started {
                Started::Answered(answer) => answer,
                Started::Running(run) => run.await,
            }
        };
        let mut run = std::pin::pin!(run);
        let CallStream {
            id: stream_id,
            events,
            replay,
            cancel_on_close,
            lane,
        } = self;
        if let Some(r) = &replay {
            r.open(&stream_id);
        }
        let mut n = 0u64;
        let mut open = true;
        let mut send = async |data: Vec<u8>, open: &mut bool| {
            n += 1;
            if replay.is_none() && !*open {
                return;
            }
            let id = format!("{stream_id}-{n}");
            let keep = !data.is_empty();
            // Encoded once: the live stream and the record share the bytes.
            // A large answer is encoded (and freed) on a blocking thread, in
            // the principal's heavy-work turn: it is a few milliseconds of
            // copying that would otherwise hold up every other connection
            // served by this worker.
            let encoded = if data.len() >= LARGE_MESSAGE {
                lane.run(move || event_bytes(&id, &data)).await.flatten()
            } else {
                event_bytes(&id, &data)
            };
            let Some(encoded) = encoded else {
                return;
            };
            // Kept for a client that comes back with Last-Event-ID, open stream or not.
            if let Some(r) = &replay
                && keep
            {
                r.record(&stream_id, n, encoded.clone());
            }
            if *open && events.send_encoded(encoded).await.is_err() {
                *open = false;
            }
        };
        // The priming event: an id to resume from and the retry delay.
        send(Vec::new(), &mut open).await;
        if let Some(first) = first {
            send(first, &mut open).await;
        }
        loop {
            if !open && cancel_on_close {
                return;
            }
            tokio::select! {
                Some(message) = messages.recv() => send(message, &mut open).await,
                answer = &mut run => {
                    // Messages sent just before the answer go first.
                    while let Some(message) = messages.try_recv() {
                        send(message, &mut open).await;
                    }
                    if let Some(answer) = answer {
                        send(answer.bytes, &mut open).await;
                    }
                    if let Some(r) = &replay {
                        r.finish(&stream_id);
                    }
                    return;
                }
                () = events.closed(), if open => open = false,
            }
        }
    }
}

/// One message of a call's stream as an SSE event with id `id`; the
/// priming event (with the retry delay) when `data` is empty. Our messages
/// are UTF-8 JSON: validated fast, made lossy only if one were not.
fn event_bytes(id: &str, data: &[u8]) -> Option<bytes::Bytes> {
    let text = match std::str::from_utf8(data) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(data),
    };
    let event = if data.is_empty() {
        Event::new("").id(id).retry(Duration::from_millis(RETRY_MS))
    } else {
        Event::new(&text).id(id)
    };
    event.to_bytes().ok()
}
