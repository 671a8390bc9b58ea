//! MCP: every server is a tool, over Streamable HTTP (`/mcp`) and stdio (`switchboard mcp`).
//!
//! The Model Context Protocol is how AI agents call tools. Here the tools are the registry: every
//! enabled server is a tool `{name}` taking `endpoint`, `method` and `data`, and every named
//! operation its script declares (`META.operations`, see [`crate::operation`]) is a tool
//! `{name}__{operation}` with its own input schema. A tool call is one more caller of
//! [`Runtime::invoke`](crate::runtime::Runtime::invoke), so secrets, sandbox and limits are the
//! same as over HTTP, and credentials never reach the agent.
//!
//! rmcp (the official Rust SDK) speaks the protocol — the 2026-07-28 revision, where each request
//! carries its version and capabilities in `_meta`, and the earlier `initialize` handshake. This
//! module supplies what is particular to Switchboard:
//!
//! * [`catalog`] — the tool list derived from a registry snapshot, sorted and paged;
//! * [`description`] — what a server's own tool says of it, from its own `META`;
//! * [`runnable`] — which servers can run now, the ones the list shows unless asked for all;
//! * [`call`] — one tool call as an invocation, and its result or error as a tool result;
//! * [`access`] — which servers a caller may use (set by whatever authenticates it);
//! * [`handler`] — rmcp's `ServerHandler` tying these together;
//! * [`http`] — the stateless `/mcp` service with its `Origin` check; [`stdio`] — `switchboard mcp`.

pub mod access;
pub mod call;
pub mod catalog;
pub mod description;
pub mod handler;
pub mod http;
pub mod runnable;
pub mod stdio;

pub use access::Access;
pub use handler::Handler;
