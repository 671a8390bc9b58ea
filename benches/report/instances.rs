//! Several instances on one PostgreSQL store (the machine's, 127.0.0.1:5432, or
//! `$SWITCHBOARD_TEST_POSTGRES`): how long an edit through one instance takes to be served by the two
//! others, echo throughput with the PostgreSQL store side by side with SQLite's (the hot path reads
//! memory either way), and the time an instance takes to start against a store of 10 000 servers.
//! Each database is made for the run and dropped after it.

use super::*;

const ADMIN: &str = "bench-admin-token";
const MASTER_KEY: &str = "4f1c2b3a5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708";

/// A database made for the run, dropped with the value.
struct Database {
    name: String,
    url: String,
}

fn server() -> String {
    std::env::var("SWITCHBOARD_TEST_POSTGRES").unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres".into())
}

/// Runs `sql` on the server's maintenance database, on a runtime of its own.
fn admin(sql: String) -> Result<(), tokio_postgres::Error> {
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    tokio.block_on(async {
        let (client, connection) =
            tokio_postgres::connect(&format!("{} dbname=postgres", server()), tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        client.batch_execute(&sql).await
    })
}

impl Database {
    fn fresh(purpose: &str) -> Option<Database> {
        let name = format!("switchboard_bench_{purpose}_{}", std::process::id());
        let _ = admin(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        if let Err(error) = admin(format!("CREATE DATABASE {name}")) {
            eprintln!("  skipped: no PostgreSQL ({error})");
            return None;
        }
        let config: tokio_postgres::Config = server().parse().unwrap();
        let host = match &config.get_hosts()[0] {
            tokio_postgres::config::Host::Tcp(host) => host.clone(),
            other => panic!("a TCP host is needed, not {other:?}"),
        };
        let (port, user) =
            (config.get_ports().first().copied().unwrap_or(5432), config.get_user().unwrap_or("postgres"));
        Some(Database { url: format!("postgres://{user}@{host}:{port}/{name}"), name })
    }

    fn env(&self) -> [(&str, &str); 3] {
        [("SWITCHBOARD_STORE", &self.url), ("SWITCHBOARD_ADMIN_TOKEN", ADMIN), ("SWITCHBOARD_MASTER_KEY", MASTER_KEY)]
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = admin(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

/// Milliseconds from each of 100 edits through the first instance until both others serve it.
fn propagation(cluster: &[Process]) -> Vec<f64> {
    let client = reqwest::blocking::Client::new();
    let mut latencies = Vec::new();
    for n in 0..100 {
        let expected = format!("v{n}");
        let started = Instant::now();
        let put = client.put(format!("{}/api/servers/edited", cluster[0].base)).bearer_auth(ADMIN).body(versioned(n));
        assert!(put.send().unwrap().status().is_success(), "edit {n} was refused");
        for other in &cluster[1..] {
            let url = format!("{}/edited/", other.base);
            while client.get(&url).send().unwrap().text().unwrap() != expected {
                assert!(started.elapsed() < Duration::from_secs(10), "version {n} never reached {}", other.base);
            }
        }
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    latencies
}

/// Start → `/health` 200 of an instance on a store that holds 10 000 servers, imported beforehand.
fn start_on_10_000(dir: &Path) -> Option<f64> {
    let database = Database::fresh("start")?;
    let servers: Vec<(String, String)> = (0..10_000).map(|i| (format!("s{i}"), versioned(i))).collect();
    let source = boot_source(&dir.join("instances-10000"), &servers);
    let image = dir.join("instances-10000.image");
    let pack = Command::new(switchboard_bin())
        .args(["boot", "pack", source.to_str().unwrap(), "-o", image.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(pack.status.success(), "{}", String::from_utf8_lossy(&pack.stderr));
    let import = Command::new(switchboard_bin())
        .args(["boot", "import", image.to_str().unwrap()])
        .env("SWITCHBOARD_DATA", dir.join("instances-importer"))
        .envs(database.env())
        .output()
        .unwrap();
    assert!(import.status.success(), "{}", String::from_utf8_lossy(&import.stderr));
    let (ms, _, process) = start_up(&dir.join("instances-starter"), None, &database.env());
    drop(process);
    Some(ms)
}

pub(super) fn instances(dir: &Path, report: &mut Value) {
    let Some(database) = Database::fresh("cluster") else { return };
    let cluster: Vec<Process> =
        (0..3).map(|i| switchboard(&dir.join(format!("instance-{i}")), None, &database.env())).collect();
    let latencies = propagation(&cluster);
    let sqlite = switchboard(&dir.join("instances-sqlite"), None, &[]);
    let (lite, pg) = side_by_side(&sqlite, &cluster[1], "/echo/bench", None);
    drop(cluster);
    drop(database);
    *report = json!({
        "propagation": { "edits": 100, "p50_ms": percentile(latencies.clone(), 0.5), "p99_ms": percentile(latencies, 0.99) },
        "echo": { "sqlite": load_json(&lite, f64::NAN, f64::NAN), "postgres": load_json(&pg, f64::NAN, f64::NAN), "ratio": pg.rps / lite.rps },
        "start_10000_servers_ms": start_on_10_000(dir),
    });
}

pub(super) fn print(summary: &Value) {
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let i = &summary["instances"];
    if i.is_null() {
        return;
    }
    println!("\n| three instances on one PostgreSQL store | |\n|---|---|");
    let p = &i["propagation"];
    println!(
        "| edit through one → served by the two others, p50 / p99 over 100 edits (target p99 ≤ 500) | {:.1} / {:.1} ms |",
        f(&p["p50_ms"]),
        f(&p["p99_ms"])
    );
    let e = &i["echo"];
    println!(
        "| echo req/s, SQLite store / PostgreSQL store (ratio, target 1.0) | {:.0} / {:.0} ({:.2}) |",
        f(&e["sqlite"]["rps"]),
        f(&e["postgres"]["rps"]),
        f(&e["ratio"])
    );
    println!("| start → /health 200 against 10 000 servers | {:.0} ms |", f(&i["start_10000_servers_ms"]));
}
