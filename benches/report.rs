//! The benchmark report: every figure of the performance targets, each measured side by side with its
//! baseline in the same run, against 127.0.0.1 only. Prints a table and writes `target/bench-summary.json`.
//!
//! Run it with `bench/run` (which installs wrk when missing) or `cargo bench --bench report`;
//! `SWITCHBOARD_BENCH_BIN=PATH` measures another build of the binary with the same report.
//! Servers are pinned to one core and the load generator (wrk) to the other, as on a 2-core machine;
//! throughput figures are medians of interleaved rounds, so a noisy neighbour hits both sides alike.
//!
//! The same binary serves the baselines when re-executed with `--serve-baseline PORT` (a plain axum
//! handler returning the same JSON as the measured script), `--serve-upstream PORT` (the local upstream
//! of the outbound and gateway figures; `?ms=N` makes it answer after N ms) or `--serve-proxy PORT
//! UPSTREAM` (a plain async Rust proxy: axum plus one pooled reqwest client, a bearer header, the JSON
//! parsed and returned — what a gateway script is measured against).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[path = "report/instances.rs"]
mod instances;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The binary measured: this build's, or the one `SWITCHBOARD_BENCH_BIN` names (an earlier build, to
/// compare before and after a change with the same report).
fn switchboard_bin() -> String {
    std::env::var("SWITCHBOARD_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_switchboard").to_owned())
}
const ROUNDS: usize = 3;
const SECONDS: u32 = 5;
const CONNECTIONS: u32 = 32;

// ---------------------------------------------------------------------------------------------------
// Baselines (run in a process of their own).

/// The work of the ~150-operation script, natively.
fn sum_of_squares() -> i64 {
    (0..30).map(|i: i64| i * i).sum()
}

async fn baseline(method: axum::http::Method, uri: axum::http::Uri, body: axum::body::Bytes) -> axum::Json<Value> {
    let path = uri.path();
    let (route, rest) = path.trim_start_matches('/').split_once('/').unwrap_or((path, ""));
    let endpoint = match uri.query() {
        Some(query) => format!("/{rest}?{query}"),
        None => format!("/{rest}"),
    };
    if route == "compute" {
        return axum::Json(json!({ "endpoint": endpoint, "total": sum_of_squares() }));
    }
    let data: Value = if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).unwrap_or(Value::Null) };
    axum::Json(json!({ "data": data, "endpoint": endpoint, "method": method.as_str() }))
}

/// The local upstream: `{"ok": true}`, after `?ms=N` milliseconds when asked.
async fn upstream(uri: axum::http::Uri) -> axum::Json<Value> {
    let delay = uri.query().and_then(|q| q.strip_prefix("ms=")).and_then(|ms| ms.parse().ok()).unwrap_or(0);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    axum::Json(json!({ "ok": true }))
}

/// The plain async proxy: the request's path and query to the upstream with a bearer token, the JSON
/// answer parsed and returned.
async fn proxy(
    axum::extract::State((client, upstream)): axum::extract::State<(reqwest::Client, String)>,
    uri: axum::http::Uri,
) -> Result<axum::Json<Value>, axum::http::StatusCode> {
    let url = format!("{upstream}{}", uri.path_and_query().map_or("/", |p| p.as_str()));
    let bad = |_| axum::http::StatusCode::BAD_GATEWAY;
    let response = client.get(url).bearer_auth("tok_bench").send().await.map_err(bad)?;
    Ok(axum::Json(response.json::<Value>().await.map_err(bad)?))
}

enum Role {
    Baseline,
    Upstream,
    Proxy(String),
}

fn serve(port: u16, role: Role) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let router = match role {
            Role::Upstream => axum::Router::new().fallback(upstream),
            Role::Baseline => axum::Router::new().fallback(baseline),
            Role::Proxy(to) => axum::Router::new().fallback(proxy).with_state((reqwest::Client::new(), to)),
        };
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        println!("listening");
        axum::serve(listener, router).await.unwrap();
    });
}

// ---------------------------------------------------------------------------------------------------
// Processes.

