//! Invocation records as the store keeps them: one per finished invocation, never a payload or a
//! secret — which server and script ran, through which entry point, how it ended, how long it took,
//! what it sent upstream (counts and bytes, not content), what it cost, and the request and trace ids
//! that tie it to logs and to the caller's trace.
//!
//! Four operations cover them ([`Store`](super::Store)): append a batch, query newest first with
//! filters, sum usage per server and operation, prune by count and age. The records are written off the
//! hot path, in batches, by `observe::records`; each store keeps a batch as one row
//! ([`record_block`](super::record_block)).

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::cid::Cid;

/// The entry point an invocation came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    Http,
    Mcp,
    Webhook,
    Cli,
}

impl Via {
    pub const ALL: [Via; 4] = [Via::Http, Via::Mcp, Via::Webhook, Via::Cli];

    pub fn as_str(self) -> &'static str {
        match self {
            Via::Http => "http",
            Via::Mcp => "mcp",
            Via::Webhook => "webhook",
            Via::Cli => "cli",
        }
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Via {
    type Err = String;
    fn from_str(text: &str) -> Result<Via, String> {
        Via::ALL
            .into_iter()
            .find(|via| via.as_str() == text)
            .ok_or_else(|| format!("unknown via '{text}' (http, mcp, webhook, cli)"))
    }
}

/// One finished invocation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InvocationRecord {
    /// When it started, in milliseconds since the Unix epoch.
    pub time: i64,
    /// The server it ran as; for a name nobody registered, the name asked for when it is a valid name.
    pub server: Option<String>,
    /// The named operation (`META.operations`) the call was, when it was one.
    pub operation: Option<String>,
    /// The CID of the script that ran, when one was resolved.
    pub cid: Option<Cid>,
    pub via: Via,
    pub input_cid: Option<Cid>,
    pub output_cid: Option<Cid>,
    /// The HTTP status it answered with.
    pub status: u16,
    /// The error type, when it failed.
    pub error_type: Option<String>,
    pub duration_ms: f64,
    pub upstream_calls: u32,
    /// Bytes received from upstreams.
    pub upstream_bytes: u64,
    pub request_id: String,
    pub trace_id: String,
    /// What its upstream calls cost, as the script's `META.pricing` declares (0 without one).
    pub cost: f64,
    pub currency: Option<String>,
}

#[cfg(test)]
impl InvocationRecord {
    /// A successful HTTP call of `server` at `time` with a script and nothing else, for tests.
    pub fn sample(time: i64, server: &str) -> InvocationRecord {
        InvocationRecord {
            time,
            server: Some(server.into()),
            operation: None,
            cid: Some(Cid::of(b"script")),
            via: Via::Http,
            input_cid: None,
            output_cid: None,
            status: 200,
            error_type: None,
            duration_ms: 1.0,
            upstream_calls: 0,
            upstream_bytes: 0,
            request_id: format!("r{time}"),
            trace_id: "t".into(),
            cost: 0.0,
            currency: None,
        }
    }
}

/// Which records a query wants: every field that is set must match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordFilter {
    pub server: Option<String>,
    pub status: Option<StatusFilter>,
    pub via: Option<Via>,
    /// Records at or after this time (Unix ms).
    pub since: Option<i64>,
    /// Records before this time (Unix ms).
    pub until: Option<i64>,
    /// At most this many, newest first.
    pub limit: usize,
}

impl RecordFilter {
    /// Whether `record` passes this filter.
    pub fn matches(&self, record: &InvocationRecord) -> bool {
        let status = match self.status {
            Some(StatusFilter::Ok) => record.error_type.is_none(),
            Some(StatusFilter::Error) => record.error_type.is_some(),
            Some(StatusFilter::Code(code)) => record.status == code,
            None => true,
        };
        status
            && self.server.as_ref().is_none_or(|server| record.server.as_ref() == Some(server))
            && self.via.is_none_or(|via| record.via == via)
            && self.since.is_none_or(|since| record.time >= since)
            && self.until.is_none_or(|until| record.time < until)
    }
}

/// How a record ended, as a query asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    /// No error type.
    Ok,
    /// Any error type.
    Error,
    /// This HTTP status.
    Code(u16),
}

impl FromStr for StatusFilter {
    type Err = String;
    fn from_str(text: &str) -> Result<StatusFilter, String> {
        match text {
            "ok" => Ok(StatusFilter::Ok),
            "error" => Ok(StatusFilter::Error),
            code => match code.parse::<u16>() {
                Ok(code) if (100..=599).contains(&code) => Ok(StatusFilter::Code(code)),
                _ => Err(format!("status is ok, error or an HTTP status code, not '{text}'")),
            },
        }
    }
}

/// Calls, errors and cost of one server's operation (`None`: calls that were no named operation).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Usage {
    pub server: String,
    pub operation: Option<String>,
    pub calls: u64,
    pub errors: u64,
    pub cost: f64,
    pub currency: Option<String>,
}
