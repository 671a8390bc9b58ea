//! A script cannot make the runtime build more than it can hold: outputs, JSON texts and request
//! bodies are measured (shared strings by their full size, nesting by depth) before anything is
//! written, and refused as `limit_exceeded`, while every other request goes on.

mod common;

use common::{Server, expect_error, script};

/// A 16 MB string shared by three map entries: one string to Rhai, 48 MB as JSON (the same holds for a
/// thousand entries, 16 GB, which only takes longer to build in a debug build).
const SHARED: &str = r#"let s = ""; s.pad(16000000, "a"); let m = #{}; for i in 0..3 { m["k" + i] = s; }"#;

/// The probe's value: one 16 MB string shared by a thousand map entries, 16 GB as text.
const THOUSAND: &str = r#"let s = ""; s.pad(16000000, "a"); let m = #{}; for i in 0..1000 { m["k" + i] = s; }"#;

/// Arrays nested `depth` deep, built one level per iteration.
fn nested(depth: usize) -> String {
    format!("let a = []; for i in 0..{depth} {{ a = [a]; }}")
}

#[tokio::test]
async fn a_shared_string_output_is_refused_by_size_before_it_is_built() {
    let server = Server::start(&[
        ("shared", &script("Shared", &format!("{SHARED} m"))),
        ("stringify", &script("Stringify", &format!("{SHARED} json::stringify(m)"))),
    ]);
    for name in ["shared", "stringify"] {
        let error = expect_error(server.get(&format!("/{name}/")).await, 500, "limit_exceeded").await;
        assert_eq!(error["limit"], "size", "{name}: {error}");
        assert_eq!(error["server"], name);
    }
    assert_eq!(server.get("/echo/still/here").await.status(), 200);
}

