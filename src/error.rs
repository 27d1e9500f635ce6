//! The error a host matches on. Message texts are not part of the API.

use std::net::SocketAddr;

/// Errors returned by the library's public API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The listening socket could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address that was asked for.
        addr: SocketAddr,
        /// Why the operating system refused.
        source: std::io::Error,
    },
    /// Another I/O failure of the server itself (not of one connection).
    #[error("server I/O error: {0}")]
    Io(#[source] std::io::Error),
    /// A setting the server cannot work with.
    #[error("{setting}: {why}")]
    Config {
        /// The setting, as the settings struct names it.
        setting: &'static str,
        /// What is wrong with it.
        why: String,
    },
}
