//! GET (the session's own stream, or a lost response stream resumed) and
//! DELETE (the session ends).

use super::*;

/// Sends the events of a recorded stream after `after`, then the rest as they
/// come, until the stream ends, the client leaves, or events it has not had
/// yet were dropped (the stream then ends: no gap is sent as if whole).
async fn resume_stream(
    replay: Arc<Replay>,
    stream: String,
    mut after: u64,
    events: crate::http::sse::SseSender,
) {
    loop {
        // Register interest before reading, so an append in between is not missed.
        let changed = replay.changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let Some(Catchup::Events { events: kept, done }) = replay.after(&stream, after) else {
            return;
        };
        for (n, encoded) in kept {
            if events.send_encoded(encoded).await.is_err() {
                return;
            }
            after = n;
        }
        if done {
            return;
        }
        tokio::select! {
            () = changed => {}
            () = events.closed() => return,
        }
    }
}

/// GET: a stream of the session's server-initiated messages (list changes,
/// resource updates), until the client leaves or the session ends.
pub(super) struct Get(pub(super) Arc<StreamableHttp>);

impl Handler for Get {
    fn call<'a>(&'a self, req: Request<'a>) -> Reply<'a> {
        match self.0.admit(&req) {
            Ok(admitted) => self.admitted(req, admitted),
            Err(refused) => refused.reply(move |admitted| self.admitted(req, admitted)),
        }
    }
}

impl Get {
    /// Serves a GET once its client was admitted.
    fn admitted<'a>(&'a self, req: Request<'a>, admitted: crate::guard::Admitted) -> Reply<'a> {
        let endpoint = &self.0;
        if req.known_header(KnownHeader::McpProtocolVersion) == Some(&b"2026-07-28"[..]) {
            return Reply::ready(
                rpc_error(405, INVALID_REQUEST, "2026-07-28 has no GET stream")
                    .header("allow", "POST"),
            );
        }
        let accept = req.known_header(KnownHeader::Accept).unwrap_or_default();
        if !String::from_utf8_lossy(accept).contains("text/event-stream") {
            return Reply::ready(rpc_error(
                406,
                INVALID_REQUEST,
                "Accept must allow text/event-stream",
            ));
        }
        let Some(id) = req.known_header(KnownHeader::McpSessionId) else {
            return Reply::ready(rpc_error(400, INVALID_REQUEST, "missing MCP-Session-Id"));
        };
        let id = std::str::from_utf8(id).unwrap_or_default();
        let Some((session, ended, replay)) = endpoint.session_entry(id, &admitted.principal) else {
            return Reply::ready(rpc_error(
                404,
                INVALID_REQUEST,
                "unknown or expired session",
            ));
        };
        // Resumption of a response stream the client lost.
        let resume = req
            .header("last-event-id")
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(parse_event_id)
            .filter(|(stream, _)| replay.knows(stream))
            .map(|(stream, n)| (stream.to_owned(), n));
        if let Some((stream, after)) = &resume
            && matches!(replay.after(stream, *after), Some(Catchup::Gap))
        {
            return Reply::ready(rpc_error(
                409,
                INVALID_REQUEST,
                "cannot resume: events after this Last-Event-ID are no longer kept \
                 (the server keeps a bounded number of bytes per session); retry the request",
            ));
        }
        if let Some((stream, after)) = resume {
            let (response, events) = Response::sse(STREAM_QUEUE);
            tokio::spawn(resume_stream(replay, stream, after, events));
            return Reply::ready(response);
        }
        let server_events = endpoint.server.events();
        let (response, events) = Response::sse(STREAM_QUEUE);
        // The stream ends when the server shuts down (the client reconnects elsewhere).
        tokio::spawn(session_stream(
            session,
            server_events,
            ended,
            events,
            req.shutdown(),
        ));
        Reply::ready(response)
    }
}

pub(super) struct Delete(pub(super) Arc<StreamableHttp>);

impl Handler for Delete {
    fn call<'a>(&'a self, req: Request<'a>) -> Reply<'a> {
        match self.0.admit(&req) {
            Ok(admitted) => self.admitted(&req, admitted),
            Err(refused) => refused.reply(move |admitted| self.admitted(&req, admitted)),
        }
    }
}

impl Delete {
    /// Ends a session once its client was admitted.
    fn admitted<'a>(&self, req: &Request<'a>, admitted: crate::guard::Admitted) -> Reply<'a> {
        let Some(id) = req.known_header(KnownHeader::McpSessionId) else {
            return Reply::ready(rpc_error(400, INVALID_REQUEST, "missing MCP-Session-Id"));
        };
        let id = std::str::from_utf8(id).unwrap_or_default();
        let removed = self.0.remove(id, &admitted.principal);
        Reply::ready(if removed {
            Response::new(204)
        } else {
            rpc_error(404, INVALID_REQUEST, "unknown or expired session")
        })
    }
}

/// The session's own stream: a priming event, then a notification for each
/// server change the client should hear of, until the client leaves, the
/// session ends (`ended`) or the server shuts down.
async fn session_stream(
    session: Arc<Session>,
    mut server_events: tokio::sync::broadcast::Receiver<crate::mcp::ServerEvent>,
    mut ended: tokio::sync::watch::Receiver<()>,
    events: crate::http::sse::SseSender,
    shutdown: Option<crate::shutdown::ShutdownSignal>,
) {
    let stopping = async move {
        match shutdown {
            Some(s) => s.recv().await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(stopping);
    let mut n = 0u64;
    let prime = Event::new("")
        .id("get-0")
        .retry(Duration::from_millis(RETRY_MS));
    if events.send(&prime).await.is_err() {
        return;
    }
    loop {
        let event = tokio::select! {
            e = server_events.recv() => e,
            _ = ended.changed() => return,
            () = events.closed() => return,
            () = &mut stopping => return,
        };
        let event = match event {
            Ok(event) => event,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        if let Some(message) = session.notification_for(&event) {
            n += 1;
            let text = String::from_utf8_lossy(&message);
            let id = format!("get-{n}");
            if events.send(&Event::new(&text).id(&id)).await.is_err() {
                return;
            }
        }
    }
}
