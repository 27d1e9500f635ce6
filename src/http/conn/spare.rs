//! Buffers an idle connection gives back: a keep-alive connection waiting
//! for its next request holds no read or write buffer. It leaves them in
//! its worker thread's small cache when a read finds nothing to read, and
//! takes one again (from that cache, or new) when bytes arrive, so idle
//! connections cost their task and socket, not buffers, and a busy
//! connection still allocates nothing per request.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::AsyncReadExt as _;

use super::{INITIAL_READ_BUFFER, RETAINED_BUFFER};
use crate::http::io::Io;

/// Most bytes of buffer capacity one thread's cache keeps. Default:
/// 256 KiB (256 idle buffers of 1 KiB, or four of the largest kept).
const CACHE_BYTES: usize = 256 * 1024;

/// One thread's spare buffers and their total capacity.
struct Cache {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
}

thread_local! {
    static CACHE: RefCell<Cache> = const {
        RefCell::new(Cache { buffers: Vec::new(), bytes: 0 })
    };
}

/// An empty buffer: a spare one of this thread, or a new one of the
/// initial size.
pub(super) fn take() -> Vec<u8> {
    let mut buffer = Vec::new();
    take_into(&mut [&mut buffer]);
    buffer
}

/// Gives each of `buffers` that has no capacity a spare of this thread (or
/// a new one of the initial size), with one look at the cache for all.
fn take_into(buffers: &mut [&mut Vec<u8>]) {
    let _ = CACHE.try_with(|cache| {
        let mut cache = cache.borrow_mut();
        for buffer in buffers.iter_mut().filter(|b| b.capacity() == 0) {
            let Some(spare) = cache.buffers.pop() else {
                break;
            };
            cache.bytes -= spare.capacity();
            **buffer = spare;
        }
    });
    for buffer in buffers.iter_mut().filter(|b| b.capacity() == 0) {
        **buffer = Vec::with_capacity(INITIAL_READ_BUFFER);
    }
}

/// Leaves `buffer` (emptied) in this thread's cache, or frees it when it is
/// of an unusual size or the cache is full.
pub(super) fn give(mut buffer: Vec<u8>) {
    give_from(&mut [&mut buffer]);
}

/// [`give`] for each of `buffers` (left without capacity), with one look
/// at the cache for all.
fn give_from(buffers: &mut [&mut Vec<u8>]) {
    let _ = CACHE.try_with(|cache| {
        let mut cache = cache.borrow_mut();
        for buffer in buffers.iter_mut() {
            let capacity = buffer.capacity();
            if (INITIAL_READ_BUFFER..=RETAINED_BUFFER).contains(&capacity)
                && cache.bytes + capacity <= CACHE_BYTES
            {
                let mut spare = std::mem::take(&mut **buffer);
                spare.clear();
                cache.bytes += capacity;
                cache.buffers.push(spare);
            }
        }
    });
    // What the cache did not keep is freed.
    for buffer in buffers.iter_mut() {
        **buffer = Vec::new();
    }
}

/// Reads into `buf`, which holds no unread bytes. When the read finds
/// nothing to read, `buf` and `out` (the connection's write buffer, empty
/// once flushed) go to the thread's spares, and the next attempt takes two
/// back: only a connection with bytes to handle holds buffers. A read that
/// finds bytes at once touches no cache.
pub(super) struct ReadFresh<'a, S> {
    pub(super) stream: &'a mut S,
    pub(super) buf: &'a mut Vec<u8>,
    pub(super) out: &'a mut Vec<u8>,
}

impl<S: Io> Future for ReadFresh<'_, S> {
    type Output = io::Result<usize>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.buf.capacity() == 0 {
            take_into(&mut [&mut *this.buf, &mut *this.out]);
        }
        let read = std::pin::pin!(this.stream.read_buf(this.buf)).poll(cx);
        if read.is_pending() && this.buf.is_empty() && this.out.is_empty() {
            give_from(&mut [&mut *this.buf, &mut *this.out]);
        }
        read
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt as _;

    #[test]
    fn the_cache_keeps_usual_buffers_up_to_its_byte_bound() {
        // A fresh thread: a cache of its own.
        std::thread::spawn(|| {
            let first = take();
            assert_eq!(first.capacity(), INITIAL_READ_BUFFER);
            let at = first.as_ptr();
            give(first);
            // The same allocation comes back, empty.
            let again = take();
            assert_eq!(again.as_ptr(), at);
            assert!(again.is_empty());
            // Odd sizes are freed, not kept.
            give(Vec::with_capacity(RETAINED_BUFFER + 1));
            give(Vec::with_capacity(16));
            CACHE.with(|c| assert_eq!(c.borrow().buffers.len(), 0));
            // The byte bound holds.
            for _ in 0..(CACHE_BYTES / RETAINED_BUFFER + 3) {
                give(Vec::with_capacity(RETAINED_BUFFER));
            }
            CACHE.with(|c| {
                let c = c.borrow();
                assert_eq!(c.buffers.len(), CACHE_BYTES / RETAINED_BUFFER);
                assert_eq!(c.bytes, CACHE_BYTES);
            });
        })
        .join()
        .expect("the cache thread");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_read_that_waits_holds_no_buffer() {
        let (mut client, mut server) = tokio::io::duplex(64);
        let (mut buf, mut out) = (Vec::new(), Vec::with_capacity(INITIAL_READ_BUFFER));
        {
            let read = std::pin::pin!(ReadFresh {
                stream: &mut server,
                buf: &mut buf,
                out: &mut out,
            });
            // Nothing sent yet: pending, and both buffers went back.
            assert!(futures_util::poll!(read).is_pending());
        }
        assert_eq!((buf.capacity(), out.capacity()), (0, 0));
        client
            .write_all(b"GET / HTTP/1.1\r\n")
            .await
            .expect("write");
        let n = read(&mut server, &mut buf, &mut out).await;
        assert_eq!(&buf[..n], b"GET / HTTP/1.1\r\n");
        // Both taken back for the request.
        assert!(buf.capacity() >= INITIAL_READ_BUFFER);
        assert!(out.capacity() >= INITIAL_READ_BUFFER);
        // The closed end reads 0, with the buffer kept empty.
        drop(client);
        buf.clear();
        assert_eq!(read(&mut server, &mut buf, &mut out).await, 0);
    }

    /// One whole [`ReadFresh`]: how many bytes it read.
    async fn read(
        stream: &mut tokio::io::DuplexStream,
        buf: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> usize {
        ReadFresh { stream, buf, out }.await.expect("read")
    }
}