struct Process {
    child: Child,
    base: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts a command pinned to core 1 (or, with `Pin::Free`, wherever the scheduler puts it) and waits for
/// its first line on stdout.
fn start(program: &str, args: &[&str], env: &[(&str, &str)], base: String, pin: Pin) -> Process {
    let mut command = match pin {
        Pin::Cores => {
            let mut taskset = Command::new("taskset");
            taskset.arg("-c").arg(server_core()).arg(program);
            taskset
        }
        Pin::Free => Command::new(program),
    };
    command.args(args).stdout(Stdio::piped()).stderr(Stdio::null());
    // Away from any boot/default.boot.json in the working directory: each server runs what it is given.
    command.current_dir(std::env::temp_dir());
    command.env("SWITCHBOARD_LOG", "warn");
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("the server starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(!line.is_empty(), "{program} {args:?} did not start");
    Process { child, base }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn server_core() -> &'static str {
    if cores() > 1 { "1" } else { "0" }
}

/// Whether a server (and the load generator) runs on a core of its own, or where the scheduler puts it.
#[derive(Clone, Copy, PartialEq)]
enum Pin {
    /// Server on core 1, wrk on core 0: each side's figures free of the other's.
    Cores,
    /// Neither pinned: as a deployment runs, the server's threads and wrk sharing both cores.
    Free,
}

fn switchboard(data: &Path, boot: Option<&Path>, env: &[(&str, &str)]) -> Process {
    switchboard_with(data, boot, env, &[])
}

/// `switchboard serve` with `extra` arguments.
fn switchboard_with(data: &Path, boot: Option<&Path>, env: &[(&str, &str)], extra: &[&str]) -> Process {
    switchboard_pinned(data, boot, env, extra, Pin::Cores)
}

fn switchboard_pinned(data: &Path, boot: Option<&Path>, env: &[(&str, &str)], extra: &[&str], pin: Pin) -> Process {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec!["serve", "--listen", &listen, "--data", data.to_str().unwrap()];
    if let Some(boot) = boot {
        args.extend(["--boot", boot.to_str().unwrap()]);
    }
    args.extend_from_slice(extra);
    start(&switchboard_bin(), &args, env, format!("http://{listen}"), pin)
}

fn own(flag: &str, extra: &[&str]) -> Process {
    own_pinned(flag, extra, Pin::Cores)
}

fn own_pinned(flag: &str, extra: &[&str], pin: Pin) -> Process {
    let port = free_port();
    let me = std::env::current_exe().unwrap();
    let port_text = port.to_string();
    let mut args = vec![flag, port_text.as_str()];
    args.extend_from_slice(extra);
    start(me.to_str().unwrap(), &args, &[], format!("http://127.0.0.1:{port}"), pin)
}

/// User plus system CPU time of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// A number from /proc/PID/status (`VmRSS`, `VmHWM` in KiB, `Threads`).
fn status_field(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.split(':').next() == Some(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn rss_mib(pid: u32) -> f64 {
    status_field(pid, "VmRSS") / 1024.0
}

// ---------------------------------------------------------------------------------------------------
// Load.

#[derive(Debug, Clone, Copy, Default)]
struct Load {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: f64,
    cpu_us_per_request: f64,
    /// Connect, read, write errors and timeouts wrk counted.
    socket_errors: f64,
    /// Over the rounds a median was taken of: the lowest and highest throughput.
    rps_low: f64,
    rps_high: f64,
    /// Responses that were not 2xx.
    failed: f64,
}

fn wrk_duration(text: &str) -> f64 {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| c.is_alphabetic()).unwrap_or(text.len()));
    let value: f64 = number.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => value / 1000.0,
        "ms" => value,
        "s" => value * 1000.0,
        "m" => value * 60_000.0,
        _ => f64::NAN,
    }
}

/// How wrk loads a server.
#[derive(Clone, Copy)]
struct Shape {
    connections: u32,
    seconds: u32,
    pin: Pin,
}

const SMALL: Shape = Shape { connections: CONNECTIONS, seconds: SECONDS, pin: Pin::Cores };

/// Runs wrk (on core 0 unless the shape leaves it free) against `url`, with an optional Lua script, and
/// reads throughput and latency.
fn wrk(url: &str, lua: Option<&Path>, pid: u32, shape: Shape) -> Load {
    let mut command = match shape.pin {
        Pin::Cores => {
            let mut taskset = Command::new("taskset");
            taskset.args(["-c", "0", "wrk"]);
            taskset
        }
        Pin::Free => Command::new("wrk"),
    };
    let (connections, seconds) = (format!("-c{}", shape.connections), format!("-d{}s", shape.seconds));
    command.args(["-t1", &connections, &seconds, "--timeout", "10s", "--latency"]);
    if let Some(lua) = lua {
        command.arg("-s").arg(lua);
    }
    let before = cpu_seconds(pid);
    let output = command.arg(url).output().expect("wrk runs (bench/run installs it)");
    let cpu = cpu_seconds(pid) - before;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut load = Load::default();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", rps] => load.rps = rps.parse().unwrap(),
            ["50%", latency] => load.p50_ms = wrk_duration(latency),
            ["99%", latency] => load.p99_ms = wrk_duration(latency),
            [requests, "requests", "in", ..] => load.requests = requests.parse().unwrap(),
            ["Non-2xx", "or", "3xx", "responses:", count] => load.failed = count.parse().unwrap(),
            ["Socket", "errors:", rest @ ..] => {
                load.socket_errors = rest.iter().filter_map(|w| w.trim_end_matches(',').parse::<f64>().ok()).sum()
            }
            _ => {}
        }
    }
    assert!(load.requests > 0.0, "wrk measured nothing at {url}:\n{text}");
    load.cpu_us_per_request = cpu * 1e6 / load.requests;
    (load.rps_low, load.rps_high) = (load.rps, load.rps);
    load
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn percentile(mut values: Vec<f64>, p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[((values.len() as f64 - 1.0) * p).round() as usize]
}

/// Interleaved rounds against the baseline and Switchboard; medians of each.
fn side_by_side(baseline: &Process, switchboard: &Process, path: &str, lua: Option<&Path>) -> (Load, Load) {
    let (base, ours) = (format!("{}{path}", baseline.base), format!("{}{path}", switchboard.base));
    interleaved((baseline, &base), (switchboard, &ours), lua, SMALL, ROUNDS)
}

/// Interleaved rounds of wrk against two URLs served by two processes; medians of each.
fn interleaved(
    (baseline, base_url): (&Process, &str),
    (switchboard, our_url): (&Process, &str),
    lua: Option<&Path>,
    shape: Shape,
    rounds: usize,
) -> (Load, Load) {
    let (mut base, mut ours) = (Vec::new(), Vec::new());
    // Warm both up (connections, caches, the script's first run).
    let _ = ureq_get(our_url);
    for _ in 0..rounds {
        base.push(wrk(base_url, lua, baseline.child.id(), shape));
        ours.push(wrk(our_url, lua, switchboard.child.id(), shape));
    }
    for (url, loads) in [(base_url, &base), (our_url, &ours)] {
        assert!(loads.iter().all(|l| l.failed == 0.0), "wrk saw error responses from {url}");
    }
    let pick = |loads: &[Load]| Load {
        rps: median(loads.iter().map(|l| l.rps).collect()),
        p50_ms: median(loads.iter().map(|l| l.p50_ms).collect()),
        p99_ms: median(loads.iter().map(|l| l.p99_ms).collect()),
        requests: loads.iter().map(|l| l.requests).sum(),
        cpu_us_per_request: median(loads.iter().map(|l| l.cpu_us_per_request).collect()),
        socket_errors: loads.iter().map(|l| l.socket_errors).sum(),
        rps_low: loads.iter().map(|l| l.rps).fold(f64::INFINITY, f64::min),
        rps_high: loads.iter().map(|l| l.rps).fold(0.0, f64::max),
        failed: loads.iter().map(|l| l.failed).sum(),
    };
    (pick(&base), pick(&ours))
}

