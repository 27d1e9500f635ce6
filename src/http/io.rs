//! The byte streams the engine serves: any `AsyncRead + AsyncWrite`.

use tokio::io::{AsyncRead, AsyncWrite};

/// A connection's byte stream: a TCP socket, a Unix socket, a TLS stream,
/// an in-memory pipe (`tokio::io::duplex`), ... Implemented for every type
/// that qualifies.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// A stream of any kind, boxed: what an upgraded connection hands over.
pub type BoxedIo = Box<dyn Io>;
