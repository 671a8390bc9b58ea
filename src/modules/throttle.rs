//! Outbound rate limits, per server: calls wait for a slot instead of failing.
//!
//! A server may declare its API's documented limit (`META.api.rate_limit: #{ requests, per_ms }`): no
//! window of `per_ms` then holds more than `requests` sends from this process. The upstream may also
//! say when to slow down — `Retry-After`, or `X-RateLimit-Remaining: 0` with a reset time — and every
//! later call of that server waits until then. Waiting is a timer the fiber suspends on (see
//! `http::send_async`), so a queued call holds no thread; a call whose slot would come after its
//! invocation's deadline fails at once with `rate_limited` rather than waiting to time out.
//!
//! Slots are reserved in order, so calls leave in the order they asked; a reserved slot is spent even
//! when its call is abandoned, which errs on the side of sending less.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use crate::meta::rate_limit::Window;

/// The longest an upstream's reset time is believed: anything later is taken as this.
const LONGEST_PAUSE: Duration = Duration::from_secs(3600);

/// The throttles of every server that has sent through `api`.
#[derive(Default)]
pub struct Throttles {
    servers: Mutex<HashMap<String, Arc<Throttle>>>,
}

impl Throttles {
    /// The throttle of `server`, with its declared window (which a reloaded script may have changed).
    pub fn of(&self, server: &str, window: Option<Window>) -> Arc<Throttle> {
        let throttle = {
            let mut servers = self.servers.lock();
            match servers.get(server) {
                Some(throttle) => throttle.clone(),
                None => servers.entry(server.to_owned()).or_default().clone(),
            }
        };
        throttle.state.lock().window = window;
        throttle
    }
}

/// One server's sending schedule.
#[derive(Debug, Default)]
pub struct Throttle {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    window: Option<Window>,
    /// The send times reserved within the last window, oldest first (some may lie ahead).
    sent: VecDeque<Instant>,
    /// No send before this: what the upstream asked for.
    paused_until: Option<Instant>,
}

impl Throttle {
    /// Reserves the next send slot: when the call may go. `Err` holds how long the caller would have
    /// to wait when that is past `deadline`; nothing is reserved then.
    pub fn reserve(&self, deadline: Instant) -> Result<Instant, Duration> {
        let now = Instant::now();
        let mut state = self.state.lock();
        let mut at = state.paused_until.filter(|until| *until > now).unwrap_or(now);
        if let Some(window) = state.window {
            while state.sent.front().is_some_and(|sent| *sent + window.per <= now) {
                state.sent.pop_front();
            }
            if state.sent.len() >= window.requests {
                at = at.max(state.sent[state.sent.len() - window.requests] + window.per);
            }
            at = at.max(state.sent.back().copied().unwrap_or(now));
        }
        if at > now && at >= deadline {
            return Err(at - now);
        }
        if state.window.is_some() {
            state.sent.push_back(at);
        }
        Ok(at)
    }

    /// Reads what a response says about the upstream's own limit: a `Retry-After` on a 429 or 503, or
    /// no requests remaining until a reset time, pause every later call until then.
    pub fn observe(&self, status: StatusCode, headers: &HeaderMap) {
        let Some(pause) = pause(status, headers) else { return };
        let until = Instant::now() + pause.min(LONGEST_PAUSE);
        let mut state = self.state.lock();
        if state.paused_until.is_none_or(|current| current < until) {
            state.paused_until = Some(until);
        }
    }
}

/// A `Retry-After` value, in seconds or as an HTTP date, as the wait it asks for.
pub fn retry_after(value: &str) -> Option<Duration> {
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(std::time::SystemTime::now()).unwrap_or_default())
}

/// How long the upstream asks us to hold off, if it does.
fn pause(status: StatusCode, headers: &HeaderMap) -> Option<Duration> {
    let text = |names: &[&str]| names.iter().find_map(|name| headers.get(*name)?.to_str().ok().map(str::trim));
    if matches!(status.as_u16(), 429 | 503)
        && let Some(after) = text(&["retry-after"]).and_then(retry_after)
    {
        return Some(after);
    }
    let remaining = text(&["x-ratelimit-remaining", "ratelimit-remaining", "x-rate-limit-remaining"])?;
    if remaining.parse::<f64>().ok()? > 0.0 {
        return None;
    }
    let reset: u64 = text(&["x-ratelimit-reset", "ratelimit-reset", "x-rate-limit-reset"])?.parse::<f64>().ok()? as u64;
    // A reset this large is a Unix time (GitHub); a small one counts seconds from now (the IETF draft).
    const UNIX_TIME: u64 = 1_000_000_000;
    Some(match reset >= UNIX_TIME {
        true => {
            let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs();
            Duration::from_secs(reset.saturating_sub(now))
        }
        false => Duration::from_secs(reset),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(requests: usize, per_ms: u64) -> Throttle {
        let throttle = Throttle::default();
        throttle.state.lock().window = Some(Window { requests, per: Duration::from_millis(per_ms) });
        throttle
    }

    #[test]
    fn slots_never_put_more_than_the_limit_in_one_window() {
        let throttle = window(3, 1000);
        let far = Instant::now() + Duration::from_secs(60);
        let slots: Vec<Instant> = (0..10).map(|_| throttle.reserve(far).unwrap()).collect();
        for i in 3..slots.len() {
            assert!(slots[i] - slots[i - 3] >= Duration::from_millis(1000), "slot {i}");
            assert!(slots[i] >= slots[i - 1], "slots are in order");
        }
        assert!(slots[2] - slots[0] < Duration::from_millis(50), "the first three go at once");
    }

    #[test]
    fn a_slot_past_the_deadline_is_refused_and_not_reserved() {
        let throttle = window(1, 10_000);
        let soon = Instant::now() + Duration::from_secs(1);
        throttle.reserve(soon).unwrap();
        let wait = throttle.reserve(soon).unwrap_err();
        assert!(wait > Duration::from_secs(9), "{wait:?}");
        assert_eq!(throttle.state.lock().sent.len(), 1);
    }

    #[test]
    fn upstream_hints_pause_later_calls() {
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-remaining", "0".parse().unwrap());
        headers.insert("x-ratelimit-reset", "30".parse().unwrap());
        assert_eq!(pause(StatusCode::OK, &headers), Some(Duration::from_secs(30)));
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        headers.insert("x-ratelimit-reset", (now + 20).to_string().parse().unwrap());
        let github = pause(StatusCode::OK, &headers).unwrap();
        assert!((Duration::from_secs(19)..=Duration::from_secs(20)).contains(&github), "{github:?}");
        headers.insert("x-ratelimit-remaining", "4".parse().unwrap());
        assert_eq!(pause(StatusCode::OK, &headers), None);
        let mut limited = HeaderMap::new();
        limited.insert("retry-after", "7".parse().unwrap());
        assert_eq!(pause(StatusCode::TOO_MANY_REQUESTS, &limited), Some(Duration::from_secs(7)));
        assert_eq!(pause(StatusCode::OK, &limited), None);

        let throttle = Throttle::default();
        throttle.observe(StatusCode::TOO_MANY_REQUESTS, &limited);
        let far = Instant::now() + Duration::from_secs(60);
        assert!(throttle.reserve(far).unwrap() > Instant::now() + Duration::from_secs(6));
        assert!(throttle.reserve(Instant::now() + Duration::from_secs(1)).is_err());
    }
}