#[tokio::test]
async fn text_far_larger_than_a_string_may_be_is_refused_before_it_is_built() {
    let cases = [
        ("interpolated", "`${m}`"),
        ("to_string", "m.to_string()"),
        ("to_debug", "to_debug(m)"),
        ("printed", "print(m); 1"),
        ("debugged", "debug(m); 1"),
        ("appended", r#""text: " + m"#),
        ("in_array", "let a = [m, m]; `${a}`"),
        ("to_json", "m.to_json()"),
        ("replaced", r#"let t = ""; t.pad(4096, "a"); t.replace("a", s); t.len()"#),
        ("query", "url::query(m)"),
    ];
    let scripts: Vec<(&str, String)> = cases
        .iter()
        .map(|(name, body)| {
            (
                *name,
                script(
                    "Big",
                    &format!(
                        "{THOUSAND}
{body}"
                    ),
                ),
            )
        })
        .collect();
    let scripts: Vec<(&str, &str)> = scripts.iter().map(|(n, s)| (*n, s.as_str())).collect();
    let server = Server::start(&scripts);
    let pid = server.pid();
    for (name, _) in cases {
        let error = expect_error(server.get(&format!("/{name}/")).await, 500, "limit_exceeded").await;
        assert_eq!(error["limit"], "size", "{name}: {error}");
        assert_eq!(error["server"], name);
    }
    assert_eq!(server.get("/echo/still/here").await.status(), 200);
    assert_eq!(server.pid(), pid);
}

#[tokio::test]
async fn deep_nesting_is_refused_by_depth_in_outputs_and_json() {
    let maps = "let m = #{}; for i in 0..1000 { m = #{ inner: m }; }";
    let server = Server::start(&[
        ("arrays", &script("Arrays", &format!("{} a", nested(1000)))),
        ("maps", &script("Maps", &format!("{maps} json::stringify(m)"))),
        ("pretty", &script("Pretty", &format!("{maps} json::pretty(m)"))),
        // A curried function is written as its name and the values it carries.
        ("curried", &script("Curried", &format!(r#"{} Fn("main").curry(a)"#, nested(1000)))),
        ("curried_json", &script("Curried", &format!(r#"{} json::stringify(Fn("main").curry(a))"#, nested(1000)))),
    ]);
    for name in ["arrays", "maps", "pretty", "curried", "curried_json"] {
        let error = expect_error(server.get(&format!("/{name}/")).await, 500, "limit_exceeded").await;
        assert_eq!(error["limit"], "depth", "{name}: {error}");
    }
    assert_eq!(server.get("/echo/still/here").await.status(), 200);
}

#[tokio::test]
async fn nesting_up_to_the_bound_is_served() {
    let depth = switchboard::engine::nesting::MAX_DEPTH;
    let server = Server::start(&[("arrays", &script("Arrays", &format!("{} a", nested(depth - 1))))]);
    let response = server.get("/arrays/").await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert_eq!(text, format!("{}{}", "[".repeat(depth), "]".repeat(depth)));
}

#[tokio::test]
async fn a_script_that_overflows_its_stack_fails_alone_and_the_process_goes_on() {
    // Dropping a chain of closures, each capturing the last, recurses inside Rhai once per closure: far
    // deeper than a script stack, and no limit of Rhai's stops it first. Then a value compared with
    // itself nested 6 000 deep, on the same script threads.
    let chain = "let f = || 1; for i in 0..400000 { let g = f; f = || g; } 1";
    let compare = format!("{} a == a", nested(6000));
    let server = Server::start(&[("chain", &script("Chain", chain)), ("compare", &script("Compare", &compare))]);
    let pid = server.pid();
    for name in ["chain", "compare"] {
        let error = expect_error(server.get(&format!("/{name}/")).await, 500, "limit_exceeded").await;
        assert_eq!(error["limit"], "stack", "{name}: {error}");
        assert_eq!(error["server"], name);
        assert!(error["message"].as_str().unwrap().contains("nested too deeply"), "{error}");
    }
    // What an overflowing run held is leaked, so the script is not run again: a caller repeating it
    // gets the same error at once, without another overflow.
    let again = expect_error(server.get("/chain/").await, 500, "limit_exceeded").await;
    assert_eq!(again["limit"], "stack");
    assert!(again["message"].as_str().unwrap().contains("earlier run"), "{again}");
    assert_eq!(server.get("/echo/still/here").await.status(), 200);
    assert_eq!(server.pid(), pid);
}

/// The `lost=` figures the server logged for its overflows, in bytes.
fn losses(logs: &str) -> Vec<u64> {
    logs.lines()
        .filter(|line| line.contains("overflowed its stack"))
        .filter_map(|line| line.split("lost=").nth(1)?.split_whitespace().next()?.parse().ok())
        .collect()
}

#[tokio::test]
async fn past_its_overflow_budget_the_process_runs_no_more_scripts() {
    let chain = "let f = || 1; for i in 0..400000 { let g = f; f = || g; } 1";
    // Four distinct 16 MB strings in its variables when it overflows.
    let holding = format!(
        r#"let a = ""; a.pad(16000000, "a"); let b = a + "b"; let c = a + "c"; let d = a + "d"; {chain} + a.len() + b.len() + c.len() + d.len()"#
    );
    let server = Server::start_with(
        &[
            ("chain", &script("Chain", chain)),
            ("holding", &script("Holding", &holding)),
            ("fresh", &script("Fresh", "1")),
        ],
        &["--max-overflow-loss-mib", "100"],
        &[],
    );
    let error = expect_error(server.get("/chain/").await, 500, "limit_exceeded").await;
    assert_eq!(error["limit"], "stack", "{error}");
    assert_eq!(server.get("/echo/under/budget").await.status(), 200);
    let error = expect_error(server.get("/holding/").await, 500, "limit_exceeded").await;
    assert_eq!(error["limit"], "stack", "{error}");
    // Past the budget: nothing runs, and the answer says why.
    for path in ["/echo/past/budget", "/fresh/"] {
        let error = expect_error(server.get(path).await, 503, "unavailable").await;
        assert!(error["message"].as_str().unwrap().contains("until it is restarted"), "{error}");
    }
    let lost = losses(&server.logs());
    eprintln!("lost per overflow, as counted: {lost:?} bytes; peak RSS {} MiB", server.peak_rss_kib() / 1024);
    assert_eq!(lost.len(), 2);
    assert!(lost[1] >= 64_000_000, "the four strings count: {lost:?}");
    let server = server.restart();
    assert_eq!(server.get("/echo/restarted").await.status(), 200);
}
