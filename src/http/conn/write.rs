//! Writing: a response whole or streamed, its framing and connection
//! headers, flushing, and lingering before a close.

use super::*;
use crate::budget::{Backlog, COUNTED_FROM, Stalled};

impl<S: Io> Conn<S> {
    /// Writes a handler's response and decides what follows.
    pub(super) async fn respond(&mut self, head: &Head, mut response: Response) -> Next {
        if response.status == 101 {
            return match response.on_upgrade.take() {
                Some(on_upgrade) => {
                    self.queue_head(
                        101,
                        Headers::of(&response),
                        BodyFraming::None,
                        ConnHeader::Upgrade,
                    );
                    match self.flush().await {
                        Ok(()) => Next::Upgrade(on_upgrade),
                        Err(_) => Next::Close,
                    }
                }
                None => {
                    self.queue_whole(head, Response::text(500, "101 without an upgrade handler"))
                }
            };
        }
        if matches!(response.body, Body::Stream(_)) && !status_has_no_body(response.status) {
            let Body::Stream(rx) = std::mem::replace(&mut response.body, Body::Empty) else {
                return Next::Close;
            };
            // Boxed: a stream's state is large, and only streamed answers
            // need it, not every connection's.
            return Box::pin(self.write_stream(head, response, rx)).await;
        }
        let next = self.queue_whole(head, response);
        if self.pending_body.is_some() && self.flush().await.is_err() {
            return Next::Close;
        }
        next
    }

    /// Whether the connection stays open after answering `head` with `response`.
    pub(super) fn keep_alive(&self, head: &Head, response: &Response) -> bool {
        head.keep_alive && !response.close && !self.shutdown.is_shutdown()
    }

    pub(super) fn conn_header(&self, head: &Head, keep: bool) -> ConnHeader {
        match (keep, head.version) {
            (false, _) => ConnHeader::Close,
            (true, Version::Http10) => ConnHeader::KeepAlive,
            (true, Version::Http11) => ConnHeader::Omit,
        }
    }

    /// Queues a response whose body is known now; it is flushed before the next wait.
    pub(super) fn queue_whole(&mut self, head: &Head, response: Response) -> Next {
        let keep = self.keep_alive(head, &response);
        let conn = self.conn_header(head, keep);
        let body: &[u8] = match &response.body {
            Body::Empty | Body::Stream(_) => &[],
            Body::Static(b) => b,
            Body::Full(b) => b,
            Body::Owned(b) => b,
        };
        let framing = if status_has_no_body(response.status) {
            BodyFraming::None
        } else {
            BodyFraming::Length(body.len() as u64)
        };
        self.queue_head(response.status, Headers::of(&response), framing, conn);
        if head.method != Method::Head && framing != BodyFraming::None {
            if body.len() <= COPY_BODY_LIMIT {
                self.wbuf.extend_from_slice(body);
            } else {
                // Large body: written by `flush` straight from its own buffer.
                self.pending_body = Some(match response.body {
                    Body::Full(b) => b,
                    Body::Owned(b) => Bytes::from(b),
                    Body::Static(s) => Bytes::from_static(s),
                    _ => Bytes::new(),
                });
            }
        }
        Next::after(keep)
    }

    /// Streams a body chunk by chunk while watching for the client to go away.
    pub(super) async fn write_stream(
        &mut self,
        head: &Head,
        response: Response,
        mut rx: super::super::response::BodyReceiver,
    ) -> Next {
        let chunked = head.version == Version::Http11;
        let keep = chunked && self.keep_alive(head, &response);
        let framing = if chunked {
            BodyFraming::Chunked
        } else {
            BodyFraming::UntilClose
        };
        let conn = self.conn_header(head, keep);
        self.queue_head(response.status, Headers::of(&response), framing, conn);
        if head.method == Method::Head {
            return Next::after(keep);
        }
        // The head goes out at once: event-stream clients wait for it.
        if self.flush().await.is_err() {
            return Next::Close;
        }
        let max_pending = self.shared.prepared.head.max_head_bytes;
        loop {
            // Pipelined bytes are kept for later, up to one head's worth.
            let can_read = self.rbuf.len() - self.start < max_pending;
            if can_read {
                self.make_room();
            }
            tokio::select! {
                chunk = rx.recv() => match chunk {
                    Some(chunk) => {
                        // Small chunks are batched into one write; a large
                        // one goes out from its own (possibly shared) buffer:
                        // copying it per connection would multiply it by
                        // every slow reader it is sent to.
                        let mut next = Some(chunk);
                        while let Some(c) = next.take() {
                            if c.len() >= STREAM_BATCH_BYTES {
                                if chunked {
                                    write_chunk_size(&mut self.wbuf, c.len());
                                }
                                self.pending_body = Some(c);
                                break;
                            }
                            self.queue_chunk(&c, chunked);
                            if self.wbuf.len() < STREAM_BATCH_BYTES {
                                next = rx.try_recv();
                            }
                        }
                        let large = self.pending_body.is_some();
                        if self.flush().await.is_err() {
                            return Next::Close;
                        }
                        if large && chunked {
                            self.wbuf.extend_from_slice(b"\r\n");
                        }
                    }
                    None => {
                        if chunked {
                            self.wbuf.extend_from_slice(LAST_CHUNK);
                        }
                        return Next::after(keep);
                    }
                },
                read = self.stream.read_buf(&mut self.rbuf), if can_read => match self.counted_in(read) {
                    // The client closed: dropping `rx` tells the producer.
                    Ok(0) | Err(_) => return Next::Close,
                    Ok(_) => {}
                },
            }
        }
    }

