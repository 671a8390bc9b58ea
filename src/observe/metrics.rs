//! The process's Prometheus metrics: what this process ran, served at `GET /metrics`.
//!
//! The families are registered once, with `prometheus-client`, which also writes the exposition
//! format. Label values are bounded by construction: a server name the registry holds (anything else
//! is [`UNKNOWN`]), a via, an error type, a host the server declared (egress refuses every other), a
//! status class — never an endpoint, a path or anything else a caller chooses, so no caller can grow
//! the label set. Everything here is an atomic increment on the hot path; encoding happens only when
//! `/metrics` is read.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// The server label of a name the registry does not hold (a mistyped or hostile name, a CID nobody
/// bound, a script run from a file).
pub const UNKNOWN: &str = "unknown";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Server {
    pub server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Invocation {
    pub server: String,
    pub via: &'static str,
    /// `ok` or the error type.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Upstream {
    pub server: String,
    pub host: String,
    /// `2xx`…`5xx`, or `failed` when no response came.
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamHost {
    pub server: String,
    pub host: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub server: String,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Cost {
    pub server: String,
    pub currency: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reload {
    pub result: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Durations from 1 ms to about a minute.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

pub struct Metrics {
    /// Tells this process's metrics from any other built in it (tests build many).
    pub id: u64,
    registry: Registry,
    pub invocations: Family<Invocation, Counter>,
    pub invocation_duration: Histograms<Server>,
    pub in_flight: Gauge,
    pub fibers_waiting: Gauge,
    pub upstream_requests: Family<Upstream, Counter>,
    pub upstream_duration: Histograms<UpstreamHost>,
    pub upstream_retries: Family<Server, Counter>,
    pub rate_limit_wait: Histograms<Server>,
    pub token_refreshes: Family<Outcome, Counter>,
    pub webhook_deliveries: Family<Outcome, Counter>,
    pub reloads: Family<Reload, Counter>,
    pub servers_loaded: Gauge,
    pub cost: Family<Cost, Counter<f64, AtomicU64>>,
    /// Invocation records the writer could not keep up with.
    pub records_dropped: Counter,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let histograms = || Histograms::new_with_constructor(seconds as fn() -> Histogram);
        static BUILT: AtomicU64 = AtomicU64::new(0);
        let mut metrics = Metrics {
            id: BUILT.fetch_add(1, Ordering::Relaxed),
            registry: Registry::default(),
            invocations: Family::default(),
            invocation_duration: histograms(),
            in_flight: Gauge::default(),
            fibers_waiting: Gauge::default(),
            upstream_requests: Family::default(),
            upstream_duration: Family::new_with_constructor(seconds as fn() -> Histogram),
            upstream_retries: Family::default(),
            rate_limit_wait: histograms(),
            token_refreshes: Family::default(),
            webhook_deliveries: Family::default(),
            reloads: Family::default(),
            servers_loaded: Gauge::default(),
            cost: Family::default(),
            records_dropped: Counter::default(),
        };
        metrics.register();
        metrics
    }

    fn register(&mut self) {
        let r = &mut self.registry;
        r.register(
            "switchboard_invocations",
            "Invocations by server, entry point and outcome",
            self.invocations.clone(),
        );
        r.register(
            "switchboard_invocation_duration_seconds",
            "Invocation wall-clock time",
            self.invocation_duration.clone(),
        );
        r.register("switchboard_invocations_in_flight", "Invocations running now", self.in_flight.clone());
        r.register("switchboard_fibers_waiting", "Scripts suspended on I/O", self.fibers_waiting.clone());
        r.register(
            "switchboard_upstream_requests",
            "Upstream requests by server, host and status class",
            self.upstream_requests.clone(),
        );
        r.register("switchboard_upstream_duration_seconds", "Upstream request time", self.upstream_duration.clone());
        r.register("switchboard_upstream_retries", "Upstream requests retried", self.upstream_retries.clone());
        r.register(
            "switchboard_rate_limit_wait_seconds",
            "Time outbound calls waited for a rate-limit slot",
            self.rate_limit_wait.clone(),
        );
        r.register("switchboard_token_refreshes", "OAuth token requests by result", self.token_refreshes.clone());
        r.register("switchboard_webhook_deliveries", "Webhook deliveries by result", self.webhook_deliveries.clone());
        r.register("switchboard_reloads", "Changes swapped in from watched files, by result", self.reloads.clone());
        r.register("switchboard_servers_loaded", "Servers in the registry", self.servers_loaded.clone());
        r.register("switchboard_cost", "What calls cost, as their servers' META.pricing declares", self.cost.clone());
        r.register(
            "switchboard_records_dropped",
            "Invocation records not kept: the writer fell behind",
            self.records_dropped.clone(),
        );
        let version = Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]);
        r.register("switchboard_build", "The running build", version);
    }

    /// The exposition text (OpenMetrics, which Prometheus reads).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        self.fibers_waiting.set(crate::engine::waiting() as i64);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// Counts one invocation in flight for as long as it lives, however it ends (a caller that goes away
/// drops it).
pub struct InFlight(Gauge);

impl InFlight {
    pub fn start(gauge: &Gauge) -> InFlight {
        gauge.inc();
        InFlight(gauge.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The status label of an upstream answer.
pub fn status_class(status: Option<u16>) -> &'static str {
    match status {
        Some(100..=199) => "1xx",
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        _ => "failed",
    }
}
