//! The runtime frames every response itself: whatever headers and status a script returns, the next
//! request on the same keep-alive connection gets the runtime's answer. Each case runs through a real
//! `serve` on one TCP connection to 127.0.0.1.

mod common;
// The client half of the envelope fuzz harness; its in-process server half is the fuzzers'.
#[allow(dead_code)]
#[path = "harness/envelope.rs"]
mod envelope;
#[allow(dead_code)]
#[path = "harness/serving.rs"]
mod serving;

use common::Server;
use envelope::{FRAMING, check, connect, exchange, request};

/// A server returning `envelope` (Rhai map syntax) with a body that is itself an HTTP response.
fn splitter(envelope: &str) -> String {
    let smuggled = r#""xHTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 8\r\n\r\nINJECTED""#;
    common::script("Splitter", &format!("let body = {smuggled}; {envelope}"))
}

/// Sends `path`, then `GET /echo/second`, on one connection to `server`; checks both answers and
/// returns the first.
async fn twice(server: &Server, path: &str) -> envelope::Answer {
    let address = server.base.trim_start_matches("http://");
    let mut sender = connect(tokio::net::TcpStream::connect(address).await.unwrap()).await;
    let first = exchange(&mut sender, request("GET", path, b"")).await;
    let second = exchange(&mut sender, request("GET", "/echo/second", b"")).await;
    check(first.as_ref(), second.as_ref());
    first.unwrap()
}

#[tokio::test]
async fn a_script_cannot_set_framing_or_hop_by_hop_headers() {
    let servers: Vec<(String, String)> = FRAMING
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let value = match *name {
                "content-length" => "1",
                "transfer-encoding" => "chunked",
                "connection" => "close",
                "upgrade" => "websocket",
                _ => "x",
            };
            (format!("s{i}"), splitter(&format!("#{{ output: body, headers: #{{ \"{name}\": \"{value}\" }} }}")))
        })
        .collect();
    let named: Vec<(&str, &str)> = servers.iter().map(|(n, s)| (n.as_str(), s.as_str())).collect();
    let server = Server::start(&named);
    for (i, name) in FRAMING.iter().enumerate() {
        let answer = twice(&server, &format!("/s{i}/")).await;
        assert_eq!(answer.status, 500, "{name}");
        let text = String::from_utf8_lossy(&answer.body).into_owned();
        assert!(text.contains("script_error") && text.contains(name), "{name}: {text}");
        assert!(!text.contains("INJECTED"), "{name}: {text}");
    }
    // Other headers still reach the client, in any case the script writes them.
    let fine = splitter("#{ output: body, headers: #{ \"X-Kept\": \"yes\" } }");
    let server = Server::start(&[("fine", &fine)]);
    let address = server.base.trim_start_matches("http://");
    let mut sender = connect(tokio::net::TcpStream::connect(address).await.unwrap()).await;
    let answer = exchange(&mut sender, request("GET", "/fine/", b"")).await.unwrap();
    assert_eq!((answer.status, answer.headers["x-kept"].to_str().unwrap()), (200, "yes"));
    assert!(answer.body.ends_with(b"INJECTED"), "the body is the script's, framed by the runtime");
}

#[tokio::test]
async fn informational_statuses_are_refused_and_204_and_304_carry_no_body() {
    let refused = ["100", "101", "103", "199"];
    let mut servers: Vec<(String, String)> = refused
        .iter()
        .map(|code| (format!("st{code}"), splitter(&format!("#{{ output: body, status: {code} }}"))))
        .collect();
    for code in ["204", "304"] {
        servers.push((format!("st{code}"), splitter(&format!("#{{ output: body, status: {code} }}"))));
    }
    let named: Vec<(&str, &str)> = servers.iter().map(|(n, s)| (n.as_str(), s.as_str())).collect();
    let server = Server::start(&named);
    for code in refused {
        let answer = twice(&server, &format!("/st{code}/")).await;
        assert_eq!(answer.status, 500, "{code}");
        let text = String::from_utf8_lossy(&answer.body).into_owned();
        assert!(text.contains("script_error") && text.contains("200 to 599"), "{code}: {text}");
    }
    for code in [204u16, 304] {
        let answer = twice(&server, &format!("/st{code}/")).await;
        assert_eq!(answer.status, code);
    }
}
