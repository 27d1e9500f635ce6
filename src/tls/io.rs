//! A TLS connection whose handshake runs when it is first read or written,
//! on the connection's task.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::server::TlsStream;

/// A server-side TLS stream over `S`: handshaking until the first read or
/// write completes it, then the TLS session.
pub struct TlsIo<S> {
    state: State<S>,
}

enum State<S> {
    Handshaking(Box<tokio_rustls::Accept<S>>),
    Open(Box<TlsStream<S>>),
    Failed,
}

impl<S> std::fmt::Debug for TlsIo<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Handshaking(_) => "handshaking",
            State::Open(_) => "open",
            State::Failed => "failed",
        };
        f.debug_struct("TlsIo").field("state", &state).finish()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsIo<S> {
    /// A connection still to handshake.
    pub(super) fn new(accept: tokio_rustls::Accept<S>) -> TlsIo<S> {
        TlsIo {
            state: State::Handshaking(Box::new(accept)),
        }
    }

    /// The TLS session once the handshake is done.
    fn poll_open(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<&mut TlsStream<S>>> {
        if let State::Handshaking(accept) = &mut self.state {
            match ready!(Pin::new(accept.as_mut()).poll(cx)) {
                Ok(stream) => self.state = State::Open(Box::new(stream)),
                Err(e) => {
                    self.state = State::Failed;
                    return Poll::Ready(Err(e));
                }
            }
        }
        match &mut self.state {
            State::Open(stream) => Poll::Ready(Ok(stream)),
            _ => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the TLS handshake failed",
            ))),
        }
    }

    /// The ALPN protocol the client and server agreed on, once open.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        match &self.state {
            State::Open(stream) => stream.get_ref().1.alpn_protocol(),
            _ => None,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let stream = ready!(self.get_mut().poll_open(cx))?;
        Pin::new(stream).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let stream = ready!(self.get_mut().poll_open(cx))?;
        Pin::new(stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let stream = ready!(self.get_mut().poll_open(cx))?;
        Pin::new(stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().state {
            State::Open(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
            _ => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().state {
            State::Open(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
            // Nothing was said yet: closing is dropping.
            _ => Poll::Ready(Ok(())),
        }
    }
}
