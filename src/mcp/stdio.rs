//! `switchboard mcp`: the same server over stdio, for desktop clients that start it as a process.
//!
//! Such a process usually shares its data directory with a running `serve`, which may reload or
//! edit servers at any time. [`follow`] hears of it through the store's change feed and re-reads the
//! registry; when the tools actually differ, the client gets `notifications/tools/list_changed` —
//! unasked on the `initialize` revisions, through its `subscriptions/listen` on 2026-07-28.

use std::sync::Arc;

use rmcp::service::{Peer, RoleServer};
use rmcp::{ServiceExt, model::Tool};
use tokio::sync::broadcast;

use crate::error::{Error, Result};
use crate::runtime::Runtime;
use crate::store::Changed;

use super::access::Access;
use super::handler::Handler;

/// Serves MCP on stdin/stdout until the client closes it.
pub async fn serve(runtime: Arc<Runtime>) -> Result<()> {
    // Subscribed before serving, and read once at the start: no change can fall in between.
    let changes = runtime.store.changes();
    let handler = Handler::new(runtime.clone(), true);
    let running =
        handler.clone().serve(rmcp::transport::stdio()).await.map_err(|e| Error::internal("MCP over stdio", e))?;
    let follow = tokio::spawn(follow(handler, running.peer().clone(), changes));
    let outcome = running.waiting().await;
    follow.abort();
    outcome.map(drop).map_err(|e| Error::internal("MCP over stdio", e))
}

/// Keeps the registry in step with the store, telling the client when its tools changed.
async fn follow(handler: Handler, peer: Peer<RoleServer>, mut changes: broadcast::Receiver<Changed>) {
    let mut tools = all_tools(&handler).await;
    while let Some(batch) = crate::follow::next_batch(&mut changes).await {
        // Re-read here (updates are serialised and cheap) so that the tools compared below are current.
        if let Err(error) = handler.runtime().blocking(move |rt| rt.catch_up(&batch)).await {
            tracing::warn!("cannot re-read the store: {}", error.message());
            continue;
        }
        let now = all_tools(&handler).await;
        if now == tools {
            continue;
        }
        tools = now;
        handler.tools_changed();
        // A client of the initialize revisions hears of it unasked; a 2026-07-28 client through
        // the subscription it opened (it has no handshake, so no peer info).
        if peer.peer_info().is_some()
            && let Err(error) = peer.notify_tool_list_changed().await
        {
            tracing::debug!("the client was not told that the tools changed: {error}");
        }
    }
}

async fn all_tools(handler: &Handler) -> Vec<Tool> {
    handler.listed(&Access::All, None, usize::MAX).await.map(|(tools, _)| tools).unwrap_or_default()
}
