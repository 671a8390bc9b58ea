//! The Rhai engine: one per process, built once, shared by every thread.
//!
//! It owns the sandbox configuration (limits, no modules from disk, no `eval`), compiles sources into
//! [`Script`]s, and runs `main`. It does not know about names, the store or HTTP: the runtime resolves
//! what to run and the engine runs it.
//!
//! `main` is called without re-running the script's top level (which only runs once, at load). The
//! top-level constants that functions read as `global::NAME` are captured at load and re-declared by a
//! tiny prelude, evaluated only for scripts that read them. Each evaluation copies the values it
//! declares (Rhai copies a constant as it declares it, as it publishes it to `global::` and as a
//! function reads it), so a constant that functions only hand to `api::call` or `api::all` as their
//! first argument, which the helper ignores (it follows the declaration the script was loaded with), is
//! declared as `()`: the catalog's and every imported server's `main` is `api::call(global::META, …)`,
//! and an imported API's `META` (GitHub's: 1 221 operations with their input schemas, 1.6 MB of source)
//! took 34 million instructions to copy and drop on every call.

mod bounded;
mod context;
mod fault;
mod fiber;
mod format;
pub mod leak;
pub mod nesting;
pub mod output;
pub mod pace;
mod passthrough;
mod sandbox;
mod script;
mod trap;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use rhai::module_resolvers::DummyModuleResolver;
use rhai::{
    AST, ASTFlags, ASTNode, CallFnOptions, Dynamic, Engine, EvalAltResult, Expr, Ident, OptimizationLevel, Position,
    Scope, Stmt,
};

pub use context::{Context, URL_COMPONENT, forget_forms};
pub use fault::{Fault, raise};
pub use fiber::{Threads, on_worker, wait, waiting, worker};
pub use output::{Data, Output};
pub use sandbox::{admit, context, may_block, refuse};
pub use script::Script;
pub use trap::Overflow;

use crate::cid::Cid;
use crate::error::{Error, Location};
use crate::meta::Meta;

/// Sandbox limits. Operation and time limits apply per call; the others are engine-wide.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Operations one call may run (about 0.1 µs each).
    pub max_operations: u64,
    pub max_call_levels: usize,
    pub max_string_size: usize,
    pub max_array_size: usize,
    pub max_map_size: usize,
    /// Default wall-clock limit of a call; a server's `META.timeout_ms` replaces it, and a call may ask for
    /// less (never more).
    pub timeout: Duration,
    /// The longest any call may take, whatever its server declares (`serve --max-timeout-ms`).
    pub max_timeout: Duration,
    /// Operations an inline run (on a tokio worker) may use before it moves to a fiber.
    pub inline_operations: u64,
    /// Operations a script's top level may use when it is loaded.
    pub load_operations: u64,
    /// Bytes the process may lose to runs that overflow their stacks before it runs no more scripts
    /// (`serve --max-overflow-loss-mib`; see `engine::leak`).
    pub overflow_loss: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_operations: 10_000_000,
            max_call_levels: 64,
            max_string_size: 16 * 1024 * 1024,
            max_array_size: 100_000,
            max_map_size: 100_000,
            timeout: Duration::from_secs(60),
            max_timeout: Duration::from_secs(600),
            inline_operations: 20_000,
            load_operations: 100_000,
            overflow_loss: 512 << 20,
        }
    }
}

pub struct ScriptEngine {
    engine: Engine,
    limits: Limits,
}

/// The script functions an invocation can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Function {
    /// `fn main(endpoint, method, data)`: every call.
    #[default]
    Main,
    /// `fn webhook(event)`: an inbound event, `data` being the event.
    Webhook,
}

impl Function {
    pub fn name(self) -> &'static str {
        match self {
            Function::Main => "main",
            Function::Webhook => "webhook",
        }
    }
}

/// One call of a script function.
pub struct Call {
    pub function: Function,
    pub endpoint: rhai::ImmutableString,
    pub method: rhai::ImmutableString,
    pub data: Dynamic,
    pub context: Arc<Context>,
    /// Whether this run is bounded like an inline run: on a request worker's stack it must move to a
    /// fiber to wait or to run long; as a fiber on a request worker it must move to a script thread to
    /// run long before it first waits ([`Fault::Demote`] either way).
    pub inline: bool,
    pub cancel: Option<Arc<AtomicBool>>,
}

