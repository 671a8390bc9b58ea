//! What native functions may know about the invocation they serve, and what it must not reveal.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use super::passthrough::Passthrough;
use super::script::Script;
use crate::observe::trace::Trace;

/// Shorter values are not masked: they would mangle every message without protecting anything.
const SHORTEST_MASKED: usize = 4;
pub const MASK: &str = "[REDACTED]";

/// What `url::encode` leaves as it is in a URL component: RFC 3986's unreserved characters. Defined
/// here, with the other forms a secret is masked in, so that the encoder and the mask cannot drift.
pub const URL_COMPONENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// The invocation a run belongs to, shared with the native modules through the sandbox.
pub struct Context {
    /// The server name the script runs as: the name invoked, or the server an operator bound the CID
    /// invoked to. `None` only for a script run from a file (`switchboard call FILE.rhai`) not named after a
    /// server.
    pub server: Option<String>,
    pub script: Arc<Script>,
    /// When the invocation started and how long it may take, all attempts included.
    pub started: Instant,
    pub timeout: Duration,
    /// The caller asked for every page of a list: `api::call` walks the pages as `api::all` does.
    pub all_pages: bool,
    /// Caller headers the script's `META.api.pass_headers` allows, which `api` calls forward.
    pub headers: Vec<(String, String)>,
    /// The invocation's request id and trace, which its upstream requests carry on.
    pub trace: Trace,
    /// The invocation's log span: what is logged on its behalf away from its task carries its ids.
    pub span: tracing::Span,
    /// Every secret value read during the invocation, each in the forms it may show up in.
    revealed: Mutex<Vec<Forms>>,
    /// Upstream requests sent and bytes received, for the invocation's record.
    upstream_calls: AtomicU32,
    upstream_bytes: AtomicU64,
    /// The upstream JSON last handed to the script, sent back out as it came when `main` returns it.
    pub passthrough: Passthrough,
}

impl Context {
    pub fn new(server: Option<String>, script: Arc<Script>, started: Instant, timeout: Duration) -> Context {
        Context::traced(server, script, started, timeout, Trace::default())
    }

    /// A context for an invocation that already has its `trace`.
    pub fn traced(
        server: Option<String>,
        script: Arc<Script>,
        started: Instant,
        timeout: Duration,
        trace: Trace,
    ) -> Context {
        Context {
            server,
            script,
            started,
            timeout,
            all_pages: false,
            headers: Vec::new(),
            trace,
            span: tracing::Span::none(),
            revealed: Mutex::new(Vec::new()),
            upstream_calls: AtomicU32::new(0),
            upstream_bytes: AtomicU64::new(0),
            passthrough: Passthrough::default(),
        }
    }

