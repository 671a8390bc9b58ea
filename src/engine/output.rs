//! What goes into `main` and what comes out of it.
//!
//! In: a request's `data` arrives as a body (declared JSON, or of unknown type), text, raw bytes or a
//! JSON value, and is turned into a Rhai value on the thread that runs the script (so a re-run can
//! rebuild it). Callers hand over bytes; parsing is done once, here.
//! Out: `main`'s return value becomes an [`Output`]: maps and arrays as JSON, strings as text, blobs as
//! bytes, or an envelope `#{ output, content_type, status, headers }` that says all of that itself.

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use rhai::{Blob, Dynamic, Map};

use super::nesting::{self, JsonError, MAX_BYTES};
use super::passthrough::Passthrough;
use crate::error::{Error, Location};

/// The `data` argument of an invocation, before it becomes a Rhai value.
#[derive(Debug, Clone, Default)]
pub enum Data {
    #[default]
    None,
    /// A body declared as JSON: it must parse (else `bad_request`).
    Json(Bytes),
    /// A body of unknown type: JSON when it parses as JSON, text when it is UTF-8, bytes otherwise.
    Body(Bytes),
    Text(String),
    Binary(Bytes),
    Value(serde_json::Value),
}

impl Data {
    /// Reads a body of unknown type: JSON when it parses as JSON, text when it is UTF-8, else bytes.
    pub fn sniff(bytes: Bytes) -> Data {
        if bytes.is_empty() {
            Data::None
        } else if serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok() {
            Data::Json(bytes)
        } else {
            match String::from_utf8(bytes.to_vec()) {
                Ok(text) => Data::Text(text),
                Err(_) => Data::Binary(bytes),
            }
        }
    }

    pub fn to_dynamic(&self) -> Result<Dynamic, Error> {
        Ok(match self {
            Data::None => Dynamic::UNIT,
            Data::Body(bytes) if bytes.is_empty() => Dynamic::UNIT,
            Data::Json(bytes) => {
                let value = serde_json::from_slice::<Dynamic>(bytes)
                    .map_err(|e| Error::BadRequest(format!("the body is sent as JSON but does not parse: {e}")))?;
                exact_integers(bytes).map(|()| value)?
            }
            Data::Body(bytes) => match serde_json::from_slice::<Dynamic>(bytes) {
                Ok(value) => exact_integers(bytes).map(|()| value)?,
                Err(_) => match std::str::from_utf8(bytes) {
                    Ok(text) => text.into(),
                    Err(_) => Dynamic::from_blob(bytes.to_vec()),
                },
            },
            Data::Text(text) => text.clone().into(),
            Data::Binary(bytes) => Dynamic::from_blob(bytes.to_vec()),
            Data::Value(value) => rhai::serde::to_dynamic(value)
                .map_err(|e| Error::BadRequest(format!("data cannot be given to a script: {e}")))?,
        })
    }
}

/// Refuses JSON text holding an integer that a script could only see as an approximation: beyond
/// the range of Rhai's integers (i64), a parser would silently turn it into a float. Numbers written
/// with a fraction or an exponent are floats by their own spelling and pass.
pub fn exact_integers(text: &[u8]) -> Result<(), Error> {
    let mut at = 0;
    while at < text.len() {
        match text[at] {
            b'"' => {
                at += 1;
                while at < text.len() && text[at] != b'"' {
                    at += if text[at] == b'\\' { 2 } else { 1 };
                }
                at += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = at;
                while at < text.len() && matches!(text[at], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
                    at += 1;
                }
                let number = &text[start..at];
                let integer = !number.iter().any(|b| matches!(b, b'.' | b'e' | b'E'));
                let parsed = std::str::from_utf8(number).ok().and_then(|n| n.parse::<i64>().ok());
                if integer && parsed.is_none() {
                    let shown = String::from_utf8_lossy(&number[..number.len().min(40)]).into_owned();
                    return Err(Error::BadRequest(format!(
                        "the integer {shown} is outside the range scripts can hold exactly (-2^63 to 2^63-1): send it as a string"
                    )));
                }
            }
            _ => at += 1,
        }
    }
    Ok(())
}

/// A finished invocation's response.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: u16,
    pub content_type: HeaderValue,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

