//! The tool list: every enabled server and every named operation, derived from one registry snapshot.
//!
//! Tools are sorted by name, so the order is stable and a page cursor can simply be the last name a
//! page showed: the next page starts after it even if servers came or went in between. A catalog is
//! built once per registry snapshot and shared until a reload swaps in a new snapshot.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde_json::json;

use crate::engine::Script;
use crate::meta::Operation;
use crate::runtime::Runtime;
use crate::server::Server;

use super::access::Access;

/// Tool names must match `[A-Za-z0-9_-]{1,64}`: what LLM APIs accept as function names.
pub const MAX_TOOL_NAME: usize = 64;

/// Separates a server's name from an operation's in a tool name (`stripe__list_customers`).
pub const SEPARATOR: &str = "__";

/// Tools per `tools/list` page.
pub const PAGE_SIZE: usize = 100;

/// One tool and what calling it means.
#[derive(Debug, Clone)]
pub struct Entry {
    pub tool: Tool,
    pub server: String,
    pub script: Arc<Script>,
    /// The operation this tool stands for; `None` for the server's own `{name}` tool.
    pub operation: Option<usize>,
    /// The tool takes `all_pages`: the server declares how its lists page, and this is its own tool
    /// or an operation that lists (`paginated`).
    pub pages: bool,
}

impl Entry {
    pub fn operation(&self) -> Option<&Operation> {
        self.operation.and_then(|index| self.script.meta.operations.get(index))
    }
}

/// Every tool of one registry snapshot, sorted by name.
#[derive(Debug, Default)]
pub struct Catalog {
    entries: Vec<Entry>,
}

/// One page of tools and the cursor of the next, if any.
pub type Page = (Vec<Tool>, Option<String>);

impl Catalog {
    pub fn build(registry: &HashMap<String, Arc<Server>>) -> Catalog {
        let mut entries = Vec::new();
        for server in registry.values().filter(|server| server.enabled) {
            let Ok(script) = &server.script else { continue };
            entries.push(server_entry(&server.name, script));
            for (index, operation) in script.meta.operations.iter().enumerate() {
                let name = format!("{}{SEPARATOR}{}", server.name, operation.name);
                if name.len() > MAX_TOOL_NAME {
                    tracing::warn!(tool = %name, "operation left out of the MCP tools: the name is over 64 characters");
                    continue;
                }
                entries.push(operation_entry(name, &server.name, script, index, operation));
            }
        }
        entries.sort_by(|a, b| a.tool.name.cmp(&b.tool.name));
        // A server named like another's operation (`a__b` beside `a`'s `b`) would shadow it: keep the first.
        entries.dedup_by(|later, earlier| later.tool.name == earlier.tool.name);
        Catalog { entries }
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.binary_search_by(|entry| entry.tool.name.as_ref().cmp(name)).ok().map(|i| &self.entries[i])
    }

    /// The page after `cursor` of the tools `access` covers, of the servers in `only` if given; an
    /// unreadable cursor is an error.
    pub fn page(
        &self,
        access: &Access,
        only: Option<&HashSet<String>>,
        cursor: Option<&str>,
        size: usize,
    ) -> Result<Page, String> {
        let start = match cursor {
            None => 0,
            Some(cursor) => {
                let after = URL_SAFE_NO_PAD
                    .decode(cursor)
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .ok_or_else(|| format!("'{cursor}' is not a cursor this server gave"))?;
                self.entries.partition_point(|entry| entry.tool.name.as_ref() <= after.as_str())
            }
        };
        let shown =
            |entry: &&Entry| access.covers(&entry.server) && only.is_none_or(|only| only.contains(&entry.server));
        let mut visible = self.entries[start..].iter().filter(shown);
        let tools: Vec<Tool> = visible.by_ref().take(size).map(|entry| entry.tool.clone()).collect();
        let more = visible.next().is_some();
        let next = match (more, tools.last()) {
            (true, Some(last)) => Some(URL_SAFE_NO_PAD.encode(last.name.as_bytes())),
            _ => None,
        };
        Ok((tools, next))
    }
}

fn object(value: serde_json::Value) -> Arc<JsonObject> {
    Arc::new(value.as_object().cloned().unwrap_or_default())
}

