//! A call's encoded result, as the call and the tasks that keep results share it.

/// A call's encoded result object: alone, or already inside the JSON-RPC
/// response that carries it (a large tool output is written so, which
/// spares a copy of megabytes).
#[derive(Debug)]
pub(crate) struct Encoded {
    /// The result object, or the whole response.
    pub(crate) bytes: Vec<u8>,
    /// Where the result begins when `bytes` is the whole response (it
    /// ends one byte before the end).
    pub(crate) framed_at: Option<usize>,
}

impl Encoded {
    /// A result object alone.
    pub(crate) fn result(bytes: Vec<u8>) -> Encoded {
        Encoded {
            bytes,
            framed_at: None,
        }
    }

    /// The result object's bytes.
    pub(crate) fn result_bytes(&self) -> &[u8] {
        match self.framed_at {
            Some(at) => self
                .bytes
                .get(at..self.bytes.len().saturating_sub(1))
                .unwrap_or_default(),
            None => &self.bytes,
        }
    }
}
