//! The durable state: content-addressed blobs, the registry of servers, its history, small facts, and
//! the webhook events servers received.
//!
//! Everything that changes the store goes through [`Store::commit`] as one [`Change`], applied in one
//! transaction: a crash or a refused import leaves either the old state or the new one, never a mix.
//! The trait is the seam for a PostgreSQL implementation; the runtime never sees SQL.
//!
//! The store is never on the hot invocation path: the runtime keeps compiled scripts, the registry,
//! variables and opened secrets in memory and only reads blobs here for chaining, content requests and
//! (re)loading. Since other processes change the same store (`switchboard secret set` beside a running
//! `serve`, or the other instances on one PostgreSQL database), every store has one change feed,
//! [`Store::changes`], which the runtime follows to bring those snapshots up to date: each commit says
//! what it [`Changed`], so that an edit costs the reads of what it touched, not of the whole registry.
//! SQLite tells its own process's commits at once and another process's as [`Changed::Everything`];
//! PostgreSQL sends a NOTIFY inside each commit's transaction (see [`postgres`]).
//!
//! Invocation records ([`records`]) are kept here too, through four operations of their own: they are
//! written in batches by a writer off the hot path, never through a [`Change`], and do not move the
//! change feed.

pub mod copy;
mod location;
pub mod postgres;
mod record_block;
pub mod records;
mod sqlite;
mod sqlite_records;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::cid::Cid;
use crate::error::Result;

pub use location::{STORE_ENV, is_postgres, open};
pub use postgres::PostgresStore;
pub use records::{InvocationRecord, RecordFilter, StatusFilter, Usage, Via};
pub use sqlite::SqliteStore;

/// What a commit changed, as the change feed reports it. Never a secret's value: at most its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Changed {
    /// A server was bound (`head` is its new CID), enabled or disabled, or removed.
    Server {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        head: Option<Cid>,
    },
    Variables,
    Secret {
        name: String,
    },
    Connection {
        server: String,
    },
    /// Webhook events were stored or settled: the queue looks for due ones.
    Events,
    /// Anything may have changed: re-read it all (after a reconnect, a subscriber that fell behind,
    /// another process's commit to a SQLite file).
    Everything,
}

/// How many changes one commit reports one by one; a larger commit (an image import) reports
/// [`Changed::Everything`] instead.
const ITEMIZED: usize = 64;

/// How many reported changes a subscriber may fall behind before it is told [`Changed::Everything`].
const BACKLOG: usize = 1024;

/// A change feed with no subscriber yet.
fn feed() -> broadcast::Sender<Changed> {
    broadcast::channel(BACKLOG).0
}

/// How a binding came to be: recorded in the history of every name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Loaded from a boot image (embedded, packed or a source file at start-up).
    Boot,
    /// A watched script or boot source file changed on disk.
    File,
    /// The management API (an edit, a rollback).
    Api,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Boot => "boot",
            Origin::File => "file",
            Origin::Api => "api",
        })
    }
}

impl FromStr for Origin {
    type Err = String;
    fn from_str(text: &str) -> Result<Origin, String> {
        match text {
            "boot" => Ok(Origin::Boot),
            "file" => Ok(Origin::File),
            "api" => Ok(Origin::Api),
            other => Err(format!("unknown origin '{other}'")),
        }
    }
}

/// A server as the registry holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRecord {
    pub name: String,
    pub cid: Cid,
    pub enabled: bool,
}

/// One entry of a name's history: which CID it was bound to, when, and by whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Binding {
    pub cid: Cid,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    pub origin: Origin,
}

/// Where a received webhook event stands. `Pending` and `Failed` events wait in the store's queue for a
/// run of their handler (see [`WebhookEvent::next_attempt_at`]); the others are settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventStatus {
    /// Stored; its handler has not run to the end yet (it is running, or about to).
    Pending,
    /// Its handler returned.
    Handled,
    /// Its handler failed: the outcome says how, and another attempt is due at `next_attempt_at`.
    Failed,
    /// Its handler failed on every attempt allowed: the outcome holds the last error. It can be replayed.
    Dead,
    /// Stored only: the server defines no `fn webhook(event)`.
    Stored,
}