pub const JSON: HeaderValue = HeaderValue::from_static("application/json");
pub const TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
pub const BINARY: HeaderValue = HeaderValue::from_static("application/octet-stream");

const ENVELOPE_KEYS: [&str; 4] = ["output", "content_type", "status", "headers"];

/// Headers that frame a message or belong to one connection. The HTTP layer writes them from the body
/// it actually sends; one written by a script could make a client read the rest of the body as the
/// next response on the connection (response splitting), or hand the connection to another protocol.
const FRAMING: [&str; 8] =
    ["content-length", "transfer-encoding", "connection", "upgrade", "keep-alive", "te", "trailer", "proxy-connection"];

/// The web console's session cookie (`Path=/ui`). A script's response may set cookies of its own, but
/// never this one, at any path: a script could otherwise sign the operator out, or in as someone else.
pub const CONSOLE_COOKIE: &str = "switchboard_console";

/// Whether a `Set-Cookie` value names the console's session cookie (names compared without case, as
/// some browsers and proxies do).
fn sets_console_cookie(value: &str) -> bool {
    let name = value.split_once('=').map_or(value, |(name, _)| name).trim();
    name.eq_ignore_ascii_case(CONSOLE_COOKIE)
}

/// A returned map is an envelope when it has `output` and nothing but envelope keys.
fn is_envelope(map: &Map) -> bool {
    map.contains_key("output") && map.keys().all(|k| ENVELOPE_KEYS.contains(&k.as_str()))
}

/// Why a returned value cannot be a response.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The value or its envelope is malformed: what is wrong with it.
    Invalid(String),
    /// The value is over a bound (`size`, `depth`).
    Limit(&'static str, String),
}

impl Refused {
    /// The error the caller sees, at the script that returned the value.
    pub fn into_error(self, at: Location) -> Error {
        match self {
            Refused::Invalid(message) => Error::script(message, at),
            Refused::Limit(limit, message) => Error::limit_exceeded(limit, message, at),
        }
    }
}

impl From<String> for Refused {
    fn from(message: String) -> Refused {
        Refused::Invalid(message)
    }
}

impl From<&str> for Refused {
    fn from(message: &str) -> Refused {
        Refused::Invalid(message.to_owned())
    }
}

/// Serialises a value as the body it stands for, with the content type that fits it.
fn body_of(value: Dynamic) -> Result<(Bytes, HeaderValue), Refused> {
    if value.is_string() {
        let text = value.into_immutable_string().map_err(|t| t.to_string())?;
        return Ok((Bytes::copy_from_slice(text.as_bytes()), TEXT));
    }
    if value.is_blob() {
        let blob: Blob = value.cast();
        return Ok((Bytes::from(blob), BINARY));
    }
    match nesting::to_json_bytes(&value, false, MAX_BYTES) {
        Ok(bytes) => Ok((Bytes::from(bytes), JSON)),
        Err(JsonError::Exceeded(exceeded)) => {
            Err(Refused::Limit(exceeded.limit(), exceeded.message("the value main returned", MAX_BYTES)))
        }
        Err(JsonError::Invalid(e)) => Err(Refused::Invalid(format!("main returned a value that is not JSON: {e}"))),
        // Outputs are written after the run, where no deadline paces the work.
        Err(JsonError::Stopped(stop)) => Err(Refused::Invalid(stop.to_string())),
    }
}

impl Output {
    /// The response for the value `main` returned: upstream JSON an `api` call handed over and the script
    /// returned untouched goes out as the upstream sent it (see [`super::passthrough`]), within the same
    /// bounds as any output — its size here, its depth by the parser that read it (serde_json's limit is
    /// [`nesting::MAX_DEPTH`]); an envelope stays an envelope. Anything else is [`from_dynamic`](Self::from_dynamic).
    pub fn returned(value: Dynamic, passthrough: &Passthrough) -> Result<Output, Refused> {
        if let Some(body) = passthrough.returned(&value) {
            let envelope = value.read_lock::<Map>().is_some_and(|map| is_envelope(&map));
            if !envelope && body.len() <= MAX_BYTES {
                return Ok(Output { status: 200, content_type: JSON, headers: Vec::new(), body });
            }
        }
        Output::from_dynamic(value)
    }

