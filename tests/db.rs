//! The `db` module: each server's own SQLite database, and PostgreSQL and MySQL (MariaDB) by URL on
//! the local test servers. Every test goes through a script invoked over HTTP.

mod common;

use common::{Server, expect_error, json};
use serde_json::json;

/// A server that runs the SQL it is sent: `data` is `{sql, params}` or a list of them in a transaction.
const SQL: &str = r#"const META = #{ title: "SQL", description: "runs SQL", secrets: [],
    hosts: #{ postgres: "postgres://127.0.0.1:5432", mysql: "mysql://127.0.0.1:3306", down: "postgres://127.0.0.1:9" } };
fn reads(sql) { sql.starts_with("SELECT") || sql.starts_with("WITH") }
fn run(db, step) {
    if reads(step.sql) { db.query(step.sql, step.params) } else { db.execute(step.sql, step.params) }
}
fn main(endpoint, method, data) {
    let target = if endpoint == "/local" { () } else { db::connect(endpoint.sub_string(1)) };
    if type_of(data) == "array" {
        let work = |tx| { let out = []; for step in data { out.push(run(tx, step)); } if out.len() > 0 && data[-1].sql == "FAIL" { throw "rolled back"; } out };
        return if target == () { db::transaction(work) } else { target.transaction(work) };
    }
    if target == () {
        if reads(data.sql) { db::query(data.sql, data.params) } else { db::execute(data.sql, data.params) }
    } else {
        run(target, data)
    }
}"#;

async fn sql(server: &Server, target: &str, data: serde_json::Value) -> (u16, serde_json::Value) {
    let response = server
        .client
        .post(server.url("/sql"))
        .json(&json!({"endpoint": format!("/{target}"), "method": "POST", "data": data}))
        .send()
        .await
        .unwrap();
    json(response).await
}

fn step(sql: &str, params: serde_json::Value) -> serde_json::Value {
    json!({"sql": sql, "params": params})
}

#[tokio::test]
async fn the_server_database_keeps_rows_with_their_types() {
    let server = Server::start(&[("sql", SQL)]);
    let create = step("CREATE TABLE t (i INTEGER, f REAL, s TEXT, n TEXT, b BLOB)", json!([]));
    assert_eq!(sql(&server, "local", create).await, (200, json!(0)));
    let insert = step("INSERT INTO t VALUES (?, ?, ?, ?, ?)", json!([42, 2.5, "text", null, "raw"]));
    assert_eq!(sql(&server, "local", insert).await, (200, json!(1)));
    let named = step("INSERT INTO t (i, s) VALUES (:i, :s)", json!({"i": 7, "s": "named"}));
    assert_eq!(sql(&server, "local", named).await, (200, json!(1)));
    let (status, rows) = sql(&server, "local", step("SELECT * FROM t ORDER BY i DESC", json!([]))).await;
    assert_eq!(status, 200, "{rows}");
    assert_eq!(rows[0], json!({"i": 42, "f": 2.5, "s": "text", "n": null, "b": "raw"}));
    assert_eq!(rows[1]["s"], "named");
}

#[tokio::test]
async fn an_injection_attempt_is_stored_literally() {
    let server = Server::start(&[("sql", SQL)]);
    sql(&server, "local", step("CREATE TABLE users (name TEXT)", json!([]))).await;
    let evil = "x'); DROP TABLE users; --";
    assert_eq!(sql(&server, "local", step("INSERT INTO users VALUES (?)", json!([evil]))).await.0, 200);
    let (_, rows) = sql(&server, "local", step("SELECT name FROM users", json!([]))).await;
    assert_eq!(rows, json!([{"name": evil}]));
}

#[tokio::test]
async fn a_failed_transaction_leaves_nothing_and_a_good_one_commits() {
    let server = Server::start(&[("sql", SQL)]);
    sql(&server, "local", step("CREATE TABLE t (v INTEGER)", json!([]))).await;
    let failing = json!([step("INSERT INTO t VALUES (?)", json!([1])), step("FAIL", json!([]))]);
    let (status, body) = sql(&server, "local", failing).await;
    assert_eq!((status, body["error"]["type"].as_str()), (500, Some("script_error")), "{body}");
    assert_eq!(sql(&server, "local", step("SELECT count(*) AS n FROM t", json!([]))).await.1, json!([{"n": 0}]));
    let good = json!([step("INSERT INTO t VALUES (?)", json!([1])), step("INSERT INTO t VALUES (?)", json!([2]))]);
    assert_eq!(sql(&server, "local", good).await, (200, json!([1, 1])));
    assert_eq!(sql(&server, "local", step("SELECT count(*) AS n FROM t", json!([]))).await.1, json!([{"n": 2}]));
}

