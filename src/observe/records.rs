//! The invocation-record writer: records leave the invocation path into a buffer of the thread that
//! finished the call, and a thread of their own writes them in batches, so an invocation never waits on
//! the store and two request workers never touch the same memory to hand a record over (a shared
//! channel cost every call a contended atomic and a box). A batch is what arrives within [`LINGER`] of
//! the first record after a quiet spell: the writer sleeps that long instead of being woken for every
//! record (a wake-up per call cost more than writing it), so a busy server writes a few batches a
//! second however many calls it serves, and a record reaches the store at most that much later. A
//! flush wakes the writer at once.
//!
//! When the writer falls behind and a buffer is full, a record is dropped and counted
//! (`switchboard_records_dropped_total`) rather than slowing calls down. The same thread applies the
//! retention (count and age) every so often. A short-lived process (`switchboard call`) flushes before
//! it exits, so its record is in the store when it is gone.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::Thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::metrics::counter::Counter;

use crate::store::{InvocationRecord, Store};

/// Buffers records are handed into; a thread always uses the same one.
const SHARDS: usize = 8;
/// Records one buffer holds before new ones are dropped.
const QUEUE: usize = 5_000;
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

/// What the invocation path and the writer share.
struct Shared {
    buffers: [Mutex<Vec<InvocationRecord>>; SHARDS],
    /// Flushes asked for, each answered once every record handed over before it is written.
    flushes: Mutex<Vec<SyncSender<()>>>,
    /// The writer is asleep until the next record (not lingering over a batch): the hand-over that
    /// finds it so wakes it.
    idle: AtomicBool,
    /// The recorder is gone: the writer writes what is left and ends.
    closed: AtomicBool,
}

impl Shared {
    fn buffer(&self, index: usize) -> MutexGuard<'_, Vec<InvocationRecord>> {
        self.buffers[index].lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn flushes(&self) -> MutexGuard<'_, Vec<SyncSender<()>>> {
        self.flushes.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every record handed over so far, oldest first.
    fn take(&self) -> Vec<InvocationRecord> {
        let mut batch = Vec::new();
        for index in 0..SHARDS {
            // Swapped out rather than copied under the lock, which a worker may be waiting for; the
            // buffer left behind has room for as many records as this one brought.
            let taken = {
                let mut buffer = self.buffer(index);
                let room = buffer.len();
                std::mem::replace(&mut *buffer, Vec::with_capacity(room))
            };
            batch.extend(taken);
        }
        batch.sort_by_key(|record| record.time);
        batch
    }

    fn pending(&self) -> bool {
        (0..SHARDS).any(|index| !self.buffer(index).is_empty()) || !self.flushes().is_empty()
    }
}

/// The buffer this thread hands its records into: threads are dealt to buffers in turn.
fn shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|shard| *shard)
}

/// The sending side, held by the runtime.
pub struct Recorder {
    /// `None` when recording is off.
    writer: Option<(Arc<Shared>, Thread)>,
    dropped: Counter,
}

impl Recorder {
    /// Starts the writer thread over `store` (none when `retention.max` is 0).
    pub fn start(store: Arc<dyn Store>, retention: Retention, dropped: Counter) -> Recorder {
        if retention.max == 0 {
            return Recorder { writer: None, dropped };
        }
        let shared = Arc::new(Shared {
            buffers: std::array::from_fn(|_| Mutex::new(Vec::new())),
            flushes: Mutex::new(Vec::new()),
            idle: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        });
        let writing = shared.clone();
        let spawned =
            std::thread::Builder::new().name("records".into()).spawn(move || write(&*store, &writing, retention));
        match spawned {
            Ok(writer) => Recorder { writer: Some((shared, writer.thread().clone())), dropped },
            Err(e) => {
                tracing::error!("invocation records are off: cannot start their writer: {e}");
                Recorder { writer: None, dropped }
            }
        }
    }

    /// Hands a record to the writer, or drops and counts it when the writer is behind.
    pub fn record(&self, record: InvocationRecord) {
        let Some((shared, writer)) = &self.writer else { return };
        let mut buffer = shared.buffer(shard());
        if buffer.len() >= QUEUE {
            drop(buffer);
            self.dropped.inc();
            return;
        }
        buffer.push(record);
        drop(buffer);
        // The writer sets `idle` before it looks at the buffers for the last time, so a record it did
        // not see there finds it idle here.
        if shared.idle.load(Ordering::SeqCst) && shared.idle.swap(false, Ordering::SeqCst) {
            writer.unpark();
        }
    }

