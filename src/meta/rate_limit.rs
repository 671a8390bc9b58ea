//! `META.api.rate_limit`: the API's documented limit, `#{ requests, per_ms }`, declared once per server.
//! Keeping to it — queueing calls for their slots — is the throttle's (`modules::throttle`).

use std::time::Duration;

use rhai::Map;

use super::invalid::Invalid;

const MOST_REQUESTS: i64 = 1_000_000;
const LONGEST_WINDOW_MS: i64 = 86_400_000;

/// A declared limit: at most `requests` per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub requests: usize,
    pub per: Duration,
}

impl Window {
    /// Reads `#{ requests, per_ms }`, or says what is wrong with it.
    pub fn parse(spec: &Map) -> Result<Window, Invalid> {
        let bad = |message: &str| Invalid::from(format!("META.api.rate_limit: {message}"));
        if let Some(key) = spec.keys().find(|key| !["requests", "per_ms"].contains(&key.as_str())) {
            return Err(bad(&format!("unknown key '{key}' (requests, per_ms)")));
        }
        let number = |key: &str, most: i64| match spec.get(key).map(|v| v.as_int()) {
            None => Err(bad(&format!("'{key}' is required"))),
            Some(Ok(n)) if (1..=most).contains(&n) => Ok(n),
            Some(_) => Err(bad(&format!("'{key}' must be a whole number from 1 to {most}"))),
        };
        let requests = number("requests", MOST_REQUESTS)? as usize;
        let per = Duration::from_millis(number("per_ms", LONGEST_WINDOW_MS)? as u64);
        Ok(Window { requests, per })
    }

    /// Reads a limit in its JSON form, as `META` holds it when a script loads.
    pub fn from_json(spec: &serde_json::Value) -> Result<Window, Invalid> {
        let value = serde_json::from_value::<rhai::Dynamic>(spec.clone()).map_err(|e| e.to_string())?;
        let map = value.read_lock::<Map>().ok_or("META.api.rate_limit must be a map")?.clone();
        Window::parse(&map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_limits_say_what_is_wrong() {
        let spec = |pairs: &[(&str, i64)]| -> String {
            let map: Map = pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
            Window::parse(&map).unwrap_err().to_string()
        };
        assert!(spec(&[("requests", 0), ("per_ms", 1000)]).contains("'requests' must be a whole number"));
        assert!(spec(&[("requests", 5)]).contains("'per_ms' is required"));
        assert!(spec(&[("requests", 5), ("per_ms", -1)]).contains("'per_ms' must be"));
        assert!(spec(&[("requests", 5), ("per_ms", 10), ("burst", 2)]).contains("unknown key 'burst'"));
    }
}
