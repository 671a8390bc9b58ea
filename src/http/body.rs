//! Request bodies, read within the runtime's limit: by the routes here and by `/mcp`, which reads its
//! JSON-RPC bodies itself.

use axum::body::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::error::Error;

/// Reads a request body of at most `limit` bytes; over it, `payload_too_large`.
pub async fn read_body(body: axum::body::Body, limit: usize) -> Result<Bytes, Error> {
    // Most invocations carry no body: skip the buffering machinery for them.
    if http_body::Body::is_end_stream(&body) {
        return Ok(Bytes::new());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => {
            Err(Error::PayloadTooLarge(format!("the request body is over the limit of {limit} bytes")))
        }
        Err(e) => Err(Error::BadRequest(format!("cannot read the request body: {e}"))),
    }
}
