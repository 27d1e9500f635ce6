//! The HTTP server's settings ([`Config`]): they live with the HTTP engine
//! (`http::config`) and are re-exported here.

pub use crate::http::config::*;
