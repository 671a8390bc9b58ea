//! Test support: a real `switchboard serve` process on an ephemeral 127.0.0.1 port, with its own data
//! directory and boot source, killed when the test ends.

#![allow(dead_code)]

pub mod postgres;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

/// A minimal valid script whose `main` is `body`.
pub fn script(title: &str, body: &str) -> String {
    format!(
        "const META = #{{ title: \"{title}\", description: \"test server\" }};\nfn main(endpoint, method, data) {{\n{body}\n}}\n"
    )
}

/// A mock upstream answering every request with 200 `{"ok": true}`; it records what it receives.
pub async fn ok_upstream() -> wiremock::MockServer {
    let mock = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(serde_json::json!({ "ok": true })))
        .mount(&mock)
        .await;
    mock
}

/// Runs the CLI on the data directory `data`, writing `stdin` to it.
pub fn cli(data: &Path, args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env("SWITCHBOARD_DATA", data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("switchboard runs");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

pub struct Server {
    child: Child,
    pub base: String,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
    logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

/// Builds a boot directory: `boot.json` naming each script, `scripts/<name>.rhai`.
pub fn boot_dir(dir: &Path, servers: &[(&str, &str)]) -> PathBuf {
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    let entries: Vec<serde_json::Value> = servers
        .iter()
        .map(|(name, source)| {
            std::fs::write(dir.join(format!("scripts/{name}.rhai")), source).unwrap();
            serde_json::json!({ "name": name, "script": format!("scripts/{name}.rhai"), "enabled": true })
        })
        .collect();
    let boot = dir.join("boot.json");
    std::fs::write(&boot, serde_json::to_string_pretty(&serde_json::json!({ "servers": entries })).unwrap()).unwrap();
    boot
}

impl Server {
    /// Serves the embedded default image from a fresh data directory.
    pub fn start_default(extra: &[&str], env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--data", data.to_str().unwrap()];
        args.extend_from_slice(extra);
        Server::spawn(dir, &args, env)
    }

    /// Serves `echo` plus the given servers from a boot source in a fresh directory.
    pub fn start(servers: &[(&str, &str)]) -> Server {
        Server::start_with(servers, &[], &[])
    }

    pub fn start_with(servers: &[(&str, &str)], extra: &[&str], env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let echo = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/echo.rhai")).unwrap();
        let mut all = vec![("echo", echo.as_str())];
        all.extend_from_slice(servers);
        let boot = boot_dir(&dir.path().join("boot"), &all);
        let data = dir.path().join("data");
        let mut args = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data",
            data.to_str().unwrap(),
            "--boot",
            boot.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        Server::spawn(dir, &args, env)
    }

    /// Serves with `args` in `dir` (the working directory, where an implicit boot source is looked for).
    pub fn spawn(dir: tempfile::TempDir, args: &[&str], env: &[(&str, &str)]) -> Server {
        Server::spawn_under(&[], dir, args, env)
    }

    /// [`spawn`](Self::spawn) through a program that runs it (`prlimit --nofile=… --`), which must
    /// execute it in its own place so that the process id stays the server's.
    pub fn spawn_under(under: &[&str], dir: tempfile::TempDir, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut command = match under.split_first() {
            Some((program, before)) => {
                let mut command = Command::new(program);
                command.args(before).arg(BIN);
                command
            }
            None => Command::new(BIN),
        };
        command.args(args).current_dir(dir.path()).stdout(Stdio::piped()).stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("switchboard starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let Some(base) = line.trim().strip_prefix("switchboard listening on ") else {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            panic!("switchboard did not start: {line}{stderr}");
        };
        let base = base.to_string();
        // Keep draining stderr so that logging never blocks the server; keep it for tests that read it.
        let stderr = child.stderr.take().unwrap();
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("SWITCHBOARD_TEST_LOGS").is_some() {
                    eprintln!("[server] {line}");
                }
                sink.lock().unwrap().push(line);
            }
        });
        let _ = rustls::crypto::ring::default_provider().install_default();
        let args = args.iter().map(|a| a.to_string()).collect();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Server { child, base, dir, client: reqwest::Client::new(), logs, args, env }
    }

    /// Stops the server (killed, as a crash would); `restart` starts it again.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks the server to stop (SIGTERM, as a service manager does) and waits until it has.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: a plain kill(2) of the child this value owns and has not waited for yet.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap()
    }

    /// Stops the server and starts it again on the same directory, with the same arguments.
    pub fn restart(mut self) -> Server {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = tempfile::tempdir().unwrap();
        let kept = std::mem::replace(&mut self.dir, dir);
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Server::spawn(kept, &args, &env)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the server has logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// The data directory the server runs on.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The admin token the server generated into its data directory.
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("admin-token")).unwrap()
    }

    /// The server process's peak resident memory so far (VmHWM), in KiB, from /proc.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .unwrap()
            .trim()
            .trim_end_matches(" kB")
            .parse()
            .unwrap()
    }

    /// How many threads the server process has now, from /proc.
    pub fn threads(&self) -> usize {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status.lines().find_map(|line| line.strip_prefix("Threads:")).unwrap().trim().parse().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// A GET of `path` with the admin token.
    pub async fn admin_get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).bearer_auth(self.admin_token()).send().await.unwrap()
    }

    /// A POST of `body` (JSON-RPC) to /mcp, as a client of the 2025-06-18 revision sends it.
    pub fn mcp(&self, body: impl Into<reqwest::Body>) -> reqwest::RequestBuilder {
        self.client
            .post(self.url("/mcp"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            .body(body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The JSON body of a response, with its status.
pub async fn json(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, value)
}

/// Asserts an error response: its status and JSON `type`; returns the error object.
pub async fn expect_error(response: reqwest::Response, status: u16, kind: &str) -> serde_json::Value {
    let (actual, body) = json(response).await;
    assert_eq!((actual, body["error"]["type"].as_str()), (status, Some(kind)), "{body}");
    body["error"].clone()
}

/// `oauth2-mock-server` on a free loopback port, stopped when dropped.
pub struct MockAuthorizationServer {
    child: Child,
    pub base: String,
}

impl Drop for MockAuthorizationServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the npm peer, or says why it cannot (a failure under CI, where `.ci/run` installs it).
pub async fn mock_authorization_server() -> Option<MockAuthorizationServer> {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join(".peers/node/node_modules/.bin/oauth2-mock-server");
    if !bin.exists() {
        let reason = format!("{} is missing: run scripts/install-peers", bin.display());
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{reason}");
        eprintln!("skipped: {reason}");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(bin)
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let peer = MockAuthorizationServer { child, base: format!("http://127.0.0.1:{port}") };
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Some(peer);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("oauth2-mock-server did not listen on 127.0.0.1:{port}");
}

/// The peers' Python, once it imports `module` and every file of `also` exists; `None` when one is
/// missing outside CI (where a missing peer fails the test instead).
pub fn python_with(module: &str, also: &[&str]) -> Option<std::path::PathBuf> {
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".peers/venv/bin/python");
    let imports = std::process::Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|output| output.status.success());
    let ready = imports && also.iter().all(|file| std::path::Path::new(file).exists());
    match (ready, std::env::var("CI").as_deref()) {
        (true, _) => Some(python),
        (false, Ok("true")) => {
            panic!("peer missing: Python {module} or one of {also:?}; run .ci/run or scripts/install-peers")
        }
        (false, _) => {
            eprintln!("skipped: Python {module} or one of {also:?} is missing (run scripts/install-peers)");
            None
        }
    }
}

/// The official Python client (PyPI `mcp`, installed by `scripts/install-peers`).
pub fn python_mcp_client() -> Option<std::path::PathBuf> {
    python_with("mcp", &[])
}