    /// Shapes the value `main` returned. The error text says what is wrong with an envelope.
    pub fn from_dynamic(value: Dynamic) -> Result<Output, Refused> {
        if value.is_map() {
            let map = value.read_lock::<Map>().map(|m| is_envelope(&m)).unwrap_or(false);
            if map {
                return Output::from_envelope(value.cast::<Map>());
            }
        }
        let (body, content_type) = body_of(value)?;
        Ok(Output { status: 200, content_type, headers: Vec::new(), body })
    }

    fn from_envelope(mut map: Map) -> Result<Output, Refused> {
        let (body, default_type) = body_of(map.remove("output").unwrap_or_default())?;
        let content_type = match map.remove("content_type") {
            None => default_type,
            Some(v) => {
                let text = v.into_string().map_err(|t| format!("content_type must be a string, not {t}"))?;
                HeaderValue::from_str(&text)
                    .map_err(|_| format!("content_type '{text}' is not a valid header value"))?
            }
        };
        // A 1xx is not a final response (and 101 hands the connection over): the request would go
        // unanswered, or the client would read what follows as another protocol.
        let status = match map.remove("status") {
            None => 200,
            Some(v) => match v.as_int() {
                Ok(code) if (200..=599).contains(&code) => code as u16,
                _ => return Err(Refused::from("status must be an integer from 200 to 599")),
            },
        };
        let headers = match map.remove("headers") {
            None => Vec::new(),
            Some(value) => envelope_headers(value)?,
        };
        // These statuses have no body by definition: whatever the script put there is not sent.
        let body = if matches!(status, 204 | 304) { Bytes::new() } else { body };
        Ok(Output { status, content_type, headers, body })
    }
}

