//! Where a WebSocket's frames end, seen from the bytes read off the socket.
//!
//! tungstenite grows its read buffer to hold a whole frame and never gives
//! the room back: a socket that once received a 4 MiB message keeps 4 MiB
//! for its life, and a client with many idle sockets could make the server
//! keep that many times 4 MiB. [`Watched`] wraps the socket tungstenite
//! reads from and follows the frame headers in the bytes it hands over, so
//! the session loop knows when tungstenite can hold nothing unread (every
//! byte read is part of a whole frame, no message is half received, and
//! tungstenite's last read found nothing). Then, after a large frame, the
//! loop builds tungstenite's side afresh over the same socket
//! ([`Watched::rebuild_due`]), dropping the large buffer.
//!
//! The same headers bound what all sockets hold at once: the largest frame
//! or message a socket has had since its last rebuild (what tungstenite
//! keeps room for) is taken from a shared byte budget (the server's, which
//! its large request bodies count against too) as its header arrives, and given back at the rebuild or when the
//! socket ends. A header that would pass the budget fails the read with
//! [`OverBudget`], before its payload is read.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::budget::{ByteBudget, Held};

/// A frame payload past this many bytes makes tungstenite's read buffer
/// worth dropping at the next message boundary: 8 KiB.
pub const LARGE_FRAME_BYTES: u64 = 8 * 1024;

/// Frames and messages up to this many bytes take nothing from the
/// shared budget: 64 KiB.
pub const LARGE_MESSAGE_BYTES: u64 = 64 * 1024;

/// The error a read fails with when a frame or message would pass the
/// shared budget for what all sockets (and request bodies) hold at once.
#[derive(Debug)]
pub struct OverBudget;

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("too many large WebSocket messages at once")
    }
}

impl std::error::Error for OverBudget {}

/// A socket whose incoming frame boundaries are followed.
#[derive(Debug)]
pub struct Watched<S> {
    inner: S,
    frames: Frames,
    /// Whether the last read returned `Pending` (nothing to read).
    last_read_pending: bool,
    /// What this socket holds of the shared budget.
    held: Held,
    /// The endpoint's message limit: a frame or message past it is
    /// tungstenite's to refuse (1009), not the budget's.
    limit: u64,
}

impl<S> Watched<S> {
    /// Wraps `inner`; `read_ahead` are bytes already read from it, handed
    /// to tungstenite before any read; large frames and messages up to
    /// `limit` bytes take their room from `budget`.
    pub fn new(
        inner: S,
        read_ahead: &[u8],
        budget: &std::sync::Arc<ByteBudget>,
        limit: usize,
    ) -> Watched<S> {
        let mut frames = Frames::default();
        frames.feed(read_ahead);
        Watched {
            inner,
            frames,
            last_read_pending: false,
            held: Held::none(budget),
            limit: limit as u64,
        }
    }

    /// Takes room for the largest frame or message since the last rebuild;
    /// false when the budget has none. One past the message limit takes
    /// none: tungstenite refuses it (1009) before reading its payload.
    fn hold_largest(&mut self) -> bool {
        if self.frames.largest > self.limit {
            return true;
        }
        let largest = usize::try_from(self.frames.largest).unwrap_or(usize::MAX);
        largest <= LARGE_MESSAGE_BYTES as usize
            || largest <= self.held.len()
            || self.held.grow(largest - self.held.len())
    }

    /// Whether tungstenite's side should be built afresh now: a frame past
    /// [`LARGE_FRAME_BYTES`] came since the last build, and tungstenite
    /// can hold no unread byte (every byte read is part of a whole frame,
    /// no data message is half received, and the last read found nothing,
    /// so tungstenite had no whole frame left to take).
    pub fn rebuild_due(&self) -> bool {
        self.frames.largest > LARGE_FRAME_BYTES && self.at_rest()
    }

    /// Whether tungstenite can hold no unread byte and no part of a
    /// message: every byte read is part of a whole frame, no data message
    /// is half received, and its last read found nothing (so it had no
    /// whole frame left to take). Only then may its side be dropped.
    pub fn at_rest(&self) -> bool {
        self.last_read_pending && self.frames.at_message_boundary()
    }

