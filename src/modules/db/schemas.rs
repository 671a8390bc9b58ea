//! Servers' own databases on the PostgreSQL store: a schema and a role of its own per server.
//!
//! With `serve --store postgres://…`, a server's `db::query`, `execute` and `transaction` run in a
//! schema of the store's database named after it, so every instance sees the same rows. A script may
//! write any SQL (`SET ROLE`, `switchboard.secrets`, `COPY … TO PROGRAM`, `CREATE EXTENSION`), so what
//! keeps it in its schema is PostgreSQL's own privileges, not the search path: its statements run on
//! connections that log in as a role of the server's own — a member of no role, without SUPERUSER,
//! CREATEDB, CREATEROLE, REPLICATION, BYPASSRLS or INHERIT — granted USAGE and CREATE on its schema and
//! nothing else. `RESET ROLE` and `SET SESSION AUTHORIZATION` only ever lead back to that role.
//!
//! The store's user sets each server up on its first use in each process, in one transaction under a
//! lock of the store's (instances starting at once take turns), and then checks what the role can
//! reach: no CREATE on the database, no CREATE on any schema but its own, no USAGE on `switchboard` or
//! another server's schema. What the database grants PUBLIC is granted to every role, so a database that lets
//! PUBLIC create (in `public` before PostgreSQL 15) is refused with the statement that fixes it. The
//! role's password is derived from the master key (keyed BLAKE3 of the database and server names),
//! never stored or logged: the role is given only its SCRAM verifier.
//!
//! Names (identifiers are quoted all the same):
//! - schema: `sb_` and the server's name, which needs no quoting (a lower-case letter, then lower-case
//!   letters, digits and `_`); a name longer than 60 bytes (or, should one come, one that is not a
//!   server name) gets `sbx_`, its first 26 characters with any other character as `_`, `_`, and 32
//!   hex digits of its BLAKE3 hash. The two forms never meet: one starts `sb_`, the other `sbx_`.
//! - role: `sb_`, the first 24 characters of the name so shown, `_`, and 32 hex digits of the BLAKE3
//!   hash of the database's and the server's names: roles belong to the whole PostgreSQL cluster, and
//!   two stores on one cluster may both have an `orders`.
//!
//! A session here is PostgreSQL's own ([`postgres::Session`]) behind [`placeholders`], which turns the
//! `?` and `:name` of the script-side contract into `$n`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rhai::{EvalAltResult, Map};
use tokio_postgres::{Config, NoTls, Transaction};

use super::{Connector, Params, Sql, placeholders, postgres};
use crate::engine::raise;
use crate::error::Error;

/// Connections each server's pool keeps, in each instance, at most.
const SIZE: usize = 4;
/// How long a connection of a server's pool may wait unused before it is closed: the store's database
/// serves every instance and every server, and its `max_connections` is shared by them all.
const IDLE: Duration = Duration::from_secs(30);
/// How often pools are looked through for such connections.
const SWEEP: Duration = Duration::from_secs(10);
/// The longest setting a server up may take to connect, whatever the invocation has left.
const CONNECT: Duration = Duration::from_secs(10);
/// What the role passwords' key is derived from the master key for.
const PASSWORDS: &str = "switchboard 2026-12 db:: role passwords";

/// Where servers' schemas are made: the store's database, as its user.
pub struct Schemas {
    store: Config,
    /// The store as messages name it: without its password.
    name: String,
    /// The key role passwords are derived with.
    key: [u8; 32],
    /// Every server's pool, swept of idle connections by a task started with the first.
    pools: Mutex<Vec<postgres::Pool>>,
}

/// A server's schema: a pool of connections as its role, searching its schema.
pub struct Schema(postgres::Pool);

/// A session of PostgreSQL's own, taking the script-side placeholders.
pub struct Translated(postgres::Session);

