//! The one way to run a script: resolve → compiled script → sandboxed run → output.
//!
//! HTTP (both styles, by name or CID), the CLI's `call`, chaining, and every later entry point build an
//! [`Invocation`] — which names the script function to run — and call [`Runtime::invoke`]. This file
//! is the invocation path; `runtime.rs` holds the registry and its management. Where a script runs is
//! decided here:
//!
//! * first *inline*, on the calling thread (a request worker for HTTP), which is the fastest place for
//!   the common pure-compute script;
//! * as a *fiber* when the script is known to wait (it called the network or a database on an earlier
//!   run) or when the inline attempt demotes itself (it reached such a call, or its inline budget). The
//!   demoted attempt had no effect, so it is simply run again. The fiber runs on the request worker
//!   that received the call, where its waits cost no hand-off between threads; one that computes past
//!   the inline budget before its first wait demotes itself again and runs on a script thread, as do
//!   later calls of a script that computed for long on a worker.
//!
//! A fiber holds no thread while it waits (see `engine/fiber.rs`), and the request workers never wait
//! on I/O or run a long computation.
//!
//! Every invocation, whatever became of it, runs in a log span carrying its request and trace ids and
//! ends in [`Observer::finished`](crate::observe::Observer::finished): its metrics and its record.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rhai::{Dynamic, ImmutableString};
use tracing::Instrument;

use crate::cid::Cid;
use crate::engine::{Call, Context, Data, Fault, Function, Output, Overflow, Script, on_worker};
use crate::error::{Error, Location, Result};
use crate::observe::Finished;
use crate::observe::metrics::InFlight;
use crate::observe::trace::Trace;
use crate::runtime::Runtime;
use crate::store::{Change, InvocationRecord, Via};

/// What to run.
#[derive(Debug, Clone)]
pub enum Target {
    Name(String),
    Cid(Cid),
    /// A script that is not registered (`switchboard call FILE.rhai`), running as `name` (for its
    /// database, base-URL variable) when it has one.
    Script {
        script: Arc<Script>,
        name: Option<String>,
    },
}

impl Target {
    /// A path segment or CLI argument: a CID when it parses as one, else a name.
    pub fn parse(text: &str) -> Target {
        match text.parse::<Cid>() {
            Ok(cid) => Target::Cid(cid),
            Err(_) => Target::Name(text.to_owned()),
        }
    }
}

/// One invocation.
#[derive(Debug)]
pub struct Invocation {
    pub target: Target,
    /// The script function to run: `main` for calls, `webhook` for inbound events.
    pub function: Function,
    pub endpoint: String,
    pub method: String,
    pub data: Data,
    /// Run on the blob with this CID as `data` instead.
    pub input: Option<Cid>,
    /// Store the output as a blob and report its CID.
    pub store_output: bool,
    /// This call's own wall-clock limit.
    pub timeout: Option<Duration>,
    /// Every page of a list: the script's `api::call` walks the pages its server declares.
    pub all_pages: bool,
    /// The caller's headers; only those the script's `META.api.pass_headers` names go any further.
    pub headers: reqwest::header::HeaderMap,
    /// The entry point it came through.
    pub via: Via,
    /// Its request id and trace, when the caller gave them (else new ones).
    pub trace: Option<Trace>,
    /// The named operation it stands for, when the caller said (an MCP operation tool); else the one
    /// whose method and endpoint template it matches, if any.
    pub operation: Option<String>,
}

impl Invocation {
    /// A `GET` of `main` with no endpoint and no data.
    pub fn new(target: Target) -> Invocation {
        Invocation::with_method(target, "GET".into())
    }

    pub fn with_method(target: Target, method: String) -> Invocation {
        Invocation {
            target,
            function: Function::Main,
            endpoint: String::new(),
            method,
            data: Data::None,
            input: None,
            store_output: false,
            timeout: None,
            all_pages: false,
            headers: reqwest::header::HeaderMap::new(),
            via: Via::Cli,
            trace: None,
            operation: None,
        }
    }
}