    /// Notes that tungstenite's side was built afresh: what the socket
    /// held of the budget is given back.
    pub fn rebuilt(&mut self) {
        self.frames.largest = 0;
        self.held.release();
    }
}

/// The most bytes [`Watched::poll_wake`] reads at once: what it reads is
/// copied into the new tungstenite side's read buffer, and the rest is
/// read from there as usual.
const WAKE_READ_BYTES: usize = 1024;

impl<S: AsyncRead + Unpin> Watched<S> {
    /// Waits for the client's next bytes while no tungstenite side reads
    /// the socket (a dozing socket), without a buffer of its own while it
    /// waits: the bytes come in a buffer on the stack and are returned as
    /// their own (empty at the end of the stream), followed as if handed
    /// to tungstenite, to be given to the side built next. A frame over
    /// the budget fails as [`Watched`]'s reads do.
    pub fn poll_wake(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<Vec<u8>>> {
        let mut room = [0u8; WAKE_READ_BYTES];
        let mut buf = ReadBuf::new(&mut room);
        match Pin::new(&mut *self).poll_read(cx, &mut buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(done) => Poll::Ready(done.map(|()| buf.filled().to_vec())),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let me = &mut *self;
        match Pin::new(&mut me.inner).poll_read(cx, buf) {
            Poll::Pending => {
                me.last_read_pending = true;
                Poll::Pending
            }
            Poll::Ready(done) => {
                me.last_read_pending = false;
                if done.is_ok() {
                    me.frames.feed(&buf.filled()[before..]);
                    if !me.hold_largest() {
                        return Poll::Ready(Err(std::io::Error::other(OverBudget)));
                    }
                }
                Poll::Ready(done)
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The frame boundaries in a stream of client bytes (RFC 6455 5.2): the
/// header being read, the payload bytes still to come.
#[derive(Debug, Default)]
struct Frames {
    /// The header so far.
    header: [u8; 14],
    /// Header bytes so far.
    have: u8,
    /// Payload bytes of the current frame still to come.
    payload_left: u64,
    /// A data message whose last frame has not come (a frame without FIN).
    in_message: bool,
    /// Payload bytes of the current data message so far.
    message_len: u64,
    /// The largest frame payload or message seen since the last rebuild.
    largest: u64,
}

impl Frames {
    /// Follows `bytes`, the next ones from the client.
    fn feed(&mut self, mut bytes: &[u8]) {
        while let Some((&first, rest)) = bytes.split_first() {
            if self.payload_left > 0 {
                let n = self.payload_left.min(bytes.len() as u64);
                self.payload_left -= n;
                bytes = &bytes[n as usize..];
                continue;
            }
            self.header[usize::from(self.have)] = first;
            self.have += 1;
            bytes = rest;
            if self.have >= 2 && self.have == self.header_len() {
                self.end_header();
            }
        }
    }

    /// The whole header's length, known from its second byte on.
    fn header_len(&self) -> u8 {
        let length = match self.header[1] & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if self.header[1] & 0x80 != 0 { 4 } else { 0 };
        2 + length + mask
    }

    /// A whole header read: its payload follows.
    fn end_header(&mut self) {
        let length = match self.header[1] & 0x7f {
            126 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
            127 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&self.header[2..10]);
                u64::from_be_bytes(b)
            }
            n => u64::from(n),
        };
        let fin = self.header[0] & 0x80 != 0;
        // Opcodes below 8 carry data (continuation, text, binary, and the
        // reserved ones tungstenite refuses); control frames come between
        // a message's frames without ending it.
        if self.header[0] & 0x0f < 8 {
            self.message_len = if self.in_message {
                self.message_len.saturating_add(length)
            } else {
                length
            };
            self.in_message = !fin;
        }
        self.largest = self.largest.max(length).max(self.message_len);
        self.payload_left = length;
        self.have = 0;
    }

    /// Whether the bytes so far are whole frames and whole messages.
    fn at_message_boundary(&self) -> bool {
        self.have == 0 && self.payload_left == 0 && !self.in_message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client frame (masked) with `payload` bytes of payload.
    fn frame(fin: bool, opcode: u8, payload: usize) -> Vec<u8> {
        let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload {
            0..=125 => f.push(0x80 | payload as u8),
            126..=0xffff => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(payload as u16).to_be_bytes());
            }
            _ => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(payload as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&[1, 2, 3, 4]);
        f.extend(std::iter::repeat_n(b'x', payload));
        f
    }

    #[test]
    fn boundaries_are_found_whatever_the_pieces() {
        let mut stream = Vec::new();
        stream.extend(frame(true, 1, 5));
        stream.extend(frame(false, 1, 300));
        stream.extend(frame(true, 9, 4)); // a ping inside a message
        stream.extend(frame(true, 0, 70_000));
        stream.extend(frame(true, 1, 0));
        // Where a prefix of the stream ends on a message boundary.
        let ends = {
            let mut ends = vec![0];
            let mut at = 0;
            for (len, boundary) in [
                (frame(true, 1, 5).len(), true),
                (frame(false, 1, 300).len(), false),
                (frame(true, 9, 4).len(), false),
                (frame(true, 0, 70_000).len(), true),
                (frame(true, 1, 0).len(), true),
            ] {
                at += len;
                if boundary {
                    ends.push(at);
                }
            }
            ends
        };
        for piece in [1, 2, 3, 7, 13, 100, 4096, stream.len()] {
            let mut frames = Frames::default();
            let mut fed = 0;
            for chunk in stream.chunks(piece) {
                frames.feed(chunk);
                fed += chunk.len();
                assert_eq!(
                    frames.at_message_boundary(),
                    ends.contains(&fed),
                    "pieces of {piece}, after {fed} bytes"
                );
            }
            // The message of two frames, 300 and 70,000 bytes.
            assert_eq!(frames.largest, 70_300);
        }
    }

    /// The header alone of [`frame`].
    fn head_of(fin: bool, opcode: u8, payload: usize) -> Vec<u8> {
        let mut f = frame(fin, opcode, payload);
        f.truncate(f.len() - payload);
        f
    }

    #[test]
    fn large_frames_and_messages_hold_room_until_the_rebuild() {
        let budget = std::sync::Arc::new(ByteBudget::new(300_000));
        let mut a = Watched::new((), &[], &budget, 1 << 20);
        a.frames.feed(&head_of(true, 1, 200_000));
        assert!(a.hold_largest(), "one large frame");
        let mut b = Watched::new((), &[], &budget, 1 << 20);
        b.frames.feed(&frame(false, 1, 60_000));
        assert!(b.hold_largest(), "a small frame takes nothing");
        b.frames.feed(&head_of(true, 0, 60_000));
        assert!(!b.hold_largest(), "a message of 120,000 beside 200,000");
        a.rebuilt();
        assert!(b.hold_largest(), "room given back at the rebuild");
        drop(b);
        let mut c = Watched::new((), &[], &budget, 1 << 20);
        c.frames.feed(&head_of(true, 2, 300_000));
        assert!(c.hold_largest(), "room given back when a socket ends");
        let mut d = Watched::new((), &[], &budget, 1 << 20);
        d.frames.feed(&head_of(true, 1, 2 << 20));
        assert!(
            d.hold_largest(),
            "past the message limit: tungstenite's to refuse"
        );
        assert_eq!(d.held.len(), 0);
    }

    #[test]
    fn a_rebuild_is_due_only_after_a_large_frame_at_a_boundary_with_nothing_to_read() {
        let budget = std::sync::Arc::new(ByteBudget::new(1 << 20));
        let mut watched = Watched::new((), &frame(true, 1, 100), &budget, 1 << 20);
        watched.last_read_pending = true;
        assert!(!watched.rebuild_due(), "no large frame yet");
        watched.frames.feed(&frame(true, 1, 20_000)[..1_000]);
        assert!(!watched.rebuild_due(), "inside a frame");
        watched.frames.feed(&frame(true, 1, 20_000)[1_000..]);
        assert!(watched.rebuild_due());
        watched.last_read_pending = false;
        assert!(!watched.rebuild_due(), "tungstenite may hold a whole frame");
        watched.last_read_pending = true;
        watched.rebuilt();
        assert!(!watched.rebuild_due(), "rebuilt");
    }
}
