//! Servers' own `db::` databases on the PostgreSQL store: a schema per server, shared by every instance,
//! reached through a role of the server's own that can reach nothing else, and the `?`/`:name`
//! placeholders of the SQLite mode translated to PostgreSQL's. Each test runs on a fresh database of the
//! machine's PostgreSQL, through scripts invoked over HTTP.

mod common;

use common::postgres::{Database, admin, admin_on};
use common::{Server, json};
use serde_json::{Value, json};

const ADMIN: &str = "db-on-store-admin-token";
const MASTER_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// Runs the SQL it is sent on its own database: `data` is `{sql, params}`, or a list of them run in one
/// transaction.
const SQL: &str = r#"const META = #{ title: "SQL", description: "runs SQL on its own database" };
fn reads(sql) { sql.starts_with("SELECT") || sql.starts_with("WITH") }
fn run(db, step) {
    if reads(step.sql) { db.query(step.sql, step.params) } else { db.execute(step.sql, step.params) }
}
fn main(endpoint, method, data) {
    if type_of(data) == "array" {
        return db::transaction(|tx| { let out = []; for step in data { out.push(run(tx, step)); } out });
    }
    if reads(data.sql) { db::query(data.sql, data.params) } else { db::execute(data.sql, data.params) }
}"#;

/// An instance on `store` serving the servers `names`, each running [`SQL`], with `env` besides.
fn instance(store: &str, names: &[&str], env: &[(&str, &str)]) -> Server {
    let servers: Vec<(&str, &str)> = names.iter().map(|name| (*name, SQL)).collect();
    let mut all =
        vec![("SWITCHBOARD_STORE", store), ("SWITCHBOARD_ADMIN_TOKEN", ADMIN), ("SWITCHBOARD_MASTER_KEY", MASTER_KEY)];
    all.extend_from_slice(env);
    Server::start_with(&servers, &[], &all)
}

fn step(sql: &str, params: Value) -> Value {
    json!({"sql": sql, "params": params})
}

/// What `server` answers when its server `name` runs `data`.
async fn sql(server: &Server, name: &str, data: Value) -> (u16, Value) {
    let call = json!({"endpoint": "/", "method": "POST", "data": data});
    json(server.client.post(server.url(&format!("/{name}"))).json(&call).send().await.unwrap()).await
}

