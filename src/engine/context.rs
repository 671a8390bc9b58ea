//! What native functions may know about the invocation they serve, and what it must not reveal.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;

use super::script::Script;

/// Shorter values are not masked: they would mangle every message without protecting anything.
const SHORTEST_MASKED: usize = 4;
pub const MASK: &str = "[REDACTED]";

/// The invocation a run belongs to, shared with the native modules through the sandbox.
pub struct Context {
    /// The server name the script runs as: the name invoked, or the server bound to the CID invoked.
    /// `None` for a script that is not registered (a CID no server is bound to).
    pub server: Option<String>,
    pub script: Arc<Script>,
    /// When the invocation started and how long it may take, all attempts included.
    pub started: Instant,
    pub timeout: Duration,
    /// Every secret value read during the invocation, in the forms it may show up in.
    revealed: Mutex<Vec<String>>,
}

impl Context {
    pub fn new(server: Option<String>, script: Arc<Script>, started: Instant, timeout: Duration) -> Context {
        Context { server, script, started, timeout, revealed: Mutex::new(Vec::new()) }
    }

    /// When the invocation must have finished.
    pub fn deadline(&self) -> Instant {
        self.started + self.timeout
    }

    /// Time left before the wall-clock deadline; outbound calls use it as their own timeout.
    pub fn remaining(&self) -> Duration {
        (self.started + self.timeout).saturating_duration_since(Instant::now())
    }

    /// Records a secret value so that [`redact`](Self::redact) masks it: as is, percent-encoded (in URLs)
    /// and base64-encoded (in basic-auth headers echoed back).
    pub fn reveal(&self, value: &str) {
        if value.len() < SHORTEST_MASKED {
            return;
        }
        let forms = [
            value.to_owned(),
            percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string(),
            base64::engine::general_purpose::STANDARD.encode(value),
        ];
        let mut revealed = self.revealed.lock().unwrap_or_else(|p| p.into_inner());
        for form in forms {
            if !revealed.contains(&form) {
                revealed.push(form);
            }
        }
        // Longest first, so that a value containing another is masked whole.
        revealed.sort_by_key(|form| std::cmp::Reverse(form.len()));
    }

    /// `text` with every revealed secret masked.
    pub fn redact(&self, text: &str) -> String {
        let revealed = self.revealed.lock().unwrap_or_else(|p| p.into_inner());
        revealed.iter().fold(text.to_owned(), |text, secret| text.replace(secret.as_str(), MASK))
    }
}