impl EventStatus {
    /// The attempts counted and the due time an event received with this status is stored with: a
    /// `pending` one is due when received, unless its receiver claimed it (`claimed_until`): then its
    /// first attempt is counted and it falls due only once that claim lapses, so that no worker — of
    /// this process or another on the store — takes it from the receiver in between.
    pub fn on_receipt(self, received_at: i64, claimed_until: Option<i64>) -> (i32, Option<i64>) {
        match (self, claimed_until) {
            (EventStatus::Pending, Some(until)) => (1, Some(until)),
            (EventStatus::Pending, None) => (0, Some(received_at)),
            _ => (0, None),
        }
    }

    const ALL: [EventStatus; 5] =
        [EventStatus::Pending, EventStatus::Handled, EventStatus::Failed, EventStatus::Dead, EventStatus::Stored];

    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Pending => "pending",
            EventStatus::Handled => "handled",
            EventStatus::Failed => "failed",
            EventStatus::Dead => "dead",
            EventStatus::Stored => "stored",
        }
    }
}

impl FromStr for EventStatus {
    type Err = String;
    fn from_str(text: &str) -> Result<EventStatus, String> {
        EventStatus::ALL.into_iter().find(|status| status.as_str() == text).ok_or_else(|| {
            let known: Vec<_> = EventStatus::ALL.iter().map(|s| s.as_str()).collect();
            format!("unknown event status '{text}' (one of {})", known.join(", "))
        })
    }
}

/// A webhook event as the store lists it. Its receipt and body are blobs (`cid`, `body_cid`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookEvent {
    /// The CID of the event's receipt: the event's identity.
    pub cid: Cid,
    pub server: String,
    pub delivery_id: String,
    pub body_cid: Cid,
    /// Milliseconds since the Unix epoch.
    pub received_at: i64,
    pub status: EventStatus,
    /// How the last handler run went: `{"status": …}` of its response, or the error it failed with.
    pub outcome: Option<serde_json::Value>,
    /// How many times the handler was started (replays included).
    pub attempts: u32,
    /// When the queue runs the handler next (ms since the Unix epoch): set while the event is `pending`
    /// or `failed`, and, while an attempt runs, the time after which it counts as lost and runs again.
    pub next_attempt_at: Option<i64>,
}

/// One step of a [`Change`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Bind `name` to `cid` (creating the server with `enabled` if it is new, keeping its flag
    /// otherwise unless `enabled` says), and record the binding in the history.
    Bind {
        name: String,
        cid: Cid,
        origin: Origin,
        enabled: Option<bool>,
    },
    SetEnabled {
        name: String,
        enabled: bool,
    },
    /// Forget the server; its history stays so that the name can be restored.
    Remove {
        name: String,
    },
    SetFact {
        key: String,
        value: String,
    },
    /// Replace every variable with these.
    SetVariables(BTreeMap<String, String>),
    /// Store a secret, sealed by the caller (the store never sees a value in the clear).
    SetSecret {
        name: String,
        sealed: Vec<u8>,
    },
    RemoveSecret {
        name: String,
    },
    /// Store (or, with `None`, forget) a server's OAuth connection, sealed by the caller.
    SetConnection {
        server: String,
        sealed: Option<Vec<u8>>,
    },
    /// Remember a pending authorization (its `state`, hashed, as `key`) until `expires` (Unix ms);
    /// expired ones are dropped on the way.
    PutOAuthState {
        key: String,
        server: String,
        sealed: Vec<u8>,
        expires: i64,
    },
    /// Record a received webhook event (its receipt and body are blobs of the same change); a `pending`
    /// one is due at once, or, with `claimed_until`, is stored claimed by its receiver until then (Unix
    /// ms) for its first attempt (see [`EventStatus::on_receipt`]). Fails the whole change when the server
    /// already has an event with this delivery id, or, with `same_body_since`, one with the same body
    /// received at or after that time (Unix ms): for schemes whose delivery id is not signed, a replay
    /// under a new id is caught by its body.
    RecordEvent {
        cid: Cid,
        server: String,
        delivery_id: String,
        body_cid: Cid,
        received_at: i64,
        status: EventStatus,
        same_body_since: Option<i64>,
        claimed_until: Option<i64>,
    },
    /// Record how a run of an event's handler went, and when (if ever) the next one is due.
    EventOutcome {
        cid: Cid,
        status: EventStatus,
        outcome: Option<serde_json::Value>,
        next_attempt_at: Option<i64>,
    },
    /// Set a server's row as another store held it, without recording a binding (see [`copy`]).
    PutServer(ServerRecord),
    /// Append a binding to a name's history as another store recorded it.
    PutBinding {
        name: String,
        binding: Binding,
    },
    /// Record a webhook event as another store held it, outcome and attempts included.
    PutEvent(WebhookEvent),
}

