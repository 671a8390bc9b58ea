//! `/api/invocations` and `/api/usage` (admin token): the invocation records, and what they sum to.
//! The queries themselves are the store's ([`Store::records`](crate::store::Store::records),
//! [`Store::usage`](crate::store::Store::usage)); this only reads their parameters.

use axum::Json;
use axum::extract::{RawQuery, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::AdminRead;
use crate::error::Error;
use crate::store::RecordFilter;

const DEFAULT_LIMIT: usize = 100;
const MOST: usize = 10_000;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Query {
    server: Option<String>,
    status: Option<String>,
    via: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<String>,
}

impl Query {
    fn parse(query: Option<&str>, takes: &str) -> Result<Query, Error> {
        serde_urlencoded::from_str(query.unwrap_or_default())
            .map_err(|e| Error::BadRequest(format!("this listing takes {takes}: {e}")))
    }

    fn filter(self) -> Result<RecordFilter, Error> {
        let bad = |message: String| Error::BadRequest(message);
        let limit = match self.limit {
            None => DEFAULT_LIMIT,
            Some(text) => text.parse::<usize>().map_err(|_| bad(format!("limit is a number, not '{text}'")))?,
        };
        Ok(RecordFilter {
            server: self.server.filter(|s| !s.is_empty()),
            status: self.status.map(|s| s.parse()).transpose().map_err(bad)?,
            via: self.via.map(|v| v.parse()).transpose().map_err(bad)?,
            since: self.since.map(|t| time("since", &t)).transpose()?,
            until: self.until.map(|t| time("until", &t)).transpose()?,
            limit: limit.min(MOST),
        })
    }
}

/// A time parameter: milliseconds since the Unix epoch, or an RFC 3339 date and time.
fn time(name: &str, text: &str) -> Result<i64, Error> {
    if let Ok(millis) = text.parse::<i64>() {
        return Ok(millis);
    }
    chrono::DateTime::parse_from_rfc3339(text).map(|t| t.timestamp_millis()).map_err(|_| {
        Error::BadRequest(format!("{name} is milliseconds since the epoch or an RFC 3339 time, not '{text}'"))
    })
}

/// `GET /api/invocations?server=&status=&via=&since=&until=&limit=`: records, newest first.
pub async fn list(
    _: AdminRead,
    State(runtime): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, Error> {
    let filter = Query::parse(query.as_deref(), "server, status, via, since, until and limit")?.filter()?;
    let records = runtime.blocking(move |rt| rt.store.records(&filter)).await?;
    Ok(Json(json!({ "invocations": records })))
}

/// `GET /api/usage?server=&since=&until=`: calls, errors and cost per server and operation.
pub async fn usage(
    _: AdminRead,
    State(runtime): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, Error> {
    let query = Query::parse(query.as_deref(), "server, since and until")?;
    if query.status.is_some() || query.via.is_some() || query.limit.is_some() {
        return Err(Error::BadRequest("usage takes server, since and until".into()));
    }
    let filter = query.filter()?;
    let usage = runtime.blocking(move |rt| rt.store.usage(&filter)).await?;
    Ok(Json(json!({ "usage": usage })))
}