    pub(super) fn queue_chunk(&mut self, chunk: &[u8], chunked: bool) {
        if chunk.is_empty() {
            return;
        }
        if chunked {
            write_chunk(&mut self.wbuf, chunk);
        } else {
            self.wbuf.extend_from_slice(chunk);
        }
    }

    /// Writes everything queued. A write that makes no progress for the write
    /// timeout fails the connection.
    pub(super) async fn flush(&mut self) -> io::Result<()> {
        let limit = self.shared.config.write_timeout;
        self.shared.stats.bytes_out.fetch_add(
            (self.wbuf.len() + self.pending_body.as_ref().map_or(0, Bytes::len)) as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        let backlog = &self.shared.backlog;
        let mut result = write_all_progress(&mut self.stream, &self.wbuf, limit, backlog).await;
        if let (Ok(()), Some(body)) = (&result, self.pending_body.take()) {
            result = write_all_progress(&mut self.stream, &body, limit, backlog).await;
        }
        if result.is_ok() {
            result = flush_stream(&mut self.stream, limit).await;
        }
        self.pending_body = None;
        self.wbuf.clear();
        if self.wbuf.capacity() > RETAINED_BUFFER {
            self.wbuf = Vec::new();
        }
        result
    }

    /// Half-closes, then reads and drops what the client still sends for a
    /// short while, so that a client still sending a body we refused reads
    /// our answer instead of a connection reset.
    pub(super) async fn linger(&mut self) {
        if self.stream.shutdown().await.is_err() {
            return;
        }
        let deadline = Instant::now() + LINGER;
        let mut sink = [0u8; 1024];
        while let Ok(Ok(n)) = timeout_at(deadline, self.stream.read(&mut sink)).await {
            if n == 0 {
                break;
            }
        }
    }
}

/// Flushes what the stream itself still holds. A TLS stream takes the
/// last bytes of a write into its own buffer and reports them written while
/// the socket is full; they would wait there for the next write, and a
/// keep-alive client for the end of its answer. A plain socket holds
/// nothing: its flush is done at once.
async fn flush_stream<S: Io>(stream: &mut S, limit: std::time::Duration) -> io::Result<()> {
    match stream.flush().now_or_never() {
        Some(flushed) => flushed,
        None => timeout(limit, stream.flush())
            .await
            .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into())),
    }
}

/// Writes `bytes` whole. A write that makes no progress for `limit` fails;
/// so does one cut from the `backlog` of answers waiting for clients that
/// do not read, which it joins while it waits, from [`COUNTED_FROM`] bytes
/// on (it counts them all: they stay in memory until the last is written).
async fn write_all_progress<S: Io>(
    stream: &mut S,
    mut bytes: &[u8],
    limit: std::time::Duration,
    backlog: &std::sync::Arc<Backlog>,
) -> io::Result<()> {
    let whole = bytes.len();
    let mut stalled: Option<Stalled> = None;
    while !bytes.is_empty() {
        let piece = &bytes[..bytes.len().min(IO_PIECE)];
        // Most writes go through at once: the timeout (a clock read and a
        // timer) is made only for one that has to wait.
        let written = match stream.write(piece).now_or_never() {
            Some(written) => Ok(written),
            None if whole >= COUNTED_FROM => {
                let stalled = stalled.get_or_insert_with(|| Stalled::new(backlog));
                stalled.wait(whole, false);
                tokio::select! {
                    written = timeout(limit, stream.write(piece)) => written,
                    () = stalled.cut() => return Err(io::Error::other(
                        "answers waiting for clients passed the backlog bound; \
                         this client had taken nothing for the longest",
                    )),
                }
            }
            None => timeout(limit, stream.write(piece)).await,
        };
        match written {
            Ok(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(Ok(n)) => {
                bytes = &bytes[n..];
                if let Some(stalled) = &mut stalled {
                    // The client took some: it is the newest waiter again.
                    stalled.wait(whole, true);
                }
                if n == IO_PIECE && !bytes.is_empty() {
                    crate::util::give_way().await;
                }
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(io::ErrorKind::TimedOut.into()),
        }
    }
    Ok(())
}