impl ScriptEngine {
    /// Builds the engine; `register` adds the native modules.
    pub fn new(limits: Limits, register: impl FnOnce(&mut Engine)) -> ScriptEngine {
        let mut engine = Engine::new();
        engine
            .set_optimization_level(OptimizationLevel::Simple)
            .set_module_resolver(DummyModuleResolver::new())
            .set_max_modules(0)
            .set_max_call_levels(limits.max_call_levels.min(fiber::call_levels_that_fit()))
            // Rhai's release-build defaults, set explicitly so that debug builds accept the same scripts.
            .set_max_expr_depths(64, 32)
            .set_max_string_size(limits.max_string_size)
            .set_max_array_size(limits.max_array_size)
            .set_max_map_size(limits.max_map_size)
            .set_max_variables(10_000)
            .set_max_functions(10_000)
            // Rhai's string interner hashes every string a statement assigns, whatever its length, before
            // deciding it is too long to keep: assigning a 16 MB string cost a 16 MB hash, outside any
            // operation count (a debug build took a minute to fill a map with one shared 16 MB string).
            .set_max_strings_interned(0)
            .on_progress(sandbox::on_progress)
            .on_print(|text| {
                let (request_id, trace_id) = ids();
                tracing::info!(target: "script", %request_id, %trace_id, "{}", redacted(text))
            })
            .on_debug(|text, source, pos| {
                let (request_id, trace_id) = ids();
                tracing::debug!(target: "script", ?source, %pos, %request_id, %trace_id, "{}", redacted(text))
            });
        engine.disable_symbol("eval");
        bounded::register(&mut engine, limits.max_array_size, limits.max_string_size);
        format::register(&mut engine, limits.max_string_size);
        #[allow(deprecated)] // Rhai marks the token hook volatile, not deprecated.
        engine.on_parse_token(namespaced_keywords);
        engine.register_type_with_name::<Error>("Error");
        engine.register_get("type", |e: &mut Error| e.kind().to_string());
        engine.register_get("status", |e: &mut Error| e.status() as i64);
        engine.register_get("message", |e: &mut Error| e.message());
        engine.register_fn("to_string", |e: &mut Error| e.message());
        register(&mut engine);
        ScriptEngine { engine, limits }
    }

    /// Compiles `source` and loads it: runs its top level once, reads `META`, checks `main`.
    /// Every refusal is an [`Error::InvalidScript`] that says where. Parsing and the top level run on
    /// a script stack, like every evaluation.
    pub fn compile(&self, source: &[u8]) -> Result<Script, Error> {
        self.admit_evaluation()?;
        let at = || Location { cid: Some(Cid::of(source)), ..Location::default() };
        fiber::on_stack(|| self.compile_here(source)).unwrap_or_else(|overflow| Err(overflow.error(at())))
    }

    fn compile_here(&self, source: &[u8]) -> Result<Script, Error> {
        let cid = Cid::of(source);
        let invalid = |message: String, position: Position| {
            Error::invalid_script(
                message,
                Location { server: None, cid: Some(cid), line: position.line(), column: position.position() },
            )
        };
        let source =
            std::str::from_utf8(source).map_err(|_| invalid("a script is UTF-8 text".into(), Position::NONE))?;
        let ast = self.engine.compile(source).map_err(|e| invalid(e.0.to_string(), e.1))?;
        if !ast.iter_functions().any(|f| f.name == "main" && f.params.len() == 3) {
            return Err(invalid("the script must define fn main(endpoint, method, data)".into(), Position::NONE));
        }

        let scope = self.load(&ast, cid).map_err(|e| match e {
            Fault::Demote => invalid(
                "top-level code runs once at load: it may not call the network or a database, nor run long".into(),
                Position::NONE,
            ),
            Fault::Error(Error::Script { message, at } | Error::LimitExceeded { message, at, .. }) => {
                Error::InvalidScript { message: format!("top-level code failed: {message}"), at }
            }
            Fault::Error(other) => invalid(format!("top-level code failed: {}", other.message()), Position::NONE),
        })?;

        let meta_position = ast.statements().iter().find_map(|stmt| match stmt {
            Stmt::Var(var, flags, pos) if var.0.name == "META" => Some((*pos, flags.contains(ASTFlags::CONSTANT))),
            _ => None,
        });
        // An ad-hoc script may go without metadata: it then reads no secrets and reaches no declared host.
        let meta = match meta_position {
            None => Meta::ad_hoc(),
            Some((position, false)) => {
                return Err(invalid("META must be a constant: `const META = #{ ... };`".into(), position));
            }
            Some((position, true)) => {
                let meta_value = scope.get("META").cloned().unwrap_or_default();
                let meta_json = rhai::serde::from_dynamic::<serde_json::Value>(&meta_value)
                    .map_err(|e| invalid(format!("META must be plain data: {e}"), position))?;
                Meta::from_json(meta_json).map_err(|problem| invalid(problem.message().to_owned(), position))?
            }
        };

        let (prelude, has_prelude) = prelude(&ast, &scope)
            .map_err(|(name, pos)| invalid(format!("global::{name} is not a top-level constant"), pos))?;
        let mut call_ast = AST::new(prelude, ast.shared_lib().clone());
        call_ast.set_source(cid.to_string());
        Ok(Script::new(cid, meta, call_ast, has_prelude))
    }

