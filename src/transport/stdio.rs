//! MCP over stdio: one JSON-RPC message per line on stdin and stdout.
//!
//! Nothing but MCP messages is written to the output; logs belong on
//! stderr. Requests run concurrently (a long tool call does not hold up a
//! `ping`, and a `notifications/cancelled` reaches the call it names);
//! every answer is written whole, one line each, by a single writer. At end
//! of input the calls in flight finish, their answers are written, and the
//! function returns.

use std::io;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use crate::jsonrpc::write::write_error;
use crate::jsonrpc::{INVALID_REQUEST, RpcError};
use crate::mcp::{McpServer, Peer, Session};
use crate::registry::{Registry, Transport};

/// Longest accepted line. Default: 4 MiB.
pub(crate) const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;
/// Messages queued for the writer before senders wait. Default: 256.
const OUTBOUND_QUEUE: usize = 256;

/// The process's standard input, read on a thread of its own.
///
/// `tokio::io::stdin()` reads on the runtime's blocking pool, and a
/// runtime cannot shut down while one of those reads waits for a line: a
/// host serving stdio had to leave with `process::exit`. This reader's
/// thread is detached instead, so the runtime (and `main`) can end while
/// the thread still waits; the thread ends with the process.
pub fn stdin() -> ThreadStdin {
    ThreadStdin::spawn(std::io::stdin())
}

/// An [`AsyncRead`] over a blocking reader that a detached thread drains;
/// see [`stdin`].
pub struct ThreadStdin {
    parts: tokio::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    pending: Vec<u8>,
    offset: usize,
    done: bool,
}

impl std::fmt::Debug for ThreadStdin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadStdin").finish_non_exhaustive()
    }
}

/// Bytes one read of the thread takes at most: 64 KiB.
const THREAD_READ_BYTES: usize = 64 * 1024;

impl ThreadStdin {
    /// Drains `source` on a new detached thread. At most a few reads wait in
    /// the channel: a client that writes faster than we read is held back.
    pub fn spawn<S: io::Read + Send + 'static>(mut source: S) -> ThreadStdin {
        let (tx, parts) = tokio::sync::mpsc::channel(4);
        let spawned = std::thread::Builder::new()
            .name("mcp-stdin".into())
            .spawn(move || {
                let mut buf = vec![0u8; THREAD_READ_BYTES];
                loop {
                    let part = match source.read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) => Ok(buf[..n].to_vec()),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => Err(e),
                    };
                    let failed = part.is_err();
                    if tx.blocking_send(part).is_err() || failed {
                        return;
                    }
                }
            });
        ThreadStdin {
            parts,
            pending: Vec::new(),
            offset: 0,
            // Without a thread there is nothing to read: end of input.
            done: spawned.is_err(),
        }
    }
}

impl AsyncRead for ThreadStdin {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        out: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        use std::task::Poll;
        let this = &mut *self;
        while this.offset >= this.pending.len() {
            if this.done {
                return Poll::Ready(Ok(()));
            }
            match this.parts.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => this.done = true,
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Some(Ok(part))) => {
                    this.pending = part;
                    this.offset = 0;
                }
            }
        }
        let n = out.remaining().min(this.pending.len() - this.offset);
        out.put_slice(&this.pending[this.offset..this.offset + n]);
        this.offset += n;
        Poll::Ready(Ok(()))
    }
}

/// Serves one client over `input` and `output` until `input` ends.
pub async fn serve<R, W>(server: McpServer, input: R, output: W) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    serve_with_registry(server, input, output, &Registry::new()).await
}

/// [`serve`], with the session registered in `registry` while it lasts.
pub(crate) async fn serve_with_registry<R, W>(
    server: McpServer,
    input: R,
    output: W,
    registry: &Arc<Registry>,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    serve_until(server, input, output, registry, std::future::pending()).await
}

/// [`serve_with_registry`], stopping to read when `stop` resolves (a
/// shutdown signal): calls already read still run to their end and their
/// answers are written before it returns. To bound that wait, end them with
/// [`McpServer::abort_calls`].
pub(crate) async fn serve_until<R, W>(
    server: McpServer,
    input: R,
    output: W,
    registry: &Arc<Registry>,
    stop: impl std::future::Future<Output = ()>,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    tokio::pin!(stop);
    let (peer, outbound) = Peer::channel(OUTBOUND_QUEUE);
    let writer = tokio::spawn(write_lines(outbound, output));
    let session = Arc::new(Session::new(server.clone(), Some(peer.clone())));
    session.set_transport("stdio");
    let _registration = registry.register(Transport::Stdio);
    let forwarder = tokio::spawn(super::forward_updates(
        server,
        Arc::clone(&session),
        peer.clone(),
    ));
    let mut input = BufReader::new(input);
    let mut line = Vec::new();
    let mut out = Vec::new();
    let mut calls = super::Calls::default();
    loop {
        line.clear();
        let n = tokio::select! {
            read = read_line(&mut input, &mut line) => read?,
            // A line half read is dropped: it was not accepted.
            () = &mut stop => break,
        };
        if n == 0 {
            break;
        }
        // Reap finished calls so the set does not grow without bound.
        calls.reap();
        if line.len() > MAX_LINE_BYTES {
            let e = RpcError::new(
                INVALID_REQUEST,
                format!("invalid request: message longer than {MAX_LINE_BYTES} bytes"),
            );
            let mut msg = Vec::new();
            write_error(&mut msg, None, &e);
            if !peer.send(msg).await {
                break;
            }
            continue;
        }
        let message = trim_line(&line);
        if message.is_empty() {
            continue;
        }
        super::dispatch_to_peer(&session, &peer, message, &mut out, &mut calls).await;
        if !out.is_empty() {
            let answer = std::mem::replace(&mut out, Vec::with_capacity(256));
            if !peer.send(answer).await {
                break;
            }
        }
    }
    while calls.join_next().await.is_some() {}
    forwarder.abort();
    let _ = forwarder.await;
    drop(session);
    drop(peer);
    writer.await.map_err(io::Error::other)?
}

/// Writes each queued message as one line, flushing once the queue is
/// drained (fewer syscalls under load).
async fn write_lines<W>(mut outbound: crate::mcp::PeerReceiver, mut output: W) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    while let Some(mut message) = outbound.recv().await {
        message.push(b'\n');
        output.write_all(&message).await?;
        while let Some(mut more) = outbound.try_recv() {
            more.push(b'\n');
            output.write_all(&more).await?;
        }
        output.flush().await?;
    }
    Ok(())
}

/// Reads up to and including the next newline, keeping at most
/// `MAX_LINE_BYTES + 1` bytes of an over-long line (the rest is dropped).
async fn read_line<R: AsyncRead + Unpin>(
    input: &mut BufReader<R>,
    line: &mut Vec<u8>,
) -> io::Result<usize> {
    let mut total = 0;
    loop {
        let available = input.fill_buf().await?;
        if available.is_empty() {
            return Ok(total);
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let room = (MAX_LINE_BYTES + 1).saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = chunk.len();
        input.consume(used);
        total += used;
        if done {
            return Ok(total);
        }
    }
}

fn trim_line(line: &[u8]) -> &[u8] {
    let end = line
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    let start = line[..end]
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(end);
    &line[start..end]
}