/// Blobs to add and registry operations to apply, all or nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    pub blobs: Vec<(Cid, Vec<u8>)>,
    pub ops: Vec<Op>,
}

impl Change {
    /// Adds a blob and returns its CID.
    pub fn blob(&mut self, bytes: Vec<u8>) -> Cid {
        let cid = Cid::of(&bytes);
        self.blobs.push((cid, bytes));
        cid
    }

    pub fn op(&mut self, op: Op) -> &mut Self {
        self.ops.push(op);
        self
    }

    /// What applying this change changes for those who serve from the store, or who run the webhook
    /// queue, each thing once; pending authorizations and facts change nothing served.
    pub fn changed(&self) -> Vec<Changed> {
        let mut changed: Vec<Changed> = Vec::new();
        for op in &self.ops {
            let item = match op {
                Op::Bind { name, cid, .. } => Changed::Server { name: name.clone(), head: Some(*cid) },
                Op::SetEnabled { name, .. } | Op::Remove { name } => Changed::Server { name: name.clone(), head: None },
                Op::PutServer(record) => Changed::Server { name: record.name.clone(), head: Some(record.cid) },
                Op::PutBinding { name, .. } => Changed::Server { name: name.clone(), head: None },
                Op::SetVariables(_) => Changed::Variables,
                Op::SetSecret { name, .. } | Op::RemoveSecret { name } => Changed::Secret { name: name.clone() },
                Op::SetConnection { server, .. } => Changed::Connection { server: server.clone() },
                // A new event is run by the receiver that stored it (the queue would race it for the
                // claim); a settled or rescheduled one moves the queue's next due time.
                Op::EventOutcome { .. } | Op::PutEvent(_) => Changed::Events,
                Op::SetFact { .. } | Op::PutOAuthState { .. } | Op::RecordEvent { .. } => {
                    continue;
                }
            };
            changed.retain(|seen| !same_thing(seen, &item));
            changed.push(item);
        }
        if changed.len() > ITEMIZED {
            return vec![Changed::Everything];
        }
        changed
    }
}

/// Whether two reports are about the same thing (a server bound twice in one change is re-read once).
fn same_thing(a: &Changed, b: &Changed) -> bool {
    match (a, b) {
        (Changed::Server { name: x, .. }, Changed::Server { name: y, .. }) => x == y,
        _ => a == b,
    }
}

