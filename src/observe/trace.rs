//! Request ids and W3C Trace Context: who asked for an invocation, and which trace it belongs to.
//!
//! Every invocation answers with an `X-Request-Id` — the caller's when it is sane (at most 64 of
//! `[A-Za-z0-9._-]`), else a new one — and takes part in the caller's trace: an incoming `traceparent`
//! (`00-<trace id>-<parent span id>-<flags>`) is continued under a span of the invocation's own, and each
//! upstream request carries a `traceparent` naming a span of its own, child of the invocation's. A
//! malformed `traceparent` starts a new trace, as the specification says; nothing a caller sends is
//! kept unless it has the shape it must have, so no caller-chosen text reaches a log line or a header.

use std::borrow::Cow;

use rand::RngCore;

/// The header a request id travels in, both ways.
const REQUEST_ID: &str = "x-request-id";
/// The W3C Trace Context header.
const TRACEPARENT: &str = "traceparent";
/// The same two as header names (looking a header up by its text parses the text first).
pub static REQUEST_ID_HEADER: http::HeaderName = http::HeaderName::from_static(REQUEST_ID);
pub static TRACEPARENT_HEADER: http::HeaderName = http::HeaderName::from_static(TRACEPARENT);

const LONGEST_REQUEST_ID: usize = 64;

/// The identity of one invocation in logs, records and upstream requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    pub request_id: String,
    /// 32 lower-case hex digits.
    pub trace_id: String,
    /// The invocation's own span: 16 lower-case hex digits.
    pub span_id: String,
    /// The caller's span, when the trace was continued.
    pub parent_id: Option<String>,
    /// The trace flags (`01`: sampled), passed on as received.
    flags: Cow<'static, str>,
}

impl Default for Trace {
    fn default() -> Trace {
        Trace::continued(None, None)
    }
}

impl Trace {
    /// A trace for a request that carried `request_id` and `traceparent` headers (either may be absent
    /// or unusable: then a new id, a new trace).
    pub fn continued(request_id: Option<&str>, traceparent: Option<&str>) -> Trace {
        // One draw for every id (drawing an array takes a number per byte).
        let mut random = [0u8; 40];
        rand::rng().fill_bytes(&mut random);
        let (request, rest) = random.split_first_chunk::<16>().expect("40 bytes");
        let (span, trace) = rest.split_first_chunk::<8>().expect("24 bytes");
        let request_id = match request_id.filter(|id| sane(id)) {
            Some(id) => id.to_owned(),
            None => new_request_id(*request),
        };
        let span_id = hex_id(span);
        match traceparent.and_then(parse_traceparent) {
            Some((trace_id, parent, flags)) => {
                Trace { request_id, trace_id, span_id, parent_id: Some(parent), flags: flags.into() }
            }
            None => {
                let trace = trace.first_chunk::<16>().expect("16 bytes");
                Trace { request_id, trace_id: hex_id(trace), span_id, parent_id: None, flags: Cow::Borrowed("01") }
            }
        }
    }

    /// From an HTTP request's headers.
    pub fn from_headers(headers: &http::HeaderMap) -> Trace {
        let text = |name: &http::HeaderName| headers.get(name).and_then(|value| value.to_str().ok());
        Trace::continued(text(&REQUEST_ID_HEADER), text(&TRACEPARENT_HEADER))
    }

    /// The `traceparent` of an upstream request this invocation sends: a new span, child of its own.
    pub fn child_traceparent(&self) -> String {
        let mut span = [0u8; 8];
        rand::rng().fill_bytes(&mut span);
        ["00-", &self.trace_id, "-", &hex_id(&span), "-", &self.flags].concat()
    }
}

/// Whether a caller's request id may be kept: short, and only characters safe in logs and headers.
fn sane(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= LONGEST_REQUEST_ID
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A random (version 4) UUID made of `bytes`.
fn new_request_id(bytes: [u8; 16]) -> String {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid::Builder::from_random_bytes(bytes).into_uuid().hyphenated().encode_lower(&mut text).to_owned()
}

/// Random `bytes` as lower-case hex; all zeros (which Trace Context forbids, and which a draw of 8 or
/// 16 random bytes all but never is) become a one.
fn hex_id<const N: usize>(bytes: &[u8; N]) -> String {
    let mut text = vec![0u8; 2 * N];
    hex::encode_to_slice(bytes, &mut text).expect("twice the length");
    if bytes.iter().all(|b| *b == 0) {
        text[2 * N - 1] = b'1';
    }
    String::from_utf8(text).expect("hex is ASCII")
}

/// `(trace id, parent id, flags)` of a version-00 (or later, read as 00) `traceparent`.
fn parse_traceparent(text: &str) -> Option<(String, String, String)> {
    let mut parts = text.trim().split('-');
    let (version, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex =
        |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let zero = |s: &str| s.bytes().all(|b| b == b'0');
    let valid = hex(version, 2)
        && version != "ff"
        && (version != "00" || parts.next().is_none())
        && hex(trace, 32)
        && !zero(trace)
        && hex(parent, 16)
        && !zero(parent)
        && hex(flags, 2);
    valid.then(|| (trace.to_owned(), parent.to_owned(), flags.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sane_request_id_is_kept_and_any_other_replaced() {
        assert_eq!(Trace::continued(Some("abc-123_x.y"), None).request_id, "abc-123_x.y");
        for insane in ["", "has space", "new\nline", "ümlaut", &"x".repeat(65), "a/b"] {
            let trace = Trace::continued(Some(insane), None);
            assert_ne!(trace.request_id, insane);
            assert!(sane(&trace.request_id), "{}", trace.request_id);
        }
    }

    #[test]
    fn ids_are_hex_of_their_length_and_never_all_zeros() {
        assert_eq!(hex_id(&[0u8; 8]), "0000000000000001");
        assert_eq!(hex_id(&[0xab, 0x01, 0, 0, 0, 0, 0, 0xff]), "ab010000000000ff");
        let trace = Trace::default();
        assert!(uuid::Uuid::parse_str(&trace.request_id).is_ok_and(|id| id.get_version_num() == 4));
        assert!(parse_traceparent(&format!("00-{}-{}-01", trace.trace_id, trace.span_id)).is_some());
    }

    #[test]
    fn a_valid_traceparent_is_continued_under_a_new_span() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let trace = Trace::continued(None, Some(parent));
        assert_eq!(trace.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(trace.parent_id.as_deref(), Some("00f067aa0ba902b7"));
        assert_ne!(trace.span_id, "00f067aa0ba902b7");
        let child = trace.child_traceparent();
        assert!(child.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{child}");
        assert!(child.ends_with("-01"));
        assert!(parse_traceparent(&child).is_some());
    }

    #[test]
    fn a_malformed_traceparent_starts_a_new_trace() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "garbage",
        ] {
            let trace = Trace::continued(None, Some(bad));
            assert_eq!(trace.parent_id, None, "{bad}");
            assert_eq!(trace.trace_id.len(), 32);
            assert_ne!(trace.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        }
    }
}
