//! A socket's WebSocket, awake or dozing.
//!
//! An awake socket reads and writes its frames through tungstenite's side
//! (its read buffer and tokio-tungstenite's two waker proxies, about 900
//! bytes of heap, and its state, kept inline in the socket's). A
//! socket whose client has been silent for a while, with no call running,
//! dozes: tungstenite's side is dropped and only the socket itself, with
//! its frame boundaries followed ([`Watched`]), is kept. The client's next
//! bytes wake it: they are read into a buffer on the stack and handed to
//! a side built afresh, which reads on from there as if it had read them
//! itself. A message the server sends wakes it too. tungstenite's side is
//! only dropped when it holds nothing: no unread byte, no part of a
//! message, nothing of its own still to write.
//!
//! The same drop, right after a frame past [`crate::ws::watch`]'s large
//! frame size, gives back the read buffer that frame grew (tungstenite
//! never shrinks it).

use std::task::{Context, Poll};

use futures_util::{FutureExt as _, SinkExt as _, StreamExt as _};
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::{Ws, WsConfig, ws_config};
use crate::http::BoxedIo;
use crate::ws::watch::Watched;

/// A socket's WebSocket: tungstenite's side built, or only the socket.
/// Not boxed: a box would make a dozing socket's state smaller by the
/// stream's room, but cost an awake one an allocation of that size more,
/// and many sockets opened at once are all awake at first.
#[allow(clippy::large_enum_variant)]
pub(super) enum Link {
    /// Frames go through tungstenite.
    Awake(Ws),
    /// tungstenite's side dropped until the client's next bytes or the
    /// server's next message.
    Dozing(Watched<BoxedIo>),
    /// Neither: only seen if building tungstenite's side was cut short,
    /// which it never is (it takes one poll); the socket is then gone.
    Lost,
}

/// What a socket's client sent next.
pub(super) enum Input {
    /// A frame (or the end, or a read error), through tungstenite.
    Frame(Option<Result<Message, WsError>>),
    /// A dozing socket's first bytes (empty at the end of the stream), or
    /// the error of its read.
    Woke(std::io::Result<Vec<u8>>),
}

impl Link {
    /// A link awake over `ws`.
    pub(super) fn new(ws: Ws) -> Link {
        Link::Awake(ws)
    }

    /// Whether tungstenite's side is built and a large frame grew its read
    /// buffer, now holding nothing unread ([`Watched::rebuild_due`]).
    pub(super) fn rebuild_due(&self) -> bool {
        matches!(self, Link::Awake(ws) if ws.get_ref().rebuild_due())
    }

    /// Whether tungstenite's side is built.
    pub(super) fn is_awake(&self) -> bool {
        matches!(self, Link::Awake(_))
    }

    /// The client's next frame, or a dozing socket's first bytes.
    pub(super) fn poll_input(&mut self, cx: &mut Context<'_>) -> Poll<Input> {
        match self {
            Link::Awake(ws) => ws.poll_next_unpin(cx).map(Input::Frame),
            Link::Dozing(watched) => watched.poll_wake(cx).map(Input::Woke),
            Link::Lost => Poll::Ready(Input::Woke(Ok(Vec::new()))),
        }
    }

    /// tungstenite's side, built first if the socket dozes (reading
    /// `part` first, the client's bytes read while it dozed); `None` if
    /// the link was lost.
    ///
    /// Not an `async fn`: its state would be kept in every socket's. The
    /// build is a future, but one that is ready at its first poll (it only
    /// wraps the socket), polled here with a no-op waker that the stream's
    /// first read or write replaces.
    pub(super) fn wake(&mut self, part: Vec<u8>, cfg: &WsConfig) -> Option<&mut Ws> {
        if let Link::Dozing(_) = self
            && let Link::Dozing(watched) = std::mem::replace(self, Link::Lost)
        {
            let built = if part.is_empty() {
                WebSocketStream::from_raw_socket(watched, Role::Server, Some(ws_config(cfg)))
                    .now_or_never()
            } else {
                WebSocketStream::from_partially_read(
                    watched,
                    part,
                    Role::Server,
                    Some(ws_config(cfg)),
                )
                .now_or_never()
            };
            if let Some(ws) = built {
                *self = Link::Awake(ws);
            }
        }
        match self {
            Link::Awake(ws) => Some(ws),
            Link::Dozing(_) | Link::Lost => None,
        }
    }

    /// tungstenite's side, built first if the socket dozes.
    pub(super) fn awake(&mut self, cfg: &WsConfig) -> Option<&mut Ws> {
        self.wake(Vec::new(), cfg)
    }

    /// Drops tungstenite's side if it holds nothing: no unread byte, no
    /// part of a message, and what it had to write (a pong, say) written
    /// within the send timeout. Otherwise the socket stays awake, but
    /// gives back what it held of the large-message budget, so that the
    /// drop is not tried again at every turn (until its next large frame;
    /// a client that does not read is closed by the next send).
    pub(super) async fn doze(&mut self, cfg: &WsConfig) {
        let Link::Awake(ws) = self else {
            return;
        };
        if !ws.get_ref().at_rest() {
            return;
        }
        if !matches!(timeout(cfg.send_timeout, ws.flush()).await, Ok(Ok(()))) {
            ws.get_mut().rebuilt();
            return;
        }
        if let Link::Awake(ws) = std::mem::replace(self, Link::Lost) {
            let mut watched = ws.into_inner();
            watched.rebuilt();
            *self = Link::Dozing(watched);
        }
    }

    /// tungstenite's side if it is built.
    pub(super) fn into_ws(self) -> Option<Ws> {
        match self {
            Link::Awake(ws) => Some(ws),
            Link::Dozing(_) | Link::Lost => None,
        }
    }

    /// tungstenite's side for the close, built first if the socket dozes.
    pub(super) fn into_awake(mut self, cfg: &WsConfig) -> Option<Ws> {
        self.awake(cfg)?;
        self.into_ws()
    }
}
