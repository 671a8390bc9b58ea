//! What native functions may know about the invocation they serve.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::script::Script;

/// The invocation a run belongs to, shared with the native modules through the sandbox.
pub struct Context {
    /// The server name the script runs as: the name invoked, or the server bound to the CID invoked.
    /// `None` for a script that is not registered (a CID no server is bound to, a file being tried).
    pub server: Option<String>,
    pub script: Arc<Script>,
    /// When the invocation started and how long it may take, all attempts included.
    pub started: Instant,
    pub timeout: Duration,
}

impl Context {
    /// Time left before the wall-clock deadline; blocking calls use it as their own timeout.
    pub fn remaining(&self) -> Duration {
        (self.started + self.timeout).saturating_duration_since(Instant::now())
    }
}
