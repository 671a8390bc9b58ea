//! Outbound rate limits, per server: calls wait for a slot instead of failing.
//!
//! A server may declare its API's documented limit (`META.api.rate_limit: #{ requests, per_ms }`): no
//! window of `per_ms` then holds more than `requests` sends from this process. The upstream may also
//! say when to slow down — `Retry-After`, or `X-RateLimit-Remaining: 0` with a reset time — and every
//! later call of that server waits until then. Waiting is a timer the fiber suspends on (see
//! `http::send_async`), so a queued call holds no thread; a call whose slot would come after its
//! invocation's deadline fails at once with `rate_limited` rather than waiting to time out.
//!
//! A send is counted when it happens, not when it was planned: a call asks [`Throttle::admit`], which
//! either records the send at that instant or says when to ask again. A call that wakes late (a loaded
//! machine) therefore moves the window with it instead of leaving the calls after it on a schedule
//! that no longer holds, and no window ever counts more than `requests` real sends.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName};

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

/// Why a send may not go now.
#[derive(Debug, PartialEq)]
pub enum Admit {
    /// Ask again at this moment.
    Later(Instant),
    /// The next chance comes only this long from now, past the call's deadline.
    TooLate(Duration),
}

/// One server's sending schedule.
#[derive(Debug, Default)]
pub struct Throttle {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    window: Option<Window>,
    /// The sends made within the last window, oldest first.
    sent: VecDeque<Instant>,
    /// No send before this: what the upstream asked for.
    paused_until: Option<Instant>,
}

impl Throttle {
    /// Admits a send now, recording it, or answers when to ask again: `Err(Admit::Later(at))`. When
    /// that moment is past `deadline` it is `Err(Admit::TooLate(wait))` instead, and nothing is recorded.
    pub fn admit(&self, deadline: Instant) -> Result<(), Admit> {
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
        }
        if at <= now {
            if state.window.is_some() {
                state.sent.push_back(now);
            }
            return Ok(());
        }
        Err(if at >= deadline { Admit::TooLate(at - now) } else { Admit::Later(at) })
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

/// The headers that say how many requests remain, and when the count resets, as APIs spell them.
/// Names made once: a name given as text is parsed again by every lookup, and every response is read.
const REMAINING: [HeaderName; 3] = [
    HeaderName::from_static("x-ratelimit-remaining"),
    HeaderName::from_static("ratelimit-remaining"),
    HeaderName::from_static("x-rate-limit-remaining"),
];
const RESET: [HeaderName; 3] = [
    HeaderName::from_static("x-ratelimit-reset"),
    HeaderName::from_static("ratelimit-reset"),
    HeaderName::from_static("x-rate-limit-reset"),
];

/// How long the upstream asks us to hold off, if it does.
fn pause(status: StatusCode, headers: &HeaderMap) -> Option<Duration> {
    let text = |names: &[HeaderName]| names.iter().find_map(|name| headers.get(name)?.to_str().ok().map(str::trim));
    if matches!(status.as_u16(), 429 | 503)
        && let Some(after) = text(&[reqwest::header::RETRY_AFTER]).and_then(retry_after)
    {
        return Some(after);
    }
    let remaining = text(&REMAINING)?;
    if remaining.parse::<f64>().ok()? > 0.0 {
        return None;
    }
    let reset: u64 = text(&RESET)?.parse::<f64>().ok()? as u64;
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

    /// Admits sends as a caller would: asking again at the moment it was told.
    fn send(throttle: &Throttle, deadline: Instant) -> Result<Instant, Duration> {
        loop {
            match throttle.admit(deadline) {
                Ok(()) => return Ok(Instant::now()),
                Err(Admit::Later(at)) => std::thread::sleep(at.saturating_duration_since(Instant::now())),
                Err(Admit::TooLate(wait)) => return Err(wait),
            }
        }
    }

    #[test]
    fn no_window_holds_more_than_the_limit() {
        let throttle = window(3, 200);
        let far = Instant::now() + Duration::from_secs(60);
        let sends: Vec<Instant> = (0..7).map(|_| send(&throttle, far).unwrap()).collect();
        for i in 3..sends.len() {
            assert!(sends[i] - sends[i - 3] >= Duration::from_millis(200), "send {i}");
        }
    }

    #[test]
    fn a_late_sender_moves_the_window_with_it() {
        // Told to come back at `at`, a caller that comes back much later is counted from then: the window
        // is measured from real sends, so the sends after it wait a full window from the late one.
        let throttle = window(1, 100);
        let far = Instant::now() + Duration::from_secs(60);
        throttle.admit(far).unwrap();
        let Err(Admit::Later(at)) = throttle.admit(far) else { panic!("the second send must wait") };
        std::thread::sleep(at.saturating_duration_since(Instant::now()) + Duration::from_millis(150));
        let late = Instant::now();
        throttle.admit(far).unwrap();
        let Err(Admit::Later(next)) = throttle.admit(far) else { panic!("the third send must wait") };
        assert!(next >= late + Duration::from_millis(100), "{:?}", next - late);
    }

    #[test]
    fn a_send_past_the_deadline_is_refused_and_not_recorded() {
        let throttle = window(1, 10_000);
        let soon = Instant::now() + Duration::from_secs(1);
        throttle.admit(soon).unwrap();
        let Err(Admit::TooLate(wait)) = throttle.admit(soon) else { panic!("no slot before the deadline") };
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
        let Err(Admit::Later(at)) = throttle.admit(far) else { panic!("paused") };
        assert!(at > Instant::now() + Duration::from_secs(6));
        assert!(matches!(throttle.admit(Instant::now() + Duration::from_secs(1)), Err(Admit::TooLate(_))));
    }
}
