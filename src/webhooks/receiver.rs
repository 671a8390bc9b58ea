//! The receiver: from a request that claims to be a provider's delivery to a stored event and its
//! handler's answer, and the operations on stored events (listing, replay).
//!
//! Everything before the handler runs in one blocking task — read the secret, verify, look the delivery
//! id up, commit — because each step needs the store. A stored event joins the [`queue`](super::queue),
//! and the receiver makes its first attempt at once: a handler that returns answers the provider; one
//! that fails leaves the event to the queue's retries, and the provider gets `202` all the same, since
//! the event is safe.

use std::sync::Arc;

use serde_json::{Value, json};

use super::event::{Receipt, parse_body};
use super::queue::Attempt;
use super::{Incoming, SAME_BODY_WINDOW, signature};
use crate::cid::Cid;
use crate::engine::{Function, Output, Script, output};
use crate::error::{Error, Result};
use crate::invoke::{Invoked, Reply, Target};
use crate::meta::webhook::{Scheme, Spec};
use crate::observe::metrics::Outcome;
use crate::observe::trace::Trace;
use crate::runtime::Runtime;
use crate::store::{Change, EventStatus, Op, WebhookEvent};

/// What a delivery came to: the response to give, and the event's CID once it is stored.
#[derive(Debug)]
pub struct Received {
    pub invoked: Invoked,
    pub event: Option<Cid>,
    /// The delivery repeated one stored before.
    pub duplicate: bool,
}

/// A verified delivery after the store step.
enum Stored {
    New {
        cid: Cid,
        body: bytes::Bytes,
    },
    /// The event stored earlier under the same delivery id, and this delivery's body.
    Duplicate(WebhookEvent, bytes::Bytes),
}

impl Runtime {
    /// Receives one delivery for the server `name`: verify, store, deduplicate, hand to `fn webhook(event)`
    /// as the invocation `trace` names.
    pub async fn receive_webhook(self: &Arc<Self>, name: &str, incoming: Incoming, trace: Trace) -> Received {
        let received = self.deliver(name, incoming, trace).await;
        let result = match (&received.invoked.result, received.event) {
            (Err(error), None) if signature::is_stale(error) => "stale",
            (Err(error), None) if error.kind() == "unauthorized" => "bad_signature",
            (Err(error), None) => error.kind(),
            (_, Some(_)) if received.duplicate => "duplicate",
            (_, _) => "accepted",
        };
        let server = match self.server(name) {
            Some(_) => name.to_owned(),
            None => crate::observe::metrics::UNKNOWN.to_owned(),
        };
        self.observer.metrics.webhook_deliveries.get_or_create(&Outcome { server, result }).inc();
        received
    }

    async fn deliver(self: &Arc<Self>, name: &str, incoming: Incoming, trace: Trace) -> Received {
        let (script, spec) = match self.receiving(name).await {
            Ok(found) => found,
            Err(error) => {
                return Received {
                    invoked: Invoked { script: None, result: Err(error) },
                    event: None,
                    duplicate: false,
                };
            }
        };
        let handled = script.defines(Function::Webhook) || self.handed_to(name).is_some();
        let answer = |result: Result<Reply>, event, duplicate| Received {
            invoked: Invoked { script: Some(script.clone()), result },
            event,
            duplicate,
        };
        let (cid, body) = match self.store_delivery(name, &spec, handled, incoming).await {
            Err(error) => return answer(Err(error), None, false),
            Ok(Stored::Duplicate(event, body)) => {
                return answer(Ok(default_answer(spec.scheme, event.cid, &body, true)), Some(event.cid), true);
            }
            Ok(Stored::New { cid, body }) => (cid, body),
        };
        if !handled {
            return answer(Ok(default_answer(spec.scheme, cid, &body, false)), Some(cid), false);
        }
        match self.run_claimed(name, cid, 1, trace).await {
            Attempt { invoked, .. } if invoked.result.is_ok() => {
                Received { invoked, event: Some(cid), duplicate: false }
            }
            Attempt { status, .. } => answer(Ok(queued(cid, status)), Some(cid), false),
        }
    }

    /// The script of an enabled server that receives webhooks, and how it does.
    async fn receiving(self: &Arc<Self>, name: &str) -> Result<(Arc<Script>, Spec)> {
        let (script, _) = self.resolve(&Target::Name(name.to_owned())).await?;
        let spec = script.meta.webhook.clone().ok_or_else(|| {
            Error::NotFound(format!("server '{name}' receives no webhooks: its META declares no webhook"))
        })?;
        Ok((script, spec))
    }

