//! Deadlines: a caller may shorten a server's wall-clock limit but never lengthen it, and natives that
//! work over large inputs stop at the deadline rather than after their work.
//!
//! Nothing here measures time: the error says which limit applied, and "the work stopped" shows as the
//! process serving the next request (on a fresh thread count of script threads it would otherwise still
//! be busy on).

mod common;

use common::{Server, expect_error};

/// A server declaring `META.timeout_ms` (when given) whose `main` never ends. Each pass of its loop
/// does some real work, so that the deadline comes long before the operation limit however fast the
/// machine (an empty loop reached 10 million operations within 400 ms on a quiet one).
fn endless(timeout_ms: Option<u64>) -> String {
    let declared = timeout_ms.map(|ms| format!(", timeout_ms: {ms}")).unwrap_or_default();
    format!(
        "const META = #{{ title: \"Endless\", description: \"d\"{declared} }};\n\
         fn main(e, m, d) {{ loop {{ let s = \"\"; s.pad(10000, \"x\"); }} }}\n"
    )
}

async fn limit_applied(server: &Server, path: &str) -> String {
    let error = expect_error(server.get(path).await, 504, "timeout").await;
    error["message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_caller_may_shorten_a_servers_time_limit_but_never_lengthen_it() {
    let servers = [("declared", endless(Some(300))), ("undeclared", endless(None)), ("long", endless(Some(60_000)))];
    let servers: Vec<(&str, &str)> = servers.iter().map(|(n, s)| (*n, s.as_str())).collect();
    let server = Server::start_with(&servers, &["--max-timeout-ms", "400"], &[]);
    for (path, limit) in [
        ("/declared?timeout_ms=5000", 300),
        ("/declared?timeout_ms=99999999999", 300),
        ("/declared?timeout_ms=100", 100),
        ("/declared/", 300),
        ("/undeclared?timeout_ms=99999999999", 400),
        ("/long/", 400),
    ] {
        let message = limit_applied(&server, path).await;
        assert!(message.contains(&format!("within {limit} ms")), "{path}: {message}");
    }
    let proxied = server.client.get(server.url("/declared/x")).header("x-timeout-ms", "5000").send().await.unwrap();
    let error = expect_error(proxied, 504, "timeout").await;
    assert!(error["message"].as_str().unwrap().contains("within 300 ms"), "{error}");
    assert_eq!(server.get("/echo/after").await.status(), 200);
}

/// Each body loops over one heavy native on 8–16 MB; with `timeout_ms=100` every one of them must be
/// stopped by the deadline — inside the native, which now works in paced pieces — and answered
/// `timeout`, never `limit_exceeded` or a late success.
#[tokio::test]
async fn heavy_natives_stop_at_the_deadline_and_the_server_goes_on() {
    let big = r#"let s = ""; s.pad(8000000, "é");"#;
    let cases = [
        ("upper", format!("{big} loop {{ let t = s.to_upper(); }}")),
        ("pad", r#"loop { let t = ""; t.pad(16000000, "ab"); }"#.to_owned()),
        ("replace", format!(r#"{big} loop {{ let t = s; t.replace("é", "e"); }}"#)),
        ("sha", format!("{big} loop {{ crypto::sha256(s); }}")),
        ("base64", format!("{big} loop {{ base64::encode(s); }}")),
        ("format", format!("{big} let m = #{{ a: s }}; loop {{ let t = `${{m}}`; }}")),
    ];
    let scripts: Vec<(&str, String)> =
        cases.iter().map(|(name, body)| (*name, common::script("Heavy", body))).collect();
    let scripts: Vec<(&str, &str)> = scripts.iter().map(|(n, s)| (*n, s.as_str())).collect();
    let server = Server::start(&scripts);
    for (name, _) in &cases {
        let message = limit_applied(&server, &format!("/{name}?timeout_ms=100")).await;
        assert!(message.contains("within 100 ms"), "{name}: {message}");
    }
    assert_eq!(server.get("/echo/after").await.status(), 200);
}
