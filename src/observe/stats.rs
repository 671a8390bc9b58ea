//! What the records say about one server lately: calls, error rate, and p50/p99 duration over the last
//! hour. Read from the store, so it covers every process that shares it; reused by whatever shows a
//! server (the management API now, the console later).

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
        error_rate: if calls == 0 { 0.0 } else { errors as f64 / calls as f64 },
        p50_ms: percentile(&durations, 50),
        p99_ms: percentile(&durations, 99),
    })
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: usize) -> Option<f64> {
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50), Some(50.0));
        assert_eq!(percentile(&values, 99), Some(99.0));
        assert_eq!(percentile(&[7.0], 99), Some(7.0));
        assert_eq!(percentile(&[], 50), None);
    }
}
