//! Errors become HTTP responses here, and only here: the status and JSON body the error table promises,
//! plus the headers some types carry (`Retry-After` for `rate_limited`, `WWW-Authenticate: Bearer` for
//! `unauthorized`). The error itself rides along in the response's extensions, so that a layer that
//! answers in another form (the console's HTML fragments) shows the same type and message.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::Error;

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(self.to_json())).into_response();
        // Kept with the answer for layers that show it otherwise (the console's fragments).
        response.extensions_mut().insert(self.clone());
        match &self {
            Error::RateLimited { retry_after: Some(seconds), .. } => {
                response.headers_mut().insert(header::RETRY_AFTER, (*seconds).into());
            }
            Error::Unauthorized(_) => {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}
