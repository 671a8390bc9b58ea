//! One [`Change`] applied in one transaction, which also sends its NOTIFYs: PostgreSQL delivers them
//! when, and only if, the transaction commits, so no instance hears of a change that did not happen.
//!
//! Changes to what instances serve (servers, variables, secrets, connections) take the registry's
//! lock first: two instances editing one server commit one after the other, so the history's
//! order is the order of the heads, and every instance ends on the same one.

use std::collections::BTreeMap;

use tokio_postgres::Transaction;

use super::{DROP_LOCK, Fault, REGISTRY, Sql, TAKE_LOCK};
use crate::cid::Cid;
use crate::store::{Change, Changed, Op, Origin, WebhookEvent};

/// The largest payload PostgreSQL's NOTIFY takes is 8 000 bytes; a report that would not fit says
/// [`Changed::Everything`] instead.
const PAYLOAD: usize = 7_900;

fn digest(cid: &Cid) -> &[u8] {
    &cid.digest()[..]
}

pub(super) async fn apply(tx: &Transaction<'_>, change: &Change, at: i64) -> Sql<()> {
    let changed = change.changed();
    if !changed.is_empty() {
        tx.execute(TAKE_LOCK, &[&REGISTRY]).await?;
    }
    let put = tx.prepare("INSERT INTO blobs (cid, bytes) VALUES ($1, $2) ON CONFLICT DO NOTHING").await?;
    for (cid, bytes) in &change.blobs {
        tx.execute(&put, &[&digest(cid), bytes]).await?;
    }
    for op in &change.ops {
        apply_op(tx, op, at).await?;
    }
    for report in &changed {
        let payload = serde_json::to_string(report).unwrap_or_default();
        let payload = match payload.len() {
            1..PAYLOAD => payload,
            _ => serde_json::to_string(&Changed::Everything).unwrap_or_default(),
        };
        tx.execute("SELECT pg_notify((SELECT name FROM change_channel), $1)", &[&payload]).await?;
    }
    Ok(())
}

async fn apply_op(tx: &Transaction<'_>, op: &Op, at: i64) -> Sql<()> {
    match op {
        Op::Bind { name, cid, origin, enabled } => bind(tx, name, cid, *origin, *enabled, at).await?,
        Op::SetEnabled { name, enabled } => {
            tx.execute("UPDATE servers SET enabled = $2 WHERE name = $1", &[name, enabled]).await?;
        }
        Op::Remove { name } => {
            tx.execute("DELETE FROM servers WHERE name = $1", &[name]).await?;
        }
        Op::SetVariables(variables) => set_variables(tx, variables).await?,
        Op::SetSecret { name, sealed } => upsert(tx, ("secrets", "name", "sealed"), name, sealed).await?,
        Op::RemoveSecret { name } => {
            tx.execute("DELETE FROM secrets WHERE name = $1", &[name]).await?;
        }
        Op::SetConnection { server, sealed: Some(sealed) } => {
            upsert(tx, ("oauth_connections", "server", "sealed"), server, sealed).await?
        }
        Op::SetConnection { server, sealed: None } => {
            tx.execute("DELETE FROM oauth_connections WHERE server = $1", &[server]).await?;
        }
        Op::PutOAuthState { key, server, sealed, expires } => {
            tx.execute("DELETE FROM oauth_states WHERE expires <= $1", &[&at]).await?;
            let sql = "INSERT INTO oauth_states (key, server, sealed, expires) VALUES ($1, $2, $3, $4)";
            tx.execute(sql, &[key, server, sealed, expires]).await?;
        }
        Op::RecordEvent { .. } => record_event(tx, op).await?,
        Op::EventOutcome { cid, status, outcome, next_attempt_at } => {
            let sql = "UPDATE webhook_events SET status = $2, outcome = $3, next_attempt_at = $4 WHERE cid = $1";
            let outcome = outcome.as_ref().map(|o| o.to_string());
            tx.execute(sql, &[&digest(cid), &status.as_str(), &outcome, next_attempt_at]).await?;
        }
        Op::SetFact { key, value } => upsert(tx, ("facts", "key", "value"), key, value).await?,
        Op::PutServer(record) => {
            let sql = "INSERT INTO servers (name, cid, enabled) VALUES ($1, $2, $3)
                       ON CONFLICT (name) DO UPDATE SET cid = excluded.cid, enabled = excluded.enabled";
            tx.execute(sql, &[&record.name, &digest(&record.cid), &record.enabled]).await?;
        }
        Op::PutBinding { name, binding } => {
            let sql = "INSERT INTO history (name, cid, origin, at) VALUES ($1, $2, $3, $4)";
            tx.execute(sql, &[name, &digest(&binding.cid), &binding.origin.to_string(), &binding.at]).await?;
        }
        Op::PutEvent(event) => put_event(tx, event).await?,
    }
    Ok(())
}