/// The result of an invocation, with the script that ran when it got that far.
#[derive(Debug)]
pub struct Invoked {
    pub script: Option<Arc<Script>>,
    pub result: Result<Reply>,
}

#[derive(Debug)]
pub struct Reply {
    pub output: Output,
    pub output_cid: Option<Cid>,
}

/// Sets the cancel flag when dropped unless disarmed: an HTTP handler that is dropped because its client
/// went away stops the script it was waiting for.
pub struct CancelOnDrop(Arc<AtomicBool>);

impl CancelOnDrop {
    pub fn new() -> CancelOnDrop {
        CancelOnDrop(Arc::new(AtomicBool::new(false)))
    }

    pub fn flag(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }
}

impl Default for CancelOnDrop {
    fn default() -> Self {
        CancelOnDrop::new()
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The caller's headers that the script lets through to its API.
fn passed(allowed: &[String], headers: &reqwest::header::HeaderMap) -> Vec<(String, String)> {
    if allowed.is_empty() {
        return Vec::new();
    }
    headers
        .iter()
        .filter(|(name, _)| allowed.iter().any(|a| a == name.as_str()))
        .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
        .collect()
}

impl Runtime {
    /// Runs one invocation. Every entry point calls this.
    pub fn invoke<I: Into<Box<Invocation>>>(self: &Arc<Self>, invocation: I) -> impl Future<Output = Invoked> + use<I> {
        // The invocation is boxed before the future is made: each step of the path would otherwise
        // hold a copy of it in its own future, and every layer above moves those whole.
        self.clone().invoke_boxed(invocation.into())
    }

    async fn invoke_boxed(self: Arc<Self>, mut invocation: Box<Invocation>) -> Invoked {
        let started = Instant::now();
        let trace = invocation.trace.take().unwrap_or_default();
        let span = tracing::info_span!("invocation", request_id = %trace.request_id, trace_id = %trace.trace_id, via = %invocation.via);
        let mut pending = Pending { runtime: &self, seen: Some(Seen::of(&invocation, &trace, started)), started };
        let in_flight = InFlight::start(&self.observer.metrics.in_flight);
        let seen = pending.seen.as_mut().expect("an invocation is seen until it ends");
        // Boxed once here: the rest of the path is a deep future, which each layer above would
        // otherwise move whole as it passes it on.
        let invoked =
            Box::pin(self.resolve_and_run(invocation, trace, started, span.clone(), seen).instrument(span)).await;
        drop(in_flight);
        let seen = pending.seen.take().expect("an invocation ends once");
        let ended = match &invoked.result {
            Ok(reply) => Ended { status: reply.output.status, error_type: None, output_cid: reply.output_cid },
            Err(error) => Ended { status: error.status(), error_type: Some(error.kind()), output_cid: None },
        };
        self.observer.finished(seen.finished(&self, ended, started));
        invoked
    }

    async fn resolve_and_run(
        self: &Arc<Self>,
        mut invocation: Box<Invocation>,
        trace: Trace,
        started: Instant,
        span: tracing::Span,
        seen: &mut Seen,
    ) -> Invoked {
        let (script, server) = match self.resolve(&invocation.target).await {
            Ok(resolved) => resolved,
            Err(error) => return Invoked { script: None, result: Err(error) },
        };
        // A name asked for is the name it runs as, and a name or CID resolves only to a registered server.
        if seen.server != server {
            seen.server = server.clone();
        }
        seen.registered = !matches!(invocation.target, Target::Script { .. });
        seen.script = Some(script.clone());
        seen.operation = invocation.operation.take().or_else(|| {
            let operation = script.meta.operation_for(&invocation.method, &invocation.endpoint);
            operation.map(|operation| operation.name.clone())
        });
        let timeout = self.engine.timeout_for(&script, invocation.timeout);
        let mut context = Context::traced(server, script.clone(), started, timeout, trace);
        context.all_pages = invocation.all_pages;
        context.headers = passed(&script.meta.api.pass_headers, &invocation.headers);
        context.span = span;
        let context = Arc::new(context);
        let result = self.run(&script, &context, invocation).await;
        seen.upstream = context.upstream();
        if let Err(error) = &result {
            tracing::debug!(cid = %script.cid, kind = error.kind(), "invocation failed");
        }
        Invoked { script: Some(script), result }
    }

    /// Finds the script a target names, and the server name it runs as. A script that is not compiled
    /// yet is read and compiled on the blocking pool, never on the calling worker.
    pub(crate) async fn resolve(self: &Arc<Self>, target: &Target) -> Result<(Arc<Script>, Option<String>)> {
        match target {
            Target::Name(name) => {
                let server = self.existing(name)?;
                if !server.enabled {
                    return Err(Error::NotFound(format!("server '{name}' is disabled")));
                }
                let script = server.script.clone().map_err(|e| {
                    let at = Location { server: Some(name.clone()), cid: Some(server.cid), ..Location::default() };
                    Error::script(format!("the stored script does not load: {}", e.message()), at)
                })?;
                Ok((script, Some(name.clone())))
            }
            Target::Cid(cid) => {
                let name = self.runner(cid)?;
                let script = match self.cached(cid) {
                    Some(script) => script,
                    None => {
                        let cid = *cid;
                        self.blocking(move |rt| rt.script(&cid)).await.map_err(|e| {
                            let at = Location { server: Some(name.clone()), cid: Some(cid), ..Location::default() };
                            Error::script(format!("the stored script does not load: {}", e.message()), at)
                        })?
                    }
                };
                Ok((script, Some(name)))
            }
            Target::Script { script, name } => Ok((script.clone(), name.clone())),
        }
    }

    async fn run(
        self: &Arc<Self>,
        script: &Arc<Script>,
        context: &Arc<Context>,
        mut invocation: Box<Invocation>,
    ) -> Result<Reply> {
        if let Some(cid) = invocation.input {
            invocation.data = self.blocking(move |rt| rt.input(&cid)).await?;
        }
        if !script.defines(invocation.function) {
            return Err(Error::NotFound(format!("the script does not define fn {}", invocation.function.name())));
        }
        if invocation.all_pages && !script.meta.pages() {
            return Err(Error::BadRequest(
                "every page was asked for (all=1, X-All-Pages, all_pages), and this server declares no pagination \
                 (META.api.pagination)"
                    .into(),
            ));
        }
        let store_output = invocation.store_output;
        // Whatever goes wrong, no secret value the script read leaves in the error.
        let output = self
            .execute(script, context, invocation)
            .await
            .map_err(|error| self.every_missing(script, error).map_text(|text| context.redact(text)))?;
        let output_cid = match store_output {
            false => None,
            true => Some(self.store_output(output.body.to_vec()).await?),
        };
        Ok(Reply { output, output_cid })
    }

    /// Runs the script inline, or as a fiber when it waits (now or on an earlier run): on the request
    /// worker that received the call, or on a script thread when it computes for long.
    async fn execute(
        self: &Arc<Self>,
        script: &Arc<Script>,
        context: &Arc<Context>,
        invocation: Box<Invocation>,
    ) -> Result<Output> {
        let call = Prepared {
            function: invocation.function,
            endpoint: ImmutableString::from(invocation.endpoint),
            method: ImmutableString::from(invocation.method),
            context: context.clone(),
        };
        if script.overflowed() {
            return Err(Overflow::again(context.location()));
        }
        if !script.waits() {
            match self.engine.run_inline(call.with(invocation.data.to_dynamic()?, true, None)) {
                Ok(value) => return call.output(value),
                Err(Fault::Error(error)) => return Err(error),
                Err(Fault::Demote) => script.mark_waits(),
            }
        }
        // Boxed apart, and the call shared only from here: the inline run above is the common case,
        // and every layer above moves this future whole; a call that waits pays the allocations
        // beside its I/O.
        Box::pin(self.wait(script, context, Arc::new(call), Arc::new(invocation.data))).await
    }

    /// Runs `call` as a fiber: on this request worker, or on a script thread when it computes for long.
    async fn wait(
        self: &Arc<Self>,
        script: &Arc<Script>,
        context: &Arc<Context>,
        call: Arc<Prepared>,
        data: Arc<Data>,
    ) -> Result<Output> {
        // Dropping this future (the client went away) stops the script: at its next operation through
        // the flag, at its next wait through the fiber's driver.
        let cancel = CancelOnDrop::new();
        if on_worker() && !script.computes() {
            let body = self.fiber(&call, &data, &cancel, true);
            match self.threads.run(context.deadline(), body).await {
                Some(Ok(Some(result))) => return result,
                Some(Ok(None)) => script.mark_computes(),
                Some(Err(overflow)) => return Err(context.overflowed(overflow)),
                None => return Err(Error::Internal("the request worker's fiber failed".into())),
            }
        }
        let body = self.fiber(&call, &data, &cancel, false);
        match self.threads.run_apart(context.deadline(), body).await {
            Some(Ok(Some(result))) => result,
            Some(Ok(None)) => Err(Error::Internal("a fiber on a script thread cannot be demoted".into())),
            Some(Err(overflow)) => Err(context.overflowed(overflow)),
            None => Err(Error::Internal("the script thread failed".into())),
        }
    }

    /// The body of a fiber running `call` on `data`; `None` when it was `restartable` (bounded like an
    /// inline run until its first wait) and computed past that budget: nothing it did had an effect
    /// outside, and it is run again on a script thread.
    fn fiber(
        self: &Arc<Self>,
        call: &Arc<Prepared>,
        data: &Arc<Data>,
        cancel: &CancelOnDrop,
        restartable: bool,
    ) -> impl FnOnce() -> Option<Result<Output>> + Send + 'static {
        let (runtime, call, data, flag) = (self.clone(), call.clone(), data.clone(), cancel.flag());
        move || {
            let data = match data.to_dynamic() {
                Ok(data) => data,
                Err(error) => return Some(Err(error)),
            };
            match runtime.engine.run(call.with(data, restartable, Some(flag))) {
                Ok(value) => Some(call.output(value)),
                Err(Fault::Error(error)) => Some(Err(error)),
                Err(Fault::Demote) => None,
            }
        }
    }

    /// A `missing_secret` completed with the other secrets the server's requests name that are not set
    /// either, so that a user sets them all at once rather than meeting them one call at a time.
    fn every_missing(&self, script: &Script, error: Error) -> Error {
        let Error::MissingSecret { name, mut also } = error else { return error };
        let raised: Vec<&str> = name.split(" or ").collect();
        let secrets = self.services.secrets();
        let unset = |group: &[String]| group.iter().all(|n| matches!(secrets.get(n), Ok(None)));
        for group in script.meta.request_secrets() {
            let text = group.join(" or ");
            if !group.iter().any(|n| raised.contains(&n.as_str())) && !also.contains(&text) && unset(group) {
                also.push(text);
            }
        }
        Error::MissingSecret { name, also }
    }

    async fn store_output(self: &Arc<Self>, body: Vec<u8>) -> Result<Cid> {
        self.blocking(move |rt| {
            let mut change = Change::default();
            let cid = change.blob(body);
            rt.store.commit(&change).map(|()| cid)
        })
        .await
    }

    /// A stored blob as `data`: JSON when it parses, text when it is UTF-8, bytes otherwise.
    fn input(&self, cid: &Cid) -> Result<Data> {
        let blob = self.store.blob(cid)?.ok_or_else(|| Error::NotFound(format!("no blob {cid} to use as input")))?;
        Ok(Data::Body(blob.into()))
    }
}

/// An invocation under way: when its caller goes away first (the future is dropped), it still ends in
/// a record and metrics, as `cancelled` with the status proxies use for a client that closed the
/// request (499), so that an operator sees the calls that were abandoned.
struct Pending<'a> {
    runtime: &'a Runtime,
    seen: Option<Seen>,
    started: Instant,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let Some(seen) = self.seen.take() {
            let ended = Ended { status: 499, error_type: Some("cancelled"), output_cid: None };
            self.runtime.observer.finished(seen.finished(self.runtime, ended, self.started));
        }
    }
}

