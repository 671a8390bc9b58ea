//! MongoDB through the official driver: `db::mongo(uri)` and one method, `command`.
//!
//! ```rhai
//! let mongo = db::mongo(secret::require("MONGODB_URI"));
//! let reply = mongo.command("app", "find", "users", #{ filter: #{ age: #{ "$gt": 30 } }, limit: 10 });
//! reply.cursor.firstBatch
//! ```
//! A command is named separately from its other fields because a command document's first field must
//! be its name, and a script's maps keep their keys sorted. Values cross as MongoDB Extended JSON
//! (`#{ "$oid": "…" }` in, relaxed Extended JSON out), so every BSON type survives a round trip. One
//! client (the driver's own pool) is kept per URI, and every command stops at the invocation's deadline.

use std::time::Duration;

use mongodb::bson::{Bson, Document};
use mongodb::error::ErrorKind;
use mongodb::options::ClientOptions;
use rhai::{Dynamic, EvalAltResult, Map};

use super::tally::Tally;
use super::{Sql, arg_error, sql_error};
use crate::engine::raise;
use crate::error::Error;

/// The longest server selection (finding a server that answers) may take, whatever the invocation has left.
const SELECT: Duration = Duration::from_secs(10);

/// A MongoDB deployment as scripts hold it.
#[derive(Clone)]
pub struct Mongo(mongodb::Client);

fn failure(error: mongodb::error::Error) -> Box<EvalAltResult> {
    match *error.kind {
        ErrorKind::Command(ref e) => sql_error(format!("MongoDB {} ({}): {}", e.code_name, e.code, e.message)),
        ErrorKind::Write(_) | ErrorKind::InsertMany(_) | ErrorKind::BulkWrite(_) => {
            sql_error(format!("MongoDB: {error}"))
        }
        ErrorKind::Authentication { ref message, .. } => raise(Error::Upstream {
            status: 401,
            upstream: "MongoDB".into(),
            message: "MongoDB refused the credentials".into(),
            body: message.clone(),
        }),
        ErrorKind::ServerSelection { .. }
        | ErrorKind::Io(_)
        | ErrorKind::DnsResolve { .. }
        | ErrorKind::ConnectionPoolCleared { .. } => raise(Error::UpstreamUnreachable(format!("MongoDB: {error}"))),
        ErrorKind::InvalidArgument { ref message, .. } => arg_error(&format!("MongoDB: {message}")),
        _ => sql_error(format!("MongoDB: {error}")),
    }
}

/// `work`, or `timeout` once `limit` has passed.
async fn within<T>(limit: Duration, work: impl IntoFuture<Output = mongodb::error::Result<T>>) -> Sql<T> {
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result.map_err(failure),
        Err(_) => Err(raise(Error::Timeout("MongoDB did not answer before the invocation's deadline".into()))),
    }
}

impl Mongo {
    /// A client for `uri`. Nothing is sent yet: the first command finds a server (or fails saying why).
    pub async fn open(uri: String, timeout: Duration) -> Sql<Mongo> {
        let mut options = within(timeout.min(SELECT), ClientOptions::parse(uri)).await?;
        options.app_name = Some("switchboard".into());
        // Selection gives up a little before the deadline, so an unreachable deployment is reported as
        // such rather than as a timeout.
        let select = timeout.saturating_sub(Duration::from_millis(250)).max(Duration::from_millis(100)).min(SELECT);
        options.server_selection_timeout = Some(select);
        options.connect_timeout = Some(select);
        mongodb::Client::with_options(options).map(Mongo).map_err(failure)
    }

    /// Runs the command `name: value` with `fields` on `database`, within `timeout`.
    pub fn command(
        &self,
        database: &str,
        name: &str,
        value: &Dynamic,
        fields: &Map,
        timeout: Duration,
    ) -> Result<Map, Box<EvalAltResult>> {
        let mut command = Document::new();
        command.insert(name, bson_of(value)?);
        for (field, value) in fields {
            if field.as_str() == name {
                return Err(arg_error(&format!("'{name}' is the command itself: give it once")));
            }
            command.insert(field.as_str(), bson_of(value)?);
        }
        let database = self.0.database(database);
        let reply = super::on_io(async move { within(timeout, database.run_command(command)).await })?;
        // A reply is one document (MongoDB bounds it at 16 MiB), read whole by the driver: it is counted
        // before it is converted, which takes several times its size.
        let reply = Bson::Document(reply);
        counted(&reply, &mut Tally::default())?;
        let value = serde_json::from_value::<Dynamic>(reply.into_relaxed_extjson())
            .map_err(|e| raise(Error::internal("MongoDB reply", e)))?;
        value.try_cast::<Map>().ok_or_else(|| sql_error("MongoDB answered something other than a document"))
    }
}

/// Counts every item of a reply as a row and every text or binary value by its length (see `Tally`).
fn counted(value: &Bson, tally: &mut Tally) -> Result<(), Box<EvalAltResult>> {
    match value {
        Bson::Document(document) => document.iter().try_for_each(|(key, item)| {
            tally.bytes(key.len())?;
            counted(item, tally)
        }),
        Bson::Array(items) => items.iter().try_for_each(|item| {
            tally.row()?;
            counted(item, tally)
        }),
        Bson::String(text) => tally.bytes(text.len()),
        Bson::Binary(binary) => tally.bytes(binary.bytes.len().div_ceil(3) * 4),
        _ => tally.bytes(8),
    }
}

/// A script's value as BSON, reading Extended JSON (`{"$oid": …}`, `{"$date": …}`) where it appears.
fn bson_of(value: &Dynamic) -> Result<Bson, Box<EvalAltResult>> {
    let json = super::to_json(value)?;
    Bson::try_from(json).map_err(|e| arg_error(&format!("not a MongoDB value: {e}")))
}
