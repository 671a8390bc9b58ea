//! The one way to run a script: resolve → compiled script → sandboxed run → output.
//!
//! HTTP (both styles, by name or CID), the CLI's `call`, and chaining all build a [`Request`] and call
//! [`Runtime::invoke`]. Where the script runs is decided here:
//!
//! * first *inline*, on the calling thread (a tokio worker for HTTP), which is the fastest place for
//!   the common pure-compute script;
//! * on the blocking pool when the script is known to block (it called the network or a database on an
//!   earlier run) or when the inline attempt demotes itself (it reached such a call, or its inline
//!   operation budget). The demoted attempt had no effect, so it is simply run again.
//!
//! The tokio workers therefore never wait on I/O or run a long computation, and a runaway script
//! only ever occupies a blocking-pool thread until its limit stops it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rhai::{Dynamic, ImmutableString};

use crate::cid::Cid;
use crate::engine::{Call, Context, Data, Fault, Output, Script};
use crate::error::{Error, Location, Result};
use crate::runtime::Runtime;
use crate::store::Change;

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
pub struct Request {
    pub target: Target,
    pub endpoint: String,
    pub method: String,
    pub data: Data,
    /// `data` already turned into a Rhai value (when the caller had to parse it to validate it).
    pub parsed: Option<Dynamic>,
    /// Run on the blob with this CID as `data` instead.
    pub input: Option<Cid>,
    /// Store the output as a blob and report its CID.
    pub store_output: bool,
    /// This call's own wall-clock limit.
    pub timeout: Option<Duration>,
}

impl Request {
    /// A `GET` with no endpoint and no data.
    pub fn new(target: Target) -> Request {
        Request::with_method(target, "GET".into())
    }

    pub fn with_method(target: Target, method: String) -> Request {
        Request {
            target,
            endpoint: String::new(),
            method,
            data: Data::None,
            parsed: None,
            input: None,
            store_output: false,
            timeout: None,
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

impl Runtime {
    /// Runs one invocation. Every entry point calls this.
    pub async fn invoke(self: &Arc<Self>, request: Request) -> Invoked {
        let (script, server) = match self.resolve(&request.target) {
            Ok(resolved) => resolved,
            Err(error) => return Invoked { script: None, result: Err(error) },
        };
        let result = self.run(script.clone(), server, request).await;
        if let Err(error) = &result {
            tracing::debug!(cid = %script.cid, kind = error.kind(), "invocation failed");
        }
        Invoked { script: Some(script), result }
    }

    /// Finds the script a target names, and the server name it runs as.
    fn resolve(&self, target: &Target) -> Result<(Arc<Script>, Option<String>)> {
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
                let script = self.script(cid).map_err(|e| match e {
                    Error::InvalidScript { .. } => {
                        Error::BadRequest(format!("blob {cid} is not a runnable script: {}", e.message()))
                    }
                    other => other,
                })?;
                let server = self.servers().values().find(|s| s.cid == *cid && s.enabled).map(|s| s.name.clone());
                Ok((script, server))
            }
            Target::Script { script, name } => Ok((script.clone(), name.clone())),
        }
    }

    async fn run(self: &Arc<Self>, script: Arc<Script>, server: Option<String>, mut request: Request) -> Result<Reply> {
        let started = Instant::now();
        if let Some(cid) = request.input {
            request.data = self.blocking(move |rt| rt.input(&cid)).await?;
            request.parsed = None;
        }
        let timeout = self.engine.timeout_for(&script, request.timeout);
        let context = Arc::new(Context::new(server, script.clone(), started, timeout));
        // Whatever goes wrong, no secret value the script read leaves in the error.
        self.execute(&script, &context, request).await.map_err(|error| error.map_text(|text| context.redact(text)))
    }

    async fn execute(
        self: &Arc<Self>,
        script: &Arc<Script>,
        context: &Arc<Context>,
        mut request: Request,
    ) -> Result<Reply> {
        let endpoint = ImmutableString::from(std::mem::take(&mut request.endpoint));
        let method = ImmutableString::from(std::mem::take(&mut request.method));
        let call = |data: Dynamic, inline: bool, cancel: Option<Arc<AtomicBool>>| Call {
            endpoint: endpoint.clone(),
            method: method.clone(),
            data,
            context: context.clone(),
            inline,
            cancel,
        };

        let inline = match script.runs_blocking() {
            true => Err(Fault::Demote),
            false => {
                let data = match request.parsed.take() {
                    Some(data) => data,
                    None => request.data.to_dynamic()?,
                };
                self.engine.run(call(data, true, None))
            }
        };
        let value = match inline {
            Ok(value) => value,
            Err(Fault::Error(error)) => return Err(error),
            Err(Fault::Demote) => {
                script.mark_blocking();
                // Dropping this future (the client went away) stops the script at its next operation.
                let cancel = CancelOnDrop::new();
                let blocking_call = call(Dynamic::UNIT, false, Some(cancel.flag()));
                let data = std::mem::take(&mut request.data);
                self.blocking(move |rt| {
                    let call = Call { data: data.to_dynamic()?, ..blocking_call };
                    rt.engine.run(call).map_err(|fault| match fault {
                        Fault::Error(error) => error,
                        Fault::Demote => Error::Internal("a run off the tokio workers was demoted".into()),
                    })
                })
                .await?
            }
        };

        let output = Output::from_dynamic(value).map_err(|refused| {
            refused.into_error(Location { server: context.server.clone(), cid: Some(script.cid), ..Location::default() })
        })?;
        let output_cid = match request.store_output {
            false => None,
            true => {
                let body = output.body.to_vec();
                Some(
                    self.blocking(move |rt| {
                        let mut change = Change::default();
                        let cid = change.blob(body);
                        rt.store.commit(&change).map(|()| cid)
                    })
                    .await?,
                )
            }
        };
        Ok(Reply { output, output_cid })
    }

    /// A stored blob as `data`: JSON when it parses, text when it is UTF-8, bytes otherwise.
    fn input(&self, cid: &Cid) -> Result<Data> {
        let blob = self.store.blob(cid)?.ok_or_else(|| Error::NotFound(format!("no blob {cid} to use as input")))?;
        Ok(Data::sniff(blob.into()))
    }
}