/// `{name}`: the whole API through `endpoint`, `method` and `data`, as the HTTP call style takes them.
fn server_entry(name: &str, script: &Arc<Script>) -> Entry {
    let meta = &script.meta;
    let texts = super::description::server_tool(name, meta);
    let schema = object(json!({
        "type": "object",
        "properties": {
            "endpoint": { "type": "string", "description": texts.endpoint },
            "method": { "type": "string", "enum": ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"], "description": "HTTP method (default GET)." },
            "data": { "description": texts.data },
        },
        "additionalProperties": false,
    }));
    let pages = meta.pages();
    let schema = with_all_pages(schema, pages);
    let title = if meta.title.is_empty() { name.to_owned() } else { meta.title.clone() };
    let tool = Tool::new(name.to_owned(), texts.description, schema)
        .with_title(title.clone())
        .with_annotations(ToolAnnotations::with_title(title).open_world(true));
    Entry { tool, server: name.to_owned(), script: script.clone(), operation: None, pages }
}

/// `{name}__{operation}`: one named call with its own input schema.
fn operation_entry(name: String, server: &str, script: &Arc<Script>, index: usize, op: &Operation) -> Entry {
    let title = format!("{}: {}", script.meta.title, op.name.replace('_', " "));
    let description = format!("{} ({} {} on {})", op.description, op.method, op.endpoint, script.meta.title);
    let read_only = matches!(op.method.as_str(), "GET" | "HEAD");
    let annotations = ToolAnnotations::with_title(title.clone())
        .read_only(read_only)
        .destructive(op.method == "DELETE")
        .open_world(true);
    let pages = op.paginated && script.meta.pages();
    let input = with_all_pages(Arc::new(op.input.clone()), pages);
    let tool = Tool::new(name, description, input).with_title(title).with_annotations(annotations);
    Entry { tool, server: server.to_owned(), script: script.clone(), operation: Some(index), pages }
}

/// The argument that asks for every page of a list, on the tools of servers that declare pagination.
pub const ALL_PAGES: &str = "all_pages";

fn with_all_pages(schema: Arc<JsonObject>, pages: bool) -> Arc<JsonObject> {
    if !pages {
        return schema;
    }
    let mut schema = (*schema).clone();
    let property = json!({ "type": "boolean", "description": "Fetch every page and return all items as one array." });
    match schema.get_mut("properties").and_then(|p| p.as_object_mut()) {
        Some(properties) => {
            properties.insert(ALL_PAGES.into(), property);
        }
        None => {
            schema.insert("properties".into(), json!({ ALL_PAGES: property }));
        }
    }
    Arc::new(schema)
}

/// A registry snapshot, as [`Runtime::servers`] gives it.
type Snapshot = Arc<HashMap<String, Arc<Server>>>;

/// The catalog of the runtime's current snapshot, rebuilt only when the snapshot changed.
pub struct Catalogs {
    runtime: Arc<Runtime>,
    cached: Mutex<Option<(Snapshot, Arc<Catalog>)>>,
}

impl Catalogs {
    pub fn new(runtime: Arc<Runtime>) -> Catalogs {
        Catalogs { runtime, cached: Mutex::default() }
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    pub fn current(&self) -> Arc<Catalog> {
        let registry = self.runtime.servers();
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((snapshot, catalog)) = cached.as_ref()
            && Arc::ptr_eq(snapshot, &registry)
        {
            return catalog.clone();
        }
        let catalog = Arc::new(Catalog::build(&registry));
        *cached = Some((registry, catalog.clone()));
        catalog
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Settings;

    #[test]
    fn pages_cover_every_tool_once_in_order_and_cursors_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = Runtime::open(Settings::new(dir.path().into())).unwrap();
        let catalog = Catalog::build(&runtime.servers());
        let (all, none) = catalog.page(&Access::All, None, None, usize::MAX).unwrap();
        assert_eq!(none, None);
        let names: Vec<&str> = all.iter().map(|t| t.name.as_ref()).collect();
        assert!(names.windows(2).all(|pair| pair[0] < pair[1]), "sorted and unique");
        assert!(names.contains(&"echo") && names.contains(&"stripe__get_balance"));

        let mut paged = Vec::new();
        let mut cursor = None;
        loop {
            let (tools, next) = catalog.page(&Access::All, None, cursor.as_deref(), 7).unwrap();
            assert!(tools.len() <= 7);
            paged.extend(tools);
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(paged, all);
        assert!(catalog.page(&Access::All, None, Some("not a cursor!"), 7).unwrap_err().contains("not a cursor"));

        let limited = Access::only(["stripe"]);
        let (tools, _) = catalog.page(&limited, None, None, usize::MAX).unwrap();
        assert!(tools.len() > 1 && tools.iter().all(|t| t.name == "stripe" || t.name.starts_with("stripe__")));
    }
}
