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

use std::sync::Arc;

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
            (true, Some(name)) => name.clone(),
            _ => UNKNOWN.to_owned(),
        };
        let labels =
            metrics::Invocation { server: server.clone(), via: record.via.as_str(), outcome: finished.outcome };
        self.metrics.invocations.get_or_create(&labels).inc();
        let seconds = record.duration_ms / 1000.0;
        self.metrics.invocation_duration.get_or_create(&metrics::Server { server: server.clone() }).observe(seconds);
        if let (Some(currency), true) = (&record.currency, record.cost > 0.0) {
            let labels = metrics::Cost { server, currency: currency.clone() };
            self.metrics.cost.get_or_create(&labels).inc_by(record.cost);
        }
        self.recorder.record(record);
    }

    /// Waits until every record handed over so far is in the store (before a short-lived process ends).
    pub fn flush(&self) {
        self.recorder.flush();
    }
}
