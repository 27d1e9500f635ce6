//! The HTTP/1.1 server engine: head parsing, body framing, connections, responses, routing.
//!
//! Nothing here knows about MCP. Later layers plug in through the [`Router`]:
//! a [`Handler`] gets a borrowed [`Request`] and returns a [`Response`] that is
//! whole, streamed (chunked or `sse`), or an upgrade that takes over the
//! socket ([`Upgraded`]).
//!
//! Stages, one file each: `head` (request line and header fields),
//! `chunked` (chunked body decoding), `conn` (the per-connection loop,
//! limits and timeouts), `encode` (status line, framing headers, chunks),
//! `sse` (event encoding), `router`, `request`, `response`, `upgrade`,
//! `forwarded` (the client behind a trusted proxy).

#[cfg(feature = "fuzzing")]
pub mod chunked;
#[cfg(not(feature = "fuzzing"))]
pub(crate) mod chunked;
pub(crate) mod clients;
pub mod config;
pub(crate) mod conn;
pub(crate) mod encode;
mod forwarded;
#[cfg(feature = "fuzzing")]
pub mod head;
#[cfg(not(feature = "fuzzing"))]
pub(crate) mod head;
mod io;
pub(crate) mod request;
mod response;
pub(crate) mod router;
pub(crate) mod sse;
pub(crate) mod stats;
mod upgrade;

pub use config::Cors;
pub use head::{KnownHeader, Method, Version};
pub use io::{BoxedIo, Io};
pub use request::Request;
pub(crate) use response::check_header;
pub use response::{BodyClosed, BodySender, InvalidHeader, Response};
pub use router::{Handler, Reply, Router};
pub use upgrade::Upgraded;