    /// Counts one upstream request and the bytes its answer brought.
    pub fn count_upstream(&self, bytes: usize) {
        self.upstream_calls.fetch_add(1, Ordering::Relaxed);
        self.upstream_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Upstream requests sent and bytes received so far.
    pub fn upstream(&self) -> (u32, u64) {
        (self.upstream_calls.load(Ordering::Relaxed), self.upstream_bytes.load(Ordering::Relaxed))
    }

    /// Where an error of this invocation happened, as far as the engine knows: its server and script.
    pub fn location(&self) -> crate::error::Location {
        crate::error::Location { server: self.server.clone(), cid: Some(self.script.cid), ..Default::default() }
    }

    /// The error for a run of this invocation that overflowed its stack; its script is not run again.
    pub fn overflowed(&self, overflow: super::Overflow) -> crate::error::Error {
        self.script.mark_overflowed();
        overflow.error(self.location())
    }

    /// When the invocation must have finished.
    pub fn deadline(&self) -> Instant {
        self.started + self.timeout
    }

    /// Time left before the wall-clock deadline; outbound calls use it as their own timeout.
    pub fn remaining(&self) -> Duration {
        (self.started + self.timeout).saturating_duration_since(Instant::now())
    }

    /// Records a secret value so that [`redact`](Self::redact) masks it in every form the runtime may
    /// have written it in, and so an upstream may echo it back in: see `forms`.
    pub fn reveal(&self, value: &str) {
        if value.len() < SHORTEST_MASKED {
            return;
        }
        let forms = forms_of(value);
        let mut revealed = self.revealed.lock().unwrap_or_else(|p| p.into_inner());
        // A value read again (every call reads its credential) is recorded already.
        if !revealed.iter().any(|known| Arc::ptr_eq(known, &forms) || **known == *forms) {
            revealed.push(forms);
        }
    }

    /// Records the credential of HTTP basic auth, whose header carries `base64(user:password)`: the
    /// password alone does not show in that encoding.
    pub fn reveal_basic(&self, user: &str, password: &str) {
        self.reveal(&format!("{user}:{password}"));
    }

    /// At most `chars` characters of `text`, masked. Masking happens before cutting, so a secret that
    /// straddles the cut is not left half-shown.
    pub fn excerpt(&self, text: &str, chars: usize) -> String {
        let revealed = self.revealed.lock().unwrap_or_else(|p| p.into_inner());
        let longest = revealed.iter().flat_map(|forms| forms.first()).map(String::len).max().unwrap_or(0);
        drop(revealed);
        let window: String = text.chars().take(chars + longest).collect();
        self.redact(&window).chars().take(chars).collect()
    }

    /// `text` with every revealed secret masked.
    pub fn redact(&self, text: &str) -> String {
        let revealed = self.revealed.lock().unwrap_or_else(|p| p.into_inner());
        // Most texts (every outbound call's host and path) hold no secret: looked for before anything
        // is built, each form only where it fits.
        let shows = |form: &String| form.len() <= text.len() && text.contains(form.as_str());
        if !revealed.iter().any(|forms| forms.iter().any(shows)) {
            return text.to_owned();
        }
        // Longest first, so that a value containing another is masked whole.
        let mut all: Vec<&str> = revealed.iter().flat_map(|forms| forms.iter().map(String::as_str)).collect();
        all.sort_by_key(|form| std::cmp::Reverse(form.len()));
        all.dedup();
        all.iter().fold(text.to_owned(), |text, secret| text.replace(secret, MASK))
    }
}

/// One value's forms, longest first.
type Forms = Arc<[String]>;

/// Forms computed for the values read lately: every call reads its credential, and the forms of a value
/// never change. Emptied when the secrets change ([`forget_forms`]), so a value no longer stored is not
/// kept here, and when it grows past [`REMEMBERED`] values.
static FORMS: LazyLock<Mutex<HashMap<String, Forms>>> = LazyLock::new(Mutex::default);

/// How many values' forms are kept at most.
const REMEMBERED: usize = 1024;

fn forms_of(value: &str) -> Forms {
    let mut memo = FORMS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(forms) = memo.get(value) {
        return forms.clone();
    }
    let mut all: Vec<String> = forms(value).into_iter().filter(|form| form.len() >= SHORTEST_MASKED).collect();
    all.sort_by_key(|form| std::cmp::Reverse(form.len()));
    all.dedup();
    let forms: Forms = all.into();
    if memo.len() >= REMEMBERED {
        memo.clear();
    }
    memo.insert(value.to_owned(), forms.clone());
    forms
}

/// Forgets every value's forms: the secrets changed.
pub fn forget_forms() {
    FORMS.lock().unwrap_or_else(|p| p.into_inner()).clear();
}

/// The forms a value takes where the runtime writes it, and where upstreams echo it: as is; percent-
/// encoded as a URL path, a query (`url`'s form encoding: `+` for a space, `%2B`, `%2F`), a component
/// (`url::encode`) and strictly; JSON-escaped, and escaped twice (a JSON body an upstream echoes inside
/// a JSON string); escaped as `debug` prints it; lower-cased (a host); base64 (standard, padded or not,
/// and URL-safe unpadded, which a padded text contains) and hex.
fn forms(value: &str) -> Vec<String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    let quoted = |text: String| text.get(1..text.len().saturating_sub(1)).unwrap_or_default().to_owned();
    let json = |text: &str| quoted(serde_json::Value::from(text).to_string());
    let mut url = url::Url::parse("http://h/").expect("a valid URL");
    url.set_path(value);
    url.set_query(Some(value));
    let escaped = json(value);
    let mut forms = vec![
        value.to_owned(),
        url.path().trim_start_matches('/').to_owned(),
        url.query().unwrap_or_default().to_owned(),
        url::form_urlencoded::byte_serialize(value.as_bytes()).collect(),
        utf8_percent_encode(value, NON_ALPHANUMERIC).to_string(),
        utf8_percent_encode(value, URL_COMPONENT).to_string(),
        json(&escaped),
        escaped,
        quoted(format!("{value:?}")),
        value.to_lowercase(),
        STANDARD.encode(value),
        STANDARD_NO_PAD.encode(value),
        URL_SAFE_NO_PAD.encode(value),
        hex::encode(value),
        hex::encode_upper(value),
    ];
    forms.dedup();
    forms
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> Context {
        let engine = crate::engine::ScriptEngine::new(Default::default(), |_| {});
        let script =
            engine.compile(b"const META = #{ title: \"t\", description: \"d\" }; fn main(e, m, d) { 1 }").unwrap();
        Context::new(None, Arc::new(script), Instant::now(), Duration::from_secs(1))
    }

