//! Fuzzing harness for the HTTP dispatcher, shared by `tests/fuzz_replay.rs` (stable, every `cargo test`)
//! and `fuzz/fuzz_targets/dispatch.rs` (cargo fuzz, nightly).
//!
//! An input is one request in a line-based form: the method, the request target, header lines
//! (`name: value`) until an empty line, then the body. Whatever the bytes, the service `serve` runs
//! (the edge) must answer — never panic — and every error it answers is the JSON error shape (at
//! `/mcp`, a body that is not JSON-RPC gets JSON-RPC's). The runtime serves only `echo` (nothing that
//! could reach the network) and the fuzzer has no admin token.

use super::serving;

use axum::body::Body;
use axum::http::{Method, Request};
use http_body_util::BodyExt;
use tower::ServiceExt;

pub struct Dispatcher(serving::Serving);

impl Dispatcher {
    pub fn new() -> Dispatcher {
        Dispatcher(serving::Serving::new(&[]))
    }

    /// Sends the request `input` describes (if it is one at all) and checks the answer.
    pub fn run(&self, input: &[u8]) {
        let Some(request) = request(input) else { return };
        let service = switchboard::http::service(self.0.runtime.clone());
        self.0.tokio.block_on(async move {
            let response = service.oneshot(request).await.expect("the edge is infallible");
            let status = response.status();
            let is_output = response.headers().contains_key("x-server-cid");
            let body = response.into_body().collect().await.expect("a body").to_bytes();
            if (status.is_client_error() || status.is_server_error()) && !is_output {
                let json: serde_json::Value = serde_json::from_slice(&body)
                    .unwrap_or_else(|_| panic!("{status} is not JSON: {}", String::from_utf8_lossy(&body)));
                // `/mcp` answers a body it cannot read with JSON-RPC's own error shape.
                let rpc = json["jsonrpc"] == "2.0" && json["error"]["code"].is_i64();
                assert!(rpc || json["error"]["type"].is_string(), "{status}: {json}");
                assert!(json["error"]["message"].is_string(), "{status}: {json}");
            }
        });
    }
}

/// The request an input describes; `None` when its method or target is not valid HTTP (the parser
/// in front of the edge refuses those).
fn request(input: &[u8]) -> Option<Request<Body>> {
    let mut lines = input.splitn(3, |b| *b == b'\n');
    let method = Method::from_bytes(lines.next()?).ok()?;
    let target = std::str::from_utf8(lines.next()?).ok()?;
    let mut builder = Request::builder().method(method).uri(if target.starts_with('/') { target } else { "/" });
    let mut rest = lines.next().unwrap_or_default();
    while let Some(end) = rest.iter().position(|b| *b == b'\n') {
        let line = &rest[..end];
        rest = &rest[end + 1..];
        if line.is_empty() {
            break;
        }
        if let Some(colon) = line.iter().position(|b| *b == b':') {
            builder = builder.header(&line[..colon], line[colon + 1..].trim_ascii());
        }
    }
    // A client names the host it sends to; an input that names none is sent to loopback.
    if builder.headers_ref().is_some_and(|headers| !headers.contains_key("host")) {
        builder = builder.header("host", "127.0.0.1");
    }
    builder.body(Body::from(rest.to_vec())).ok()
}