/// Records an event as another store held it.
async fn put_event(tx: &Transaction<'_>, event: &WebhookEvent) -> Sql<()> {
    let sql = "INSERT INTO webhook_events
               (cid, server, delivery_id, body_cid, received_at, status, outcome, attempts, next_attempt_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
    let (outcome, attempts) =
        (event.outcome.as_ref().map(|o| o.to_string()), i32::try_from(event.attempts).unwrap_or(i32::MAX));
    let values: [&(dyn tokio_postgres::types::ToSql + Sync); 9] = [
        &digest(&event.cid),
        &event.server,
        &event.delivery_id,
        &digest(&event.body_cid),
        &event.received_at,
        &event.status.as_str(),
        &outcome,
        &attempts,
        &event.next_attempt_at,
    ];
    tx.execute(sql, &values).await?;
    Ok(())
}

/// Sets the value column of the row `key` in a `(table, key column, value column)`, adding the row when
/// there is none.
async fn upsert(
    tx: &Transaction<'_>,
    (table, key_column, column): (&str, &str, &str),
    key: &str,
    value: &(dyn tokio_postgres::types::ToSql + Sync),
) -> Sql<()> {
    let sql = format!(
        "INSERT INTO {table} ({key_column}, {column}) VALUES ($1, $2)
         ON CONFLICT ({key_column}) DO UPDATE SET {column} = excluded.{column}"
    );
    tx.execute(&sql, &[&key, value]).await?;
    Ok(())
}

/// Binds `name` to `cid` (keeping its enabled flag unless one is given) and records it in the history.
async fn bind(tx: &Transaction<'_>, name: &str, cid: &Cid, origin: Origin, enabled: Option<bool>, at: i64) -> Sql<()> {
    let keep = "INSERT INTO servers (name, cid, enabled) VALUES ($1, $2, true)
                ON CONFLICT (name) DO UPDATE SET cid = excluded.cid";
    let set = "INSERT INTO servers (name, cid, enabled) VALUES ($1, $2, $3)
               ON CONFLICT (name) DO UPDATE SET cid = excluded.cid, enabled = excluded.enabled";
    match enabled {
        None => tx.execute(keep, &[&name, &digest(cid)]).await?,
        Some(enabled) => tx.execute(set, &[&name, &digest(cid), &enabled]).await?,
    };
    let sql = "INSERT INTO history (name, cid, origin, at) VALUES ($1, $2, $3, $4)";
    tx.execute(sql, &[&name, &digest(cid), &origin.to_string(), &at]).await?;
    Ok(())
}

/// Replaces the variables as a whole.
async fn set_variables(tx: &Transaction<'_>, variables: &BTreeMap<String, String>) -> Sql<()> {
    tx.execute("DELETE FROM variables", &[]).await?;
    let insert = tx.prepare("INSERT INTO variables (name, value) VALUES ($1, $2)").await?;
    for (name, value) in variables {
        tx.execute(&insert, &[name, value]).await?;
    }
    Ok(())
}

/// Records a received webhook event. The delivery id is unique per server in the table itself: of two
/// instances storing one delivery, the second waits for the first and fails. A body seen within the
/// window refuses the event too; that check and the insert run under a lock on the server and body, so
/// two copies checked at once cannot both pass.
async fn record_event(tx: &Transaction<'_>, op: &Op) -> Sql<()> {
    let Op::RecordEvent { cid, server, delivery_id, body_cid, received_at, status, same_body_since, claimed_until } =
        op
    else {
        return Ok(());
    };
    let lock = same_body_since.map(|_| format!("event {server} {}", hex::encode(digest(body_cid))));
    if let (Some(since), Some(lock)) = (same_body_since, &lock) {
        tx.execute(TAKE_LOCK, &[lock]).await?;
        let sql =
            "SELECT EXISTS (SELECT 1 FROM webhook_events WHERE server = $1 AND body_cid = $2 AND received_at >= $3)";
        let seen: bool = tx.query_one(sql, &[server, &digest(body_cid), since]).await?.try_get(0)?;
        if seen {
            return Err(Fault::Refused("an event with this body was received within the window".into()));
        }
    }
    let (attempts, due) = status.on_receipt(*received_at, *claimed_until);
    let sql = "INSERT INTO webhook_events
                   (cid, server, delivery_id, body_cid, received_at, status, attempts, next_attempt_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
    let values: [&(dyn tokio_postgres::types::ToSql + Sync); 8] =
        [&digest(cid), server, delivery_id, &digest(body_cid), received_at, &status.as_str(), &attempts, &due];
    tx.execute(sql, &values).await?;
    if let Some(lock) = &lock {
        tx.execute(DROP_LOCK, &[lock]).await?;
    }
    Ok(())
}