/// An envelope's `headers`, checked: names and values a response can carry, none of them framing.
fn envelope_headers(value: Dynamic) -> Result<Vec<(HeaderName, HeaderValue)>, Refused> {
    let entries = value.try_cast::<Map>().ok_or("headers must be a map of names to strings")?;
    let mut headers = Vec::with_capacity(entries.len());
    for (name, value) in entries {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("'{name}' is not a header name"))?;
        if FRAMING.contains(&header.as_str()) {
            return Err(Refused::Invalid(format!(
                "header '{name}' frames the response or the connection: the runtime sets it, a script may not"
            )));
        }
        let text = value.into_string().map_err(|_| format!("header '{name}' must be a string"))?;
        if header == http::header::SET_COOKIE && sets_console_cookie(&text) {
            return Err(Refused::Invalid(format!(
                "a script may not set the cookie '{CONSOLE_COOKIE}': it is the web console's session"
            )));
        }
        let value = HeaderValue::from_str(&text).map_err(|_| format!("header '{name}' has an invalid value"))?;
        headers.push((header, value));
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dynamic(json: &str) -> Dynamic {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn maps_and_arrays_become_json() {
        let out = Output::from_dynamic(dynamic(r#"{"a":[1,2.5,"x",null,true]}"#)).unwrap();
        assert_eq!(out.content_type, JSON);
        assert_eq!(&out.body[..], br#"{"a":[1,2.5,"x",null,true]}"#);
    }

    #[test]
    fn upstream_bytes_go_out_only_for_the_value_handed_over_and_within_the_size_bound() {
        let passthrough = Passthrough::default();
        let handed = passthrough.hand_over(dynamic(r#"{"b":1,"a":2}"#), Bytes::from_static(b"{\"b\": 1, \"a\": 2}"));
        assert_eq!(&Output::returned(handed, &passthrough).unwrap().body[..], b"{\"b\": 1, \"a\": 2}");
        // Asked again, or for an equal value that is not the one handed over: written from its values.
        let handed = passthrough.hand_over(dynamic(r#"{"b":1}"#), Bytes::from_static(b"{ \"b\" : 1 }"));
        let equal = dynamic(r#"{"b":1}"#);
        assert_eq!(&Output::returned(equal, &passthrough).unwrap().body[..], br#"{"b":1}"#);
        assert_eq!(&Output::returned(handed, &passthrough).unwrap().body[..], br#"{"b":1}"#);
        // A body past the output bound is never sent as it came.
        let huge = Bytes::from(vec![b' '; MAX_BYTES + 1]);
        let handed = passthrough.hand_over(dynamic("[1]"), huge);
        assert_eq!(&Output::returned(handed, &passthrough).unwrap().body[..], b"[1]");
    }

    #[test]
    fn strings_become_text() {
        let out = Output::from_dynamic("hello".into()).unwrap();
        assert_eq!((out.content_type, &out.body[..]), (TEXT, &b"hello"[..]));
    }

    #[test]
    fn an_envelope_sets_status_type_and_headers() {
        let out = Output::from_dynamic(dynamic(
            r#"{"output":"<p>hi</p>","content_type":"text/html","status":201,"headers":{"x-a":"1"}}"#,
        ))
        .unwrap();
        assert_eq!(out.status, 201);
        assert_eq!(out.content_type, "text/html");
        assert_eq!(&out.body[..], b"<p>hi</p>");
        assert_eq!(out.headers[0].0.as_str(), "x-a");
    }

    #[test]
    fn a_map_with_other_keys_is_plain_output() {
        let out = Output::from_dynamic(dynamic(r#"{"output":1,"other":2}"#)).unwrap();
        assert_eq!(&out.body[..], br#"{"other":2,"output":1}"#);
    }

    #[test]
    fn a_bad_envelope_says_what_is_wrong() {
        let err = Output::from_dynamic(dynamic(r#"{"output":1,"status":1000}"#)).unwrap_err();
        assert_eq!(err, Refused::from("status must be an integer from 200 to 599"));
        let err = Output::from_dynamic(dynamic(r#"{"output":1,"headers":{"bad name":"x"}}"#)).unwrap_err();
        assert_eq!(err, Refused::from("'bad name' is not a header name"));
    }

    #[test]
    fn no_script_sets_the_console_session() {
        for value in ["switchboard_console=x; Path=/ui", " SWITCHBOARD_CONSOLE = y", "switchboard_console"] {
            let envelope = serde_json::json!({ "output": "x", "headers": { "Set-Cookie": value } }).to_string();
            let Err(Refused::Invalid(message)) = Output::from_dynamic(dynamic(&envelope)) else { panic!("{value}") };
            assert!(message.contains("console"), "{message}");
        }
        let own = r#"{"output":"x","headers":{"set-cookie":"theme=dark; Path=/"}}"#;
        assert_eq!(Output::from_dynamic(dynamic(own)).unwrap().headers.len(), 1);
    }

    #[test]
    fn the_runtime_alone_frames_a_response() {
        for name in ["Content-Length", "transfer-encoding", "CONNECTION", "upgrade", "keep-alive", "te", "trailer"] {
            let envelope = format!(r#"{{"output":"x","headers":{{"{name}":"1"}}}}"#);
            let Err(Refused::Invalid(message)) = Output::from_dynamic(dynamic(&envelope)) else { panic!("{name}") };
            assert!(message.contains(name), "{message}");
        }
        for status in [100, 101, 199, 600] {
            let envelope = format!(r#"{{"output":"x","status":{status}}}"#);
            assert!(Output::from_dynamic(dynamic(&envelope)).is_err(), "{status}");
        }
        for status in [204, 304] {
            let out = Output::from_dynamic(dynamic(&format!(r#"{{"output":"x","status":{status}}}"#))).unwrap();
            assert_eq!((out.status, out.body.len()), (status, 0));
        }
    }

    #[test]
    fn integers_beyond_i64_are_refused_not_rounded() {
        assert!(
            exact_integers(br#"{"a":[9223372036854775807,-9223372036854775808,1.5e300,"99999999999999999999"]}"#)
                .is_ok()
        );
        for text in [&b"9223372036854775808"[..], b"[-9223372036854775809]", br#"{"id":18446744073709551616}"#] {
            assert!(exact_integers(text).is_err(), "{}", String::from_utf8_lossy(text));
        }
        assert!(exact_integers(br#"{"s":"\"12345678901234567890"}"#).is_ok());
    }

    #[test]
    fn bodies_are_sniffed() {
        assert!(matches!(Data::sniff(Bytes::new()), Data::None));
        assert!(matches!(Data::sniff(Bytes::from_static(b"{\"a\":1}")), Data::Json(_)));
        assert!(matches!(Data::sniff(Bytes::from_static(b"a=1&b=2")), Data::Text(_)));
        assert!(matches!(Data::sniff(Bytes::from_static(&[0xff, 0xfe])), Data::Binary(_)));
    }
}
