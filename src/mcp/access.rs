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

    use crate::runtime::{Runtime, Settings};
    use axum::extract::Request;
    use axum::middleware::Next;
    use serde_json::{Value, json};

    /// `/mcp` behind a layer granting `Access::only(["echo"])`, as a token check would.
    async fn limited_mcp() -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let runtime = Runtime::open(Settings::new(dir.path().into())).unwrap();
        let grant = |mut request: Request, next: Next| async move {
            request.extensions_mut().insert(Access::only(["echo"]));
            next.run(request).await
        };
        let app = axum::Router::new()
            .nest_service("/mcp", crate::mcp::http::service(&runtime))
            .layer(axum::middleware::from_fn(grant));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (dir, url)
    }

    async fn rpc(url: &str, method: &str, params: Value) -> Value {
        let body = json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
        let response = reqwest::Client::new()
            .post(url)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            .json(&body)
            .send()
            .await
            .unwrap();
        response.json::<Value>().await.unwrap()["result"].clone()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_caller_lists_and_calls_only_what_its_access_covers() {
        let (_dir, url) = limited_mcp().await;
        let listed = rpc(&url, "tools/list", json!({})).await;
        let names: Vec<&str> =
            listed["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["echo"]);
        assert_eq!(listed.get("nextCursor"), None);

        let echoed = rpc(&url, "tools/call", json!({ "name": "echo", "arguments": { "endpoint": "/a" } })).await;
        assert_eq!(echoed["isError"], false);
        for tool in ["stripe", "stripe__get_balance"] {
            let refused = rpc(&url, "tools/call", json!({ "name": tool, "arguments": {} })).await;
            assert_eq!(refused["isError"], true, "{tool}");
            assert_eq!(refused["structuredContent"]["error"]["type"], "forbidden", "{tool}");
        }
    }

    #[test]
    fn only_covers_the_servers_it_names() {
        let access = Access::only(["echo", "stripe"]);
        assert!(access.covers("echo") && access.covers("stripe"));
        assert!(!access.covers("github"));
        assert!(Access::All.covers("github"));
    }
}
