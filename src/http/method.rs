//! HTTP methods as the runtime accepts them: the edge normalises every request's, and call style's
//! `method` parameter is held to the same rule, so a script sees `GET` whether the client sent `get`
//! or `GET`, and never a 100-character verb.

use axum::http::Method;

use crate::error::Error;

/// Longest method accepted (the longest registered HTTP method, `UPDATEREDIRECTREF`, has 17).
pub const MAX_METHOD: usize = 20;

/// The method in upper case; a method that is too long or not an HTTP token is refused.
pub fn normalised(method: &Method) -> Result<Method, Error> {
    let text = method.as_str();
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if text.is_empty() || text.len() > MAX_METHOD || !text.bytes().all(token) {
        let shown: String = text.chars().take(MAX_METHOD).collect();
        return Err(Error::BadRequest(format!(
            "'{shown}' is not an HTTP method (a token of at most {MAX_METHOD} characters)"
        )));
    }
    if text.bytes().all(|b| !b.is_ascii_lowercase()) {
        return Ok(method.clone());
    }
    Method::from_bytes(text.to_ascii_uppercase().as_bytes())
        .map_err(|_| Error::BadRequest(format!("'{text}' is not an HTTP method")))
}