/// One blocking GET; the body.
fn ureq_get(url: &str) -> String {
    let (host, path) = url.trim_start_matches("http://").split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap();
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    std::io::Read::read_to_string(&mut stream, &mut response).unwrap();
    response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------------
// Scenarios.

const COMPUTE: &str = r#"const META = #{ title: "Compute", description: "about 150 operations" };
fn main(endpoint, method, data) {
    let total = 0;
    for i in 0..30 { total += i * i; }
    #{ endpoint: endpoint, total: total }
}
"#;

fn outbound_script(upstream: &str) -> String {
    format!(
        r#"const META = #{{ title: "Outbound", description: "one local call", base_url: "{upstream}" }};
fn main(endpoint, method, data) {{ http::get("{upstream}/ok", #{{ max_retries: 0 }}).json }}
"#
    )
}

fn versioned(n: usize) -> String {
    format!(
        "const META = #{{ title: \"Reload\", description: \"version {n}\" }};\nfn main(endpoint, method, data) {{ \"v{n}\" }}\n"
    )
}

fn boot_source(dir: &Path, servers: &[(String, String)]) -> PathBuf {
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    let mut entries = Vec::new();
    for (name, source) in servers {
        std::fs::write(dir.join(format!("scripts/{name}.rhai")), source).unwrap();
        entries.push(json!({ "name": name, "script": format!("scripts/{name}.rhai") }));
    }
    let path = dir.join("boot.json");
    std::fs::write(&path, serde_json::to_vec(&json!({ "servers": entries })).unwrap()).unwrap();
    path
}

/// Latencies (ms) of `count` sequential GETs on one keep-alive connection.
fn sequential(client: &reqwest::blocking::Client, url: &str, count: usize) -> Vec<f64> {
    (0..count)
        .map(|_| {
            let started = Instant::now();
            let response = client.get(url).send().unwrap();
            assert!(response.status().is_success(), "{url}: {}", response.status());
            response.bytes().unwrap();
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect()
}

fn throughput(dir: &Path, report: &mut Vec<Value>) {
    let boot = boot_source(
        &dir.join("boot"),
        &[
            (
                "echo".into(),
                std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/echo.rhai")).unwrap(),
            ),
            ("compute".into(), COMPUTE.into()),
        ],
    );
    let ours = switchboard(&dir.join("data"), Some(&boot), &[]);
    let base = own("--serve-baseline", &[]);
    let body: String = {
        let items: Vec<Value> = (0..40).map(|i| json!({ "id": i, "name": format!("customer-{i:04}"), "email": format!("c{i}@example.com"), "tags": ["a", "b"] })).collect();
        let mut text = serde_json::to_string(&json!({ "customers": items })).unwrap();
        while text.len() < 4096 {
            text.insert_str(1, "\"pad\":\"x\",");
        }
        text
    };
    let lua = dir.join("post.lua");
    let escaped = body.replace('\\', "\\\\").replace('"', "\\\"");
    std::fs::write(
        &lua,
        format!(
            "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = \"{escaped}\"\n"
        ),
    )
    .unwrap();
    let cases: [(&str, &str, Option<&Path>); 3] = [
        ("echo, GET", "/echo/", None),
        ("~150 Rhai operations", "/compute/", None),
        ("echo, 4 KiB JSON body", "/echo/", Some(&lua)),
    ];
    for (name, path, lua) in cases {
        let (b, s) = side_by_side(&base, &ours, path, lua);
        report.push(json!({
            "case": name,
            "baseline": { "rps": b.rps, "p50_ms": b.p50_ms, "p99_ms": b.p99_ms, "cpu_us_per_request": b.cpu_us_per_request },
            "switchboard": { "rps": s.rps, "p50_ms": s.p50_ms, "p99_ms": s.p99_ms, "cpu_us_per_request": s.cpu_us_per_request },
            "throughput_ratio": s.rps / b.rps,
            "p99_ratio": s.p99_ms / b.p99_ms,
        }));
    }
}

fn outbound(dir: &Path, report: &mut Value) {
    let upstream = own("--serve-upstream", &[]);
    let boot = boot_source(
        &dir.join("boot-out"),
        &[
            (
                "echo".into(),
                std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/echo.rhai")).unwrap(),
            ),
            ("outbound".into(), outbound_script(&upstream.base)),
        ],
    );
    let ours = switchboard(&dir.join("data-out"), Some(&boot), &[]);
    let client = reqwest::blocking::Client::new();
    let (mut direct, mut echo, mut via) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        sequential(&client, &format!("{}/ok", upstream.base), 200);
        direct.extend(sequential(&client, &format!("{}/ok", upstream.base), 2000));
        echo.extend(sequential(&client, &format!("{}/echo/", ours.base), 2000));
        via.extend(sequential(&client, &format!("{}/outbound/", ours.base), 2000));
    }
    let (direct, echo, via) = (median(direct), median(echo), median(via));
    *report = json!({
        "direct_reqwest_ms": direct,
        "echo_invocation_ms": echo,
        "outbound_invocation_ms": via,
        "added_per_call_ms": via - echo - direct,
    });
}

const GATEWAY: &str = r#"const META = #{
    title: "Gateway", description: "one proxied API call", secrets: ["GATEWAY_TOKEN"], auth: "bearer",
    base_url: "https://gateway.invalid",
};
fn main(endpoint, method, data) { api::call(global::META, endpoint, method, data) }
"#;

fn fanout_script(upstream: &str) -> String {
    format!(
        r#"const META = #{{ title: "Fan-out", description: "ten calls", base_url: "{upstream}" }};
fn main(endpoint, method, data) {{
    let url = "{upstream}/ok?ms=50";
    if endpoint == "/parallel" {{
        let requests = [];
        for i in 0..10 {{ requests.push(#{{ url: url, max_retries: 0 }}); }}
        return http::parallel(requests).len();
    }}
    let n = 0;
    for i in 0..10 {{ http::get(url, #{{ max_retries: 0 }}); n += 1; }}
    n
}}
"#
    )
}

/// Runs `work` while sampling the process's thread count and resident memory; returns the peaks.
fn sampled<T>(pid: u32, work: impl FnOnce() -> T) -> (T, f64, f64) {
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    let sampler = std::thread::spawn(move || {
        let (mut threads, mut rss) = (0.0_f64, 0.0_f64);
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            threads = threads.max(status_field(pid, "Threads"));
            rss = rss.max(rss_mib(pid));
            std::thread::sleep(Duration::from_millis(50));
        }
        (threads, rss)
    });
    let result = work();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (threads, rss) = sampler.join().unwrap();
    (result, threads, rss)
}

fn load_json(load: &Load, threads: f64, rss: f64) -> Value {
    json!({ "rps": load.rps, "rps_low": load.rps_low, "rps_high": load.rps_high, "p50_ms": load.p50_ms,
            "p99_ms": load.p99_ms, "socket_errors": load.socket_errors,
            "cpu_us_per_request": load.cpu_us_per_request, "threads": threads, "rss_mib": rss })
}

/// A proxied API call through a script (`api::call` with a bearer secret) against the plain async
/// proxy, with a fast upstream and with one that answers after a second to 2 000 and 10 000 clients
/// (10 000 also unpinned); and ten calls from one script, one after another and with `http::parallel`.
fn gateway(dir: &Path, report: &mut Value) {
    let upstream = own("--serve-upstream", &[]);
    let proxy = own("--serve-proxy", &[&upstream.base]);
    let boot = boot_source(
        &dir.join("boot-gateway"),
        &[("gateway".into(), GATEWAY.into()), ("fanout".into(), fanout_script(&upstream.base))],
    );
    let env = [("GATEWAY_BASE_URL", upstream.base.as_str()), ("GATEWAY_TOKEN", "tok_bench")];
    let ours = switchboard(&dir.join("data-gateway"), Some(&boot), &env);

    let fast = interleaved(
        (&proxy, &format!("{}/ok", proxy.base)),
        (&ours, &format!("{}/gateway/ok", ours.base)),
        None,
        SMALL,
        ROUNDS,
    );
    let mut waiting: Vec<Value> =
        [2000, 10_000].into_iter().map(|clients| waiting_clients(&proxy, &ours, clients, Pin::Cores)).collect();
    let client = reqwest::blocking::Client::new();
    sequential(&client, &format!("{}/fanout/sequential", ours.base), 2);
    let one_by_one = median(sequential(&client, &format!("{}/fanout/sequential", ours.base), 20));
    let parallel = median(sequential(&client, &format!("{}/fanout/parallel", ours.base), 20));
    drop((ours, proxy, upstream));
    // Pinned, each server shares core 1 with its upstream, and at 10 000 clients that core is the limit;
    // unpinned, as a deployment runs, every process (wrk included) is where the scheduler puts it.
    let upstream = own_pinned("--serve-upstream", &[], Pin::Free);
    let proxy = own_pinned("--serve-proxy", &[&upstream.base], Pin::Free);
    let env = [("GATEWAY_BASE_URL", upstream.base.as_str()), ("GATEWAY_TOKEN", "tok_bench")];
    let ours = switchboard_pinned(&dir.join("data-gateway-free"), Some(&boot), &env, &[], Pin::Free);
    waiting.push(waiting_clients(&proxy, &ours, 10_000, Pin::Free));
    *report = json!({
        "fast": { "proxy": load_json(&fast.0, 0.0, 0.0), "switchboard": load_json(&fast.1, 0.0, 0.0),
                  "throughput_ratio": fast.1.rps / fast.0.rps },
        "waiting": waiting,
        "fanout": { "sequential_ms": one_by_one, "parallel_ms": parallel, "upstream_delay_ms": 50 },
    });
}

/// `clients` connections to an upstream that answers after a second, through the plain proxy and
/// through Switchboard in interleaved rounds: medians with their spread, each side's peak RSS and
/// threads, and Switchboard's script stacks midway through each round.
fn waiting_clients(proxy: &Process, ours: &Process, clients: u32, pin: Pin) -> Value {
    let shape = Shape { connections: clients, seconds: 10, pin };
    let (mut plain, mut gateway, mut stacks) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let url = format!("{}/ok?ms=1000", proxy.base);
        plain.push(sampled(proxy.child.id(), || wrk(&url, None, proxy.child.id(), shape)));
        let url = format!("{}/gateway/ok?ms=1000", ours.base);
        let pid = ours.child.id();
        let midway = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(u64::from(shape.seconds) / 2));
            fiber_stacks(pid)
        });
        gateway.push(sampled(pid, || wrk(&url, None, pid, shape)));
        stacks.push(midway.join().unwrap());
    }
    let (plain, gateway) = (rounds_json(&plain), rounds_json(&gateway));
    let ratio = |field: &str| gateway[field].as_f64().unwrap_or(f64::NAN) / plain[field].as_f64().unwrap_or(f64::NAN);
    let (throughput_ratio, rss_ratio) = (ratio("rps"), ratio("rss_mib"));
    let stacks = stacks
        .into_iter()
        .max_by(|a, b| a["count"].as_f64().unwrap_or(0.0).total_cmp(&b["count"].as_f64().unwrap_or(0.0)));
    json!({ "clients": clients, "pinned": pin == Pin::Cores, "proxy": plain, "switchboard": gateway,
            "throughput_ratio": throughput_ratio, "rss_ratio": rss_ratio, "stacks": stacks })
}

/// The medians of rounds sampled with [`sampled`], with the spread of their throughput.
fn rounds_json(runs: &[(Load, f64, f64)]) -> Value {
    let of = |f: fn(&(Load, f64, f64)) -> f64| runs.iter().map(f).collect::<Vec<f64>>();
    let rps = of(|r| r.0.rps);
    json!({
        "rps": median(rps.clone()),
        "rps_min": rps.iter().copied().fold(f64::INFINITY, f64::min),
        "rps_max": rps.iter().copied().fold(0.0, f64::max),
        "p50_ms": median(of(|r| r.0.p50_ms)),
        "p99_ms": median(of(|r| r.0.p99_ms)),
        "rss_mib": median(of(|r| r.2)),
        "threads": of(|r| r.1).into_iter().fold(0.0, f64::max),
        "socket_errors": of(|r| r.0.socket_errors).iter().sum::<f64>(),
        "failed": of(|r| r.0.failed).iter().sum::<f64>(),
        "requests": of(|r| r.0.requests).iter().sum::<f64>(),
    })
}

/// The script stacks of a Switchboard process now, from /proc/PID/smaps: the read-write mappings of
/// exactly one stack's size, their count, and the memory their touched pages hold (in KiB, the most
/// any one holds: its high-water mark).
fn fiber_stacks(pid: u32) -> Value {
    const STACK_KIB: u64 = 4 << 10;
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let (mut count, mut total, mut most, mut size) = (0_u64, 0_u64, 0_u64, 0_u64);
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next().and_then(|v| v.parse::<u64>().ok())) {
            (Some("Size:"), Some(kib)) => size = kib,
            (Some("Rss:"), Some(kib)) if size == STACK_KIB => {
                (count, total, most) = (count + 1, total + kib, most.max(kib));
            }
            _ => {}
        }
    }
    json!({ "count": count, "rss_mib": total as f64 / 1024.0, "high_water_kib": most,
            "mean_kib": if count > 0 { total as f64 / count as f64 } else { 0.0 } })
}

/// The hot path's targets, side by side in one run: echo against the plain axum handler with server and
/// load generator pinned to a core each and with neither pinned, and a proxied API call to a fast
/// upstream against the plain async proxy. Each row: medians of interleaved rounds, the lowest and
/// highest round, and the server CPU per request of both sides, measured the same way.
fn hot(dir: &Path, report: &mut Vec<Value>) {
    let echo = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/echo.rhai")).unwrap();
    let upstream = own("--serve-upstream", &[]);
    let boot = boot_source(&dir.join("boot-hot"), &[("echo".into(), echo), ("gateway".into(), GATEWAY.into())]);
    let env = [("GATEWAY_BASE_URL", upstream.base.as_str()), ("GATEWAY_TOKEN", "tok_bench")];
    let mut row = |case: &str, target: f64, (base, ours): (Load, Load)| {
        report.push(json!({
            "case": case, "target": target,
            "baseline": load_json(&base, 0.0, 0.0), "switchboard": load_json(&ours, 0.0, 0.0),
            "throughput_ratio": ours.rps / base.rps,
            "cpu_ratio": ours.cpu_us_per_request / base.cpu_us_per_request,
        }));
    };
    for (case, pin) in [("echo, pinned", Pin::Cores), ("echo, unpinned", Pin::Free)] {
        let ours = switchboard_pinned(&dir.join(format!("data-hot-{case}")), Some(&boot), &env, &[], pin);
        let base = own_pinned("--serve-baseline", &[], pin);
        let shape = Shape { pin, ..SMALL };
        let urls = (format!("{}/echo/", base.base), format!("{}/echo/", ours.base));
        row(case, 0.8, interleaved((&base, &urls.0), (&ours, &urls.1), None, shape, ROUNDS));
    }
    let ours = switchboard(&dir.join("data-hot-gateway"), Some(&boot), &env);
    let proxy = own("--serve-proxy", &[&upstream.base]);
    let urls = (format!("{}/ok", proxy.base), format!("{}/gateway/ok", ours.base));
    row("proxied API call, fast upstream", 0.8, interleaved((&proxy, &urls.0), (&ours, &urls.1), None, SMALL, ROUNDS));
}

/// Invocation records on (the default) against the same build with them off (`--records-max 0`), side
/// by side: echo, and a proxied API call to a fast local upstream. Metrics are counted in both.
fn observe(dir: &Path, report: &mut Vec<Value>) {
    let upstream = own("--serve-upstream", &[]);
    let echo = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/echo.rhai")).unwrap();
    let boot = boot_source(&dir.join("boot-observe"), &[("echo".into(), echo), ("gateway".into(), GATEWAY.into())]);
    let env = [("GATEWAY_BASE_URL", upstream.base.as_str()), ("GATEWAY_TOKEN", "tok_bench")];
    let on = switchboard(&dir.join("data-observe-on"), Some(&boot), &env);
    let off = switchboard_with(&dir.join("data-observe-off"), Some(&boot), &env, &["--records-max", "0"]);
    for (name, path) in [("echo, GET", "/echo/"), ("proxied API call, fast upstream", "/gateway/ok")] {
        let (without, with) = interleaved(
            (&off, &format!("{}{path}", off.base)),
            (&on, &format!("{}{path}", on.base)),
            None,
            SMALL,
            ROUNDS,
        );
        report.push(json!({
            "case": name,
            "records_off": load_json(&without, 0.0, 0.0),
            "records_on": load_json(&with, 0.0, 0.0),
            "throughput_ratio": with.rps / without.rps,
        }));
    }
}

fn reload(dir: &Path, report: &mut Value) {
    let boot = boot_source(&dir.join("boot-reload"), &[("reloaded".into(), versioned(0))]);
    let ours = switchboard(&dir.join("data-reload"), Some(&boot), &[]);
    let client = reqwest::blocking::Client::new();
    let url = format!("{}/reloaded/", ours.base);
    let file = dir.join("boot-reload/scripts/reloaded.rhai");
    let mut latencies = Vec::new();
    for n in 1..=50 {
        std::thread::sleep(Duration::from_millis(50));
        let expected = format!("v{n}");
        let started = Instant::now();
        std::fs::write(&file, versioned(n)).unwrap();
        loop {
            if client.get(&url).send().unwrap().text().unwrap() == expected {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "version {n} was never served");
        }
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    *report =
        json!({ "edits": 50, "p50_ms": percentile(latencies.clone(), 0.5), "p99_ms": percentile(latencies, 0.99) });
}

/// Start → `/health` 200, and RSS then, for a data directory (fresh or already populated).
fn start_up(data: &Path, boot: Option<&Path>, env: &[(&str, &str)]) -> (f64, f64, Process) {
    let started = Instant::now();
    let process = switchboard(data, boot, env);
    let health = format!("{}/health", process.base);
    while !ureq_get(&health).contains("\"ok\"") {
        std::thread::sleep(Duration::from_micros(200));
    }
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    (elapsed, rss_mib(process.child.id()), process)
}

/// How many servers the embedded default image holds (it is built from this source).
fn default_image_servers() -> usize {
    let source = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/boot/default.boot.json"));
    serde_json::from_str::<Value>(source).ok().and_then(|v| v["servers"].as_array().map(Vec::len)).unwrap_or(0)
}

fn cold_start(dir: &Path, report: &mut Value) {
    let (mut fresh, mut warm, mut rss) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..5 {
        let data = dir.join(format!("cold-{round}"));
        let (ms, _, process) = start_up(&data, None, &[]);
        fresh.push(ms);
        drop(process);
        let (ms, mib, process) = start_up(&data, None, &[]);
        warm.push(ms);
        rss.push(mib);
        drop(process);
    }
    *report = json!({
        "servers": default_image_servers(),
        "fresh_data_dir_ms": median(fresh),
        "existing_data_dir_ms": median(warm),
        "rss_mib": median(rss),
    });
}

fn growth(dir: &Path, report: &mut Vec<Value>) {
    let client = reqwest::blocking::Client::new();
    for count in [10usize, 100, 1_000, 10_000] {
        let servers: Vec<(String, String)> = (0..count)
            .map(|i| (format!("s{i}"), format!("const META = #{{ title: \"S{i}\", description: \"synthetic\" }};\nfn main(endpoint, method, data) {{ #{{ server: {i}, endpoint: endpoint }} }}\n")))
            .collect();
        let source = boot_source(&dir.join(format!("grow-{count}")), &servers);
        let image = dir.join(format!("grow-{count}.image"));
        let data = dir.join(format!("grow-data-{count}"));
        let pack = Command::new(switchboard_bin())
            .args(["boot", "pack", source.to_str().unwrap(), "-o", image.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(pack.status.success(), "{}", String::from_utf8_lossy(&pack.stderr));
        let started = Instant::now();
        let import = Command::new(switchboard_bin())
            .args(["boot", "import", image.to_str().unwrap()])
            .env("SWITCHBOARD_DATA", &data)
            .output()
            .unwrap();
        assert!(import.status.success(), "{}", String::from_utf8_lossy(&import.stderr));
        let import_ms = started.elapsed().as_secs_f64() * 1000.0;
        let (boot_ms, rss, process) = start_up(&data, None, &[]);
        let url = format!("{}/s{}/", process.base, count / 2);
        sequential(&client, &url, 200);
        let call_ms = median(sequential(&client, &url, 2000));
        report.push(
            json!({ "servers": count, "import_ms": import_ms, "boot_ms": boot_ms, "rss_mib": rss, "call_ms": call_ms }),
        );
        drop(process);
    }
}

/// GitHub's REST description (`@octokit/openapi`, installed by `scripts/install-peers`) imported by the
/// CLI, beside the baseline of a process that only reads and hashes the same file (`switchboard cid`);
/// then the cost of serving it: start-up and a call of another server, with and without it bound, and a
/// call of the imported server itself beside the same call of the catalog's `github` (both to the local
/// upstream).
fn openapi(dir: &Path, report: &mut Value) {
    let spec = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".peers/node/node_modules/@octokit/openapi/generated/api.github.com.json");
    if !spec.exists() {
        eprintln!("skipped: {} is missing (scripts/install-peers)", spec.display());
        return;
    }
    let run = |args: &[&str], data: &Path| {
        let started = Instant::now();
        let output = Command::new(switchboard_bin()).args(args).env("SWITCHBOARD_DATA", data).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        started.elapsed().as_secs_f64() * 1000.0
    };
    let spec = spec.to_str().unwrap();
    let (mut read, mut import) = (Vec::new(), Vec::new());
    let script = dir.join("github-openapi.rhai");
    for _ in 0..5 {
        read.push(run(&["cid", spec], &dir.join("no-data")));
        import.push(run(
            &["import-openapi", spec, "--name", "gh", "--out", script.to_str().unwrap()],
            &dir.join("no-data"),
        ));
    }
    let client = reqwest::blocking::Client::new();
    let upstream = own("--serve-upstream", &[]);
    let env = [("GH_BASE_URL", upstream.base.as_str()), ("GITHUB_BASE_URL", &upstream.base), ("GITHUB_TOKEN", "bench")];
    let call_ms = |url: String, count: usize| {
        sequential(&client, &url, count / 10);
        median(sequential(&client, &url, count))
    };
    let mut serving = Vec::new();
    for with in [false, true] {
        let data = dir.join(format!("openapi-{with}"));
        run(&["servers"], &data);
        if with {
            run(&["import-openapi", spec, "--name", "gh", "--apply"], &data);
        }
        let (boot_ms, rss, process) = start_up(&data, None, &env);
        serving.push(json!({ "with_github": with, "boot_ms": boot_ms, "rss_mib": rss,
                             "echo_call_ms": call_ms(format!("{}/echo/hi", process.base), 2000),
                             "catalog_call_ms": call_ms(format!("{}/github/zen", process.base), 500),
                             "imported_call_ms": with.then(|| call_ms(format!("{}/gh/zen", process.base), 500)) }));
        drop(process);
    }
    *report = json!({
        "operations": std::fs::read_to_string(&script).unwrap().matches("\"method\": ").count(),
        "script_bytes": std::fs::metadata(&script).unwrap().len(),
        "read_and_hash_ms": median(read),
        "import_ms": median(import),
        "serving": serving,
    });
}

/// First contentful paint of the console's server list (the default image) in Debian's Chromium, as
/// the browser test measures it (its `paint` mode), beside the sign-in page's: the smallest console page,
/// the browser's own floor on this machine. The server's answer time for both is measured too, so the
/// browser's share and the server's can be told apart.
fn console_paint(dir: &Path, report: &mut Value) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".peers/venv/bin/python");
    if !python.exists() || !Path::new("/usr/bin/chromium").exists() {
        eprintln!("skipped: Playwright in .peers/venv or /usr/bin/chromium is missing (scripts/install-peers)");
        return;
    }
    let token = "bench-console-token";
    let process = switchboard(&dir.join("console"), None, &[("SWITCHBOARD_ADMIN_TOKEN", token)]);
    let client = reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let signed_in = client
        .post(format!("{}/ui/login", process.base))
        .header("origin", &process.base)
        .form(&[("token", token)])
        .send()
        .unwrap();
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let answer_ms = |path: &str| {
        let times: Vec<f64> = (0..40)
            .map(|_| {
                let started = Instant::now();
                let page = client.get(format!("{}{path}", process.base)).header("cookie", &cookie).send().unwrap();
                assert!(page.status().is_success(), "{path}: {}", page.status());
                page.bytes().unwrap();
                started.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        median(times)
    };
    let (list_ms, sign_in_ms) = (answer_ms("/ui"), answer_ms("/ui/login"));
    let shots = dir.join("console-shots");
    std::fs::create_dir_all(&shots).unwrap();
    let script = root.join("tests/console_browser.py");
    let output = Command::new(&python)
        .args([script.to_str().unwrap(), &process.base, token, shots.to_str().unwrap(), "paint"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let measured: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    *report = json!({
        "servers": default_image_servers(),
        "rows": measured["list"]["rows"],
        "list_bytes": measured["list"]["bytes"],
        "list_first_contentful_paint_ms": measured["list"]["first_contentful_paint_ms"],
        "sign_in_first_contentful_paint_ms": measured["list"]["sign_in_page_first_contentful_paint_ms"],
        "list_answer_ms": list_ms,
        "sign_in_answer_ms": sign_in_ms,
        "load_average_1m": load.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()),
    });
}

// ---------------------------------------------------------------------------------------------------

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let _ = rustls::crypto::ring::default_provider().install_default();
    if let Some(i) = args.iter().position(|a| a.starts_with("--serve-")) {
        let role = match args[i].as_str() {
            "--serve-upstream" => Role::Upstream,
            "--serve-proxy" => Role::Proxy(args[i + 2].clone()),
            _ => Role::Baseline,
        };
        return serve(args[i + 1].parse().unwrap(), role);
    }
    if args.iter().any(|a| a == "--list") {
        return; // `cargo bench -- --list` asks which benchmarks exist
    }
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (mut load, mut out, mut gate, mut reloaded, mut cold, mut grown, mut several) =
        (Vec::new(), Value::Null, Value::Null, Value::Null, Value::Null, Vec::new(), Value::Null);
    let (mut observed, mut hottest) = (Vec::new(), Vec::new());
    let mut imported = Value::Null;
    let mut painted = Value::Null;
    // `-- --only NAME` runs one scenario (hot, throughput, outbound, gateway, observe, reload, cold, growth,
    // openapi, instances, console).
    let only = args.iter().position(|a| a == "--only").and_then(|i| args.get(i + 1)).cloned();
    let wanted = |name: &str| only.as_deref().is_none_or(|only| only == name);
    if wanted("hot") {
        eprintln!("the hot path: echo pinned and unpinned, a proxied call to a fast upstream…");
        hot(dir.path(), &mut hottest);
    }
    if wanted("throughput") {
        eprintln!("throughput and latency ({ROUNDS} interleaved rounds of {SECONDS} s each)…");
        throughput(dir.path(), &mut load);
    }
    if wanted("outbound") {
        eprintln!("outbound calls…");
        outbound(dir.path(), &mut out);
    }
    if wanted("gateway") {
        eprintln!("gateway: a proxied API call against a plain async proxy…");
        gateway(dir.path(), &mut gate);
    }
    if wanted("observe") {
        eprintln!("invocation records on and off…");
        observe(dir.path(), &mut observed);
    }
    if wanted("reload") {
        eprintln!("hot reload…");
        reload(dir.path(), &mut reloaded);
    }
    if wanted("cold") {
        eprintln!("cold start…");
        cold_start(dir.path(), &mut cold);
    }
    if wanted("growth") {
        eprintln!("growth (10 to 10 000 servers)…");
        growth(dir.path(), &mut grown);
    }
    if wanted("openapi") {
        eprintln!("OpenAPI import of GitHub's REST description…");
        openapi(dir.path(), &mut imported);
    }
    if wanted("instances") {
        eprintln!("three instances on one PostgreSQL store…");
        instances::instances(dir.path(), &mut several);
    }
    if wanted("console") {
        eprintln!("first paint of the console's server list in Chromium…");
        console_paint(dir.path(), &mut painted);
    }

    let summary = json!({
        "machine": { "cores": cores(), "memory_gib": memory_gib() },
        "hot": hottest, "load": load, "outbound": out, "gateway": gate, "observe": observed, "hot_reload": reloaded, "cold_start": cold, "growth": grown,
        "openapi": imported, "instances": several, "console": painted, "duration_s": started.elapsed().as_secs(),
    });
    print_table(&summary);
    instances::print(&summary);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-summary.json");
    std::fs::write(&path, serde_json::to_string_pretty(&summary).unwrap()).unwrap();
    println!("\nsummary written to {}", path.display());
}

fn memory_gib() -> f64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib: f64 = info
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0 / 1024.0
}

/// How a waiting-clients case ran, as its row names it: pinned (the default) or not.
fn layout(case: &Value) -> &'static str {
    if case["pinned"] == false { ", unpinned" } else { "" }
}

fn print_table(summary: &Value) {
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let spread =
        |side: &Value| format!("{:.0} ({:.0}–{:.0})", f(&side["rps"]), f(&side["rps_low"]), f(&side["rps_high"]));
    if let Some(rows) = summary["hot"].as_array().filter(|rows| !rows.is_empty()) {
        println!(
            "\n| hot path | baseline req/s (low–high) | switchboard req/s (low–high) | ratio (target) | CPU µs/req baseline / switchboard | CPU ratio (≤ 1.3) |"
        );
        println!("|---|---|---|---|---|---|");
        for row in rows {
            let (b, s) = (&row["baseline"], &row["switchboard"]);
            println!(
                "| {} | {} | {} | {:.2} (≥ {}) | {:.1} / {:.1} | {:.2} |",
                row["case"].as_str().unwrap_or_default(),
                spread(b),
                spread(s),
                f(&row["throughput_ratio"]),
                row["target"],
                f(&b["cpu_us_per_request"]),
                f(&s["cpu_us_per_request"]),
                f(&row["cpu_ratio"]),
            );
        }
    }
    println!(
        "\n| case | baseline req/s | switchboard req/s | ratio (≥ 0.8) | baseline p50 / p99 ms | switchboard p50 / p99 ms | p99 ratio (≤ 2) | CPU µs/req baseline / switchboard |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for case in summary["load"].as_array().unwrap() {
        let (b, s) = (&case["baseline"], &case["switchboard"]);
        println!(
            "| {} | {:.0} | {:.0} | {:.2} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} | {:.1} / {:.1} |",
            case["case"].as_str().unwrap(),
            f(&b["rps"]),
            f(&s["rps"]),
            f(&case["throughput_ratio"]),
            f(&b["p50_ms"]),
            f(&b["p99_ms"]),
            f(&s["p50_ms"]),
            f(&s["p99_ms"]),
            f(&case["p99_ratio"]),
            f(&b["cpu_us_per_request"]),
            f(&s["cpu_us_per_request"]),
        );
    }
    let o = &summary["outbound"];
    println!("\n| outbound call | median ms |\n|---|---|");
    println!("| direct reqwest to the local upstream | {:.3} |", f(&o["direct_reqwest_ms"]));
    println!("| echo invocation | {:.3} |", f(&o["echo_invocation_ms"]));
    println!("| invocation of a script making that call | {:.3} |", f(&o["outbound_invocation_ms"]));
    println!("| added per outbound call (target ≤ 0.5) | {:.3} |", f(&o["added_per_call_ms"]));
    let g = &summary["gateway"];
    println!(
        "\n| proxied API call | plain proxy req/s | switchboard req/s | ratio | proxy p50 / p99 ms | switchboard p50 / p99 ms | proxy RSS MiB / threads | switchboard RSS MiB / threads |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let (p, s) = (&g["fast"]["proxy"], &g["fast"]["switchboard"]);
    println!(
        "| fast upstream, 32 clients (target ≥ 0.8) | {:.0} | {:.0} | {:.2} | {:.1} / {:.1} | {:.1} / {:.1} | | |",
        f(&p["rps"]),
        f(&s["rps"]),
        f(&g["fast"]["throughput_ratio"]),
        f(&p["p50_ms"]),
        f(&p["p99_ms"]),
        f(&s["p50_ms"]),
        f(&s["p99_ms"]),
    );
    for case in g["waiting"].as_array().into_iter().flatten() {
        let (p, s) = (&case["proxy"], &case["switchboard"]);
        println!(
            "| upstream answering after 1 s, {} clients{} (target ≥ 0.9, p50 ≤ 1 200 ms, RSS ≤ 2×) | {:.0} ({:.0}–{:.0}) | {:.0} ({:.0}–{:.0}) | {:.2} | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} / {:.0} | {:.1} / {:.0} ({:.2}×) |",
            case["clients"],
            layout(case),
            f(&p["rps"]),
            f(&p["rps_min"]),
            f(&p["rps_max"]),
            f(&s["rps"]),
            f(&s["rps_min"]),
            f(&s["rps_max"]),
            f(&case["throughput_ratio"]),
            f(&p["p50_ms"]),
            f(&p["p99_ms"]),
            f(&s["p50_ms"]),
            f(&s["p99_ms"]),
            f(&p["rss_mib"]),
            f(&p["threads"]),
            f(&s["rss_mib"]),
            f(&s["threads"]),
            f(&case["rss_ratio"]),
        );
    }
    println!(
        "\n| waiting clients | proxy / switchboard: errors (socket, non-2xx) in all rounds | script stacks midway | their RSS MiB | stack high-water KiB (mean) |\n|---|---|---|---|---|"
    );
    for case in g["waiting"].as_array().into_iter().flatten() {
        let (p, s, k) = (&case["proxy"], &case["switchboard"], &case["stacks"]);
        println!(
            "| {}{} | {:.0}, {:.0} / {:.0}, {:.0} | {:.0} | {:.1} | {:.0} ({:.1}) |",
            case["clients"],
            layout(case),
            f(&p["socket_errors"]),
            f(&p["failed"]),
            f(&s["socket_errors"]),
            f(&s["failed"]),
            f(&k["count"]),
            f(&k["rss_mib"]),
            f(&k["high_water_kib"]),
            f(&k["mean_kib"]),
        );
    }
    let fan = &g["fanout"];
    println!("\n| ten calls to an upstream answering after 50 ms, from one script | median ms |\n|---|---|");
    println!("| one after another (`http::get` in a loop) | {:.1} |", f(&fan["sequential_ms"]));
    println!("| at once (`http::parallel`) | {:.1} |", f(&fan["parallel_ms"]));
    println!(
        "\n| with invocation records on and off (target: within 3 %) | off req/s | on req/s | ratio | off p50 / p99 ms | on p50 / p99 ms |"
    );
    println!("|---|---|---|---|---|---|");
    for case in summary["observe"].as_array().unwrap() {
        let (off, on) = (&case["records_off"], &case["records_on"]);
        println!(
            "| {} | {:.0} | {:.0} | {:.3} | {:.2} / {:.2} | {:.2} / {:.2} |",
            case["case"].as_str().unwrap(),
            f(&off["rps"]),
            f(&on["rps"]),
            f(&case["throughput_ratio"]),
            f(&off["p50_ms"]),
            f(&off["p99_ms"]),
            f(&on["p50_ms"]),
            f(&on["p99_ms"]),
        );
    }
    let r = &summary["hot_reload"];
    println!("\n| hot reload, file written → new version served | ms |\n|---|---|");
    println!(
        "| p50 over {} edits (target ≤ 50) | {:.1} |\n| p99 | {:.1} |",
        r["edits"],
        f(&r["p50_ms"]),
        f(&r["p99_ms"])
    );
    let c = &summary["cold_start"];
    println!("\n| cold start, default image ({} servers) | |\n|---|---|", c["servers"]);
    println!("| start → /health 200, fresh data directory | {:.0} ms |", f(&c["fresh_data_dir_ms"]));
    println!(
        "| start → /health 200, existing data directory (target ≤ 200) | {:.0} ms |",
        f(&c["existing_data_dir_ms"])
    );
    println!("| RSS after start (target ≤ 50) | {:.1} MiB |", f(&c["rss_mib"]));
    let o = &summary["openapi"];
    if !o.is_null() {
        println!(
            "\n| GitHub's OpenAPI description ({} operations, a {} KiB script) | ms |\n|---|---|",
            o["operations"],
            o["script_bytes"].as_u64().unwrap_or(0) / 1024
        );
        println!("| baseline: a process reading and hashing the document | {:.0} |", f(&o["read_and_hash_ms"]));
        println!("| `import-openapi --out` (target ≤ 2 000) | {:.0} |", f(&o["import_ms"]));
        println!(
            "\n| default image | boot ms | RSS MiB | echo call ms | catalog `github` call ms | imported `gh` call ms |\n|---|---|---|---|---|---|"
        );
        for s in o["serving"].as_array().unwrap() {
            let name = if s["with_github"] == json!(true) { "with GitHub imported" } else { "alone" };
            let imported = s["imported_call_ms"].as_f64().map_or("—".to_owned(), |ms| format!("{ms:.3}"));
            println!(
                "| {name} | {:.0} | {:.1} | {:.3} | {:.3} | {imported} |",
                f(&s["boot_ms"]),
                f(&s["rss_mib"]),
                f(&s["echo_call_ms"]),
                f(&s["catalog_call_ms"])
            );
        }
    }
    let c = &summary["console"];
    if !c.is_null() {
        println!(
            "\n| console, `/ui` with {} servers ({} bytes), Chromium, 1-min load {} | first contentful paint ms | server answer ms |\n|---|---|---|",
            c["rows"], c["list_bytes"], c["load_average_1m"]
        );
        println!(
            "| baseline: the sign-in page | {:.1} | {:.2} |",
            f(&c["sign_in_first_contentful_paint_ms"]),
            f(&c["sign_in_answer_ms"])
        );
        println!(
            "| the server list (target ≤ 100) | {:.1} | {:.2} |",
            f(&c["list_first_contentful_paint_ms"]),
            f(&c["list_answer_ms"])
        );
    }
    println!("\n| servers | import ms | boot ms | RSS MiB | per-call ms |\n|---|---|---|---|---|");
    for g in summary["growth"].as_array().unwrap_or(&Vec::new()) {
        println!(
            "| {} | {:.0} | {:.0} | {:.1} | {:.3} |",
            g["servers"],
            f(&g["import_ms"]),
            f(&g["boot_ms"]),
            f(&g["rss_mib"]),
            f(&g["call_ms"])
        );
    }
}