/// The schema a server's tables live in.
fn schema_name(server: &str) -> String {
    let plain = crate::server::validate_name(server).is_ok() && server.len() <= 60;
    match plain {
        true => format!("sb_{server}"),
        false => format!("sbx_{}_{}", shown(server, 26), &blake3::hash(server.as_bytes()).to_hex()[..32]),
    }
}

/// The role a server's statements run as, in the database named `database`.
fn role_name(database: &str, server: &str) -> String {
    let hash = blake3::hash(format!("{database}\0{server}").as_bytes());
    format!("sb_{}_{}", shown(server, 24), &hash.to_hex()[..32])
}

/// The first `count` characters of `name`, each one that may not stand in an unquoted identifier as `_`.
fn shown(name: &str, count: usize) -> String {
    let keep = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
    name.chars().take(count).map(|c| if keep(c) { c } else { '_' }).collect()
}

/// What a failure says, without the script-side wrapping.
fn message(error: &EvalAltResult) -> String {
    match error {
        EvalAltResult::ErrorRuntime(value, _) => {
            value.clone().try_cast::<Error>().map_or_else(|| value.to_string(), |error| error.to_string())
        }
        other => other.to_string(),
    }
}

/// `name` as a quoted identifier.
fn identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` as a string literal, whatever `standard_conforming_strings` says.
fn literal(text: &str) -> String {
    let quoted = text.replace('\'', "''");
    match text.contains('\\') {
        true => format!("E'{}'", quoted.replace('\\', "\\\\")),
        false => format!("'{quoted}'"),
    }
}

impl Schemas {
    /// Servers' schemas in the store at `url`, their roles' passwords derived from `master_key`.
    pub fn new(url: &str, master_key: &[u8; 32]) -> Result<Schemas, Error> {
        let name = format!("the PostgreSQL store {}", crate::store::postgres::without_password(url));
        let store = url.parse().map_err(|e| Error::BadRequest(format!("{name} is not a usable URL: {e}")))?;
        Ok(Schemas { store, name, key: blake3::derive_key(PASSWORDS, master_key), pools: Mutex::default() })
    }

    /// The schema of `server`, set up, with a pool of connections as its role.
    pub fn open(
        self: &Arc<Self>,
        server: &str,
        timeout: Duration,
    ) -> impl Future<Output = Sql<Schema>> + Send + 'static {
        let (schemas, server) = (self.clone(), server.to_owned());
        async move {
            let late =
                || raise(Error::Timeout(format!("{} did not set up the server's database in time", schemas.name)));
            let config = tokio::time::timeout(timeout, schemas.prepare(&server)).await.map_err(|_| late())??;
            let role = config.get_user().unwrap_or_default().to_owned();
            let pool = postgres::Pool::open(config, SIZE, timeout).await.map_err(|e| {
                schemas.unavailable(format!(
                    "its role {role} cannot log in ({}): pg_hba.conf must let it in with a password, and it needs \
                     CONNECT on the database",
                    message(&e)
                ))
            })?;
            schemas.keep(&pool);
            Ok(Schema(pool))
        }
    }

    /// Keeps `pool` to be swept; the first one kept starts the sweeping, on the drivers' runtime, for
    /// as long as these schemas are in use.
    fn keep(self: &Arc<Self>, pool: &postgres::Pool) {
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        if pools.is_empty() {
            let schemas = Arc::downgrade(self);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(SWEEP).await;
                    let Some(schemas) = schemas.upgrade() else { return };
                    let pools = schemas.pools.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    pools.iter().for_each(|pool| pool.close_idle(IDLE));
                }
            });
        }
        pools.push(pool.clone());
    }

    /// Why the store could not set a server up.
    fn unavailable(&self, why: impl std::fmt::Display) -> Box<EvalAltResult> {
        raise(Error::Unavailable(format!("{} cannot set up the server's database: {why}", self.name)))
    }

    fn failure(&self, error: tokio_postgres::Error) -> Box<EvalAltResult> {
        match error.as_db_error() {
            Some(db) => self.unavailable(format!("{}: {}", db.code().code(), db.message())),
            None => self.unavailable(error),
        }
    }

    /// Creates (or brings back in line) the role and schema of `server`, checks what the role can reach,
    /// and says how to connect as it.
    async fn prepare(&self, server: &str) -> Sql<Config> {
        let mut store = self.store.clone();
        store.connect_timeout(CONNECT).application_name("switchboard");
        let (mut client, connection) = store.connect(NoTls).await.map_err(|e| self.failure(e))?;
        tokio::spawn(connection);
        let tx = client.transaction().await.map_err(|e| self.failure(e))?;
        let who = "SELECT current_database()::text, current_user::text, rolsuper OR rolcreaterole FROM pg_roles \
                   WHERE rolname = current_user";
        let row = tx.query_one(who, &[]).await.map_err(|e| self.failure(e))?;
        let (database, user, may_create_roles): (String, String, bool) = (row.get(0), row.get(1), row.get(2));
        if !may_create_roles {
            return Err(self.unavailable(format!(
                "its user '{user}' needs CREATEROLE (ALTER ROLE {} CREATEROLE), since each server's statements run \
                 as a role of its own",
                identifier(&user)
            )));
        }
        let (schema, role) = (schema_name(server), role_name(&database, server));
        let turn = crate::store::postgres::TAKE_LOCK;
        tx.execute(turn, &[&format!("db {role}")]).await.map_err(|e| self.failure(e))?;
        let password =
            hex::encode(blake3::keyed_hash(&self.key, format!("{database}\0{server}").as_bytes()).as_bytes());
        self.create(&tx, &database, server, &schema, &role, &password).await?;
        self.check(&tx, &database, &schema, &role).await?;
        tx.commit().await.map_err(|e| self.failure(e))?;
        let mut config = self.store.clone();
        config
            .user(&role)
            .password(password)
            .dbname(&database)
            .options(format!("-c search_path={schema}"))
            .application_name("switchboard db");
        Ok(config)
    }

    /// Creates the role (or sets its password and attributes again) and the schema it may use.
    async fn create(
        &self,
        tx: &Transaction<'_>,
        database: &str,
        server: &str,
        schema: &str,
        role: &str,
        password: &str,
    ) -> Sql<()> {
        let exists = tx.query_one("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", &[&role]).await;
        // A non-superuser may not even name SUPERUSER, REPLICATION or BYPASSRLS on an existing role: those
        // of a role found are checked instead.
        let (verb, extra) = match exists.map_err(|e| self.failure(e))?.get::<_, bool>(0) {
            true => ("ALTER", ""),
            false => ("CREATE", " NOSUPERUSER NOREPLICATION NOBYPASSRLS"),
        };
        let secret = postgres_protocol::password::scram_sha_256(password.as_bytes());
        let (role_id, schema_id) = (identifier(role), identifier(schema));
        let comment = format!("Switchboard: the db:: role of server '{server}' in database '{database}'");
        let sql = format!(
            "{verb} ROLE {role_id} WITH LOGIN NOCREATEDB NOCREATEROLE NOINHERIT{extra} PASSWORD {};
             COMMENT ON ROLE {role_id} IS {};
             CREATE SCHEMA IF NOT EXISTS {schema_id};
             REVOKE ALL ON SCHEMA {schema_id} FROM PUBLIC;
             GRANT USAGE, CREATE ON SCHEMA {schema_id} TO {role_id};",
            literal(&secret),
            literal(&comment),
        );
        tx.batch_execute(&sql).await.map_err(|e| self.failure(e))
    }

    /// Refuses a role that could reach beyond its schema.
    async fn check(&self, tx: &Transaction<'_>, database: &str, schema: &str, role: &str) -> Sql<()> {
        let sql = r"SELECT
              (SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolreplication OR rolbypassrls OR rolinherit
                      OR NOT rolcanlogin FROM pg_roles WHERE rolname = $1),
              (SELECT string_agg(b.rolname::text, ', ') FROM pg_auth_members m
                      JOIN pg_roles b ON b.oid = m.roleid JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = $1),
              has_database_privilege($1, current_database(), 'CREATE'),
              (SELECT string_agg(nspname::text, ', ' ORDER BY nspname) FROM pg_namespace WHERE nspname <> $2 AND (
                      has_schema_privilege($1, oid, 'CREATE')
                      OR ((nspname = 'switchboard' OR nspname LIKE 'sb\_%' OR nspname LIKE 'sbx\_%')
                          AND has_schema_privilege($1, oid, 'USAGE'))))";
        let row = tx.query_one(sql, &[&role, &schema]).await.map_err(|e| self.failure(e))?;
        let (attributes, memberships, creates_schemas, reaches): (bool, Option<String>, bool, Option<String>) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let problem = if attributes {
            format!(
                "the role {role} has SUPERUSER, CREATEROLE, CREATEDB, REPLICATION, BYPASSRLS or INHERIT, or cannot log \
                 in: drop it (DROP ROLE {}) and it is made again",
                identifier(role)
            )
        } else if let Some(memberships) = memberships {
            format!("the role {role} is a member of {memberships}: a server's role must belong to no role")
        } else if creates_schemas {
            format!(
                "every role may create schemas in database {database}: REVOKE CREATE ON DATABASE {} FROM PUBLIC",
                identifier(database)
            )
        } else if let Some(reaches) = reaches {
            format!(
                "the role {role} may create objects in or use schema(s) {reaches}, which are not its own (before \
                 PostgreSQL 15 every role may create objects in public: REVOKE CREATE ON SCHEMA public FROM PUBLIC)"
            )
        } else {
            return Ok(());
        };
        Err(self.unavailable(problem))
    }
}

impl Connector for Schema {
    type Session = Translated;

    fn checkout(&self, timeout: Duration) -> impl Future<Output = Sql<Translated>> + Send + 'static {
        let checkout = self.0.checkout(timeout);
        async move { checkout.await.map(Translated) }
    }

    fn begin(&self, timeout: Duration) -> impl Future<Output = Sql<Translated>> + Send + 'static {
        let begin = self.0.begin(timeout);
        async move { begin.await.map(Translated) }
    }
}

impl super::Session for Translated {
    async fn query(&mut self, sql: &str, params: &Params) -> Sql<Vec<Map>> {
        let (sql, values) = placeholders::positional(sql, params)?;
        self.0.query(&sql, &Params::Positional(values)).await
    }

    async fn execute(&mut self, sql: &str, params: &Params) -> Sql<i64> {
        let (sql, values) = placeholders::positional(sql, params)?;
        self.0.execute(&sql, &Params::Positional(values)).await
    }

    async fn finish(self, commit: bool) -> Sql<()> {
        self.0.finish(commit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_for_server_names_and_hashed_otherwise() {
        assert_eq!(schema_name("orders"), "sb_orders");
        let long = "a".repeat(64);
        let hashed = schema_name(&long);
        assert!(hashed.starts_with("sbx_aaaa") && hashed.len() <= 63, "{hashed}");
        let odd = schema_name("My Script.v2");
        assert!(odd.starts_with("sbx__y__cript_v2_"), "{odd}");
        assert_ne!(schema_name("My Script.v2"), schema_name("My Script_v2"));
        let role = role_name("store", "orders");
        assert!(role.starts_with("sb_orders_") && role.len() <= 63, "{role}");
        assert_ne!(role, role_name("other_store", "orders"), "roles are per database");
        assert!(role_name(&"d".repeat(63), &long).len() <= 63);
    }

    #[test]
    fn quoting_doubles_what_would_end_the_quote() {
        assert_eq!(identifier("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal("a\\'b"), "E'a\\\\''b'");
    }
}