    /// Runs a script's top level once, within the load budget, and returns what it defined.
    fn load(&self, ast: &AST, cid: Cid) -> Result<Scope<'static>, Fault> {
        let _run = sandbox::enter(sandbox::Run {
            max_operations: self.limits.load_operations,
            inline_operations: Some(self.limits.load_operations),
            deadline: Instant::now() + self.limits.timeout,
            cancel: None,
            context: None,
        });
        let mut scope = Scope::new();
        let at = Location { cid: Some(cid), ..Location::default() };
        let result = self.engine.run_ast_with_scope(&mut scope, ast);
        let result = sandbox::take_refusal().map_or(result.map(drop), Err);
        result.map_err(|e| fault::classify(*e, at, self.limits.timeout))?;
        Ok(scope)
    }

    /// The wall-clock limit of a call to `script` that asks for `requested`: the server's limit
    /// (`META.timeout_ms`, else the default, at most the maximum), or less if the caller asks for less.
    /// A caller cannot lengthen it: the operator chose how long the server's work may hold a thread,
    /// a connection and the upstream.
    pub fn timeout_for(&self, script: &Script, requested: Option<Duration>) -> Duration {
        let limit = script.meta.timeout.unwrap_or(self.limits.timeout).min(self.limits.max_timeout);
        requested.map_or(limit, |requested| requested.min(limit))
    }

    /// Refuses to start any evaluation once the process has lost more than its budget to runs that
    /// overflowed their stacks (see `engine::leak`).
    fn admit_evaluation(&self) -> Result<(), Error> {
        let lost = leak::lost();
        match lost > self.limits.overflow_loss {
            false => Ok(()),
            true => Err(Error::Unavailable(format!(
                "this process has lost {} MiB to scripts that overflowed their stacks, more than its budget of {} MiB: \
                 it runs no scripts until it is restarted",
                lost >> 20,
                self.limits.overflow_loss >> 20
            ))),
        }
    }

    /// Runs `call` inline, to completion on the current thread (on a script stack). A
    /// [`Fault::Demote`] means: run it again as a fiber, with `inline: false`.
    pub fn run_inline(&self, call: Call) -> Result<Dynamic, Fault> {
        let context = call.context.clone();
        fiber::on_stack(|| self.run(call)).unwrap_or_else(|overflow| Err(Fault::Error(context.overflowed(overflow))))
    }

    /// Calls the function `call` names. Inline runs go through [`run_inline`](Self::run_inline); any
    /// other run is a fiber's body (see [`Threads`]).
    pub fn run(&self, call: Call) -> Result<Dynamic, Fault> {
        self.admit_evaluation()?;
        let context = call.context.clone();
        let script = &context.script;
        let run = sandbox::Run {
            max_operations: self.limits.max_operations,
            inline_operations: call.inline.then_some(self.limits.inline_operations),
            deadline: context.started + context.timeout,
            cancel: call.cancel,
            context: Some(context.clone()),
        };
        let _run = match fiber::on_fiber() {
            true => sandbox::enter_on_fiber(run, fiber::yield_now),
            false => sandbox::enter(run),
        };
        let options = CallFnOptions::new().eval_ast(script.has_prelude);
        // The thread's scope, kept between runs so that its storage is not allocated anew each time (a run
        // nested inside another, or a fiber that started while another waits, gets a fresh one).
        let mut scope = SCOPE.with(|scope| std::mem::take(&mut *scope.borrow_mut()));
        let result = match call.function {
            Function::Main => self.engine.call_fn_with_options::<Dynamic>(
                options,
                &mut scope,
                &script.ast,
                "main",
                (call.endpoint, call.method, call.data),
            ),
            Function::Webhook => {
                self.engine.call_fn_with_options::<Dynamic>(options, &mut scope, &script.ast, "webhook", (call.data,))
            }
        };
        scope.clear();
        SCOPE.with(|kept| *kept.borrow_mut() = scope);
        // A native's refusal stands whatever the run returned after it (see `sandbox::refuse`).
        let result = sandbox::take_refusal().map_or(result, Err);
        result.map_err(|e: Box<EvalAltResult>| fault::classify(*e, context.location(), context.timeout))
    }
}

