//! The durable queue of webhook events: every run of a handler is taken from it, so that a stored event
//! is never dropped, whatever the handler, the services it calls or the process do.
//!
//! The queue is the store itself: an event waiting for its handler is `pending` or `failed` with the
//! time it falls due. A run first *claims* the event ([`Store::claim_event`](crate::store::Store)),
//! which counts the attempt and moves the due time past the longest run there can be (the lease), so no
//! other worker — of this process, or of another sharing the store — starts it meanwhile; a process that
//! stops mid-run leaves the event due again once its lease ends. The run goes through
//! [`Runtime::invoke`] like every other, and its outcome settles the event: `handled`, or `failed` with
//! the next attempt after an exponential backoff with jitter, or `dead` after the last attempt allowed.
//!
//! The handler is the server's `fn webhook(event)`, or, when the operator set `<NAME>_WEBHOOK_SERVER`,
//! that server's: events handed to another server run there, with its secrets and in its sandbox.
//!
//! The receiver makes the first attempt at once, so that the handler's answer can still be the
//! provider's response (Slack's challenge, Twilio's TwiML): it stores the event claimed by itself, so
//! that no worker woken by that very commit takes it first. The [`worker`] of `serve` makes the rest,
//! and resumes on start whatever a stopped process left waiting.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::sync::broadcast::error::RecvError;

use super::event::Receipt;
use crate::cid::Cid;
use crate::engine::{Data, Function};
use crate::error::{Error, Result};
use crate::invoke::{Invocation, Invoked, Target};
use crate::meta::webhook::HANDED_TO;
use crate::modules::http::backoff;
use crate::observe::trace::Trace;
use crate::runtime::Runtime;
use crate::store::{Change, EventStatus, Op, Via};

/// How long past the longest run allowed a claimed event stays taken.
const LEASE_MARGIN: Duration = Duration::from_secs(10);
/// Handlers the worker runs at once.
const CONCURRENT: usize = 8;
/// The longest the worker sleeps without looking at the queue, whatever it was told: another process
/// sharing the store may add events without this one hearing of it at once.
const IDLE: Duration = Duration::from_secs(30);
/// The shortest: an event the store keeps due (it cannot record the claim) is not retried in a tight loop.
const BREATH: Duration = Duration::from_millis(50);

/// One run of an event's handler and where it left the event.
pub struct Attempt {
    pub invoked: Invoked,
    pub status: EventStatus,
}

fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Runtime {
    /// Claims the event `cid` of `server` and runs its handler once. With `due_by`, only an event waiting
    /// and due by then (Unix ms); without, any event (a replay). `None` when the event was not taken
    /// (another worker has it, or it is settled), or the store failed, which leaves it in the queue.
    /// The handler's invocation carries `trace` (the delivery's), else a new one.
    pub async fn attempt_event(
        self: &Arc<Self>,
        server: &str,
        cid: Cid,
        due_by: Option<i64>,
        trace: Option<Trace>,
    ) -> Option<Attempt> {
        let number = self.claim_event(server, cid, due_by).await?;
        Some(self.run_claimed(server, cid, number, trace.unwrap_or_default()).await)
    }

    /// Until when (Unix ms) an event claimed now stays taken: past the longest run there can be.
    pub(crate) fn lease_from_now(&self) -> i64 {
        let lease = self.settings.limits.max_timeout + LEASE_MARGIN;
        now_millis().saturating_add(lease.as_millis() as i64)
    }

    async fn claim_event(self: &Arc<Self>, server: &str, cid: Cid, due_by: Option<i64>) -> Option<u32> {
        let until = self.lease_from_now();
        match self.blocking(move |rt| rt.store.claim_event(&cid, due_by, until)).await {
            Ok(number) => number,
            Err(error) => {
                tracing::error!(server = %server, event = %cid, "a webhook event could not be claimed: {}", error.message());
                None
            }
        }
    }

    /// The server another one's events are handed to (`<NAME>_WEBHOOK_SERVER`), if the operator said.
    pub fn handed_to(&self, server: &str) -> Option<String> {
        let handler = self.services.variable(&format!("{}_{HANDED_TO}", server.to_uppercase()))?;
        Some(handler.trim().to_owned()).filter(|handler| !handler.is_empty())
    }

    /// Runs the handler for attempt `number` of a claimed event and settles the event by its outcome,
    /// which names the request id of the invocation that ran it (the link to its record). The handler
    /// is `fn webhook(event)` of the server, or of the one its events are handed to.
    pub(crate) async fn run_claimed(self: &Arc<Self>, server: &str, cid: Cid, number: u32, trace: Trace) -> Attempt {
        let request_id = trace.request_id.clone();
        let invoked = match self.stored_event(cid).await {
            Ok(event) => {
                let handler = self.handed_to(server).unwrap_or_else(|| server.to_owned());
                let mut invocation = Invocation::with_method(Target::Name(handler), "POST".into());
                invocation.function = Function::Webhook;
                invocation.data = Data::Value(event);
                (invocation.via, invocation.trace) = (Via::Webhook, Some(trace));
                self.invoke(invocation).await
            }
            Err(error) => Invoked { script: None, result: Err(error) },
        };
        let retry = &self.settings.webhook_retry;
        let (status, outcome, next_attempt_at) = match &invoked.result {
            Ok(reply) => (EventStatus::Handled, serde_json::json!({ "status": reply.output.status }), None),
            Err(error) if number >= retry.attempts => (EventStatus::Dead, error.to_json()["error"].clone(), None),
            Err(error) => {
                let wait = backoff(retry.base, retry.cap, number);
                let at = now_millis().saturating_add(wait.as_millis() as i64);
                (EventStatus::Failed, error.to_json()["error"].clone(), Some(at))
            }
        };
        let mut outcome = outcome;
        if let Some(fields) = outcome.as_object_mut() {
            fields.insert("request_id".into(), serde_json::Value::String(request_id));
        }
        let mut change = Change::default();
        change.op(Op::EventOutcome { cid, status, outcome: Some(outcome), next_attempt_at });
        if let Err(error) = self.blocking(move |rt| rt.store.commit(&change)).await {
            // The event keeps its lease and runs again when it ends.
            tracing::error!(server = %server, event = %cid, "the outcome of a webhook handler was not recorded: {}", error.message());
        }
        Attempt { invoked, status }
    }

    /// The `event` a handler gets, rebuilt from the stored receipt and body.
    async fn stored_event(self: &Arc<Self>, cid: Cid) -> Result<serde_json::Value> {
        self.blocking(move |rt| {
            let blob = |cid: &Cid| rt.store.blob(cid)?.ok_or_else(|| Error::Internal(format!("blob {cid} is missing")));
            let receipt = Receipt::from_bytes(&blob(&cid)?).map_err(Error::Internal)?;
            let body = blob(&receipt.body_cid)?;
            Ok(receipt.event(cid, &body))
        })
        .await
    }
}

/// Runs the handlers of waiting events as they fall due, for as long as `runtime` serves: on start, it
/// picks up what a stopped process left. It wakes when the next event is due and whenever the store
/// changes (a failure just scheduled its retry, another process stored an event).
pub async fn worker(runtime: Arc<Runtime>) {
    let mut changes = runtime.store.changes();
    let running = Arc::new(Semaphore::new(CONCURRENT));
    loop {
        let now = now_millis();
        match runtime.blocking(move |rt| rt.store.due_events(now, CONCURRENT)).await {
            Ok(due) => {
                for event in due {
                    let Ok(permit) = running.clone().acquire_owned().await else { return };
                    let Some(number) = runtime.claim_event(&event.server, event.cid, Some(now)).await else { continue };
                    let runtime = runtime.clone();
                    tokio::spawn(async move {
                        runtime.run_claimed(&event.server, event.cid, number, Trace::default()).await;
                        drop(permit);
                    });
                }
            }
            Err(error) => tracing::error!("the webhook queue could not be read: {}", error.message()),
        }
        let next = runtime.blocking(|rt| rt.store.next_event_due()).await.ok().flatten();
        let wait = next.map_or(IDLE, |at| Duration::from_millis(at.saturating_sub(now_millis()).max(0) as u64));
        let wait = wait.clamp(BREATH, IDLE);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            changed = changes.recv() => if matches!(changed, Err(RecvError::Closed)) { tokio::time::sleep(wait).await },
        }
    }
}
