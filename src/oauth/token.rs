//! An access token as the runtime keeps it, and the rule that decides when it is renewed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// How long a token whose response gave no `expires_in` is trusted (a 401 renews it sooner).
const ASSUMED_LIFETIME: Duration = Duration::from_secs(3600);
/// Renewal starts at the latest this long before expiry…
const LEAD: Duration = Duration::from_secs(300);

/// A token and what came with it. Serialised only inside a sealed connection.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    pub access: String,
    #[serde(default)]
    pub refresh: Option<String>,
    /// Unix milliseconds.
    pub issued: i64,
    pub expires: Option<i64>,
    #[serde(default)]
    pub scopes: Vec<String>,
}

// Never print a token, even in a debug message.
impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token").field("issued", &self.issued).field("expires", &self.expires).finish_non_exhaustive()
    }
}

pub fn now_millis() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Token {
    pub fn new(access: String, refresh: Option<String>, expires_in: Option<Duration>, scopes: Vec<String>) -> Token {
        let issued = now_millis();
        let expires = expires_in.map(|d| issued.saturating_add(d.as_millis().min(i64::MAX as u128) as i64));
        Token { access, refresh, issued, expires, scopes }
    }

    fn lifetime(&self) -> Duration {
        match self.expires {
            Some(expires) => Duration::from_millis(expires.saturating_sub(self.issued).max(0) as u64),
            None => ASSUMED_LIFETIME,
        }
    }

    /// When the token stops being valid (Unix ms).
    pub fn expires_at(&self) -> i64 {
        self.expires.unwrap_or_else(|| self.issued.saturating_add(ASSUMED_LIFETIME.as_millis() as i64))
    }

    /// Whether the token may still be sent at `now`: more than min(5 min, half its lifetime) remains.
    /// A token past that point is renewed before use, so the API never sees an expired one.
    pub fn fresh_at(&self, now: i64) -> bool {
        let margin = LEAD.min(self.lifetime() / 2).as_millis() as i64;
        self.expires_at().saturating_sub(now) > margin
    }

    pub fn fresh(&self) -> bool {
        self.fresh_at(now_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(lifetime_ms: i64) -> Token {
        Token { access: "a".into(), refresh: None, issued: 0, expires: Some(lifetime_ms), scopes: vec![] }
    }

    #[test]
    fn renewal_starts_when_the_smaller_of_five_minutes_and_half_the_lifetime_remains() {
        let hour = token(3_600_000);
        assert!(hour.fresh_at(3_600_000 - 300_001));
        assert!(!hour.fresh_at(3_600_000 - 300_000));
        let short = token(3_000);
        assert!(short.fresh_at(1_499));
        assert!(!short.fresh_at(1_500));
        assert!(!short.fresh_at(5_000));
        let unknown = Token { expires: None, ..token(0) };
        assert!(unknown.fresh_at(3_000_000));
        assert!(!unknown.fresh_at(3_300_000));
    }

    #[test]
    fn debug_output_never_shows_a_token() {
        let token = Token { access: "secret-access".into(), refresh: Some("secret-refresh".into()), ..token(1) };
        let shown = format!("{token:?}");
        assert!(!shown.contains("secret"), "{shown}");
    }
}
