//! Leaf utilities every layer may use, and that use no other module of the
//! crate: dates, constant-time comparison, the turn a large transfer gives
//! between its pieces, and the SQL guard (with its identifier quoting),
//! which both the tools and the warehouses need.

pub(crate) mod addr;
pub(crate) mod date;
pub(crate) mod offload;
pub mod sql_guard;

/// A boxed future that can move between threads: the one the crate's
/// trait methods and handlers return (`'static` where nothing is borrowed).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Compares without an early exit, so timing says nothing of where bytes differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The most bytes a large transfer moves between two [`give_way`]s: per
/// read or write syscall of a large HTTP body or WebSocket answer, per
/// step of a large message's copy. One connection's megabytes never hold
/// an async worker for more than a piece's copy. 256 KiB.
pub(crate) const IO_PIECE: usize = 256 * 1024;

/// Gives way between the pieces of a large transfer (a body read, an answer
/// written, a message copied): to the other tasks of this async worker, and
/// to the threads the kernel queued on its CPU. The second matters on a
/// busy machine: a runtime worker woken to share the load, or a thread
/// about to answer another client, is often queued on the CPU of the worker
/// that woke it, and a task's yield alone leaves that thread waiting until
/// the worker runs out of work (milliseconds while it moves megabytes).
pub(crate) async fn give_way() {
    std::thread::yield_now();
    tokio::task::yield_now().await;
}
