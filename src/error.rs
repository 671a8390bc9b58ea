//! The one error type every layer returns, and its one JSON form.
//!
//! Each variant is one row of the error table users see: a `type` string, an HTTP status and a message,
//! plus the fields that row promises (the secret's name, the upstream's status, a script position).
//! Native modules raise these inside scripts as Rhai runtime errors carrying the value itself, so an
//! `upstream` failure deep in `api::call` reaches the caller as `upstream`, not as a generic script error.
//! Messages never hold a secret value: the invocation redacts every value it read before an error leaves.

use serde_json::{Map, Value, json};

use crate::cid::Cid;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where in a script something went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    pub server: Option<String>,
    pub cid: Option<Cid>,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

impl Location {
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(server) = &self.server {
            parts.push(format!("server '{server}'"));
        }
        if let Some(cid) = &self.cid {
            parts.push(cid.to_string());
        }
        if let (Some(line), Some(column)) = (self.line, self.column) {
            parts.push(format!("line {line}, column {column}"));
        }
        parts.join(", ")
    }

    fn write_fields(&self, fields: &mut Map<String, Value>) {
        if let Some(server) = &self.server {
            fields.insert("server".into(), json!(server));
        }
        if let Some(cid) = &self.cid {
            fields.insert("cid".into(), json!(cid.to_string()));
        }
        if let Some(line) = self.line {
            fields.insert("line".into(), json!(line));
        }
        if let Some(column) = self.column {
            fields.insert("column".into(), json!(column));
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    /// Arguments that a tool's input schema refuses: every wrong field (`field`, `problem`).
    #[error("{message}")]
    InvalidArguments { message: String, fields: Vec<(String, String)> },
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    UriTooLong(String),
    #[error("{0}")]
    HeadersTooLarge(String),
    /// A request a script tried to send to a host it did not declare (or to a metadata address).
    #[error("{message}")]
    Refused { host: String, message: String },
    /// A script refused before it was stored or swapped in (it does not compile, or breaks the
    /// script contract).
    #[error("{message}")]
    InvalidScript { message: String, at: Box<Location> },
    /// A boot image refused as a whole, with every problem found.
    #[error("the image was refused: {}", problems.join("; "))]
    InvalidImage { problems: Vec<String> },
    /// A change the management API refuses because the boot source manages the server (`file`).
    #[error("{message}")]
    Conflict { message: String, file: String },
    /// A required secret that is not set (`name`, or its alternatives "A or B"), and the other secrets
    /// the server's requests name that are not set either (`also`), so that one error says them all.
    #[error("{}", missing_message(name, also))]
    MissingSecret { name: String, also: Vec<String> },
    /// An OAuth server without a usable connection: never connected, or its grant was revoked.
    #[error("{message}")]
    NotConnected { server: String, message: String },
    /// The external API answered with an error; `upstream` names it (a host), so that its 401 is never
    /// taken for the gateway's own.
    #[error("{message}")]
    Upstream { status: u16, upstream: String, message: String, body: String },
    #[error("{message}")]
    RateLimited { message: String, retry_after: Option<u64> },
    #[error("{0}")]
    InvalidResponse(String),
    #[error("{0}")]
    UpstreamUnreachable(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{message}")]
    Script { message: String, at: Box<Location> },
    #[error("{message}")]
    LimitExceeded { message: String, limit: String, at: Box<Location> },
    /// The runtime cannot do this now (its store refused a write); the same request may work later.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

/// What `missing_secret` says: every secret not set, and how to set one.
fn missing_message(name: &str, also: &[String]) -> String {
    let quoted: Vec<String> =
        std::iter::once(name).chain(also.iter().map(String::as_str)).map(|n| format!("'{n}'")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!(
            "secrets {} and {last} are not set: set each with `switchboard secret set NAME` (the value on stdin) or \
             PUT /api/secrets/NAME",
            rest.join(", ")
        ),
        _ => {
            let one = name.split(" or ").next().unwrap_or(name);
            format!(
                "secret '{name}' is not set: set it with `switchboard secret set {one}` (the value on stdin) or PUT \
                 /api/secrets/{one}"
            )
        }
    }
}

impl Error {
    /// The `type` users match on.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NotFound(_) => "not_found",
            Error::BadRequest(_) | Error::InvalidArguments { .. } => "bad_request",
            Error::PayloadTooLarge(_) => "payload_too_large",
            Error::Unauthorized(_) => "unauthorized",
            Error::Forbidden(_) | Error::Refused { .. } => "forbidden",
            Error::MethodNotAllowed(_) => "method_not_allowed",
            Error::UriTooLong(_) => "uri_too_long",
            Error::HeadersTooLarge(_) => "headers_too_large",
            Error::InvalidScript { .. } => "invalid_script",
            Error::InvalidImage { .. } => "invalid_image",
            Error::Conflict { .. } => "conflict",
            Error::MissingSecret { .. } => "missing_secret",
            Error::NotConnected { .. } => "not_connected",
            Error::Upstream { .. } => "upstream",
            Error::RateLimited { .. } => "rate_limited",
            Error::InvalidResponse(_) => "invalid_response",
            Error::UpstreamUnreachable(_) => "upstream_unreachable",
            Error::Timeout(_) => "timeout",
            Error::Script { .. } => "script_error",
            Error::LimitExceeded { .. } => "limit_exceeded",
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "internal",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            Error::NotFound(_) => 404,
            Error::BadRequest(_) | Error::InvalidArguments { .. } => 400,
            Error::PayloadTooLarge(_) => 413,
            Error::Unauthorized(_) => 401,
            Error::Forbidden(_) | Error::Refused { .. } => 403,
            Error::MethodNotAllowed(_) => 405,
            Error::UriTooLong(_) => 414,
            Error::HeadersTooLarge(_) => 431,
            Error::InvalidScript { .. } | Error::InvalidImage { .. } => 422,
            Error::Conflict { .. } => 409,
            Error::MissingSecret { .. } | Error::NotConnected { .. } => 424,
            // An upstream that answered outside 4xx/5xx is still an error here: report it as a bad gateway.
            Error::Upstream { status, .. } if (400..600).contains(status) => *status,
            Error::Upstream { .. } => 502,
            Error::RateLimited { .. } => 429,
            Error::InvalidResponse(_) | Error::UpstreamUnreachable(_) => 502,
            Error::Timeout(_) => 504,
            Error::Script { .. } | Error::LimitExceeded { .. } | Error::Internal(_) => 500,
            Error::Unavailable(_) => 503,
        }
    }

    /// The full message, with the script location spelled out where there is one.
    pub fn message(&self) -> String {
        match self {
            Error::Script { message, at }
            | Error::LimitExceeded { message, at, .. }
            | Error::InvalidScript { message, at } => {
                let place = at.describe();
                if place.is_empty() { message.clone() } else { format!("{message} ({place})") }
            }
            other => other.to_string(),
        }
    }

    /// `{"error": {"type", "message", …}}`: the one JSON shape of every error.
    pub fn to_json(&self) -> Value {
        let mut fields = Map::new();
        fields.insert("type".into(), json!(self.kind()));
        fields.insert("message".into(), json!(self.message()));
        match self {
            Error::MissingSecret { name, also } => {
                fields.insert("secret".into(), json!(name));
                let every: Vec<&String> = std::iter::once(name).chain(also).collect();
                fields.insert("secrets".into(), json!(every));
            }
            Error::Refused { host, .. } => {
                fields.insert("host".into(), json!(host));
            }
            Error::InvalidImage { problems } => {
                fields.insert("problems".into(), json!(problems));
            }
            Error::InvalidArguments { fields: wrong, .. } => {
                let wrong: Vec<Value> =
                    wrong.iter().map(|(field, problem)| json!({ "field": field, "problem": problem })).collect();
                fields.insert("fields".into(), Value::Array(wrong));
            }
            Error::NotConnected { server, .. } => {
                fields.insert("server".into(), json!(server));
                fields.insert("connect".into(), json!(format!("POST /api/oauth/{server}/start")));
            }
            Error::Conflict { file, .. } => {
                fields.insert("file".into(), json!(file));
            }
            Error::Upstream { status, upstream, body, .. } => {
                fields.insert("status".into(), json!(status));
                fields.insert("upstream".into(), json!(upstream));
                fields.insert("body".into(), json!(body));
            }
            Error::RateLimited { retry_after, .. } => {
                fields.insert("retry_after".into(), json!(retry_after));
            }
            Error::Script { at, .. } | Error::InvalidScript { at, .. } => at.write_fields(&mut fields),
            Error::LimitExceeded { at, limit, .. } => {
                fields.insert("limit".into(), json!(limit));
                at.write_fields(&mut fields);
            }
            _ => {}
        }
        json!({ "error": fields })
    }

    /// Applies `f` to every text the error would show, so an invocation can mask what it must not reveal.
    pub fn map_text(self, f: impl Fn(&str) -> String) -> Error {
        match self {
            Error::NotFound(m) => Error::NotFound(f(&m)),
            Error::BadRequest(m) => Error::BadRequest(f(&m)),
            Error::InvalidArguments { message, fields } => Error::InvalidArguments {
                message: f(&message),
                fields: fields.iter().map(|(field, problem)| (f(field), f(problem))).collect(),
            },
            Error::PayloadTooLarge(m) => Error::PayloadTooLarge(f(&m)),
            Error::Unauthorized(m) => Error::Unauthorized(f(&m)),
            Error::Forbidden(m) => Error::Forbidden(f(&m)),
            Error::Refused { host, message } => Error::Refused { host: f(&host), message: f(&message) },
            Error::MethodNotAllowed(m) => Error::MethodNotAllowed(f(&m)),
            Error::UriTooLong(m) => Error::UriTooLong(f(&m)),
            Error::HeadersTooLarge(m) => Error::HeadersTooLarge(f(&m)),
            Error::InvalidScript { message, at } => Error::InvalidScript { message: f(&message), at },
            Error::MissingSecret { name, also } => Error::MissingSecret { name, also },
            Error::NotConnected { server, message } => Error::NotConnected { server, message: f(&message) },
            Error::Conflict { message, file } => Error::Conflict { message: f(&message), file },
            Error::InvalidImage { problems } => {
                Error::InvalidImage { problems: problems.iter().map(|p| f(p)).collect() }
            }
            Error::Upstream { status, upstream, message, body } => {
                Error::Upstream { status, upstream, message: f(&message), body: f(&body) }
            }
            Error::RateLimited { message, retry_after } => Error::RateLimited { message: f(&message), retry_after },
            Error::InvalidResponse(m) => Error::InvalidResponse(f(&m)),
            Error::UpstreamUnreachable(m) => Error::UpstreamUnreachable(f(&m)),
            Error::Timeout(m) => Error::Timeout(f(&m)),
            Error::Script { message, at } => Error::Script { message: f(&message), at },
            Error::LimitExceeded { message, limit, at } => Error::LimitExceeded { message: f(&message), limit, at },
            Error::Unavailable(m) => Error::Unavailable(f(&m)),
            Error::Internal(m) => Error::Internal(f(&m)),
        }
    }

    /// `missing_secret` naming one secret (or its alternatives, "A or B").
    pub fn missing_secret(name: impl Into<String>) -> Error {
        Error::MissingSecret { name: name.into(), also: Vec::new() }
    }

    pub fn script(message: impl Into<String>, at: Location) -> Error {
        Error::Script { message: message.into(), at: Box::new(at) }
    }

    pub fn invalid_script(message: impl Into<String>, at: Location) -> Error {
        Error::InvalidScript { message: message.into(), at: Box::new(at) }
    }

    pub fn limit_exceeded(limit: &str, message: impl Into<String>, at: Location) -> Error {
        Error::LimitExceeded { message: message.into(), limit: limit.into(), at: Box::new(at) }
    }

    /// Fills in where a script error happened when the native function that raised it could not know.
    pub fn located(self, place: Location) -> Error {
        match self {
            Error::Script { message, at } if at.cid.is_none() => Error::Script { message, at: Box::new(place) },
            Error::LimitExceeded { message, limit, at } if at.cid.is_none() => {
                Error::LimitExceeded { message, limit, at: Box::new(place) }
            }
            other => other,
        }
    }

    pub fn internal(context: &str, err: impl std::fmt::Display) -> Error {
        Error::Internal(format!("{context}: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_the_documented_type_and_status() {
        let at = Location::default();
        let table: Vec<(Error, &str, u16)> = vec![
            (Error::NotFound("x".into()), "not_found", 404),
            (Error::BadRequest("x".into()), "bad_request", 400),
            (Error::PayloadTooLarge("x".into()), "payload_too_large", 413),
            (Error::Unauthorized("x".into()), "unauthorized", 401),
            (Error::Forbidden("x".into()), "forbidden", 403),
            (Error::Refused { host: "h".into(), message: "x".into() }, "forbidden", 403),
            (Error::MethodNotAllowed("x".into()), "method_not_allowed", 405),
            (Error::UriTooLong("x".into()), "uri_too_long", 414),
            (Error::HeadersTooLarge("x".into()), "headers_too_large", 431),
            (Error::Conflict { message: "x".into(), file: "f".into() }, "conflict", 409),
            (Error::missing_secret("K"), "missing_secret", 424),
            (Error::NotConnected { server: "box".into(), message: "x".into() }, "not_connected", 424),
            (
                Error::Upstream { status: 404, upstream: "h".into(), message: "x".into(), body: "".into() },
                "upstream",
                404,
            ),
            (
                Error::Upstream { status: 302, upstream: "h".into(), message: "x".into(), body: "".into() },
                "upstream",
                502,
            ),
            (Error::RateLimited { message: "x".into(), retry_after: Some(3) }, "rate_limited", 429),
            (Error::InvalidResponse("x".into()), "invalid_response", 502),
            (Error::UpstreamUnreachable("x".into()), "upstream_unreachable", 502),
            (Error::Timeout("x".into()), "timeout", 504),
            (Error::script("x", at.clone()), "script_error", 500),
            (Error::limit_exceeded("operations", "x", at), "limit_exceeded", 500),
            (Error::Unavailable("x".into()), "unavailable", 503),
        ];
        for (error, kind, status) in table {
            assert_eq!(error.kind(), kind);
            assert_eq!(error.status(), status, "{kind}");
            assert_eq!(error.to_json()["error"]["type"], kind);
        }
    }

    #[test]
    fn script_errors_carry_server_cid_line_and_column() {
        let cid = Cid::of(b"script");
        let at = Location { server: Some("demo".into()), cid: Some(cid), line: Some(3), column: Some(7) };
        let json = Error::script("boom", at).to_json();
        assert_eq!(json["error"]["server"], "demo");
        assert_eq!(json["error"]["cid"], cid.to_string());
        assert_eq!(json["error"]["line"], 3);
        assert_eq!(json["error"]["column"], 7);
        assert!(json["error"]["message"].as_str().unwrap().contains("line 3, column 7"));
    }

    #[test]
    fn missing_secret_names_the_secret_and_how_to_set_it() {
        let json = Error::missing_secret("STRIPE_API_KEY").to_json();
        assert_eq!(json["error"]["secret"], "STRIPE_API_KEY");
        assert_eq!(json["error"]["secrets"], json!(["STRIPE_API_KEY"]));
        let message = json["error"]["message"].as_str().unwrap();
        assert!(message.contains("'STRIPE_API_KEY' is not set"), "{message}");
        assert!(message.contains("switchboard secret set STRIPE_API_KEY"), "{message}");
    }

    #[test]
    fn missing_secret_names_every_missing_secret() {
        let also = vec!["ZENDESK_EMAIL".into(), "ZENDESK_API_TOKEN".into()];
        let json = Error::MissingSecret { name: "ZENDESK_SUBDOMAIN".into(), also }.to_json();
        assert_eq!(json["error"]["secrets"], json!(["ZENDESK_SUBDOMAIN", "ZENDESK_EMAIL", "ZENDESK_API_TOKEN"]));
        let message = json["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("secrets 'ZENDESK_SUBDOMAIN', 'ZENDESK_EMAIL' and 'ZENDESK_API_TOKEN' are not set")
        );
        assert!(message.contains("switchboard secret set NAME"), "{message}");
    }
}