#[tokio::test]
async fn a_server_database_cannot_reach_other_files() {
    let server = Server::start(&[("sql", SQL)]);
    let store = server.data_dir().join("store.sqlite");
    let attach = step(&format!("ATTACH DATABASE '{}' AS store", store.display()), json!([]));
    let (status, body) = sql(&server, "local", attach).await;
    assert_eq!((status, body["error"]["type"].as_str()), (500, Some("script_error")), "{body}");
    let copy = server.dir.path().join("copy.sqlite");
    let (status, body) = sql(&server, "local", step(&format!("VACUUM INTO '{}'", copy.display()), json!([]))).await;
    assert_eq!(status, 500, "{body}");
    assert!(!copy.exists(), "VACUUM INTO wrote a file outside the server's database");
    // The runtime's own tables are not in the server's database.
    let (status, body) = sql(&server, "local", step("SELECT * FROM secrets", json!([]))).await;
    assert_eq!(status, 500, "{body}");
}

#[tokio::test]
async fn a_bad_statement_is_a_script_error_with_the_sql_message() {
    let server = Server::start(&[("sql", SQL)]);
    let error = expect_error(
        server
            .client
            .post(server.url("/sql"))
            .json(&json!({"endpoint": "/local", "data": step("SELEC nonsense", json!([]))}))
            .send()
            .await
            .unwrap(),
        500,
        "script_error",
    )
    .await;
    assert!(error["message"].as_str().unwrap().contains("SQL error"), "{error}");
}

const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";
const MYSQL: &str = "mysql://root@127.0.0.1:3306/test";

fn reachable(address: &str) -> bool {
    let reachable = std::net::TcpStream::connect(address).is_ok();
    if !reachable {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "no database server on {address} under CI");
        eprintln!("SKIPPED: no database server on {address} (.ci/run starts one)");
    }
    reachable
}

/// Runs each statement against `target` and checks that it is refused as too large, then that the
/// server's peak memory grew by less than `headroom_mib` over all of them: the result was counted while
/// it was read, not judged once it was whole.
async fn refused_while_read(server: &Server, target: &str, statements: &[&str], headroom_mib: u64) {
    let before = server.peak_rss_kib();
    for statement in statements {
        let (status, body) = sql(server, target, step(statement, json!([]))).await;
        assert_eq!((status, body["error"]["type"].as_str()), (500, Some("limit_exceeded")), "{statement}: {body}");
        assert_eq!(body["error"]["limit"], "size", "{statement}: {body}");
    }
    let grown = (server.peak_rss_kib() - before) / 1024;
    eprintln!("{target}: peak RSS grew by {grown} MiB over {} statements", statements.len());
    assert!(grown < headroom_mib, "peak RSS grew by {grown} MiB");
    // The connection is usable afterwards.
    let (status, body) = sql(server, target, step("SELECT 1 AS one", json!([]))).await;
    assert_eq!((status, body.clone()), (200, json!([{ "one": 1 }])), "{body}");
}

#[tokio::test]
async fn a_server_database_result_is_counted_while_it_is_read() {
    let server = Server::start(&[("sql", SQL)]);
    let statements = [
        "SELECT randomblob(400000000) AS b",
        "SELECT printf('%.*c', 400000000, 'x') AS s",
        "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r WHERE x < 3000000) SELECT x FROM r",
    ];
    refused_while_read(&server, "local", &statements, 200).await;
}

#[tokio::test]
async fn postgres_and_mysql_results_are_counted_while_they_are_read() {
    if !reachable("127.0.0.1:5432") || !reachable("127.0.0.1:3306") {
        return;
    }
    let server = Server::start(&[("sql", SQL)]);
    let postgres = ["SELECT generate_series(1, 3000000) AS x", "SELECT repeat('x', 20000000) AS s"];
    refused_while_read(&server, POSTGRES, &postgres, 200).await;
    // 3 M rows: MySQL and MariaDB cap recursion at 1 000 by default, so digits crossed with themselves.
    let digits = (1..10).fold("(SELECT 0 AS n".to_owned(), |sql, d| format!("{sql} UNION ALL SELECT {d}")) + ")";
    let joined: Vec<String> = ["a", "b", "c", "d", "e", "f"].iter().map(|t| format!("{digits} {t}")).collect();
    let mysql =
        format!("SELECT a.n FROM {}, (SELECT 0 AS n UNION ALL SELECT 1 UNION ALL SELECT 2) g", joined.join(", "));
    refused_while_read(&server, MYSQL, &[mysql.as_str()], 200).await;
}

