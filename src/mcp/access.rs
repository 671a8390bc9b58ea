//! Which servers one MCP caller may reach.
//!
//! The handler does not authenticate anyone: whatever checks the caller (an invocation token on the
//! HTTP request) puts an [`Access`] into the request's extensions, and the handler only obeys it —
//! `tools/list` shows what it covers and `tools/call` refuses the rest. No `Access` means no
//! restriction, which is the case without invocation tokens and over stdio (the user's own process).

use std::collections::BTreeSet;
use std::sync::Arc;

use rmcp::RoleServer;
use rmcp::service::RequestContext;

/// The servers a caller may invoke through MCP.
#[derive(Debug, Clone, Default)]
pub enum Access {
    #[default]
    All,
    /// Only these servers (a token limited to some servers).
    Only(Arc<BTreeSet<String>>),
}

impl Access {
    pub fn only(servers: impl IntoIterator<Item = impl Into<String>>) -> Access {
        Access::Only(Arc::new(servers.into_iter().map(Into::into).collect()))
    }

    pub fn covers(&self, server: &str) -> bool {
        match self {
            Access::All => true,
            Access::Only(servers) => servers.contains(server),
        }
    }

    /// The access granted to the request a handler is serving: the `Access` in its HTTP request's
    /// extensions, else everything.
    pub fn of(context: &RequestContext<RoleServer>) -> Access {
        context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Access>())
            .cloned()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_covers_the_servers_it_names() {
        let access = Access::only(["echo", "stripe"]);
        assert!(access.covers("echo") && access.covers("stripe"));
        assert!(!access.covers("github"));
        assert!(Access::All.covers("github"));
    }
}