/// The error `name` answers `data` with, which must be a `script_error` (500) whose message has `words`.
async fn refused(server: &Server, name: &str, data: Value, words: &str) {
    let (status, body) = sql(server, name, data.clone()).await;
    let error = &body["error"];
    assert_eq!((status, error["type"].as_str()), (500, Some("script_error")), "{data}: {body}");
    assert!(error["message"].as_str().unwrap().contains(words), "{data}: expected '{words}' in {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_row_written_through_one_instance_is_read_through_another() {
    let Some(database) = Database::fresh() else { return };
    let (one, two) = (instance(&database.url, &["notes"], &[]), instance(&database.url, &["notes"], &[]));
    let create = step("CREATE TABLE notes (id serial PRIMARY KEY, body text, at timestamptz, doc jsonb)", json!([]));
    assert_eq!(sql(&one, "notes", create).await, (200, json!(0)));
    let insert =
        step("INSERT INTO notes (body, at, doc) VALUES (?, ?, ?)", json!(["hi", "2026-12-06T10:00:00Z", {"k": [1]}]));
    assert_eq!(sql(&one, "notes", insert).await, (200, json!(1)));
    let (status, rows) = sql(&two, "notes", step("SELECT * FROM notes", json!([]))).await;
    assert_eq!(status, 200, "{rows}");
    assert_eq!(rows, json!([{"id": 1, "body": "hi", "at": "2026-12-06T10:00:00Z", "doc": {"k": [1]}}]));
    // A transaction through the second is seen by the first; a failed one leaves nothing.
    let both = json!([
        step("INSERT INTO notes (body) VALUES (:b)", json!({"b": "x"})),
        step("SELECT count(*)::int AS n FROM notes", json!([]))
    ]);
    assert_eq!(sql(&two, "notes", both).await, (200, json!([1, [{"n": 2}]])));
    let failing = json!([step("INSERT INTO notes (body) VALUES ('y')", json!([])), step("SELECT nonsense", json!([]))]);
    assert_eq!(sql(&two, "notes", failing).await.0, 500);
    assert_eq!(
        sql(&one, "notes", step("SELECT body FROM notes ORDER BY id", json!([]))).await.1,
        json!([{"body": "hi"}, {"body": "x"}])
    );
    // The rows are in the server's schema of the store's database, not in a file of the data directory.
    admin_on(database.name(), "SELECT body FROM sb_notes.notes".into()).unwrap();
    assert!(!one.data_dir().join("db").exists() && !two.data_dir().join("db").exists());
    // As the role they were written by: one of its own, with no attribute and no membership, which
    // PostgreSQL knows by a SCRAM verifier only.
    let role = format!(
        "DO $$ BEGIN IF (SELECT count(*) FROM pg_authid a JOIN pg_shdescription d ON d.objoid = a.oid
              WHERE d.description LIKE '%server ''notes'' in database ''{}''' AND a.rolname LIKE 'sb\\_notes\\_%'
                AND a.rolpassword LIKE 'SCRAM-SHA-256$%' AND a.rolcanlogin AND NOT (a.rolsuper OR a.rolinherit
                OR a.rolcreaterole OR a.rolcreatedb OR a.rolreplication OR a.rolbypassrls)
                AND NOT EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.member = a.oid)) <> 1
           THEN RAISE EXCEPTION 'not one such role'; END IF; END $$",
        database.name()
    );
    admin(role).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn placeholders_are_translated_outside_literals_identifiers_and_comments() {
    let Some(database) = Database::fresh() else { return };
    let server = instance(&database.url, &["params"], &[]);
    let setup = json!([
        step("CREATE TABLE t (id int PRIMARY KEY, \"odd?:name\" text, n bigint)", json!([])),
        step("INSERT INTO t VALUES (?, ?, ?), (?, ?, ?)", json!([1, "a", 10, 2, "b", 20])),
        step("INSERT INTO t VALUES ($1, $2, $3)", json!([3, "c", 30])),
    ]);
    assert_eq!(sql(&server, "params", setup).await, (200, json!([0, 2, 1])));
    let cases = [
        // Named, one number per name however often it appears, with casts beside them.
        (
            step("SELECT :id::int + 0 AS id, :id::text AS t, n FROM t WHERE id = :id", json!({"id": 2})),
            json!([{"id": 2, "t": "2", "n": 20}]),
        ),
        // Literals, quoted identifiers, dollar quotes and comments keep their ? and :x.
        (
            step(
                "SELECT '? :x' AS lit, $q$ ?, :y $q$ AS dollars, \"odd?:name\" /* ? :z */ FROM t \
                 -- ? :w\n WHERE id = ?",
                json!([1]),
            ),
            json!([{"lit": "? :x", "dollars": " ?, :y ", "odd?:name": "a"}]),
        ),
        (step("SELECT E'it\\'s ?' AS e, ?::int AS n", json!([5])), json!([{"e": "it's ?", "n": 5}])),
        (
            step("SELECT ((ARRAY[1,2,3])[lo:hi])::text AS s FROM (SELECT 2 AS lo, 3 AS hi) b", json!([])),
            json!([{"s": "{2,3}"}]),
        ),
        (step("SELECT jsonb_exists('{\"k\": 1}'::jsonb, ?) AS has", json!(["k"])), json!([{"has": true}])),
    ];
    for (data, expected) in cases {
        assert_eq!(sql(&server, "params", data.clone()).await, (200, expected), "{data}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn what_cannot_be_translated_is_a_script_error_naming_it() {
    let Some(database) = Database::fresh() else { return };
    let server = instance(&database.url, &["params"], &[]);
    let cases = [
        (step("SELECT ?::int + $1", json!([1, 2])), "mixes ? and $n"),
        (step("SELECT :id", json!([1])), "names a parameter (:id) but the parameters are an array"),
        (step("SELECT ?", json!({"id": 1})), "a positional placeholder (?) but the parameters are a map"),
        (step("SELECT $1", json!({"id": 1})), "a positional placeholder ($n)"),
        (step("SELECT :id, :other", json!({"id": 1})), ":other is not in the parameters map"),
        (step("SELECT :id", json!({"id": 1, "extra": 2})), "'extra', which the statement does not use"),
        (step("SELECT '{\"k\": 1}'::jsonb ? 'k'", json!([])), "jsonb_exists"),
    ];
    for (data, words) in cases {
        refused(&server, "params", data, words).await;
    }
}

/// What a hostile script tries, and the SQLSTATE that refuses it (42501: insufficient privilege).
const HOSTILE: &[&str] = &[
    "SELECT * FROM switchboard.secrets",
    "SELECT * FROM switchboard.blobs",
    "SELECT * FROM sb_keeper.kept",
    "CREATE TABLE public.planted (x int)",
    "CREATE SCHEMA planted",
    "SET ROLE postgres",
    "SET SESSION AUTHORIZATION postgres",
    "ALTER ROLE CURRENT_USER SUPERUSER",
    "SELECT pg_read_file('/etc/hostname')",
    "COPY (SELECT 1) TO PROGRAM 'touch /tmp/planted-by-a-script'",
    "CREATE EXTENSION dblink",
    "INSERT INTO sb_keeper.kept VALUES ('planted')",
];

#[tokio::test(flavor = "multi_thread")]
async fn a_script_reaches_neither_the_store_nor_another_servers_schema() {
    let Some(database) = Database::fresh() else { return };
    let server = instance(&database.url, &["keeper", "intruder"], &[]);
    let kept =
        json!([step("CREATE TABLE kept (v text)", json!([])), step("INSERT INTO kept VALUES ('mine')", json!([]))]);
    assert_eq!(sql(&server, "keeper", kept).await, (200, json!([0, 1])));
    for statement in HOSTILE {
        refused(&server, "intruder", step(statement, json!([])), "42501").await;
        // Leaving its role first changes nothing: RESET ROLE leads back to the server's own.
        let reset = json!([step("RESET ROLE", json!([])), step(statement, json!([]))]);
        refused(&server, "intruder", reset, "42501").await;
    }
    let (_, me) =
        sql(&server, "intruder", step("SELECT current_user::text AS me, current_schema()::text AS s", json!([]))).await;
    assert!(me[0]["me"].as_str().unwrap().starts_with("sb_intruder_"), "{me}");
    assert_eq!(me[0]["s"], "sb_intruder");
    // Nothing was planted, and the keeper's rows are as it left them.
    assert!(admin_on(database.name(), "SELECT 1 FROM public.planted".into()).is_err());
    assert!(admin_on(database.name(), "SELECT 1 FROM planted.x".into()).is_err());
    assert!(!std::path::Path::new("/tmp/planted-by-a-script").exists());
    assert_eq!(sql(&server, "keeper", step("SELECT v FROM kept", json!([]))).await.1, json!([{"v": "mine"}]));
    // Its own schema is its own to use.
    let own =
        json!([step("CREATE TABLE mine (v int)", json!([])), step("SELECT count(*)::int AS n FROM mine", json!([]))]);
    assert_eq!(sql(&server, "intruder", own).await, (200, json!([0, [{"n": 0}]])));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_user_without_createrole_is_told_what_it_needs() {
    let Some(database) = Database::fresh() else { return };
    let store = StoreUser::new(database);
    let server = instance(&store.url, &["notes"], &[]);
    let (status, body) = sql(&server, "notes", step("SELECT 1 AS one", json!([]))).await;
    assert_eq!((status, body["error"]["type"].as_str()), (503, Some("unavailable")), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(&format!("its user '{}' needs CREATEROLE", store.name)), "{message}");
    // Given CREATEROLE (and no more: not a superuser), the same instance sets the server up.
    admin(format!("ALTER ROLE {} CREATEROLE", store.name)).unwrap();
    assert_eq!(sql(&server, "notes", step("SELECT 1 AS one", json!([]))).await, (200, json!([{"one": 1}])));
    refused(&server, "notes", step("SELECT * FROM switchboard.secrets", json!([])), "42501").await;
}

/// A store user that is neither a superuser nor allowed to create roles, with CREATE on `database` (to
/// make the store's schema); dropped after the database, which holds what it owns.
struct StoreUser {
    database: Option<Database>,
    name: String,
    url: String,
}

impl StoreUser {
    fn new(database: Database) -> StoreUser {
        let name = format!("{}_user", database.name());
        let mut url = url::Url::parse(&database.url).unwrap();
        url.set_username(&name).unwrap();
        let grant = format!("GRANT CREATE ON DATABASE {} TO {name}", database.name());
        let user = StoreUser { url: url.to_string(), name, database: Some(database) };
        admin(format!("CREATE ROLE {} LOGIN", user.name)).unwrap();
        admin(grant).unwrap();
        user
    }
}

impl Drop for StoreUser {
    fn drop(&mut self) {
        drop(self.database.take());
        let _ = admin(format!("DROP ROLE IF EXISTS {}", self.name));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_where_every_role_may_create_is_refused_with_the_fix() {
    let Some(database) = Database::fresh() else { return };
    // As every database made before PostgreSQL 15 has it.
    admin_on(database.name(), "GRANT CREATE ON SCHEMA public TO PUBLIC".into()).unwrap();
    let server = instance(&database.url, &["notes"], &[]);
    let (status, body) = sql(&server, "notes", step("SELECT 1 AS one", json!([]))).await;
    assert_eq!((status, body["error"]["type"].as_str()), (503, Some("unavailable")), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("schema(s) public") && message.contains("REVOKE CREATE ON SCHEMA public FROM PUBLIC"),
        "{message}"
    );
    admin_on(database.name(), "REVOKE CREATE ON SCHEMA public FROM PUBLIC".into()).unwrap();
    assert_eq!(sql(&server, "notes", step("SELECT 1 AS one", json!([]))).await, (200, json!([{"one": 1}])));
}

/// The README's example of a server's own database, as written: on two instances of one PostgreSQL
/// store the count is shared; on the SQLite store it is the instance's own.
#[tokio::test(flavor = "multi_thread")]
async fn the_readme_visits_example_counts_across_instances() {
    let Some(database) = Database::fresh() else { return };
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("```rhai\nconst META = #{ title: \"Visits\"").expect("the README has the example") + 8;
    let example = &readme[start..start + readme[start..].find("```").unwrap()];
    let env = [
        ("SWITCHBOARD_STORE", database.url.as_str()),
        ("SWITCHBOARD_ADMIN_TOKEN", ADMIN),
        ("SWITCHBOARD_MASTER_KEY", MASTER_KEY),
    ];
    let cluster =
        [Server::start_with(&[("visits", example)], &[], &env), Server::start_with(&[("visits", example)], &[], &env)];
    for (at, expected) in [(0, 1), (1, 2), (0, 3)] {
        let (status, body) = json(cluster[at].get("/visits/home").await).await;
        assert_eq!((status, body), (200, json!({"page": "/home", "n": expected})));
    }
    let alone = Server::start(&[("visits", example)]);
    for expected in [1, 2] {
        assert_eq!(json(alone.get("/visits/home").await).await, (200, json!({"page": "/home", "n": expected})));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_that_cannot_log_in_is_told_with_what_it_needs() {
    let Some(database) = Database::fresh() else { return };
    // The store's user owns the database and connects all the same; the servers' roles may not.
    admin(format!("REVOKE CONNECT ON DATABASE {} FROM PUBLIC", database.name())).unwrap();
    let server = instance(&database.url, &["notes"], &[]);
    let (status, body) = sql(&server, "notes", step("SELECT 1 AS one", json!([]))).await;
    assert_eq!((status, body["error"]["type"].as_str()), (503, Some("unavailable")), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("its role sb_notes_") && message.contains("cannot log in"), "{message}");
    assert!(message.contains("CONNECT on the database"), "{message}");
}

/// A script that lifts `statement_timeout` inside its transaction and runs past its deadline: the
/// statement is cancelled on the server, not only abandoned by the instance.
#[tokio::test(flavor = "multi_thread")]
async fn a_statement_past_the_deadline_is_cancelled_on_the_server() {
    let Some(database) = Database::fresh() else { return };
    let server = instance(&database.url, &["slow"], &[]);
    let slow = json!([
        step("SET LOCAL statement_timeout = 0", json!([])),
        step("SELECT pg_sleep(600)::text AS slept", json!([]))
    ]);
    let call = json!({"endpoint": "/", "method": "POST", "data": slow, "timeout_ms": 500});
    let (status, body) = json(server.client.post(server.url("/slow")).json(&call).send().await.unwrap()).await;
    assert_eq!((status, body["error"]["type"].as_str()), (504, Some("timeout")), "{body}");
    let running = format!(
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = '{}' AND pid <> pg_backend_pid()
           AND state = 'active' AND query LIKE '%pg_sleep(600)%') THEN RAISE EXCEPTION 'still running'; END IF; END $$",
        database.name()
    );
    for _ in 0..50 {
        if admin(running.clone()).is_ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the abandoned statement still runs on the server");
}

/// Every role of a database may NOTIFY any channel, so the store's change feed is on a channel whose
/// name only the store's user can read: a script's notices reach no instance.
#[tokio::test(flavor = "multi_thread")]
async fn a_script_cannot_speak_on_the_stores_change_feed() {
    let Some(database) = Database::fresh() else { return };
    let (one, two) = (instance(&database.url, &["noisy"], &[]), instance(&database.url, &["noisy"], &[]));
    refused(&one, "noisy", step("SELECT name FROM switchboard.change_channel", json!([])), "42501").await;
    // Nor can it read the name off the listening session's last statement.
    let others = "SELECT DISTINCT query FROM pg_stat_activity WHERE usename <> current_user AND query <> ''";
    let (status, queries) = sql(&one, "noisy", step(others, json!([]))).await;
    assert_eq!((status, queries), (200, json!([{"query": "<insufficient privilege>"}])));
    for notice in [
        "NOTIFY switchboard_changes, 'not a change'",
        "SELECT pg_notify('switchboard_changes', 'not a change')::text AS n",
    ] {
        assert_eq!(sql(&one, "noisy", step(notice, json!([]))).await.0, 200, "{notice}");
    }
    // A notice the feed cannot read would make every instance say so and re-read everything.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    for server in [&one, &two] {
        assert!(!server.logs().contains("unreadable change notice"), "{}", server.logs());
    }
}

/// Every role of a database may take any advisory lock and keep it for as long as its connection
/// lives (a script's connection goes back to its server's pool holding it), so the store takes its
/// locks as rows of its own table: a script holding the advisory locks the store once used stops no
/// commit, no lock of the store's and no instance from starting.
#[tokio::test(flavor = "multi_thread")]
async fn a_script_holding_advisory_locks_stops_no_commit_and_no_start() {
    let Some(database) = Database::fresh() else { return };
    let one = instance(&database.url, &["greedy"], &[]);
    // The migration and registry keys the store once used (0x5357_4254_0001 and 2), and the start-up turn.
    let keys = ["91634240061441", "91634240061442", "hashtextextended('seeded', 0)"];
    for key in keys {
        let take = format!("SELECT pg_advisory_lock({key})::text AS held");
        assert_eq!(sql(&one, "greedy", step(&take, json!([]))).await, (200, json!([{"held": ""}])), "{key}");
    }
    let put = one.client.put(one.url("/api/servers/fresh")).bearer_auth(ADMIN).body(common::script("Fresh", "\"ok\""));
    let (status, body) = json(put.send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    // A new instance migrates, seeds (under the store's lock) and serves.
    let two = Server::start_default(
        &[],
        &[
            ("SWITCHBOARD_STORE", database.url.as_str()),
            ("SWITCHBOARD_ADMIN_TOKEN", ADMIN),
            ("SWITCHBOARD_MASTER_KEY", MASTER_KEY),
        ],
    );
    assert_eq!(two.get("/fresh/").await.text().await.unwrap(), "ok");
}

/// Every server's pool draws on the `max_connections` of the store's one database, so a connection
/// left unused for half a minute is closed.
#[tokio::test(flavor = "multi_thread")]
async fn a_servers_idle_connections_are_closed() {
    let Some(database) = Database::fresh() else { return };
    let server = instance(&database.url, &["idle", "watcher"], &[]);
    let calls: Vec<_> =
        (0..3).map(|_| sql(&server, "idle", step("SELECT pg_sleep(0.5)::text AS s", json!([])))).collect();
    for answer in futures_util::future::join_all(calls).await {
        assert_eq!(answer, (200, json!([{"s": ""}])));
    }
    let count = step("SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename LIKE 'sb\\_idle\\_%'", json!([]));
    let open = || async { sql(&server, "watcher", count.clone()).await.1[0]["n"].as_i64().unwrap() };
    let before = open().await;
    assert!(before > 0, "the calls left no connection open");
    let started = std::time::Instant::now();
    while open().await > 0 {
        assert!(started.elapsed().as_secs() < 90, "the idle connections stayed open");
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
    eprintln!("{before} idle connection(s) closed after {:?}", started.elapsed());
}
