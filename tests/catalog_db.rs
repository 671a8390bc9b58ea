//! The catalog's database servers (`postgresql`, `mysql`) against the machine's real PostgreSQL and
//! MariaDB: `/query` and `/execute` with bound parameters, the read-only mode, the statement deadline,
//! a missing secret and an unreachable server — each through the default boot image over HTTP.

mod common;

use common::{Server, json};
use serde_json::{Value, json};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// One database server of the catalog and how to reach the local test database.
struct Target {
    server: &'static str,
    prefix: &'static str,
    address: &'static str,
    user: &'static str,
    /// A placeholder in the dialect, by position.
    param: fn(usize) -> String,
    sleep: &'static str,
}

const TARGETS: [Target; 2] = [
    Target {
        server: "postgresql",
        prefix: "POSTGRESQL",
        address: "127.0.0.1:5432",
        user: "postgres",
        param: |n| format!("${n}"),
        sleep: "SELECT 1 AS done FROM pg_sleep(5)",
    },
    Target {
        server: "mysql",
        prefix: "MYSQL",
        address: "127.0.0.1:3306",
        user: "root",
        param: |_| "?".into(),
        sleep: "SELECT SLEEP(3)",
    },
];

/// Whether the database is there; under CI it must be.
fn reachable(target: &Target) -> bool {
    let reachable = std::net::TcpStream::connect(target.address).is_ok();
    assert!(reachable || std::env::var("CI").as_deref() != Ok("true"), "no database on {} under CI", target.address);
    if !reachable {
        eprintln!("SKIPPED: no database server on {}", target.address);
    }
    reachable
}

/// The default image with the target's secrets set (and the host replaced by `host` when given).
fn start(target: &Target, host: Option<&str>, read_only: bool) -> Server {
    start_image(target, "default.boot.json", host, read_only)
}

