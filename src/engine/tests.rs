//! The sandbox and the script contract, exercised on the engine alone.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rhai::Dynamic;

use super::*;

fn engine_with(limits: Limits) -> ScriptEngine {
    ScriptEngine::new(limits, |_| {})
}

/// The limits of the tests' engines.
fn limits() -> Limits {
    Limits { max_operations: 200_000, ..Limits::default() }
}

fn engine() -> ScriptEngine {
    engine_with(limits())
}

const META: &str = r#"const META = #{ title: "T", description: "D" };"#;

fn script(body: &str) -> String {
    format!("{META}\n{body}")
}

fn run_cancellable(
    engine: &ScriptEngine,
    source: &str,
    inline: bool,
    timeout: Duration,
    cancel: Option<Arc<AtomicBool>>,
) -> Result<Dynamic, Fault> {
    let script = Arc::new(engine.compile(source.as_bytes()).expect("compiles"));
    let context = Arc::new(Context::new(Some("demo".into()), script, Instant::now(), timeout));
    let call = Call {
        function: Function::Main,
        endpoint: "/e".into(),
        method: "POST".into(),
        data: Dynamic::from(7_i64),
        context,
        inline,
        cancel,
    };
    let at = call.context.location();
    match inline {
        true => engine.run_inline(call),
        false => fiber::on_stack(|| engine.run(call)).unwrap_or_else(|overflow| Err(Fault::Error(overflow.error(at)))),
    }
}

fn run_with(engine: &ScriptEngine, source: &str, inline: bool, timeout: Duration) -> Result<Dynamic, Fault> {
    run_cancellable(engine, source, inline, timeout, None)
}

fn run(source: &str) -> Result<Dynamic, Fault> {
    run_with(&engine(), source, false, Duration::from_secs(10))
}

