//! A server's last hour on its page, from the invocation records: calls, error rate and p50/p99 duration
//! ([`crate::observe::stats`]), and a small SVG drawn on the server — calls per five minutes as bars
//! (errors in red on top), p50 and p99 of each five minutes as two lines on their own scale. Presentation
//! attributes only, no style or script, so the page's policy has nothing to allow.

use maud::{Markup, html};

use super::State;
use crate::error::Error;
use crate::observe::stats::{self, WINDOW_MS};
use crate::store::{InvocationRecord, RecordFilter};

/// Five minutes per bar, twelve bars in the hour.
const STEP_MS: i64 = 5 * 60_000;
const BARS: usize = 12;
/// The drawing's size, and the room above and below the plot for the labels.
const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 140.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 22.0;

/// The activity card of `name`.
pub async fn card(console: &State, name: &str) -> Result<Markup, Error> {
    let server = name.to_owned();
    let (stats, records) = console
        .runtime
        .blocking(move |rt| {
            let now = chrono::Utc::now().timestamp_millis();
            let stats = stats::last_hour(rt.store.as_ref(), &server, now)?;
            let filter = RecordFilter {
                server: Some(server),
                since: Some(now - WINDOW_MS),
                limit: 100_000,
                ..RecordFilter::default()
            };
            Ok((stats, (now, rt.store.records(&filter)?)))
        })
        .await?;
    let ms = |v: Option<f64>| v.map_or("—".to_owned(), |v| format!("{v:.1} ms"));
    Ok(html! {
        h2 { "Last hour" }
        dl.facts data-testid="server-stats" {
            dt { "Calls" } dd { (stats.calls) }
            dt { "Errors" } dd { (stats.errors) " (" (format!("{:.1}", stats.error_rate * 100.0)) " %)" }
            dt { "p50 / p99" } dd { (ms(stats.p50_ms)) " / " (ms(stats.p99_ms)) }
        }
        (chart(&records.1, records.0))
    })
}

struct Bar {
    calls: usize,
    errors: usize,
    p50: Option<f64>,
    p99: Option<f64>,
}

fn bars(records: &[InvocationRecord], now: i64) -> Vec<Bar> {
    let mut buckets: Vec<Vec<&InvocationRecord>> = (0..BARS).map(|_| Vec::new()).collect();
    for record in records {
        let age = now - record.time;
        if (0..STEP_MS * BARS as i64).contains(&age) {
            buckets[BARS - 1 - (age / STEP_MS) as usize].push(record);
        }
    }
    buckets
        .into_iter()
        .map(|bucket| {
            let mut durations: Vec<f64> = bucket.iter().map(|r| r.duration_ms).collect();
            durations.sort_by(f64::total_cmp);
            let rank = |p: usize| durations.get((durations.len() * p).div_ceil(100).max(1) - 1).copied();
            let errors = bucket.iter().filter(|r| r.error_type.is_some()).count();
            Bar { calls: bucket.len(), errors, p50: rank(50), p99: rank(99) }
        })
        .collect()
}

/// The chart of `records` over the hour before `now`.
fn chart(records: &[InvocationRecord], now: i64) -> Markup {
    let bars = bars(records, now);
    let most_calls = bars.iter().map(|b| b.calls).max().unwrap_or(0).max(1) as f64;
    let slowest = bars.iter().filter_map(|b| b.p99).fold(0.0, f64::max).max(1.0);
    let plot = HEIGHT - TOP - BOTTOM;
    let slot = WIDTH / BARS as f64;
    let y_calls = |n: usize| TOP + plot - plot * n as f64 / most_calls;
    let y_ms = |ms: f64| TOP + plot - plot * ms / slowest;
    let line = |pick: fn(&Bar) -> Option<f64>| {
        let points = bars.iter().enumerate().filter_map(|(i, bar)| pick(bar).map(|ms| (i, ms)));
        points.map(|(i, ms)| format!("{:.1},{:.1}", slot * (i as f64 + 0.5), y_ms(ms))).collect::<Vec<_>>().join(" ")
    };
    html! {
        svg.chart viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" data-testid="server-chart"
            aria-label="Calls, errors and p50/p99 duration per five minutes over the last hour" {
            line x1="0" y1=(TOP + plot) x2=(WIDTH) y2=(TOP + plot) stroke="#e2e6ec" {}
            @for (i, bar) in bars.iter().enumerate() {
                @let x = slot * i as f64 + slot * 0.15;
                @for (count, colour) in [(bar.calls, "#c9d6f5"), (bar.errors, "#d9534f")] {
                    @if count > 0 {
                        rect x=(x) y=(y_calls(count)) width=(slot * 0.7) height=(TOP + plot - y_calls(count)) fill=(colour) {
                            title { (bar.calls) " calls, " (bar.errors) " errors" }
                        }
                    }
                }
            }
            polyline points=(line(|b| b.p50)) fill="none" stroke="#1f7a4d" stroke-width="2" {}
            polyline points=(line(|b| b.p99)) fill="none" stroke="#b7791f" stroke-width="2" stroke-dasharray="4 3" {}
            text x="2" y="10" font-size="10" fill="#5f6b7a" { (most_calls as usize) " calls" }
            text x=(WIDTH - 2.0) y="10" font-size="10" fill="#5f6b7a" text-anchor="end" { "p99 " (format!("{slowest:.0} ms")) }
            text x="2" y=(HEIGHT - 6.0) font-size="10" fill="#5f6b7a" { "−60 min" }
            text x=(WIDTH - 2.0) y=(HEIGHT - 6.0) font-size="10" fill="#5f6b7a" text-anchor="end" { "now" }
        }
    }
}
