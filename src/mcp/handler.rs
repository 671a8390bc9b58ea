//! The MCP server itself: rmcp's [`ServerHandler`] over the runtime's registry.
//!
//! Written by hand rather than with rmcp's tool macros because the tools are data, not Rust
//! functions: they come and go with the registry. The handler is cheap to clone (rmcp's stateless
//! HTTP transport makes one per request); the catalog it lists from is shared.

use std::sync::Arc;

use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult, PaginatedRequestParams,
    ServerCapabilities, ServerConfig, SubscriptionFilter, Tool,
};
use rmcp::service::{RequestContext, SubscriptionContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use tokio::sync::watch;

use crate::runtime::Runtime;

use super::access::Access;
use super::catalog::{Catalog, Catalogs, PAGE_SIZE, Page};
use super::runnable;

const INSTRUCTIONS: &str = "Each tool calls one integration server of this Switchboard gateway. A tool named after a \
    server takes `endpoint` (path and query), `method` and `data` for any call of that API; a tool named \
    `{server}__{operation}` makes one named call with its own arguments. Credentials stay in the gateway. A failed \
    call answers with isError and a JSON error whose `type` says what went wrong (missing_secret, upstream, …).";

#[derive(Clone)]
pub struct Handler {
    catalogs: Arc<Catalogs>,
    /// Whether this transport can tell the client that the list changed (stdio can; stateless HTTP cannot).
    notifies: bool,
    /// Bumped whenever the tools change, for the `subscriptions/listen` requests waiting on it.
    changes: Arc<watch::Sender<u64>>,
}

impl Handler {
    pub fn new(runtime: Arc<Runtime>, notifies: bool) -> Handler {
        Handler { catalogs: Arc::new(Catalogs::new(runtime)), notifies, changes: Arc::new(watch::Sender::new(0)) }
    }

    /// Tells every open `subscriptions/listen` (the 2026-07-28 way to hear of changes) that the tools changed.
    pub fn tools_changed(&self) {
        self.changes.send_modify(|generation| *generation += 1);
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalogs.current()
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        self.catalogs.runtime()
    }

    /// The page after `cursor` of the tools listed to a caller with `access`: those of the servers that
    /// can run now, or of all with `--mcp-all-tools`.
    pub async fn listed(&self, access: &Access, cursor: Option<&str>, size: usize) -> Result<Page, ErrorData> {
        let runnable = match self.runtime().settings.mcp_all_tools {
            true => None,
            false => {
                let servers = self.runtime().blocking(|rt| Ok(runnable::servers(rt))).await;
                Some(servers.map_err(|error| ErrorData::internal_error(error.message(), None))?)
            }
        };
        let page = self.catalog().page(access, runnable.as_ref(), cursor, size);
        page.map_err(|message| ErrorData::invalid_params(message, None))
    }
}

impl ServerHandler for Handler {
    fn get_info(&self) -> ServerConfig {
        let tools = ServerCapabilities::builder().enable_tools();
        let capabilities = match self.notifies {
            true => tools.enable_tool_list_changed().build(),
            false => tools.build(),
        };
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("switchboard", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let cursor = request.and_then(|r| r.cursor);
        let (tools, next) = self.listed(&Access::of(&context), cursor.as_deref(), PAGE_SIZE).await?;
        let mut result = ListToolsResult::with_all_items(tools);
        result.next_cursor = next;
        // The list follows every reload, and depends on who asks: never fresh for long, never shared.
        Ok(result.with_ttl_ms(0).with_cache_scope(CacheScope::Private))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let catalog = self.catalog();
        let access = Access::of(&context);
        let arguments = request.arguments.unwrap_or_default();
        let call = super::call::call(self.runtime(), &catalog, &access, &request.name, arguments);
        // A cancelled request drops the invocation, which stops its script.
        tokio::select! {
            result = call => Ok(result.into()),
            () = context.ct.cancelled() => Err(ErrorData::internal_error("the request was cancelled", None)),
        }
    }

    fn accepted_subscription_filter(&self, requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
        self.notifies.then(|| requested.supported_by(&self.get_info().capabilities))
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let mut changes = self.changes.subscribe();
        loop {
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    if let Err(error) = context.sink().notify_tool_list_changed().await {
                        tracing::debug!("a subscriber was not told that the tools changed: {error}");
                    }
                }
                () = context.cancelled() => return Ok(()),
            }
        }
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.catalog().get(name).map(|entry| entry.tool.clone())
    }
}