    /// Verifies the delivery and stores it, unless its delivery id is already stored.
    async fn store_delivery(
        self: &Arc<Self>,
        name: &str,
        spec: &Spec,
        handled: bool,
        incoming: Incoming,
    ) -> Result<Stored> {
        let (server, spec) = (name.to_owned(), spec.clone());
        self.blocking(move |rt| {
            let secret = rt.services.secrets().get(&spec.secret)?.ok_or(Error::missing_secret(spec.secret))?;
            let now = chrono::Utc::now();
            signature::verify(spec.scheme, &secret, &incoming, now.timestamp())?;
            let receipt = Receipt::new(&server, spec.scheme, &incoming, now.timestamp_millis());
            let same_body_since =
                (!spec.scheme.signs_delivery_id()).then(|| receipt.received_at - SAME_BODY_WINDOW.as_millis() as i64);
            if let Some(event) = stored_before(rt, &receipt, same_body_since)? {
                return Ok(Stored::Duplicate(event, incoming.body));
            }
            let mut change = Change::default();
            let body_cid = change.blob(incoming.body.to_vec());
            let cid = change.blob(receipt.to_bytes());
            change.op(Op::RecordEvent {
                cid,
                server: server.clone(),
                delivery_id: receipt.delivery_id.clone(),
                body_cid,
                received_at: receipt.received_at,
                status: if handled { EventStatus::Pending } else { EventStatus::Stored },
                same_body_since,
                // Its first attempt is this receiver's, made as soon as it is stored.
                claimed_until: handled.then(|| rt.lease_from_now()),
            });
            match rt.store.commit(&change) {
                Ok(()) => Ok(Stored::New { cid, body: incoming.body }),
                // The same delivery, stored meanwhile by a concurrent request, is a duplicate after all.
                Err(error) => match stored_before(rt, &receipt, same_body_since) {
                    Ok(Some(event)) => Ok(Stored::Duplicate(event, incoming.body)),
                    _ => {
                        tracing::error!(server = %server, "a webhook event could not be stored: {}", error.message());
                        Err(Error::Unavailable("the event could not be stored; deliver it again later".into()))
                    }
                },
            }
        })
        .await
    }

    /// The newest `limit` events `name` received, newest first; with `status`, only those.
    pub async fn webhook_events(
        self: &Arc<Self>,
        name: &str,
        status: Option<EventStatus>,
        limit: usize,
    ) -> Result<Vec<WebhookEvent>> {
        self.existing(name)?;
        let server = name.to_owned();
        self.blocking(move |rt| rt.store.events(&server, status, limit)).await
    }

    /// Runs the current handler of `name` again on the stored event `cid`, and returns the event as it
    /// then stands.
    pub async fn replay_webhook(self: &Arc<Self>, name: &str, cid: Cid) -> Result<WebhookEvent> {
        let (script, _) = self.receiving(name).await?;
        if !script.defines(Function::Webhook) && self.handed_to(name).is_none() {
            return Err(Error::BadRequest(format!(
                "server '{name}' defines no fn webhook(event) to replay the event to"
            )));
        }
        let event = || {
            let server = name.to_owned();
            let missing = move || Error::NotFound(format!("server '{server}' has no webhook event {cid}"));
            let server = name.to_owned();
            self.blocking(move |rt| rt.store.event(&server, &cid)?.ok_or_else(missing))
        };
        event().await?;
        // Taken whatever its state: an operator asked for this run, on top of the queue's attempts.
        let unavailable = || Error::Unavailable("the event could not be taken from the queue; try again".into());
        self.attempt_event(name, cid, None, None).await.ok_or_else(unavailable)?;
        event().await
    }
}

/// The event this delivery repeats: the same delivery id, or (with `same_body_since`) the same body
/// received since then.
fn stored_before(rt: &Runtime, receipt: &Receipt, same_body_since: Option<i64>) -> Result<Option<WebhookEvent>> {
    if let Some(event) = rt.store.event_by_delivery(&receipt.server, &receipt.delivery_id)? {
        return Ok(Some(event));
    }
    match same_body_since {
        Some(since) => rt.store.event_by_body(&receipt.server, &receipt.body_cid, since),
        None => Ok(None),
    }
}

/// The answer to a delivery whose handler has not returned (it failed, or another worker runs it): the
/// event is stored and its handler will run again, so the provider is done with it.
fn queued(cid: Cid, status: EventStatus) -> Reply {
    let body = bytes::Bytes::from(json!({ "cid": cid, "status": status }).to_string());
    Reply { output: Output { status: 202, content_type: output::JSON, headers: Vec::new(), body }, output_cid: None }
}

/// The answer to a delivery no handler answered (none is defined, or it is a duplicate): the event's
/// CID, and Slack's challenge when Slack is verifying the URL, so that the URL can be set up first.
fn default_answer(scheme: Scheme, cid: Cid, body: &[u8], duplicate: bool) -> Reply {
    let mut answer = json!({ "cid": cid });
    if duplicate {
        answer["duplicate"] = Value::Bool(true);
    }
    if scheme == Scheme::Slack {
        let body = parse_body(Some("application/json"), body);
        if body["type"] == "url_verification" {
            answer["challenge"] = body["challenge"].clone();
        }
    }
    let body = bytes::Bytes::from(answer.to_string());
    Reply { output: Output { status: 200, content_type: output::JSON, headers: Vec::new(), body }, output_cid: None }
}