pub trait Store: Send + Sync + 'static {
    fn blob(&self, cid: &Cid) -> Result<Option<Vec<u8>>>;
    /// The blobs of `cids` that are stored, in one read where the backend can (a start against 10 000
    /// servers must not wait for 10 000 round trips).
    fn blobs(&self, cids: &[Cid]) -> Result<Vec<(Cid, Vec<u8>)>>;
    fn servers(&self) -> Result<Vec<ServerRecord>>;
    /// The bindings of `name`, oldest first.
    fn history(&self, name: &str) -> Result<Vec<Binding>>;
    /// Every binding of every name, oldest first: which CIDs an operator ever bound, and to what.
    fn bindings(&self) -> Result<Vec<(String, Binding)>>;
    /// Everything the store holds but pending authorizations, for moving it to another store.
    fn dump(&self) -> Result<copy::Dump>;
    fn fact(&self, key: &str) -> Result<Option<String>>;
    fn variables(&self) -> Result<BTreeMap<String, String>>;
    /// A sealed secret value.
    fn secret(&self, name: &str) -> Result<Option<Vec<u8>>>;
    fn secret_names(&self) -> Result<Vec<String>>;
    /// Every secret, sealed, by name.
    fn sealed_secrets(&self) -> Result<Vec<(String, Vec<u8>)>>;
    /// A server's sealed OAuth connection.
    fn connection(&self, server: &str) -> Result<Option<Vec<u8>>>;
    /// Removes the pending authorization `key` started for `server` and returns its sealed content,
    /// unless it expired. One started for another server is neither returned nor removed: presenting a
    /// state at the wrong callback must not use it up.
    fn take_oauth_state(&self, key: &str, server: &str) -> Result<Option<Vec<u8>>>;
    /// The newest `limit` webhook events of `server`, newest first; with `status`, only those.
    fn events(&self, server: &str, status: Option<EventStatus>, limit: usize) -> Result<Vec<WebhookEvent>>;
    fn event(&self, server: &str, cid: &Cid) -> Result<Option<WebhookEvent>>;
    /// The event `server` received with this delivery id.
    fn event_by_delivery(&self, server: &str, delivery_id: &str) -> Result<Option<WebhookEvent>>;
    /// The first event `server` received with this body at or after `since` (Unix ms).
    fn event_by_body(&self, server: &str, body_cid: &Cid, since: i64) -> Result<Option<WebhookEvent>>;
    /// At most `limit` events of any server waiting for their handler (`pending` or `failed`) and due
    /// at `now` (Unix ms), the longest due first.
    fn due_events(&self, now: i64, limit: usize) -> Result<Vec<WebhookEvent>>;
    /// When the next waiting event falls due (Unix ms), if any waits.
    fn next_event_due(&self) -> Result<Option<i64>>;
    /// Takes the event `cid` for one run of its handler: counts the attempt and moves its due time to
    /// `until`, so that no other worker (of this process or another sharing the store) starts it
    /// meanwhile, while a run that never reports — the process stopped — is due again after `until`.
    /// With `due_by`, only an event waiting and due by then is taken; without, any event (a replay).
    /// Returns the attempt's number, or `None` when the event was not taken.
    fn claim_event(&self, cid: &Cid, due_by: Option<i64>, until: i64) -> Result<Option<u32>>;
    /// Applies every blob and operation of `change` atomically.
    fn commit(&self, change: &Change) -> Result<()>;
    /// What commits change, by this process or any other, reported after they are committed. A
    /// subscriber that falls behind gets `Lagged` and re-reads everything; the channel closes when the
    /// store is gone.
    fn changes(&self) -> broadcast::Receiver<Changed>;
    /// A server as the registry holds it now.
    fn server(&self, name: &str) -> Result<Option<ServerRecord>>;
    /// Waits for the lock named `key`, then holds it until the guard is dropped, against every other
    /// process on this store: for work that must happen once across instances, such as renewing a
    /// rotating refresh token. (A SQLite store serves one instance: its guard holds nothing, and the
    /// process's own single-flight does the rest.)
    fn lock(&self, key: &str) -> Result<Held>;
    /// Appends finished invocations' records, in one transaction.
    fn append_records(&self, records: &[InvocationRecord]) -> Result<()>;
    /// The newest `filter.limit` records that match `filter`, newest first.
    fn records(&self, filter: &RecordFilter) -> Result<Vec<InvocationRecord>>;
    /// Calls, errors and cost per server and operation of the records that match `filter` (its server
    /// and time bounds; its limit is ignored), ordered by server and operation.
    fn usage(&self, filter: &RecordFilter) -> Result<Vec<Usage>>;
    /// Keeps at most the newest `keep` records and none from before `before` (Unix ms); returns how
    /// many were removed.
    fn prune_records(&self, keep: usize, before: i64) -> Result<u64>;
}

/// A lock of [`Store::lock`], released when dropped.
pub struct Held {
    _guard: Box<dyn Send>,
}

impl Held {
    pub fn new(guard: impl Send + 'static) -> Held {
        Held { _guard: Box::new(guard) }
    }
}