    #[test]
    fn every_encoding_the_runtime_writes_is_masked() {
        let secret = "s3cr+t/V\"al ue\\x";
        let context = context();
        context.reveal(secret);
        context.reveal_basic("agent@example.com/token", secret);
        let mut url = url::Url::parse("http://h/").unwrap();
        url.query_pairs_mut().append_pair("key", secret);
        let query = url.query().unwrap().to_owned();
        url.set_path(&format!("/bot{secret}/x"));
        use base64::Engine as _;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("agent@example.com/token:{secret}"));
        let echoes = [
            format!("key={secret}"),
            query,
            url.path().to_owned(),
            serde_json::json!({ "s": secret }).to_string(),
            format!("{secret:?}"),
            format!("Basic {basic}"),
            percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC).to_string(),
            secret.to_lowercase(),
        ];
        for echo in echoes {
            let masked = context.redact(&echo);
            assert!(masked.contains(MASK), "{echo} -> {masked}");
            for fragment in ["s3cr", "V\\\"al", "al%20ue", "al+ue"] {
                assert!(!masked.contains(fragment), "{echo} -> {masked}");
            }
        }
    }

    /// Every encoder the runtime writes a secret with (natives and the HTTP client alike), as the
    /// runtime calls it.
    fn encodings(value: &str) -> Vec<(&'static str, String)> {
        use base64::Engine as _;
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        let json = |text: &str| serde_json::Value::from(text).to_string();
        let mut path = url::Url::parse("http://h/").unwrap();
        path.set_path(&format!("/x/{value}/y"));
        let mut query = url::Url::parse("http://h/").unwrap();
        query.query_pairs_mut().append_pair("k", value);
        vec![
            ("url::encode", percent_encoding::utf8_percent_encode(value, URL_COMPONENT).to_string()),
            ("url::query", url::form_urlencoded::Serializer::new(String::new()).append_pair("k", value).finish()),
            ("request path", path.path().to_owned()),
            ("request query", query.query().unwrap_or_default().to_owned()),
            ("json", json(value)),
            ("json twice", json(&json(value))),
            ("debug", format!("{value:?}")),
            ("base64", STANDARD.encode(value)),
            ("base64 url", URL_SAFE_NO_PAD.encode(value)),
            ("hex", hex::encode(value)),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, failure_persistence: None, ..Default::default() })]
        #[test]
        fn every_encoding_of_any_secret_is_masked(secret in "[a-zA-Z0-9 %._~+/=&?#:@!$'()*,;\\\"\\-é€😀\u{1}]{4,24}") {
            // A URL drops `.` and `..` segments from its path (`/x/./ab/y` is sent as `/x/ab/y`): what is
            // left of such a value there can be shorter than anything masked.
            let dots = |segment: &str| matches!(segment.to_ascii_lowercase().replace("%2e", ".").as_str(), "." | "..");
            proptest::prop_assume!(!secret.split('/').any(dots));
            let context = context();
            context.reveal(&secret);
            for (encoding, encoded) in encodings(&secret) {
                let masked = context.redact(&format!("<<{encoded}>>"));
                proptest::prop_assert!(masked.contains(MASK), "{encoding} of {secret:?}: {masked}");
                proptest::prop_assert!(!masked.contains(&encoded), "{encoding} of {secret:?}: {masked}");
            }
        }
    }

    #[test]
    fn a_value_that_is_a_form_of_another_still_gets_its_own_forms() {
        use base64::Engine as _;
        let context = context();
        context.reveal("ABCD1234");
        context.reveal("abcd1234");
        let encoded = base64::engine::general_purpose::STANDARD.encode("abcd1234");
        assert_eq!(context.redact(&encoded), MASK);
    }

    #[test]
    fn an_excerpt_masks_before_it_cuts() {
        let context = context();
        context.reveal("abcdefghij");
        let text = format!("{}abcdefghij tail", "x".repeat(95));
        let excerpt = context.excerpt(&text, 100);
        assert!(!excerpt.contains("abcde"), "{excerpt}");
        assert_eq!(excerpt.chars().count(), 100);
    }
}
