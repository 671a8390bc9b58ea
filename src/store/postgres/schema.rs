//! The store's tables, in a schema of their own (`switchboard`), created and migrated by the binary.
//!
//! Migrations are numbered and applied in order, in one transaction that records them in
//! `switchboard.migrations` and holds an exclusive lock on that table: instances starting at the same
//! moment take turns, and each finds the work of the one before it done. The schema and that table are
//! made once, on a new database, under an advisory lock, since nobody has been given anything in it
//! yet; from then on the store takes no advisory lock, which any role of the database (servers' own
//! `db::` roles included) could take first and hold. A database migrated by a newer binary is refused
//! rather than misread.

use deadpool_postgres::Object;

use super::{ADVISORY_MIGRATE, Fault, Sql, records};

/// Every migration, in order; the number of one is its position from 1. Never edit one that shipped:
/// add the next.
const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE blobs (
    cid   bytea PRIMARY KEY,
    bytes bytea NOT NULL
);
CREATE TABLE servers (
    name    text PRIMARY KEY,
    cid     bytea NOT NULL REFERENCES blobs(cid),
    enabled boolean NOT NULL
);
CREATE TABLE history (
    id     bigserial PRIMARY KEY,
    name   text NOT NULL,
    cid    bytea NOT NULL REFERENCES blobs(cid),
    origin text NOT NULL,
    at     bigint NOT NULL
);
CREATE INDEX history_by_name ON history(name, id);
CREATE TABLE facts (
    key   text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE variables (
    name  text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE secrets (
    name   text PRIMARY KEY,
    sealed bytea NOT NULL
);
CREATE TABLE oauth_connections (
    server text PRIMARY KEY,
    sealed bytea NOT NULL
);
CREATE TABLE oauth_states (
    key     text PRIMARY KEY,
    server  text NOT NULL,
    sealed  bytea NOT NULL,
    expires bigint NOT NULL
);
CREATE TABLE webhook_events (
    id          bigserial UNIQUE,
    cid         bytea PRIMARY KEY REFERENCES blobs(cid),
    server      text NOT NULL,
    delivery_id text NOT NULL,
    body_cid    bytea NOT NULL REFERENCES blobs(cid),
    received_at bigint NOT NULL,
    status      text NOT NULL,
    outcome     text,
    attempts    integer NOT NULL DEFAULT 0,
    UNIQUE (server, delivery_id)
);
CREATE INDEX webhook_events_by_server ON webhook_events(server, id);
CREATE INDEX webhook_events_by_body ON webhook_events(server, body_cid, received_at);
",
    "
ALTER TABLE webhook_events ADD COLUMN next_attempt_at bigint;
UPDATE webhook_events SET status = 'pending' WHERE status = 'received';
UPDATE webhook_events SET next_attempt_at = received_at WHERE status IN ('pending', 'failed');
CREATE INDEX webhook_events_due ON webhook_events(next_attempt_at) WHERE next_attempt_at IS NOT NULL;
",
    // Invocation records: written by every instance, never announced (see `records.rs`).
    "
CREATE TABLE invocations (
    id             bigserial PRIMARY KEY,
    time           bigint NOT NULL,
    server         text,
    operation      text,
    cid            bytea,
    via            text NOT NULL,
    input_cid      bytea,
    output_cid     bytea,
    status         integer NOT NULL,
    error_type     text,
    duration_ms    double precision NOT NULL,
    upstream_calls bigint NOT NULL,
    upstream_bytes bigint NOT NULL,
    request_id     text NOT NULL,
    trace_id       text NOT NULL,
    cost           double precision NOT NULL,
    currency       text
);
CREATE INDEX invocations_by_time ON invocations(time);
CREATE INDEX invocations_by_server ON invocations(server, time);
",
    // Nothing of the store for anyone else, servers' own `db::` roles included (see
    // `modules::db::schemas`, which checks that none of them may use this schema). Since every role of
    // the database may NOTIFY on any channel, commits NOTIFY on one named at random, which only the
    // store's user can read (see `listen.rs`); since any role may take any advisory lock, the store's
    // locks are rows of its own table (see `TAKE_LOCK`).
    "
CREATE TABLE change_channel (name text NOT NULL);
CREATE TABLE locks (key text PRIMARY KEY);
INSERT INTO change_channel VALUES ('switchboard_changes_' || replace(gen_random_uuid()::text, '-', ''));
REVOKE ALL ON SCHEMA switchboard FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA switchboard FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA switchboard FROM PUBLIC;
",
    // Invocation records a batch per row (see `records.rs`); the rows of `invocations` are moved here by
    // `records::move_rows` in the same transaction.
    "
CREATE TABLE invocation_blocks (
    id       bigserial PRIMARY KEY,
    count    bigint NOT NULL,
    min_time bigint NOT NULL,
    max_time bigint NOT NULL,
    records  bytea NOT NULL
);
-- Mostly random ids: compressing a batch cost the database more CPU than serving its calls.
ALTER TABLE invocation_blocks ALTER COLUMN records SET STORAGE EXTERNAL;
",
];

/// Brings the schema up to date.
pub(super) async fn migrate(client: &mut Object) -> Sql<()> {
    let made = "SELECT to_regclass('switchboard.migrations') IS NOT NULL";
    if !client.query_one(made, &[]).await?.try_get::<_, bool>(0)? {
        client.execute("SELECT pg_advisory_lock($1)", &[&ADVISORY_MIGRATE]).await?;
        let outcome = client
            .batch_execute(
                "CREATE SCHEMA IF NOT EXISTS switchboard;
                 CREATE TABLE IF NOT EXISTS switchboard.migrations (
                     version    integer PRIMARY KEY,
                     applied_at timestamptz NOT NULL DEFAULT now()
                 );",
            )
            .await;
        // Released on every path; a connection that died released it already.
        let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&ADVISORY_MIGRATE]).await;
        outcome?;
    }
    apply_missing(client).await
}

async fn apply_missing(client: &mut Object) -> Sql<()> {
    let tx = client.transaction().await?;
    tx.batch_execute("LOCK TABLE switchboard.migrations IN EXCLUSIVE MODE").await?;
    let row = tx.query_one("SELECT coalesce(max(version), 0) FROM switchboard.migrations", &[]).await?;
    let applied: i32 = row.try_get(0)?;
    let known = MIGRATIONS.len() as i32;
    if applied > known {
        return Err(Fault::Refused(format!(
            "its schema was migrated by a newer Switchboard (version {applied}, this one knows {known})"
        )));
    }
    for (version, sql) in (1..).zip(MIGRATIONS).skip(applied as usize) {
        tx.batch_execute(sql).await?;
        if version == records::BLOCKS_MIGRATION {
            records::move_rows(&tx).await?;
        }
        tx.execute("INSERT INTO switchboard.migrations (version) VALUES ($1)", &[&version]).await?;
    }
    tx.commit().await?;
    if applied < known {
        tracing::info!(from = applied, to = known, "store schema migrated");
    }
    Ok(())
}
