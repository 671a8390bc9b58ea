//! `META.api`: what every `api::call` of a server starts from — for now the parts checked when the script
//! loads: the caller headers it may pass through, its pagination and its rate limit.

use serde_json::Value;

use super::invalid::Invalid;
use super::pagination::Paging;
use super::rate_limit::Window;

/// The checked parts of `META.api`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Api {
    /// Headers a caller may pass through to the API (`pass_headers`), lower-case.
    pub pass_headers: Vec<String>,
    /// How the API's lists page (`pagination`).
    pub pagination: Option<Paging>,
    /// The API's documented limit (`rate_limit`).
    pub rate_limit: Option<Window>,
}

/// Headers a caller may never pass through: the server's own credentials and what the runtime sets.
const UNPASSABLE: [&str; 11] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "te",
    "upgrade",
    "x-request-id",
];

impl Api {
    /// Reads `META.api` (absent: nothing declared), or says what is wrong with it.
    pub fn from_json(api: Option<&Value>) -> Result<Api, Invalid> {
        let field = |key: &str| api.and_then(|api| api.get(key));
        Ok(Api {
            pagination: field("pagination").map(Paging::from_json).transpose()?,
            rate_limit: field("rate_limit").map(Window::from_json).transpose()?,
            pass_headers: pass_headers(field("pass_headers"))?,
        })
    }
}

/// `META.api.pass_headers`: header names, checked.
fn pass_headers(list: Option<&Value>) -> Result<Vec<String>, Invalid> {
    let Some(list) = list else { return Ok(Vec::new()) };
    let names = list.as_array().ok_or("META.api.pass_headers must be an array of header names")?;
    names
        .iter()
        .map(|name| {
            let name = name.as_str().ok_or("META.api.pass_headers holds header names (strings)")?;
            let lower = name.to_ascii_lowercase();
            if reqwest::header::HeaderName::from_bytes(lower.as_bytes()).is_err() {
                return Err(format!("META.api.pass_headers: '{name}' is not a header name").into());
            }
            if UNPASSABLE.contains(&lower.as_str()) {
                return Err(format!("META.api.pass_headers may not name {name}: the runtime sets it").into());
            }
            Ok(lower)
        })
        .collect()
}
