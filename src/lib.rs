//! Switchboard: one binary serving integration servers written as Rhai scripts.
//!
//! # Architecture
//!
//! A *server* is a name bound to a *script*, stored content-addressed by its [`cid::Cid`]. Everything
//! that runs a script goes through one path, [`runtime::Runtime::invoke`]:
//!
//! ```text
//!   HTTP (proxy, call, console) ┐
//!   MCP `tools/call`            │
//!   CLI `call`                  ├─► Invocation ─► resolve name|CID ─► compiled Script (cached by CID)
//!   chaining (`input`)          │                                      │
//!   webhooks (`fn webhook`)     ┘                                      │
//!                        sandboxed run of `main` (or `webhook`) ◄──────┘
//!                        inline on the request worker, or as a fiber when it waits (on that
//!                        worker; on a script thread when it computes for long)
//!                                                     │
//!                                        Output ─► response / stdout / stored blob
//! ```
//!
//! * [`cid`] computes and parses content identifiers; [`environment`] says what of the process
//!   environment a script may read.
//! * [`meta`] reads and checks what a script declares in `META` — secrets, variables, hosts, auth,
//!   operations, `META.api` (pagination, rate limit, pass-headers), `META.oauth2`, `META.webhook` — as
//!   plain data with its own error, below everything that acts on it; it evaluates nothing.
//! * [`store`] keeps blobs, the registry and its history durably, in a SQLite file or, for several
//!   instances, in one PostgreSQL database; its change feed says what each commit changed, wherever it
//!   was made. It is never on the hot path.
//! * [`engine`] owns the one shared Rhai engine: sandbox limits, compiling and loading scripts (a loaded
//!   [`engine::Script`] carries its checked [`meta::Meta`]), running a script function inline or as a
//!   fiber (a coroutine that suspends while it waits on I/O, so a waiting script holds no thread), and
//!   turning results and failures into outputs and [`error::Error`]s. Its natives for large work go in
//!   paced pieces against the deadline ([`engine::pace`]); what stack overflows leave behind is counted
//!   ([`engine::leak`]).
//! * [`modules`] are the native functions scripts call (`http`, `db`, `secret`, codecs, …) over what they
//!   share: [`modules::services`], the one HTTP client ([`modules::http`]), templates and the operator's
//!   URL overrides (`modules::template`), where a server may send ([`modules::egress`]) and how fast
//!   (`modules::throttle`). [`modules::api`] — the call, its request build and its paging walk — stands
//!   on all of them and on [`oauth`], which obtains and renews the tokens of servers whose `META.auth` is
//!   `oauth2` (and, above the runtime, connects them through the browser).
//! * [`observe`] is what an operator sees of it all: every invocation's request id and place in the
//!   caller's W3C trace (carried on to its upstream requests), the Prometheus metrics (`GET /metrics`,
//!   labels bounded so that no caller can grow them), and one record per invocation, written into the
//!   store in batches off the hot path. The invocation path ends every invocation there, whatever its
//!   entry point.
//! * [`access`] decides who may invoke (invocation tokens), for every remote entry point.
//! * [`runtime`] ties the store and engine together, holds the in-memory registry snapshot that
//!   requests read without locks, and manages servers; a CID runs only as a server an operator bound
//!   it to ([`server::runners`]), never on the strength of its own `META`; [`invoke`] is the invocation
//!   path itself, the only place a script runs ([`runtime::Runtime::invoke`] is defined there).
//!   [`follow`] runs the runtime's refresh when the store changes, here or in another process.
//! * [`boot`] reads, packs, checks and compares boot images; the default one is embedded in the binary.
//!   [`reload`] watches a boot source and its scripts and swaps changes in.
//! * [`webhooks`] receives providers' signed deliveries (`POST /webhooks/{name}`): verifies, stores and
//!   deduplicates them, then hands each to the script's `fn webhook(event)` through the same invocation
//!   path, from a durable queue in the store that retries failed runs across restarts.
//! * [`http`] is the axum interface: one guard before routing holds every request to the HTTP bounds
//!   and the browser rules (`Host` against DNS rebinding, no runs from another origin), and the
//!   runtime frames every response itself. Its web console (`/ui`) is one more caller: it changes the
//!   registry through the same runtime operations as `/api/` and runs try-it through `Runtime::invoke`.
//!   [`commands`] implements the CLI that `main.rs` parses.
//! * [`mcp`] serves every server as an MCP tool (at `/mcp` and over stdio); [`operation`] turns one of the
//!   named operations a script declares into an invocation.
//!
//! Each file stands on what it uses, and no file uses one that uses it: the import graph has no cycle.
//! From the ground up: `cid`, `environment` and `error`; the declarations (`meta`); the store, the
//! engine, the metrics and the secrets; the shared services of the native modules, then `oauth`, then `api` and the
//! module registry; the runtime; the invocation path and what calls it (`invoke`, `reload`, `webhooks`,
//! `mcp`, the OAuth connect flow); `http`; `commands`. `cargo test --test layers -- --nocapture` checks
//! that and prints the files floor by floor.
//!
//! Errors are one enum, [`error::Error`], whose variants are the error types users see; the core knows
//! nothing of HTTP, and the error becomes an HTTP response in exactly one place, at the edge
//! (`http/error.rs`).

/// The unit tests count allocations as the binary does (see `engine::leak`).
#[cfg(test)]
#[global_allocator]
static ALLOCATOR: engine::leak::Counting<std::alloc::System> = engine::leak::Counting(std::alloc::System);

pub mod access;
pub mod boot;
pub mod cid;
pub mod commands;
pub mod docs;
pub mod engine;
pub mod environment;
pub mod error;
pub mod follow;
pub mod http;
pub mod invoke;
pub mod keys;
pub mod mcp;
pub mod meta;
pub mod modules;
pub mod oauth;
pub mod observe;
pub mod openapi;
pub mod operation;
pub mod reload;
pub mod runtime;
pub mod secrets;
pub mod server;
pub mod store;
pub mod webhooks;
