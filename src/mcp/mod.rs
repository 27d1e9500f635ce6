//! The Model Context Protocol, independent of any transport.
//!
//! A host builds an [`McpServer`] once (identity, tools, fixed answers
//! serialized ahead of time) and opens a [`Session`] per client. A
//! transport feeds each message's bytes to [`Session::dispatch`], writes
//! what it answered, and runs the [`Call`]s it hands back (tools, resource
//! reads, prompts).
//!
//! Versions 2024-11-05, 2025-03-26, 2025-06-18 and 2025-11-25 begin with
//! `initialize`; 2026-07-28 requests carry their version in `_meta` and need
//! no handshake (`server/discover` describes the server).

mod call;
mod context;
mod encoded;
mod heavy;
mod kept;
mod lazy;
mod listen;
pub(crate) mod metrics;
mod outgoing;
mod peer;
mod pending;
mod prompt;
mod resource;
mod schema;
mod server;
mod session;
mod state;
pub(crate) mod tasks;
mod tool;
pub(crate) mod version;

pub(crate) use call::{Answer, RunningAnswer, Started};
pub use call::{Call, OwnedCall, RESOURCE_NOT_FOUND, SERVER_STOPPING};
pub use context::{Context, LogLevel};
pub use outgoing::InputRequests;
pub(crate) use outgoing::MISSING_CLIENT_CAPABILITY;
pub use peer::{Peer, PeerReceiver};
pub(crate) use session::UNSUPPORTED_PROTOCOL_VERSION;
pub use session::{DeniedTools, INSUFFICIENT_SCOPE, StatementKinds};

pub use crate::jsonrpc::RpcError;
pub(crate) use heavy::HeavyLane;
pub(crate) use kept::Kept;
pub use prompt::{CompleteFn, Prompt, PromptMessage, PromptOutput, Role};
pub use resource::{BoxFuture, ReadError, Resource, ResourceContents};
pub use server::{McpServer, McpServerBuilder, ServerEvent};
pub use session::{Dispatched, Session};
pub(crate) use session::{Handled, LARGE_MESSAGE, RequestCheck, RequestView, owned_in_pieces};
#[cfg(feature = "redis")]
pub use tasks::SharedTasks;
pub use tasks::TaskSupport;
pub use tool::schema_of;
pub use tool::{Content, Tool, ToolFuture, ToolHandler, ToolOutput};
pub use version::ProtocolVersion;
