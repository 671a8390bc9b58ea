//! The invocation-record writer: records leave the invocation path through a bounded channel and are
//! written in batches by a thread of their own, so an invocation never waits on the store. A batch is
//! what arrives within [`LINGER`] of its first record: the writer sleeps that long instead of being
//! woken for every record (a wake-up per call cost more than writing it), so a busy server writes a
//! few batches a second however many calls it serves, and a record reaches the store at most that much
//! later. A flush wakes the writer at once.
//!
//! When the writer falls behind and the channel is full, a record is dropped and counted
//! (`switchboard_records_dropped_total`) rather than slowing calls down. The same thread applies the
//! retention (count and age) every so often. A short-lived process (`switchboard call`) flushes before
//! it exits, so its record is in the store when it is gone.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::thread::Thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::metrics::counter::Counter;

use crate::store::{InvocationRecord, Store};

/// Records waiting to be written before new ones are dropped.
const QUEUE: usize = 10_000;
/// Most records written as one row.
const BATCH: usize = 1_000;
/// How long a batch waits for more records after its first.
const LINGER: Duration = Duration::from_millis(50);
/// How often the retention is applied at least (and after every tenth of `max` records).
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// How many records are kept, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The newest this many records stay; 0 keeps none and turns recording off.
    pub max: usize,
    pub max_age: Duration,
    /// Whether this process removes what is beyond: the server does; a command run beside it
    /// (`switchboard call`) only adds its record, and never prunes by limits the server was not given.
    pub prune: bool,
}

impl Default for Retention {
    fn default() -> Retention {
        Retention { max: 100_000, max_age: Duration::from_secs(30 * 86_400), prune: false }
    }
}

enum Message {
    Record(Box<InvocationRecord>),
    /// Answered once every record sent before it is written.
    Flush(SyncSender<()>),
}

/// The sending side, held by the runtime.
pub struct Recorder {
    /// `None` when recording is off.
    sender: Option<(SyncSender<Message>, Thread)>,
    dropped: Counter,
}

impl Recorder {
    /// Starts the writer thread over `store` (none when `retention.max` is 0).
    pub fn start(store: Arc<dyn Store>, retention: Retention, dropped: Counter) -> Recorder {
        if retention.max == 0 {
            return Recorder { sender: None, dropped };
        }
        let (sender, receiver) = sync_channel(QUEUE);
        let spawned =
            std::thread::Builder::new().name("records".into()).spawn(move || write(&*store, &receiver, retention));
        match spawned {
            Ok(writer) => Recorder { sender: Some((sender, writer.thread().clone())), dropped },
            Err(e) => {
                tracing::error!("invocation records are off: cannot start their writer: {e}");
                Recorder { sender: None, dropped }
            }
        }
    }

    /// Hands a record to the writer, or drops and counts it when the writer is behind.
    pub fn record(&self, record: InvocationRecord) {
        let Some((sender, _)) = &self.sender else { return };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            sender.try_send(Message::Record(Box::new(record)))
        {
            self.dropped.inc();
        }
    }

    /// Waits until every record handed over so far is written.
    pub fn flush(&self) {
        let Some((sender, writer)) = &self.sender else { return };
        let (done, written) = sync_channel(1);
        if sender.send(Message::Flush(done)).is_ok() {
            writer.unpark();
            let _ = written.recv();
        }
    }
}

fn now_millis() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// The writer thread: batches what arrives, writes it, prunes now and then; ends with the runtime.
fn write(store: &dyn Store, receiver: &Receiver<Message>, retention: Retention) {
    let mut pruned = (Instant::now(), 0usize);
    prune(store, retention);
    loop {
        let first = match receiver.recv_timeout(PRUNE_EVERY) {
            Ok(message) => message,
            Err(RecvTimeoutError::Timeout) => {
                prune(store, retention);
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let (batch, flushes, open) = gather(receiver, first);
        for rows in batch.chunks(BATCH) {
            if let Err(error) = store.append_records(rows) {
                tracing::error!(records = rows.len(), "invocation records were not kept: {}", error.message());
            }
        }
        pruned.1 += batch.len();
        if pruned.1 >= (retention.max / 10).max(1) || pruned.0.elapsed() >= PRUNE_EVERY {
            prune(store, retention);
            pruned = (Instant::now(), 0);
        }
        for done in flushes {
            let _ = done.send(());
        }
        if !open {
            return;
        }
    }
}

/// `first` and what arrives within [`LINGER`] after it (sooner when a flush wakes the writer, at most
/// [`QUEUE`] messages): the records, the flushes to answer once they are written, and whether the
/// channel is still open.
fn gather(receiver: &Receiver<Message>, first: Message) -> (Vec<InvocationRecord>, Vec<SyncSender<()>>, bool) {
    if matches!(first, Message::Record(_)) {
        std::thread::park_timeout(LINGER);
    }
    let mut batch = Vec::new();
    let mut flushes = Vec::new();
    let mut next = Ok(first);
    for _ in 0..QUEUE {
        match next {
            Ok(Message::Record(record)) => batch.push(*record),
            Ok(Message::Flush(done)) => flushes.push(done),
            Err(TryRecvError::Empty) => break,
            Err(TryRecvError::Disconnected) => return (batch, flushes, false),
        }
        next = receiver.try_recv();
    }
    (batch, flushes, true)
}

fn prune(store: &dyn Store, retention: Retention) {
    if !retention.prune {
        return;
    }
    let before = now_millis().saturating_sub(i64::try_from(retention.max_age.as_millis()).unwrap_or(i64::MAX));
    if let Err(error) = store.prune_records(retention.max, before) {
        tracing::error!("old invocation records were not removed: {}", error.message());
    }
}
