//! A compiled script: its CID, its declaration ([`Meta`]), and the AST that `main` is called on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwapOption;
use http::HeaderValue;
use rhai::AST;

use crate::cid::Cid;
use crate::meta::Meta;
use crate::meta::routes::Routes;

/// A script ready to run. Shared by every request for its CID; never mutated except for what the
/// runtime learns about where it must run.
pub struct Script {
    pub cid: Cid,
    /// The CID's text as a header value, made once: every response names the script that ran.
    pub cid_header: HeaderValue,
    pub meta: Meta,
    /// Functions plus a prelude that defines the top-level constants `main` reads as `global::NAME`.
    pub(super) ast: AST,
    /// Whether the prelude must be evaluated before `main` (only when `main` reads a global).
    pub(super) has_prelude: bool,
    /// Whether it defines `fn webhook(event)`.
    webhook: bool,
    /// Learned on the first run that waited or outgrew the inline budget: start it as a fiber.
    waits: AtomicBool,
    /// Learned on a run that computed for long on a request worker: start it on a script thread.
    computes: AtomicBool,
    /// A run overflowed its stack: what its abandoned frames held is leaked, so it is not run again.
    overflowed: AtomicBool,
    /// Where its calls go under the variables last seen, made once per snapshot of them.
    routes: ArcSwapOption<Routes>,
}

impl Script {
    pub(super) fn new(cid: Cid, meta: Meta, ast: AST, has_prelude: bool) -> Script {
        // A CID's text is lower-case base32, always a valid header value.
        let cid_header = HeaderValue::from_str(cid.text().as_str()).expect("a CID's text is a header value");
        let webhook = ast.iter_functions().any(|f| f.name == "webhook" && f.params.len() == 1);
        let (waits, computes, overflowed) = (AtomicBool::new(false), AtomicBool::new(false), AtomicBool::new(false));
        let routes = ArcSwapOption::empty();
        Script { cid, cid_header, meta, ast, has_prelude, webhook, waits, computes, overflowed, routes }
    }

    /// Whether this script should skip the inline attempt and start as a fiber.
    pub fn waits(&self) -> bool {
        self.waits.load(Ordering::Relaxed)
    }

    pub fn mark_waits(&self) {
        self.waits.store(true, Ordering::Relaxed);
    }

    /// Whether this script's fibers should start on a script thread rather than on the request worker
    /// that received the call (see `engine::fiber`).
    pub fn computes(&self) -> bool {
        self.computes.load(Ordering::Relaxed)
    }

    pub fn mark_computes(&self) {
        self.computes.store(true, Ordering::Relaxed);
    }

    /// Whether a run of this script overflowed its stack; it is then refused without running, so that
    /// a caller repeating it cannot make the process leak again and again.
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Relaxed)
    }

    pub(super) fn mark_overflowed(&self) {
        self.overflowed.store(true, Ordering::Relaxed);
    }

    /// Where this script's calls go as the server `server` under the registry's `variables` (see
    /// [`Routes`]): made on the first call after the variables change, read in place by the others.
    pub fn routes(&self, server: Option<&str>, variables: &Arc<BTreeMap<String, String>>) -> Arc<Routes> {
        if let Some(routes) = &*self.routes.load()
            && routes.are_for(server, variables)
        {
            return routes.clone();
        }
        let routes = Arc::new(Routes::new(&self.meta, server, variables.clone()));
        self.routes.store(Some(routes.clone()));
        routes
    }

    /// Whether the script defines `function` (every script defines `main`: compiling checks it).
    pub fn defines(&self, function: super::Function) -> bool {
        match function {
            super::Function::Main => true,
            super::Function::Webhook => self.webhook,
        }
    }
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Script").field("cid", &self.cid).field("title", &self.meta.title).finish()
    }
}
