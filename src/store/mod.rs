//! The durable state: content-addressed blobs, the registry of servers, its history, and small facts.
//!
//! Everything that changes the store goes through [`Store::commit`] as one [`Change`], applied in one
//! transaction: a crash or a refused import leaves either the old state or the new one, never a mix.
//! The trait is the seam for a PostgreSQL implementation; the runtime never sees SQL.
//!
//! The store is never on the hot invocation path: the runtime keeps compiled scripts, the registry,
//! variables and opened secrets in memory and only reads blobs here for chaining, content requests and
//! (re)loading. Since other processes change the same store (`switchboard secret set` beside a running
//! `serve`), every store has one change feed, [`Store::changes`], which the runtime follows to rebuild
//! those snapshots: SQLite polls `PRAGMA data_version`; a PostgreSQL store would LISTEN for a NOTIFY
//! sent by each commit.

mod sqlite;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::cid::Cid;
use crate::error::Result;

pub use sqlite::SqliteStore;

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
}

pub trait Store: Send + Sync + 'static {
    fn blob(&self, cid: &Cid) -> Result<Option<Vec<u8>>>;
    fn servers(&self) -> Result<Vec<ServerRecord>>;
    /// The bindings of `name`, oldest first.
    fn history(&self, name: &str) -> Result<Vec<Binding>>;
    fn fact(&self, key: &str) -> Result<Option<String>>;
    fn variables(&self) -> Result<BTreeMap<String, String>>;
    /// A sealed secret value.
    fn secret(&self, name: &str) -> Result<Option<Vec<u8>>>;
    fn secret_names(&self) -> Result<Vec<String>>;
    /// Every secret, sealed, by name.
    fn sealed_secrets(&self) -> Result<Vec<(String, Vec<u8>)>>;
    /// Applies every blob and operation of `change` atomically.
    fn commit(&self, change: &Change) -> Result<()>;
    /// A counter that moves after changes are committed, by this process or any other. It says only
    /// that something changed: a subscriber re-reads what it keeps. Bursts may be coalesced into one
    /// step, and a change is seen within a fraction of a second.
    fn changes(&self) -> tokio::sync::watch::Receiver<u64>;
}