fn error(result: Result<Dynamic, Fault>) -> Error {
    match result {
        Err(Fault::Error(error)) => error,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn refusal(source: &str) -> (String, Option<usize>, Option<usize>) {
    match engine().compile(source.as_bytes()) {
        Err(Error::InvalidScript { message, at }) => (message, at.line, at.column),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn main_receives_endpoint_method_and_data() {
    let value = run(&script("fn main(endpoint, method, data) { `${method} ${endpoint} ${data}` }")).unwrap();
    assert_eq!(value.into_string().unwrap(), "POST /e 7");
}

#[test]
fn main_and_its_helpers_read_top_level_constants_through_global() {
    let source = script(
        r#"const BASE = "https://x";
           fn url(path) { global::BASE + path }
           fn main(endpoint, method, data) { `${global::META.title} ${url(endpoint)}` }"#,
    );
    assert_eq!(run(&source).unwrap().into_string().unwrap(), "T https://x/e");
}

#[test]
fn meta_is_read_once_at_load() {
    let script = engine()
        .compile(
            &script(r#"fn main(endpoint, method, data) { () }"#)
                .replace(r#"title: "T""#, r#"title: "T", secrets: ["K", ["A", "B"]], timeout_ms: 1500"#)
                .into_bytes(),
        )
        .unwrap();
    assert_eq!(script.meta.title, "T");
    assert_eq!(script.meta.secrets, vec![vec!["K".to_string()], vec!["A".into(), "B".into()]]);
    assert_eq!(script.meta.timeout, Some(Duration::from_millis(1500)));
}

#[test]
fn a_syntax_error_is_refused_with_line_and_column() {
    let (message, line, column) = refusal(&script("fn main(endpoint, method, data) {\n  let x = ;\n}"));
    assert!(message.contains("Unexpected"), "{message}");
    assert_eq!((line, column), (Some(3), Some(11)));
}

#[test]
fn a_script_without_main_is_refused() {
    let (message, ..) = refusal(&script("fn other() { 1 }"));
    assert_eq!(message, "the script must define fn main(endpoint, method, data)");
}

#[test]
fn a_script_without_meta_declares_nothing_and_a_variable_meta_is_refused() {
    let script = engine().compile(b"fn main(endpoint, method, data) { 1 }").unwrap();
    assert!(script.meta.secrets.is_empty() && script.meta.hosts.is_empty() && script.meta.base_url.is_empty());
    let (message, line, _) =
        refusal("let x = 1;\nlet META = #{ title: \"t\", description: \"d\" };\nfn main(e, m, d) { 1 }");
    assert_eq!((message.as_str(), line), ("META must be a constant: `const META = #{ ... };`", Some(2)));
}

#[test]
fn incomplete_meta_is_refused_at_its_line() {
    let (message, line, _) = refusal("\nconst META = #{ description: \"D\" };\nfn main(endpoint, method, data) { 1 }");
    assert_eq!(message, "META.title is required");
    assert_eq!(line, Some(2));
}

#[test]
fn a_global_that_is_not_a_constant_is_refused() {
    let (message, line, _) = refusal(&script("fn main(endpoint, method, data) {\n global::NOPE }"));
    assert_eq!(message, "global::NOPE is not a top-level constant");
    assert_eq!(line, Some(3));
}

#[test]
fn eval_is_not_available() {
    let (message, ..) = refusal(&script(r#"fn main(endpoint, method, data) { eval("1") }"#));
    assert!(message.contains("eval"), "{message}");
}

#[test]
fn modules_cannot_be_imported() {
    let err = error(run(&script(r#"fn main(endpoint, method, data) { import "/etc/passwd" as p; 1 }"#)));
    assert_eq!(err.kind(), "script_error");
}

#[test]
fn top_level_code_may_not_run_long() {
    let (message, ..) = refusal(&script("let n = 0; loop { n += 1; }\nfn main(endpoint, method, data) { 1 }"));
    assert!(message.contains("top-level"), "{message}");
}

#[test]
fn a_thrown_error_is_a_script_error_with_position() {
    let err = error(run(&script("fn main(endpoint, method, data) {\n    throw \"no such thing\";\n}")));
    match err {
        Error::Script { message, at } => {
            assert_eq!(message, "no such thing");
            assert_eq!((at.server.as_deref(), at.line, at.column), (Some("demo"), Some(3), Some(5)));
            assert!(at.cid.is_some());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_error_deep_in_a_helper_reports_the_innermost_position() {
    let err =
        error(run(&script("fn helper(x) {\n  x.no_such_method()\n}\nfn main(endpoint, method, data) { helper(1) }")));
    match err {
        Error::Script { message, at } => {
            assert!(message.contains("no_such_method"), "{message}");
            assert_eq!(at.line, Some(3));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_endless_loop_hits_the_operation_limit() {
    let err = error(run(&script("fn main(endpoint, method, data) { loop {} }")));
    assert_eq!(err.kind(), "limit_exceeded");
    assert!(matches!(err, Error::LimitExceeded { ref limit, .. } if limit == "operations"));
}

#[test]
fn an_endless_loop_stops_at_the_wall_clock_limit() {
    let engine = engine_with(Limits { max_operations: u64::MAX, ..Limits::default() });
    let started = Instant::now();
    let err = error(run_with(
        &engine,
        &script("fn main(endpoint, method, data) { loop {} }"),
        false,
        Duration::from_millis(100),
    ));
    assert_eq!(err.kind(), "timeout");
    assert!(err.message().contains("100 ms"));
    assert!(started.elapsed() < Duration::from_secs(5), "stopped long after its deadline");
}

#[test]
fn endless_recursion_hits_the_call_depth_limit() {
    let err = error(run(&script("fn down(n) { down(n + 1) }\nfn main(endpoint, method, data) { down(0) }")));
    assert!(matches!(err, Error::LimitExceeded { ref limit, .. } if limit == "call_depth"), "{err:?}");
}

#[test]
fn a_huge_string_hits_the_size_limit() {
    let err = error(run(&script(r#"fn main(endpoint, method, data) { let s = "x"; loop { s += s; } }"#)));
    assert!(matches!(err, Error::LimitExceeded { ref limit, .. } if limit == "size"), "{err:?}");
}

#[test]
fn a_huge_array_hits_the_size_limit() {
    let engine = engine_with(Limits { max_array_size: 1000, ..Limits::default() });
    let source = script("fn main(endpoint, method, data) { let a = []; loop { a.push(1); } }");
    let err = error(run_with(&engine, &source, false, Duration::from_secs(10)));
    assert!(matches!(err, Error::LimitExceeded { ref limit, .. } if limit == "size"), "{err:?}");
}

#[test]
fn an_inline_run_that_outgrows_its_budget_is_demoted() {
    let engine = engine_with(Limits::default());
    let source = script("fn main(endpoint, method, data) { let n = 0; for i in 0..100000 { n += i; } n }");
    assert!(matches!(run_with(&engine, &source, true, Duration::from_secs(10)), Err(Fault::Demote)));
    let value = run_with(&engine, &source, false, Duration::from_secs(10)).unwrap();
    assert_eq!(value.as_int().unwrap(), 4_999_950_000);
}

#[test]
fn an_inline_run_that_keeps_its_worker_too_long_is_demoted() {
    // Few operations, but each one slow: the time slice, not the operation budget, moves it.
    let engine = engine_with(Limits::default());
    let source = script(
        r#"fn main(endpoint, method, data) { let s = "x"; for i in 0..22 { s += s; } let n = 0; for i in 0..200 { n += s.len(); s = s + ""; } n }"#,
    );
    assert!(matches!(run_with(&engine, &source, true, Duration::from_secs(10)), Err(Fault::Demote)));
}

#[test]
fn large_native_work_never_runs_inline() {
    let source = script("fn main(endpoint, method, data) { 1 }");
    let engine = engine_with(Limits::default());
    let script = Arc::new(engine.compile(source.as_bytes()).unwrap());
    let context = Arc::new(Context::new(None, script, Instant::now(), Duration::from_secs(10)));
    let _run = sandbox::enter(sandbox::Run {
        max_operations: 1000,
        inline_operations: Some(1000),
        deadline: Instant::now() + Duration::from_secs(10),
        cancel: None,
        context: Some(context),
    });
    assert!(admit(1024).is_ok());
    let refused = admit(16 * 1024 * 1024).unwrap_err();
    assert!(
        matches!(*refused, rhai::EvalAltResult::ErrorTerminated(ref t, _) if t.clone().try_cast::<sandbox::Stop>() == Some(sandbox::Stop::Demote))
    );
}

#[test]
fn native_work_does_not_start_past_the_deadline() {
    let _run = sandbox::enter(sandbox::Run {
        max_operations: 1000,
        inline_operations: None,
        deadline: Instant::now(),
        cancel: None,
        context: None,
    });
    let refused = admit(1).unwrap_err();
    assert!(
        matches!(*refused, rhai::EvalAltResult::ErrorTerminated(ref t, _) if t.clone().try_cast::<sandbox::Stop>() == Some(sandbox::Stop::Timeout))
    );
}

#[test]
fn the_call_depth_limit_fits_the_script_stack() {
    assert!(fiber::call_levels_that_fit() >= Limits::default().max_call_levels);
    // The deepest allowed recursion, with nested expressions at every level, completes on a script stack.
    let source = script(
        "fn down(n) { if n <= 0 { return 0; } 1 + (1 + (1 + (1 + (1 + (1 + down(n - 1)))))) - 5 }
         fn main(endpoint, method, data) { down(60) }",
    );
    assert_eq!(run(&source).unwrap().as_int().unwrap(), 60);
}

#[test]
fn a_script_that_overflows_its_stack_is_an_error_and_the_thread_goes_on() {
    // Each closure captures the one before; dropping the chain recurses once per closure inside Rhai,
    // deeper than any script stack, with no limit of Rhai's to stop it first.
    let chain =
        script("fn main(endpoint, method, data) { let f = || 1; for i in 0..400000 { let g = f; f = || g; } 1 }");
    let engine = engine_with(Limits::default());
    for _ in 0..2 {
        let err = error(run_with(&engine, &chain, false, Duration::from_secs(120)));
        assert!(matches!(err, Error::LimitExceeded { ref limit, .. } if limit == "stack"), "{err:?}");
        assert_eq!(err.status(), 500);
        // The same thread runs the next script as usual: no run state was left behind.
        let next =
            run_with(&engine, &script("fn main(endpoint, method, data) { data + 1 }"), false, Duration::from_secs(5));
        assert_eq!(next.unwrap().as_int().unwrap(), 8);
    }
}

#[test]
fn splitting_a_huge_string_is_refused_before_it_is_built() {
    let source = script(
        r#"fn main(endpoint, method, data) { let s = "abcdefgh"; for i in 0..17 { s += s; } let parts = s.split(""); parts.len() }"#,
    );
    let err = error(run(&source));
    assert!(matches!(err, Error::LimitExceeded { ref limit, .. } if limit == "size"), "{err:?}");
    let source = script(r#"fn main(endpoint, method, data) { let s = "x"; s.pad(17000000, "ab"); s.len() }"#);
    let err = error(run(&source));
    assert!(matches!(err, Error::LimitExceeded { ref limit, .. } if limit == "size"), "{err:?}");
    // Within the limit, the replacements behave as Rhai's own.
    let source = script(
        r#"fn main(endpoint, method, data) { [ "a,b,,c".split(","), "a b  c".split(), "a,b,c".split(",", 2),
            "a,b,c".split_rev(","), "héé".to_chars().len(), "x".to_blob().to_array(), padded() ] }
           fn padded() { let a = "ab"; a.pad(7, "xyz"); let b = "é"; b.pad(3, 'ü'); let c = "q"; c.pad(9, ""); [a, b, c] }"#,
    );
    let value = rhai::serde::from_dynamic::<serde_json::Value>(&run(&source).unwrap()).unwrap();
    assert_eq!(
        value,
        serde_json::json!([
            ["a", "b", "", "c"],
            ["a", "b", "c"],
            ["a", "b,c"],
            ["c", "b", "a"],
            3,
            [120],
            ["abxyzxy", "éüü", "q"]
        ])
    );
}

#[test]
fn a_cancelled_run_stops_promptly() {
    let engine = engine_with(Limits { max_operations: u64::MAX, ..Limits::default() });
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        flag.store(true, Ordering::Relaxed);
    });
    let started = Instant::now();
    let source = script("fn main(endpoint, method, data) { loop {} }");
    let err = error(run_cancellable(&engine, &source, false, Duration::from_secs(60), Some(cancel)));
    canceller.join().unwrap();
    assert_eq!(err.message(), "the caller went away");
    assert!(started.elapsed() < Duration::from_secs(30), "the run ignored its cancellation");
}

#[test]
fn text_of_a_value_over_the_string_limit_is_refused_before_it_is_built() {
    let engine = engine_with(Limits { max_string_size: 1000, ..Limits::default() });
    let big = r#"let s = ""; s.pad(200, "a"); let m = #{}; for i in 0..10 { m["k" + i] = s; }"#;
    for body in ["`${m}`", "m.to_string()", "to_debug(m)", "print(m); 1", "debug(m); 1", r#""x" + m"#, "`${[m]}`"] {
        let source = script(&format!("fn main(endpoint, method, data) {{ {big} {body} }}"));
        let err = error(run_with(&engine, &source, false, Duration::from_secs(10)));
        assert!(matches!(err, Error::LimitExceeded { ref limit, .. } if limit == "size"), "{body}: {err:?}");
    }
    let small = script(r#"fn main(endpoint, method, data) { let m = #{ a: [1, "x\n", 'c', ()], b: 2.5 }; `${m}` }"#);
    let text = run_with(&engine, &small, false, Duration::from_secs(10)).unwrap().into_string().unwrap();
    assert_eq!(text, r#"#{"a": [1, "x\n", c, ()], "b": 2.5}"#);
}

#[test]
fn replace_and_case_mapping_count_before_they_build_and_match_rhai() {
    let engine = engine_with(Limits { max_string_size: 1000, ..Limits::default() });
    let over = script(
        r#"fn main(endpoint, method, data) { let t = "abcabc"; let b = ""; b.pad(600, "x"); t.replace("b", b); t }"#,
    );
    let err = error(run_with(&engine, &over, false, Duration::from_secs(10)));
    assert!(matches!(err, Error::LimitExceeded { ref limit, .. } if limit == "size"), "{err:?}");
    let source = script(
        r#"fn main(endpoint, method, data) {
            let t = "aXbXc"; t.replace("X", "--"); let u = "añb"; u.replace('ñ', 'n'); let v = "ab"; v.replace("", ".");
            let w = "ΣΑΣ σ"; let x = "straße"; x.make_upper();
            [t, u, v, w.to_lower(), x, "Ünï".to_upper(), "abc".to_lower()]
        }"#,
    );
    let built: Vec<String> =
        run_with(&engine, &source, false, Duration::from_secs(10)).unwrap().into_typed_array().unwrap();
    assert_eq!(built, ["a--b--c", "anb", ".a.b.", "σας σ", "STRASSE", "ÜNÏ", "abc"]);
}

#[test]
fn native_work_over_a_large_input_stops_at_the_deadline_as_it_goes() {
    // The script waits until just before its deadline, then starts one call that takes longer than
    // what is left: the call itself must stop, not the next operation after it. The wait spins, so the
    // operation limit is lifted: on a fast machine the spin alone would use up the default one. What is
    // left is ≈ 30 ms, and each call must take several times that on a fast machine: upper-casing 4
    // million characters took 36 ms on one, so the text is 32 million (past the default string limit).
    let engine =
        engine_with(Limits { max_operations: u64::MAX, max_string_size: 256 * 1024 * 1024, ..Limits::default() });
    for work in ["s.to_upper()", r#"s.replace("é", "e")"#, r#"let p = ""; p.pad(16000000, "ab")"#] {
        let source = script(&format!(
            r#"fn main(endpoint, method, data) {{
                let start = timestamp();
                let s = ""; s.pad(32000000, "é");
                while start.elapsed < 4.97 {{ }}
                {work};
                "finished"
            }}"#
        ));
        let result = run_with(&engine, &source, false, Duration::from_secs(5));
        assert!(matches!(result, Err(Fault::Error(Error::Timeout(_)))), "{work}: {result:?}");
    }
}

/// An engine whose scripts can wait: `pause(ms)` suspends the fiber on a timer.
fn waiting_engine() -> Arc<ScriptEngine> {
    Arc::new(ScriptEngine::new(Limits::default(), |engine| {
        engine.register_fn("pause", |ms: i64| -> Result<(), Box<rhai::EvalAltResult>> {
            wait(tokio::time::sleep(Duration::from_millis(ms as u64)))
        });
    }))
}

/// A call of `main` in `source`, bounded like an inline run until it first waits when `inline`.
fn call_of(engine: &ScriptEngine, source: &str, inline: bool) -> Call {
    let script = Arc::new(engine.compile(source.as_bytes()).expect("compiles"));
    let context = Arc::new(Context::new(None, script, Instant::now(), Duration::from_secs(10)));
    Call {
        function: Function::Main,
        endpoint: "/e".into(),
        method: "GET".into(),
        data: Dynamic::UNIT,
        context,
        inline,
        cancel: None,
    }
}

/// Runs `source` as a fiber started from a request worker, bounded like an inline run until it first
/// waits; returns its outcome and whether it ran on the worker's own thread.
fn on_a_worker(engine: &Arc<ScriptEngine>, source: &str) -> (Result<Dynamic, Fault>, bool) {
    let call = call_of(engine, source, true);
    let engine = engine.clone();
    fiber::worker(async move {
        let worker = std::thread::current().id();
        let body = move || (engine.run(call), std::thread::current().id() == worker);
        let threads = Threads::new(1);
        threads.run(Instant::now() + Duration::from_secs(10), body).await.expect("the fiber ran").expect("no overflow")
    })
    .expect("the worker starts")
}

#[test]
fn a_fiber_started_on_a_request_worker_waits_and_resumes_there() {
    let engine = waiting_engine();
    let (result, here) = on_a_worker(&engine, &script("fn main(endpoint, method, data) { pause(20); pause(1); 42 }"));
    assert_eq!(result.unwrap().as_int().unwrap(), 42);
    assert!(here, "the fiber ran on another thread than the worker that started it");
}

#[test]
fn a_fiber_on_a_worker_that_computes_before_its_first_wait_is_demoted_but_not_after_it() {
    let engine = waiting_engine();
    let compute = "let n = 0; for i in 0..100000 { n += i; }";
    let before = script(&format!("fn main(endpoint, method, data) {{ {compute} pause(1); n }}"));
    assert!(matches!(on_a_worker(&engine, &before).0, Err(Fault::Demote)));
    // Once it has waited, what it waited for may have had an effect: it finishes where it is.
    let after = script(&format!("fn main(endpoint, method, data) {{ pause(1); {compute} n }}"));
    assert_eq!(on_a_worker(&engine, &after).0.unwrap().as_int().unwrap(), 4_999_950_000);
}

#[test]
fn fibers_waiting_in_great_numbers_resume_with_their_frames_intact() {
    // Past a hundred waiting fibers, each gives back the stack pages below its live frames as it waits:
    // frames above (waiting deep in a recursion) must be intact, and going deep again after a wait that
    // gave pages back must work on the fresh ones.
    let engine = waiting_engine();
    let source = script(
        "fn deep(n, ms) { if n == 0 { pause(ms); return 0; } let x = n * 2; deep(n - 1, ms) + x - n }
         fn main(endpoint, method, data) { let shallow = deep(1, 0); let before = deep(8, 200); pause(50); shallow + before + deep(6, 0) }",
    );
    let calls: Vec<Call> = (0..150).map(|_| call_of(&engine, &source, false)).collect();
    let results = fiber::worker(async move {
        let threads = Arc::new(Threads::new(1));
        let runs = calls.into_iter().map(|call| {
            let (engine, threads) = (engine.clone(), threads.clone());
            async move { threads.run(Instant::now() + Duration::from_secs(30), move || engine.run(call)).await }
        });
        futures_util::future::join_all(runs).await
    })
    .expect("the worker starts");
    for result in results {
        let value = result.expect("the fiber ran").expect("no overflow").expect("the script ran");
        assert_eq!(value.as_int().unwrap(), 1 + 36 + 21);
    }
}

#[test]
fn nothing_built_after_a_refusal_leaves_the_run() {
    // A formatter that cannot fail answers an empty text and refuses the run; a native that goes on to
    // send what it built from that text must not send it.
    static SENT: AtomicBool = AtomicBool::new(false);
    let engine = Arc::new(ScriptEngine::new(Limits::default(), |engine| {
        engine.register_fn("format_then_send", || -> Result<(), Box<rhai::EvalAltResult>> {
            sandbox::refuse(sandbox::terminated(sandbox::Stop::Operations));
            wait(async { SENT.store(true, Ordering::Relaxed) })
        });
    }));
    let (result, _) = on_a_worker(&engine, &script("fn main(endpoint, method, data) { format_then_send(); 1 }"));
    assert!(matches!(error(result), Error::LimitExceeded { .. }));
    assert!(!SENT.load(Ordering::Relaxed), "the request was sent after the run was refused");
}

/// An engine whose `api::call` answers the type of the first argument it was handed.
fn engine_with_api() -> ScriptEngine {
    ScriptEngine::new(limits(), |engine| {
        let mut api = rhai::Module::new();
        api.set_native_fn("call", |meta: Dynamic, _: &str, _: &str, _: Dynamic| Ok(meta.type_name().to_owned()));
        engine.register_static_module("api", api.into());
    })
}

#[test]
fn a_meta_only_handed_to_the_api_helper_is_not_copied_into_each_call() {
    let engine = engine_with_api();
    let typed = |body: &str| {
        let value = run_with(&engine, &script(body), false, Duration::from_secs(10)).unwrap();
        value.into_string().unwrap()
    };
    // The helper ignores the map it is passed, so the prelude declares `()` in its place...
    assert_eq!(typed("fn main(endpoint, method, data) { api::call(global::META, endpoint, method, data) }"), "()");
    assert_eq!(typed("fn main(e, m, d) { let r = api::call(global::META, e, m, d); r }"), "()");
    // ...unless a function also reads it, anywhere: then it is the map, for every use.
    let reads = "fn title() { global::META.title }\nfn main(e, m, d) { api::call(global::META, e, m, d) + title() }";
    assert_eq!(typed(reads), "mapT");
    assert_eq!(typed("fn main(e, m, d) { let meta = global::META; api::call(meta, e, m, d) }"), "map");
}