/// How an invocation ended, as its record tells it.
struct Ended {
    status: u16,
    error_type: Option<&'static str>,
    output_cid: Option<Cid>,
}

/// What an invocation's record and metrics need, gathered as it goes.
struct Seen {
    time: i64,
    via: Via,
    /// The server it runs as, once resolved; before that, the name asked for, when it is a valid name.
    server: Option<String>,
    /// `server` is known to be in the registry (else it is looked up when the invocation ends).
    registered: bool,
    /// The script it runs, once resolved.
    script: Option<Arc<Script>>,
    operation: Option<String>,
    input_cid: Option<Cid>,
    request_id: String,
    trace_id: String,
    upstream: (u32, u64),
}

impl Seen {
    fn of(invocation: &Invocation, trace: &Trace, started: Instant) -> Seen {
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let asked = match &invocation.target {
            Target::Name(name) => crate::server::validate_name(name).ok().map(|()| name.clone()),
            _ => None,
        };
        Seen {
            time: (since_epoch.saturating_sub(started.elapsed())).as_millis() as i64,
            via: invocation.via,
            server: asked,
            registered: false,
            script: None,
            operation: None,
            input_cid: invocation.input,
            request_id: trace.request_id.clone(),
            trace_id: trace.trace_id.clone(),
            upstream: (0, 0),
        }
    }

