//! Observability: what the runtime tells an operator about the work it does.
//!
//! * [`trace`] gives every invocation a request id and a place in the caller's W3C trace, which its
//!   response, its log lines, its upstream requests and its record all carry.
//! * [`metrics`] are the process's Prometheus counters, gauges and histograms, with bounded labels.
//! * [`records`] writes one [`InvocationRecord`] per finished invocation into the store, off the hot
//!   path; [`stats`] reads them back as a server's recent figures.
//!
//! [`Observer::finished`] is where an invocation, however it came in, leaves its metrics and its record:
//! the invocation path calls it once per invocation (`invoke.rs`). Nothing here ever sees a payload or a
//! secret value: a record holds CIDs, counts, durations and ids.

pub mod metrics;
pub mod records;
pub mod stats;
pub mod trace;

use std::cell::RefCell;
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

use crate::store::{InvocationRecord, Store};
use metrics::{Metrics, UNKNOWN};
use records::{Recorder, Retention};

pub struct Observer {
    pub metrics: Arc<Metrics>,
    recorder: Recorder,
}

/// One finished invocation, as its record, and how its metrics label it.
pub struct Finished {
    pub record: InvocationRecord,
    /// Whether `record.server` is a server the registry holds: any other name is counted as
    /// [`UNKNOWN`], so that callers cannot grow the label set.
    pub registered: bool,
    /// `ok` or the error type.
    pub outcome: &'static str,
}

impl Observer {
    /// Counts in `metrics` and writes records into `store`, kept as `retention` says.
    pub fn new(metrics: Arc<Metrics>, store: Arc<dyn Store>, retention: Retention) -> Observer {
        let recorder = Recorder::start(store, retention, metrics.records_dropped.clone());
        Observer { metrics, recorder }
    }

    /// Counts a finished invocation and hands its record to the writer.
    pub fn finished(&self, finished: Finished) {
        let record = finished.record;
        let server = match (finished.registered, &record.server) {
            (true, Some(name)) => name.as_str(),
            _ => UNKNOWN,
        };
        let (via, outcome) = (record.via.as_str(), finished.outcome);
        let seconds = record.duration_ms / 1000.0;
        let count = |counted: &Counted| {
            counted.invocations.inc();
            counted.duration.observe(seconds);
        };
        let kept = LAST_COUNTED.try_with(|last| {
            let mut last = last.borrow_mut();
            match &*last {
                Some(counted) if counted.counts(&self.metrics, server, via, outcome) => count(counted),
                _ => count(last.insert(Counted::of(&self.metrics, server, via, outcome))),
            }
        });
        if kept.is_err() {
            count(&Counted::of(&self.metrics, server, via, outcome));
        }
        if let (Some(currency), true) = (&record.currency, record.cost > 0.0) {
            let labels = metrics::Cost { server: server.to_owned(), currency: currency.clone() };
            self.metrics.cost.get_or_create(&labels).inc_by(record.cost);
        }
        self.recorder.record(record);
    }

    /// Waits until every record handed over so far is in the store (before a short-lived process ends).
    pub fn flush(&self) {
        self.recorder.flush();
    }
}

thread_local! {
    /// The metrics this thread counted its last invocation in: a server called again through the same
    /// entry point with the same outcome — nearly every call — is counted without looking its labels up
    /// in the families (hashing them, and cloning the server's name into a key).
    static LAST_COUNTED: RefCell<Option<Counted>> = const { RefCell::new(None) };
}

/// An invocation's counter and duration histogram, for its labels in one process's metrics.
struct Counted {
    /// Which [`Metrics`] (a process has one; tests build many).
    metrics: u64,
    labels: metrics::Invocation,
    invocations: Counter,
    duration: Histogram,
}

impl Counted {
    fn of(metrics: &Metrics, server: &str, via: &'static str, outcome: &'static str) -> Counted {
        let labels = metrics::Invocation { server: server.to_owned(), via, outcome };
        Counted {
            metrics: metrics.id,
            invocations: metrics.invocations.get_or_create(&labels).clone(),
            duration: metrics
                .invocation_duration
                .get_or_create(&metrics::Server { server: labels.server.clone() })
                .clone(),
            labels,
        }
    }

    fn counts(&self, metrics: &Metrics, server: &str, via: &str, outcome: &str) -> bool {
        self.metrics == metrics.id
            && self.labels.server == server
            && self.labels.via == via
            && self.labels.outcome == outcome
    }
}
