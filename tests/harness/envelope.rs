//! Fuzzing harness for response envelopes, shared by `tests/fuzz_replay.rs` (stable, every `cargo test`)
//! and `fuzz/fuzz_targets/envelope.rs` (cargo fuzz, nightly).
//!
//! An input is the JSON value a script returns — often an envelope `{output, content_type, status,
//! headers}`. A server `mirror` returns it as is; the request and the one after it travel on one
//! keep-alive HTTP/1.1 connection into the real HTTP stack (hyper serving the router, over an in-memory
//! pipe: no socket). Whatever the script returned, the runtime frames the response itself: no framing or
//! hop-by-hop header the script chose, no 1xx status, no body on 204 or 304 — and the next request on the
//! connection gets the runtime's own answer (`echo`'s), never bytes the script wrote.

use super::serving;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// Headers that frame a message or belong to one connection: only the runtime's HTTP layer sets them.
pub const FRAMING: [&str; 7] =
    ["content-length", "transfer-encoding", "connection", "upgrade", "keep-alive", "te", "trailer"];

const MIRROR: &str = "const META = #{ title: \"Mirror\", description: \"returns its data\" };\nfn main(endpoint, method, data) { data }\n";

/// One response as the client parsed it off the wire.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: axum::http::HeaderMap,
    pub body: Bytes,
}

/// Sends `request` on an open connection and reads its whole response; `None` if the connection
/// failed or closed, or no whole response came within 10 s (a 1xx, say, leaves the client waiting).
pub async fn exchange(sender: &mut SendRequest<Full<Bytes>>, request: hyper::Request<Full<Bytes>>) -> Option<Answer> {
    tokio::time::timeout(std::time::Duration::from_secs(10), send(sender, request)).await.ok().flatten()
}

async fn send(sender: &mut SendRequest<Full<Bytes>>, request: hyper::Request<Full<Bytes>>) -> Option<Answer> {
    sender.ready().await.ok()?;
    let response = sender.send_request(request).await.ok()?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.ok()?.to_bytes();
    Some(Answer { status, headers, body })
}

/// An HTTP/1.1 client connection over `io`, driven in the background.
pub async fn connect<T>(io: T) -> SendRequest<Full<Bytes>>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(io)).await.expect("an HTTP/1.1 handshake");
    tokio::spawn(connection);
    sender
}

/// A request to `path` with the `Host` a loopback client sends.
pub fn request(method: &str, path: &str, body: &[u8]) -> hyper::Request<Full<Bytes>> {
    hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::copy_from_slice(body)))
        .expect("a valid request")
}

/// Checks what a client received for the script's response, then that the connection's next response
/// is `echo`'s.
pub fn check(first: Option<&Answer>, second: Option<&Answer>) {
    let first = first.expect("the script's response arrived");
    assert!(first.status >= 200, "a {} status reached the client", first.status);
    for name in FRAMING.iter().filter(|name| **name != "content-length" && **name != "transfer-encoding") {
        assert!(!first.headers.contains_key(*name), "{name} reached the client: {:?}", first.headers);
    }
    if let Some(length) = first.headers.get("content-length") {
        assert_eq!(length.to_str().ok(), Some(first.body.len().to_string().as_str()), "a false Content-Length");
    }
    if matches!(first.status, 204 | 304) {
        assert!(first.body.is_empty(), "{} with a body", first.status);
    }
    let second = second.expect("the connection still serves the next request");
    assert_eq!(second.status, 200, "the next response is not echo's: {second:?}");
    let echoed: serde_json::Value = serde_json::from_slice(&second.body).expect("echo answers JSON");
    assert_eq!(echoed["endpoint"], "/second", "the next response is not echo's: {second:?}");
}

pub struct Wire(serving::Serving);

impl Wire {
    pub fn new() -> Wire {
        Wire(serving::Serving::new(&[("mirror", MIRROR)]))
    }

    /// Has `mirror` return `input` (JSON), then asks `echo` on the same connection.
    pub fn run(&self, input: &[u8]) {
        let service = switchboard::http::service(self.0.runtime.clone());
        self.0.tokio.block_on(async move {
            let (client, server) = tokio::io::duplex(64 * 1024);
            let service = hyper_util::service::TowerToHyperService::new(service);
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(server), service));
            let mut sender = connect(client).await;
            let first = exchange(&mut sender, request("POST", "/mirror/x", input)).await;
            let second = exchange(&mut sender, request("GET", "/echo/second", b"")).await;
            check(first.as_ref(), second.as_ref());
        });
    }
}
