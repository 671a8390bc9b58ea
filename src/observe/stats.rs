//! What the records say about servers lately: for one server, calls, error rate and p50/p99 duration
//! over the last hour; for all of them at once, calls and errors. Read from the store, so it covers
//! every process that shares it; reused by whatever shows a server (the management API, the console).

use std::collections::HashMap;

use serde::Serialize;

use crate::error::Result;
use crate::store::{RecordFilter, Store};

/// The window the figures cover.
pub const WINDOW_MS: i64 = 3_600_000;
/// Most records one summary reads (the newest, when a server had more in the window).
const MOST_READ: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerStats {
    /// The window, in milliseconds before now.
    pub window_ms: i64,
    pub calls: u64,
    pub errors: u64,
    /// `errors / calls`, 0 without calls.
    pub error_rate: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// The last hour of `server`, as of `now` (Unix ms).
pub fn last_hour(store: &dyn Store, server: &str, now: i64) -> Result<ServerStats> {
    let filter = RecordFilter {
        server: Some(server.to_owned()),
        since: Some(now - WINDOW_MS),
        limit: MOST_READ,
        ..RecordFilter::default()
    };
    let records = store.records(&filter)?;
    let errors = records.iter().filter(|r| r.error_type.is_some()).count() as u64;
    let mut durations: Vec<f64> = records.iter().map(|r| r.duration_ms).collect();
    durations.sort_by(f64::total_cmp);
    let calls = durations.len() as u64;
    Ok(ServerStats {
        window_ms: WINDOW_MS,
        calls,
        errors,
        error_rate: Calls { calls, errors }.error_rate(),
        p50_ms: percentile(&durations, 50),
        p99_ms: percentile(&durations, 99),
    })
}

/// Calls and errors of one server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Calls {
    pub calls: u64,
    pub errors: u64,
}

impl Calls {
    /// `errors / calls`, 0 without calls.
    pub fn error_rate(&self) -> f64 {
        if self.calls == 0 { 0.0 } else { self.errors as f64 / self.calls as f64 }
    }
}

/// The last hour of every server that was called in it, as of `now` (Unix ms): one aggregated read
/// of the store, however many servers a list shows.
pub fn last_hour_by_server(store: &dyn Store, now: i64) -> Result<HashMap<String, Calls>> {
    let filter = RecordFilter { since: Some(now - WINDOW_MS), ..RecordFilter::default() };
    let mut by_server: HashMap<String, Calls> = HashMap::new();
    for usage in store.usage(&filter)? {
        let calls = by_server.entry(usage.server).or_default();
        calls.calls += usage.calls;
        calls.errors += usage.errors;
    }
    Ok(by_server)
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: usize) -> Option<f64> {
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(time: i64, server: &str, operation: Option<&str>, error: bool) -> crate::store::InvocationRecord {
        crate::store::InvocationRecord {
            operation: operation.map(str::to_owned),
            status: if error { 502 } else { 200 },
            error_type: error.then(|| "upstream".to_owned()),
            ..crate::store::InvocationRecord::sample(time, server)
        }
    }

    #[test]
    fn every_servers_last_hour_sums_its_operations_and_leaves_older_calls_out() {
        let store = crate::store::SqliteStore::in_memory().unwrap();
        let now = 10 * WINDOW_MS;
        let before = now - WINDOW_MS - 1;
        store
            .append_records(&[
                record(before, "a", None, true),
                record(now - 5, "a", None, false),
                record(now - 4, "a", Some("list"), true),
                record(now - 3, "a", Some("get"), false),
                record(now - 2, "b", Some("get"), false),
            ])
            .unwrap();
        let by_server = last_hour_by_server(&store, now).unwrap();
        assert_eq!(by_server.len(), 2);
        assert_eq!(by_server["a"], Calls { calls: 3, errors: 1 });
        assert_eq!(by_server["b"], Calls { calls: 1, errors: 0 });
        assert!((by_server["a"].error_rate() - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(Calls::default().error_rate(), 0.0);
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50), Some(50.0));
        assert_eq!(percentile(&values, 99), Some(99.0));
        assert_eq!(percentile(&[7.0], 99), Some(7.0));
        assert_eq!(percentile(&[], 50), None);
    }
}