    /// The record and metric labels of the invocation that ended as `ended`.
    fn finished(self, runtime: &Runtime, ended: Ended, started: Instant) -> Finished {
        let Ended { status, error_type, output_cid } = ended;
        let pricing = self.script.as_ref().and_then(|script| script.meta.pricing.as_ref());
        let cost = pricing.map_or(0.0, |pricing| pricing.cost(self.operation.as_deref(), self.upstream.0));
        let registered = self.registered || self.server.as_deref().is_some_and(|name| runtime.server(name).is_some());
        let record = InvocationRecord {
            time: self.time,
            server: self.server,
            operation: self.operation,
            cid: self.script.as_ref().map(|script| script.cid),
            via: self.via,
            input_cid: self.input_cid,
            output_cid,
            status,
            error_type: error_type.map(str::to_owned),
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            upstream_calls: self.upstream.0,
            upstream_bytes: self.upstream.1,
            request_id: self.request_id,
            trace_id: self.trace_id,
            cost,
            currency: pricing.map(|pricing| pricing.currency.clone()),
        };
        Finished { record, registered, outcome: error_type.unwrap_or("ok") }
    }
}

/// What every attempt of one invocation shares.
struct Prepared {
    function: Function,
    endpoint: ImmutableString,
    method: ImmutableString,
    context: Arc<Context>,
}

impl Prepared {
    fn with(&self, data: Dynamic, inline: bool, cancel: Option<Arc<AtomicBool>>) -> Call {
        Call {
            function: self.function,
            endpoint: self.endpoint.clone(),
            method: self.method.clone(),
            data,
            context: self.context.clone(),
            inline,
            cancel,
        }
    }

    /// The value the script returned, as the response it stands for.
    fn output(&self, value: Dynamic) -> Result<Output> {
        Output::returned(value, &self.context.passthrough).map_err(|refused| {
            let at = Location {
                server: self.context.server.clone(),
                cid: Some(self.context.script.cid),
                ..Location::default()
            };
            refused.into_error(at)
        })
    }
}