    /// Waits until every record handed over so far is written.
    pub fn flush(&self) {
        let Some((shared, writer)) = &self.writer else { return };
        let (done, written) = sync_channel(1);
        shared.flushes().push(done);
        writer.unpark();
        let _ = written.recv();
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some((shared, writer)) = &self.writer {
            shared.closed.store(true, Ordering::SeqCst);
            writer.unpark();
        }
    }
}

fn now_millis() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// The writer thread: batches what arrives, writes it, prunes now and then; ends with the recorder.
fn write(store: &dyn Store, shared: &Shared, retention: Retention) {
    let mut pruned = (Instant::now(), 0usize);
    prune(store, retention);
    loop {
        let closed = shared.closed.load(Ordering::SeqCst);
        if !closed {
            shared.idle.store(true, Ordering::SeqCst);
            if !shared.pending() {
                let slept = Instant::now();
                std::thread::park_timeout(PRUNE_EVERY);
                if slept.elapsed() >= PRUNE_EVERY && !shared.pending() {
                    prune(store, retention);
                    pruned = (Instant::now(), 0);
                }
                continue;
            }
            shared.idle.store(false, Ordering::SeqCst);
            // A batch lingers unless someone waits for it.
            if shared.flushes().is_empty() {
                std::thread::park_timeout(LINGER);
            }
        }
        // The flushes first: every record handed over before one was asked for is in the buffers now.
        let flushes = std::mem::take(&mut *shared.flushes());
        let batch = shared.take();
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
        if closed {
            return;
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{RecordFilter, SqliteStore};

    fn recorder(store: &Arc<SqliteStore>) -> (Recorder, Counter) {
        let dropped = Counter::default();
        let retention = Retention { max: 1_000_000, ..Retention::default() };
        (Recorder::start(store.clone(), retention, dropped.clone()), dropped)
    }

    fn stored(store: &SqliteStore) -> Vec<InvocationRecord> {
        store.records(&RecordFilter { limit: usize::MAX, ..RecordFilter::default() }).unwrap()
    }

    #[test]
    fn records_from_many_threads_are_all_written_by_a_flush_newest_first() {
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        let (recorder, dropped) = recorder(&store);
        // With the flushes held the writer cannot take the buffers: everything lands in one batch.
        let held = recorder.writer.as_ref().unwrap().0.flushes.lock().unwrap();
        std::thread::scope(|scope| {
            for thread in 0..2 * SHARDS as i64 {
                let recorder = &recorder;
                scope.spawn(move || {
                    for n in 0..100 {
                        recorder.record(InvocationRecord::sample(thread * 1000 + n, "s"));
                    }
                });
            }
        });
        drop(held);
        recorder.flush();
        let times: Vec<i64> = stored(&store).iter().map(|record| record.time).collect();
        assert_eq!(times.len(), 1600);
        assert!(times.windows(2).all(|pair| pair[0] > pair[1]), "a batch is written oldest first, read newest first");
        assert_eq!(dropped.get(), 0);
    }

    #[test]
    fn a_record_reaches_the_store_without_a_flush_and_a_full_buffer_drops_and_counts() {
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        let (recorder, dropped) = recorder(&store);
        recorder.record(InvocationRecord::sample(1, "s"));
        let waited = Instant::now();
        while stored(&store).is_empty() {
            assert!(waited.elapsed() < Duration::from_secs(10), "the lone record was never written");
            std::thread::sleep(Duration::from_millis(5));
        }
        // With the flushes held the writer, done with the lone record, cannot reach the buffers: fill
        // this thread's to its bound.
        let shared = &recorder.writer.as_ref().unwrap().0;
        let held = shared.flushes.lock().unwrap();
        shared.buffer(shard()).extend((0..QUEUE as i64).map(|n| InvocationRecord::sample(n + 10, "s")));
        recorder.record(InvocationRecord::sample(2, "s"));
        assert_eq!(dropped.get(), 1);
        drop(held);
        recorder.flush();
        assert_eq!(stored(&store).len(), 1 + QUEUE);
    }

    #[test]
    fn what_is_handed_over_is_written_when_the_recorder_goes() {
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        let (recorder, _) = recorder(&store);
        recorder.record(InvocationRecord::sample(7, "s"));
        drop(recorder);
        let waited = Instant::now();
        while stored(&store).is_empty() {
            assert!(waited.elapsed() < Duration::from_secs(10), "the last record was lost");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(stored(&store)[0].time, 7);
    }
}
