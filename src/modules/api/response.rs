//! What an upstream response becomes for the script: the parsed body (JSON, text, or by content type
//! with XML as a map), or the documented error for its status.

use rhai::{Dynamic, EvalAltResult, Map};

use super::options::Options;
use crate::engine::Context;
use crate::error::Error;
use crate::modules::http::Incoming;
use crate::modules::native::arg_error;

/// How much of an upstream error body callers see.
const EXCERPT: usize = 1000;

/// What a successful response becomes.
pub(super) enum Expect {
    Json,
    Text,
    /// By its content type: JSON parsed, XML as a map (these elements always arrays), anything else the
    /// body itself with its content type, as an output envelope.
    Auto(Vec<String>),
}

impl Expect {
    pub(super) fn of(options: &Options) -> Result<Expect, Box<EvalAltResult>> {
        Ok(match options.text("response").as_deref() {
            None | Some("json") => Expect::Json,
            Some("text") => Expect::Text,
            Some("auto") => {
                let lists = match options.get("xml_lists") {
                    None => Vec::new(),
                    Some(lists) => lists
                        .clone()
                        .try_cast::<rhai::Array>()
                        .ok_or_else(|| arg_error("xml_lists must be an array of element names"))?
                        .iter()
                        .map(|name| name.to_string())
                        .collect(),
                };
                Expect::Auto(lists)
            }
            Some(other) => return Err(arg_error(&format!("unknown response '{other}' (json, text, auto)"))),
        })
    }
}

/// Maps an upstream response to the script's result or to the documented error.
pub(super) fn result(response: Incoming, host: &str, expect: &Expect, context: &Context) -> Result<Dynamic, Error> {
    let status = response.status;
    if status.as_u16() == 429 {
        let retry_after = response.retry_after().map(|d| d.as_secs().max(1));
        return Err(Error::RateLimited {
            message: format!("{host} is still rate limiting after retries"),
            retry_after,
        });
    }
    if !status.is_success() {
        let message = match status.as_u16() {
            401 | 403 => format!(
                "{host} answered {status}: the API refused the credentials this server sent (its secrets or OAuth \
                 connection), not the caller's access to Switchboard"
            ),
            _ => format!("{host} answered {status}"),
        };
        return Err(Error::Upstream {
            status: status.as_u16(),
            upstream: host.to_owned(),
            message,
            body: context.excerpt(&String::from_utf8_lossy(&response.body), EXCERPT),
        });
    }
    if response.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Dynamic::UNIT);
    }
    let content_type = response.headers.get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let content_type = content_type.unwrap_or("application/octet-stream").to_owned();
    match expect {
        Expect::Json => {}
        Expect::Text => return Ok(String::from_utf8_lossy(&response.body).into_owned().into()),
        Expect::Auto(_) if content_type.contains("json") => {}
        Expect::Auto(lists) if content_type.contains("xml") => {
            let text = String::from_utf8_lossy(&response.body);
            return crate::modules::xml::parse(&text, lists).map(Dynamic::from).map_err(|e| {
                let excerpt = context.excerpt(&text, 200);
                Error::InvalidResponse(context.redact(&format!("{host} sent a body that is not XML ({e}): {excerpt}")))
            });
        }
        Expect::Auto(_) => {
            let mut envelope = Map::new();
            let output = match content_type.starts_with("text/") {
                true => String::from_utf8_lossy(&response.body).into_owned().into(),
                false => Dynamic::from_blob(response.body.to_vec()),
            };
            envelope.insert("output".into(), output);
            envelope.insert("content_type".into(), content_type.into());
            return Ok(envelope.into());
        }
    }
    let value = serde_json::from_slice::<Dynamic>(&response.body).map_err(|e| {
        let excerpt = context.excerpt(&String::from_utf8_lossy(&response.body), 200);
        Error::InvalidResponse(context.redact(&format!("{host} sent a body that is not JSON ({e}): {excerpt}")))
    })?;
    // Returned untouched, it goes back out as these bytes rather than written anew.
    Ok(context.passthrough.hand_over(value, response.body))
}