#[tokio::test]
async fn postgres_binds_converts_and_rolls_back() {
    if !reachable("127.0.0.1:5432") {
        return;
    }
    let server = Server::start(&[("sql", SQL)]);
    let table = format!("sb_test_{}", std::process::id());
    let url = |_: ()| POSTGRES.to_string();
    let create = format!(
        "CREATE TABLE {table} (id int4, big int8, price numeric(10,2), ratio float8, name text, ok bool, at timestamptz, day date, doc jsonb, raw bytea)"
    );
    assert_eq!(sql(&server, &url(()), step(&create, json!([]))).await.0, 200);
    let evil = "x'); DROP TABLE users; --";
    let insert = step(
        &format!("INSERT INTO {table} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"),
        json!([1, 9007199254740993i64, "12.50", 0.25, evil, true, "2026-11-22T10:00:00Z", "2026-11-22", {"k": [1, 2]}, "bytes"]),
    );
    let (status, body) = sql(&server, &url(()), insert).await;
    assert_eq!((status, &body), (200, &json!(1)));
    let (status, rows) =
        sql(&server, &url(()), step(&format!("SELECT * FROM {table} WHERE id = $1"), json!([1]))).await;
    assert_eq!(status, 200, "{rows}");
    assert_eq!(
        rows,
        json!([{"id": 1, "big": 9007199254740993i64, "price": "12.50", "ratio": 0.25, "name": evil, "ok": true,
                "at": "2026-11-22T10:00:00Z", "day": "2026-11-22", "doc": {"k": [1, 2]}, "raw": "Ynl0ZXM="}])
    );
    let failing = json!([step(&format!("INSERT INTO {table} (id) VALUES ($1)"), json!([2])), step("FAIL", json!([]))]);
    assert_eq!(sql(&server, &url(()), failing).await.0, 500);
    let (_, rows) = sql(&server, &url(()), step(&format!("SELECT count(*)::int4 AS n FROM {table}"), json!([]))).await;
    assert_eq!(rows, json!([{"n": 1}]));
    sql(&server, &url(()), step(&format!("DROP TABLE {table}"), json!([]))).await;
}

#[tokio::test]
async fn mysql_binds_converts_and_rolls_back() {
    if !reachable("127.0.0.1:3306") {
        return;
    }
    let server = Server::start(&[("sql", SQL)]);
    let table = format!("sb_test_{}", std::process::id());
    let create = format!(
        "CREATE TABLE {table} (id INT, price DECIMAL(10,2), ratio DOUBLE, name VARCHAR(100), at DATETIME, day DATE, raw VARBINARY(10)) ENGINE=InnoDB"
    );
    assert_eq!(sql(&server, MYSQL, step(&create, json!([]))).await.0, 200);
    let evil = "x'); DROP TABLE users; --";
    let insert = step(
        &format!("INSERT INTO {table} VALUES (?, ?, ?, ?, ?, ?, ?)"),
        json!([1, "12.50", 0.25, evil, "2026-11-22 10:00:00", "2026-11-22", "bytes"]),
    );
    assert_eq!(sql(&server, MYSQL, insert).await, (200, json!(1)));
    let (status, rows) =
        sql(&server, MYSQL, step(&format!("SELECT * FROM {table} WHERE id = :id"), json!({"id": 1}))).await;
    assert_eq!(status, 200, "{rows}");
    assert_eq!(
        rows,
        json!([{"id": 1, "price": "12.50", "ratio": 0.25, "name": evil, "at": "2026-11-22T10:00:00Z", "day": "2026-11-22", "raw": "Ynl0ZXM="}])
    );
    let failing = json!([step(&format!("INSERT INTO {table} (id) VALUES (?)"), json!([2])), step("FAIL", json!([]))]);
    assert_eq!(sql(&server, MYSQL, failing).await.0, 500);
    let (_, rows) = sql(&server, MYSQL, step(&format!("SELECT count(*) AS n FROM {table}"), json!([]))).await;
    assert_eq!(rows, json!([{"n": 1}]));
    sql(&server, MYSQL, step(&format!("DROP TABLE {table}"), json!([]))).await;
}

#[tokio::test]
async fn an_unreachable_database_is_upstream_unreachable() {
    let server = Server::start(&[("sql", SQL)]);
    let (status, body) = sql(&server, "postgres://postgres@127.0.0.1:9/test", step("SELECT 1", json!([]))).await;
    assert_eq!((status, body["error"]["type"].as_str()), (502, Some("upstream_unreachable")), "{body}");
}

