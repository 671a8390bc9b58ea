//! Moving a whole installation from one store to another (`switchboard store copy`): every blob, the
//! registry with its history as it was recorded (times and origins kept), facts, variables, sealed
//! secrets, OAuth connections and webhook events. Sealed values are copied sealed: the target needs the
//! same master key, which the copied key check enforces. Pending authorizations are not copied; they
//! last minutes.
//!
//! The copy is one [`Change`] on the target, so it lands whole or not at all, and instances already
//! serving from the target hear of it like of any commit. The invocation records follow it, oldest
//! first, in batches: they are no configuration, and a copy whose records failed says so.

use std::collections::BTreeMap;

use super::{Binding, Change, Op, RecordFilter, ServerRecord, Store, WebhookEvent};
use crate::cid::Cid;
use crate::error::{Error, Result};

/// What a store holds, read by [`Store::dump`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dump {
    pub blobs: Vec<(Cid, Vec<u8>)>,
    pub servers: Vec<ServerRecord>,
    /// Every binding, oldest first.
    pub history: Vec<(String, Binding)>,
    pub facts: Vec<(String, String)>,
    pub variables: BTreeMap<String, String>,
    pub secrets: Vec<(String, Vec<u8>)>,
    pub connections: Vec<(String, Vec<u8>)>,
    /// Every webhook event, oldest first.
    pub events: Vec<WebhookEvent>,
}

/// How much a copy moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    pub blobs: usize,
    pub servers: usize,
    pub bindings: usize,
    pub secrets: usize,
    pub connections: usize,
    pub events: usize,
    pub records: usize,
}

/// Most invocation records appended in one go.
const RECORD_BATCH: usize = 1_000;

/// Copies everything `from` holds into `to`, which must hold no server and no history yet.
pub fn copy(from: &dyn Store, to: &dyn Store) -> Result<Copied> {
    if !to.servers()?.is_empty() || !to.bindings()?.is_empty() {
        return Err(Error::BadRequest("the target store already holds servers: copy into a new, empty store".into()));
    }
    let dump = from.dump()?;
    let mut records = from.records(&RecordFilter { limit: usize::MAX, ..RecordFilter::default() })?;
    records.reverse();
    let copied = Copied {
        blobs: dump.blobs.len(),
        servers: dump.servers.len(),
        bindings: dump.history.len(),
        secrets: dump.secrets.len(),
        connections: dump.connections.len(),
        events: dump.events.len(),
        records: records.len(),
    };
    to.commit(&restore(dump))?;
    for batch in records.chunks(RECORD_BATCH) {
        to.append_records(batch).map_err(|error| {
            Error::Unavailable(format!(
                "the installation was copied, but not all of its invocation records: {}",
                error.message()
            ))
        })?;
    }
    Ok(copied)
}

/// The change that makes an empty store hold `dump`.
fn restore(dump: Dump) -> Change {
    let mut change = Change { blobs: dump.blobs, ops: Vec::new() };
    change.ops.extend(dump.servers.into_iter().map(Op::PutServer));
    change.ops.extend(dump.history.into_iter().map(|(name, binding)| Op::PutBinding { name, binding }));
    change.ops.extend(dump.facts.into_iter().map(|(key, value)| Op::SetFact { key, value }));
    change.ops.push(Op::SetVariables(dump.variables));
    change.ops.extend(dump.secrets.into_iter().map(|(name, sealed)| Op::SetSecret { name, sealed }));
    let connections = dump.connections.into_iter();
    change.ops.extend(connections.map(|(server, sealed)| Op::SetConnection { server, sealed: Some(sealed) }));
    change.ops.extend(dump.events.into_iter().map(Op::PutEvent));
    change
}