thread_local! {
    static SCOPE: std::cell::RefCell<Scope<'static>> = std::cell::RefCell::new(Scope::new());
    /// Whether the previous token the tokenizer produced on this thread was `::`.
    static AFTER_NAMESPACE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Lets a module function carry a name Rhai reserves for itself: `api::call` is a call to the function
/// `call` of the module `api`, while a bare `call(f)` keeps its built-in meaning.
fn namespaced_keywords(token: rhai::Token, _: Position, _: &rhai::TokenizeState) -> rhai::Token {
    let after_namespace = AFTER_NAMESPACE.with(|flag| flag.replace(matches!(token, rhai::Token::DoubleColon)));
    match token {
        rhai::Token::Reserved(word) if after_namespace && word.as_str() == "call" => rhai::Token::Identifier(word),
        other => other,
    }
}

/// What a script prints, with the secrets its invocation read masked.
/// The request and trace ids of the invocation running on this thread, for what a script prints (a
/// fiber runs outside the invocation's log span).
fn ids() -> (String, String) {
    sandbox::context().map_or_else(Default::default, |c| (c.trace.request_id.clone(), c.trace.trace_id.clone()))
}

fn redacted(text: &str) -> String {
    match sandbox::context() {
        Some(context) => context.redact(text),
        None => text.to_owned(),
    }
}

/// The constants `main` and its helpers read as `global::NAME`, re-declared with their loaded values.
/// Returns the name and position of a `global::` reference that names no top-level constant.
/// Constants only handed to `api::call`/`api::all` as their ignored first argument are declared as `()`
/// (see the module's documentation).
fn prelude(ast: &AST, scope: &Scope) -> Result<(Vec<Stmt>, bool), (String, Position)> {
    let (mut read, mut passed) = (BTreeSet::new(), BTreeSet::new());
    let mut unknown = None;
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Expr(expr @ Expr::Variable(var, _, pos))) = path.last() {
            let (_, name, namespace, _) = &**var;
            if namespace.path.len() == 1 && namespace.root() == "global" {
                match scope.iter_raw().any(|(n, constant, _)| n == name.as_str() && constant) {
                    true if ignored_by_api(path.iter().rev().nth(1), expr) => {
                        passed.insert(name.to_string());
                    }
                    true => {
                        read.insert(name.to_string());
                    }
                    false => {
                        unknown.get_or_insert((name.to_string(), *pos));
                    }
                }
            }
        }
        true
    });
    if let Some(unknown) = unknown {
        return Err(unknown);
    }
    let statements: Vec<Stmt> = scope
        .iter_raw()
        .filter(|(name, constant, _)| *constant && (read.contains(*name) || passed.contains(*name)))
        .map(|(name, _, value)| {
            let ident = Ident { name: name.into(), pos: Position::NONE };
            let value = match read.contains(name) {
                true => Expr::DynamicConstant(Box::new(value.clone()), Position::NONE),
                false => Expr::Unit(Position::NONE),
            };
            Stmt::Var(Box::new((ident, value, None)), ASTFlags::CONSTANT, Position::NONE)
        })
        .collect();
    let has_prelude = !statements.is_empty();
    Ok((statements, has_prelude))
}

/// Whether `argument`, a child of `parent`, is the first argument of `api::call` or `api::all`, which the
/// helper takes only for the scripts that pass it and ignores.
fn ignored_by_api(parent: Option<&ASTNode>, argument: &Expr) -> bool {
    let call = match parent {
        Some(ASTNode::Expr(Expr::FnCall(call, _)) | ASTNode::Stmt(Stmt::FnCall(call, _))) => call,
        _ => return false,
    };
    call.namespace.path.len() == 1
        && call.namespace.root() == "api"
        && matches!(call.name.as_str(), "call" | "all")
        && call.args.first().is_some_and(|first| std::ptr::eq(first, argument))
}

#[cfg(test)]
mod tests;
