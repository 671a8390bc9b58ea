//! A fresh database on the machine's PostgreSQL (127.0.0.1:5432, or `$SWITCHBOARD_TEST_POSTGRES`), made
//! for one test and dropped with it. Without a PostgreSQL there is no database: the test skips, except
//! under `CI=true`, where it fails.

use tokio_postgres::NoTls;

pub struct Database {
    name: String,
    /// The URL `--store` takes.
    pub url: String,
}

/// Where the server is, as a libpq connection string without a database.
fn server() -> String {
    std::env::var("SWITCHBOARD_TEST_POSTGRES").unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres".into())
}

/// Runs `sql` on the server's maintenance database.
pub fn admin(sql: String) -> Result<(), tokio_postgres::Error> {
    admin_on("postgres", sql)
}

/// Ends every connection to `database` but the one that asks (as an operator's `pg_terminate_backend`
/// would).
pub fn terminate_connections(database: &str) {
    let sql = format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}' AND pid <> pg_backend_pid()"
    );
    admin(sql).unwrap();
}

/// Runs `sql` on `database`, on a thread and runtime of its own (so that any test, async or not, can
/// call it).
pub fn admin_on(database: &str, sql: String) -> Result<(), tokio_postgres::Error> {
    let database = database.to_owned();
    std::thread::spawn(move || {
        let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        tokio.block_on(async {
            let (client, connection) =
                tokio_postgres::connect(&format!("{} dbname={database}", server()), NoTls).await?;
            tokio::spawn(connection);
            client.batch_execute(&sql).await
        })
    })
    .join()
    .unwrap()
}

impl Database {
    /// A new, empty database; `None` outside CI when no PostgreSQL answers.
    pub fn fresh() -> Option<Database> {
        let name = format!("switchboard_test_{}", uuid::Uuid::new_v4().simple());
        match admin(format!("CREATE DATABASE {name}")) {
            Ok(()) => {}
            Err(error) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("no PostgreSQL to test on under CI ({}): {error}", server())
            }
            Err(error) => {
                eprintln!("skipped: no PostgreSQL to test on ({}): {error}", server());
                return None;
            }
        }
        let config: tokio_postgres::Config = server().parse().unwrap();
        let host = match &config.get_hosts()[0] {
            tokio_postgres::config::Host::Tcp(host) => host.clone(),
            other => panic!("a TCP host is needed, not {other:?}"),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let user = config.get_user().unwrap_or("postgres");
        Some(Database { url: format!("postgres://{user}@{host}:{port}/{name}"), name })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Database {
    /// Drops the database, then the roles its servers' own `db::` schemas were given (roles belong to
    /// the whole cluster; each one's comment names the database it serves).
    fn drop(&mut self) {
        let _ = admin(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        let _ = admin(format!(
            "DO $$ DECLARE r text; BEGIN
               FOR r IN SELECT a.rolname FROM pg_roles a JOIN pg_shdescription d ON d.objoid = a.oid
                        WHERE d.description LIKE '%in database ''{}''' LOOP
                 EXECUTE format('DROP ROLE %I', r);
               END LOOP;
             END $$",
            self.name
        ));
    }
}

/// A TCP relay to the PostgreSQL server that a test can cut (every connection dropped, new ones refused)
/// and resume on the same port: the database going away and coming back, as an instance sees it.
pub struct Relay {
    pub port: u16,
    tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Relay {
    pub async fn start() -> Relay {
        let relay = Relay { port: 0, tasks: Default::default() };
        relay.listen(0).await
    }

    async fn listen(mut self, port: u16) -> Relay {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        self.port = listener.local_addr().unwrap().port();
        let tasks = self.tasks.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let relaying = tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect("127.0.0.1:5432").await else { return };
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
                tasks.lock().unwrap().push(relaying.abort_handle());
            }
        });
        self.tasks.lock().unwrap().push(accepting.abort_handle());
        self
    }

    /// Drops every connection and stops accepting.
    pub fn cut(&self) {
        self.tasks.lock().unwrap().drain(..).for_each(|task| task.abort());
    }

    /// Accepts again, on the same port.
    pub async fn resume(self) -> Relay {
        let port = self.port;
        self.listen(port).await
    }

    /// The URL of `database` through this relay.
    pub fn url(&self, database: &Database) -> String {
        database.url.replacen(":5432/", &format!(":{}/", self.port), 1)
    }
}