fn start_image(target: &Target, image: &str, host: Option<&str>, read_only: bool) -> Server {
    let env = [
        (format!("{}_HOST", target.prefix), host.unwrap_or(target.address).to_owned()),
        (format!("{}_USER", target.prefix), target.user.to_owned()),
        (format!("{}_DATABASE", target.prefix), "test".to_owned()),
        (format!("{}_READ_ONLY", target.prefix), read_only.to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Server::start_default(&["--boot", &format!("{ROOT}/boot/{image}")], &env)
}

async fn sql(server: &Server, name: &str, endpoint: &str, sql: &str, params: Value) -> (u16, Value) {
    let body = json!({"endpoint": endpoint, "method": "POST", "data": {"sql": sql, "params": params}});
    json(server.client.post(server.url(&format!("/{name}"))).json(&body).send().await.unwrap()).await
}

#[tokio::test]
async fn queries_answer_rows_and_statements_the_rows_changed_with_bound_parameters() {
    for target in TARGETS.iter().filter(|t| reachable(t)) {
        let (server, name) = (start(target, None, false), target.server);
        let table = format!("catalog_{}_{}", name, std::process::id());
        let create = format!("CREATE TABLE {table} (id INT, name VARCHAR(64))");
        assert_eq!(sql(&server, name, "/execute", &create, json!([])).await.0, 200, "{name}");
        let insert = format!("INSERT INTO {table} VALUES ({}, {})", (target.param)(1), (target.param)(2));
        let evil = "x'); DROP TABLE users; --";
        assert_eq!(sql(&server, name, "/execute", &insert, json!([1, evil])).await, (200, json!(1)), "{name}");
        assert_eq!(sql(&server, name, "/execute", &insert, json!([2, "Ada"])).await, (200, json!(1)), "{name}");
        let select = format!("SELECT id, name FROM {table} WHERE name = {} ORDER BY id", (target.param)(1));
        let (status, rows) = sql(&server, name, "/query", &select, json!([evil])).await;
        assert_eq!((status, rows), (200, json!([{"id": 1, "name": evil}])), "{name}");
        let update = format!("UPDATE {table} SET name = 'x' WHERE id > {}", (target.param)(1));
        assert_eq!(sql(&server, name, "/execute", &update, json!([0])).await, (200, json!(2)), "{name}");
        let (status, body) = sql(&server, name, "/other", "SELECT 1", json!([])).await;
        assert!(status == 500 && body["error"]["message"].as_str().unwrap().contains("/query"), "{name}: {body}");
        assert_eq!(sql(&server, name, "/execute", &format!("DROP TABLE {table}"), json!([])).await.0, 200);
    }
}

#[tokio::test]
async fn the_read_only_mode_refuses_writes_and_ddl_at_the_database() {
    for target in TARGETS.iter().filter(|t| reachable(t)) {
        let name = target.server;
        let (writer, reader) = (start(target, None, false), start(target, None, true));
        let table = format!("catalog_ro_{}_{}", name, std::process::id());
        let create = format!("CREATE TABLE {table} (id INT)");
        assert_eq!(sql(&writer, name, "/execute", &create, json!([])).await.0, 200, "{name}");
        let insert = format!("INSERT INTO {table} VALUES (1)");
        let (status, body) = sql(&reader, name, "/execute", &insert, json!([])).await;
        assert!(status == 500 && body["error"]["message"].as_str().unwrap().contains("read-only"), "{name}: {body}");
        // Writes and DDL smuggled through /query are refused by the database itself.
        for statement in [insert.clone(), format!("DROP TABLE {table}"), format!("CREATE TABLE {table}_x (id INT)")] {
            let (status, body) = sql(&reader, name, "/query", &statement, json!([])).await;
            assert_eq!(status, 500, "{name}: {statement} was not refused: {body}");
        }
        let count = format!("SELECT COUNT(*) AS n FROM {table}");
        let (status, rows) = sql(&reader, name, "/query", &count, json!([])).await;
        assert_eq!((status, rows[0]["n"].as_i64()), (200, Some(0)), "{name}: {rows}");
        // The writable server still writes: the read-only mode stays with its own server.
        assert_eq!(sql(&writer, name, "/execute", &insert, json!([])).await, (200, json!(1)), "{name}");
        assert_eq!(sql(&writer, name, "/execute", &format!("DROP TABLE {table}"), json!([])).await.0, 200);
        let (status, _) = sql(&writer, name, "/query", &format!("SELECT * FROM {table}_x"), json!([])).await;
        assert_eq!(status, 500, "{name}: the DDL through /query created a table");
    }
}

#[tokio::test]
async fn a_statement_stops_at_the_invocation_deadline() {
    for target in TARGETS.iter().filter(|t| reachable(t)) {
        let (server, name) = (start(target, None, false), target.server);
        let data = json!({"sql": target.sleep, "params": []});
        let body = json!({"endpoint": "/query", "method": "POST", "data": data, "timeout_ms": 500});
        let request = server.client.post(server.url(&format!("/{name}"))).json(&body);
        let started = std::time::Instant::now();
        let (status, body) = json(request.send().await.unwrap()).await;
        assert_eq!((status, body["error"]["type"].as_str()), (504, Some("timeout")), "{name}: {body}");
        assert!(started.elapsed().as_millis() < 2500, "{name}: the statement ran on for {:?}", started.elapsed());
        // The pool is usable at once: the stopped statement left no connection busy or broken.
        let (status, rows) = sql(&server, name, "/query", "SELECT 1 AS one", json!([])).await;
        assert_eq!((status, rows), (200, json!([{"one": 1}])), "{name}");
    }
}

#[tokio::test]
async fn a_missing_secret_or_an_unreachable_database_is_the_documented_error() {
    let server = Server::start_default(&["--boot", &format!("{ROOT}/boot/default.boot.json")], &[]);
    for target in &TARGETS {
        let (status, body) = sql(&server, target.server, "/query", "SELECT 1", json!([])).await;
        assert_eq!((status, body["error"]["type"].as_str()), (424, Some("missing_secret")), "{body}");
        assert!(body["error"]["secret"].as_str().unwrap().starts_with(target.prefix), "{body}");
        // Port 9 (discard) on the loopback has nothing listening.
        let down = start(target, Some("127.0.0.1:9"), false);
        let (status, body) = sql(&down, target.server, "/query", "SELECT 1", json!([])).await;
        assert_eq!((status, body["error"]["type"].as_str()), (502, Some("upstream_unreachable")), "{body}");
    }
}

#[tokio::test]
async fn the_read_only_image_keeps_its_database_servers_read_only_whatever_the_environment_says() {
    for target in TARGETS.iter().filter(|t| reachable(t)) {
        let name = target.server;
        let server = start_image(target, "readonly.boot.json", None, false);
        let table = format!("catalog_image_{}_{}", name, std::process::id());
        let (status, body) = sql(&server, name, "/execute", &format!("CREATE TABLE {table} (id INT)"), json!([])).await;
        assert!(status == 500 && body["error"]["message"].as_str().unwrap().contains("read-only"), "{name}: {body}");
        let (status, body) = sql(&server, name, "/query", &format!("CREATE TABLE {table} (id INT)"), json!([])).await;
        assert_eq!(status, 500, "{name}: DDL through /query was not refused: {body}");
        let (status, rows) =
            sql(&server, name, "/query", &format!("SELECT {} + 0 AS n", (target.param)(1)), json!([7])).await;
        assert_eq!((status, rows[0]["n"].as_i64()), (200, Some(7)), "{name}: {rows}");
    }
}

#[test]
fn both_images_list_the_database_servers() {
    for file in ["default.boot.json", "readonly.boot.json"] {
        let text = std::fs::read_to_string(format!("{ROOT}/boot/{file}")).unwrap();
        let image: Value = serde_json::from_str(&text).unwrap();
        for target in &TARGETS {
            let entry = image["servers"].as_array().unwrap().iter().find(|e| e["name"] == target.server);
            let entry = entry.unwrap_or_else(|| panic!("{file} lacks {}", target.server));
            assert_eq!(entry["script"], format!("../scripts/{}.rhai", target.server), "{file}");
            assert_ne!(entry["enabled"], false, "{file}: {} is disabled", target.server);
        }
    }
}
