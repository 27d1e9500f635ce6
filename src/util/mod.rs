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

/// How much of a client's text an error or log line of ours repeats:
/// [`Brief`] cuts what is longer. 128 bytes.
pub(crate) const BRIEF_BYTES: usize = 128;

/// A client's text as our messages repeat it: whole when it is at most
/// [`BRIEF_BYTES`] long, else its first bytes (to a character boundary),
/// `…`, and its length, so an answer or a log line never carries megabytes
/// a client sent. `{}` writes the text bare, `{:?}` quoted.
#[derive(Clone, Copy)]
pub(crate) struct Brief<'a>(pub &'a str);

impl Brief<'_> {
    /// The part repeated, and the whole length when that is not all.
    fn parts(&self) -> (&str, Option<usize>) {
        let s = self.0;
        if s.len() <= BRIEF_BYTES {
            return (s, None);
        }
        let mut end = BRIEF_BYTES;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        (&s[..end], Some(s.len()))
    }
}

impl std::fmt::Display for Brief<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.parts() {
            (s, None) => f.write_str(s),
            (head, Some(len)) => write!(f, "{head}… ({len} bytes)"),
        }
    }
}

impl std::fmt::Debug for Brief<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.parts() {
            (s, None) => write!(f, "{s:?}"),
            (head, Some(len)) => write!(f, "{:?} ({len} bytes)", format!("{head}…")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brief_repeats_short_text_whole_and_cuts_long_text_at_a_character() {
        assert_eq!(format!("{}", Brief("abc")), "abc");
        assert_eq!(format!("{:?}", Brief("a\"b")), "\"a\\\"b\"");
        let long = format!("{}é{}", "x".repeat(BRIEF_BYTES - 1), "y".repeat(1000));
        let cut = format!("{}", Brief(&long));
        assert_eq!(
            cut,
            format!("{}… ({} bytes)", "x".repeat(BRIEF_BYTES - 1), long.len())
        );
        let quoted = format!("{:?}", Brief(&long));
        assert_eq!(
            quoted,
            format!(
                "\"{}…\" ({} bytes)",
                "x".repeat(BRIEF_BYTES - 1),
                long.len()
            )
        );
        let exact = "z".repeat(BRIEF_BYTES);
        assert_eq!(format!("{}", Brief(&exact)), exact);
    }
}