#[tokio::test]
async fn a_plain_statement_inside_its_own_transaction_fails_at_once() {
    let nested = r#"const META = #{ title: "Nested", description: "d" };
fn main(endpoint, method, data) {
    db::execute("CREATE TABLE IF NOT EXISTS t (v INTEGER)");
    if endpoint == "/count" { return db::query("SELECT count(*) AS n FROM t"); }
    db::transaction(|tx| { tx.execute("INSERT INTO t VALUES (1)", []); db::query("SELECT * FROM t") })
}"#;
    let server = Server::start(&[("nested", nested)]);
    let call = server.client.post(server.url("/nested")).json(&json!({"endpoint": "/"})).send().await.unwrap();
    let error = expect_error(call, 500, "script_error").await;
    assert!(error["message"].as_str().unwrap().contains("the handle its closure receives"), "{error}");
    // The failed transaction left nothing and released the database.
    let count = server.client.post(server.url("/nested")).json(&json!({"endpoint": "/count"})).send().await.unwrap();
    assert_eq!(json(count).await, (200, json!([{"n": 0}])));
}

#[tokio::test]
async fn many_scripts_waiting_on_postgres_hold_no_thread_each() {
    if !reachable("127.0.0.1:5432") {
        return;
    }
    let server = Server::start(&[("sql", SQL)]);
    let waits = 100;
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..waits {
        let (client, url) = (server.client.clone(), server.url("/sql"));
        let data = step("SELECT pg_sleep(0.2)::text AS slept", json!([]));
        calls.spawn(async move {
            let call = json!({"endpoint": format!("/{POSTGRES}"), "method": "POST", "data": data});
            json(client.post(url).json(&call).send().await.unwrap()).await
        });
    }
    // The most threads the process had while the scripts waited: far fewer than the waits.
    let mut most = 0;
    while !calls.is_empty() {
        most = most.max(server.threads());
        tokio::select! {
            Some(done) = calls.join_next() => assert_eq!(done.unwrap(), (200, json!([{"slept": ""}]))),
            _ = tokio::time::sleep(std::time::Duration::from_millis(20)) => {}
        }
    }
    eprintln!("{most} threads at most for {waits} waiting scripts");
    assert!(most < waits / 2, "{most} threads for {waits} waiting scripts");
}

#[tokio::test]
async fn the_readme_transaction_example_runs_against_postgres() {
    if !reachable("127.0.0.1:5432") {
        return;
    }
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("```rhai\nconst META = #{ title: \"Orders\"").expect("the README has the example") + 8;
    let example = &readme[start..start + readme[start..].find("```").unwrap()];
    // The example's declared database host, pointed at the local server as an operator would.
    let env = [("ORDERS_DB_URL", POSTGRES), ("ORDERS_DB_BASE_URL", "postgres://127.0.0.1:5432")];
    let server = Server::start_with(&[("sql", SQL), ("orders", example)], &[], &env);
    let setup = json!([
        step("DROP TABLE IF EXISTS orders, stock", json!([])),
        step("CREATE TABLE stock (sku text PRIMARY KEY, n int4)", json!([])),
        step("CREATE TABLE orders (id serial PRIMARY KEY, sku text)", json!([])),
        step("INSERT INTO stock VALUES ('pen', 3)", json!([])),
    ]);
    assert_eq!(sql(&server, POSTGRES, setup).await.0, 200);
    let call = json!({"endpoint": "/", "method": "POST", "data": {"sku": "pen"}});
    let ordered = json(server.client.post(server.url("/orders")).json(&call).send().await.unwrap()).await;
    assert_eq!(ordered, (200, json!([{"id": 1}])));
    let (_, stock) = sql(&server, POSTGRES, step("SELECT n FROM stock", json!([]))).await;
    assert_eq!(stock, json!([{"n": 2}]));
    sql(&server, POSTGRES, step("DROP TABLE orders, stock", json!([]))).await;
}

/// A statement still running at the deadline is stopped there: on the server's SQLite and on PostgreSQL.
#[tokio::test]
async fn a_statement_running_past_the_deadline_is_a_timeout() {
    let slow = r#"const META = #{ title: "Slow", description: "d", hosts: #{ pg: "postgres://127.0.0.1:5432" } };
fn main(endpoint, method, data) {
    if endpoint == "/local" {
        db::query("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n")
    } else {
        db::connect(data).query("SELECT pg_sleep(600)")
    }
}"#;
    let server = Server::start(&[("slow", slow)]);
    let call = |endpoint: &str, data: &str| {
        let body = json!({"endpoint": endpoint, "data": data, "timeout_ms": 300});
        server.client.post(server.url("/slow")).json(&body).send()
    };
    expect_error(call("/local", "").await.unwrap(), 504, "timeout").await;
    if reachable("127.0.0.1:5432") {
        expect_error(call("/pg", POSTGRES).await.unwrap(), 504, "timeout").await;
    }
}
