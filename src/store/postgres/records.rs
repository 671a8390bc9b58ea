//! Invocation records on PostgreSQL: one table (`invocations`, migration 3) shared by every instance,
//! so that `/api/invocations` and `/api/usage` on any of them see the calls all of them served.
//!
//! Records are not configuration: writing them sends no NOTIFY and takes no lock, so no instance
//! re-reads anything for them. They come from each instance's record writer, a batch at a time, off
//! the invocation path; a batch is one INSERT of arrays, one round trip whatever its size.

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{Fault, PostgresStore, Sql};
use crate::cid::Cid;
use crate::error::Result;
use crate::store::records::Bound;
use crate::store::{InvocationRecord, RecordFilter, Usage};

const COLUMNS: &str = "time, server, operation, cid, via, input_cid, output_cid, status, error_type, duration_ms, \
                       upstream_calls, upstream_bytes, request_id, trace_id, cost, currency";

const APPEND: &str = "INSERT INTO invocations (time, server, operation, cid, via, input_cid, output_cid, status, \
     error_type, duration_ms, upstream_calls, upstream_bytes, request_id, trace_id, cost, currency)
     SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bytea[], $5::text[], $6::bytea[], $7::bytea[], \
     $8::integer[], $9::text[], $10::float8[], $11::bigint[], $12::bigint[], $13::text[], $14::text[], \
     $15::float8[], $16::text[])";

type Param = Box<dyn ToSql + Sync + Send>;

impl PostgresStore {
    pub(super) fn append_invocations(&self, records: &[InvocationRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let digest = |cid: &Option<Cid>| cid.map(|cid| cid.digest().to_vec());
        let params: Vec<Param> = vec![
            Box::new(records.iter().map(|r| r.time).collect::<Vec<i64>>()),
            Box::new(records.iter().map(|r| r.server.clone()).collect::<Vec<_>>()),
            Box::new(records.iter().map(|r| r.operation.clone()).collect::<Vec<_>>()),
            Box::new(records.iter().map(|r| digest(&r.cid)).collect::<Vec<_>>()),
            Box::new(records.iter().map(|r| r.via.as_str().to_owned()).collect::<Vec<_>>()),
            Box::new(records.iter().map(|r| digest(&r.input_cid)).collect::<Vec<_>>()),
            Box::new(records.iter().map(|r| digest(&r.output_cid)).collect::<Vec<_>>()),
            Box::new(records.iter().map(|r| i32::from(r.status)).collect::<Vec<_>>()),
            Box::new(records.iter().map(|r| r.error_type.clone()).collect::<Vec<_>>()),
            Box::new(records.iter().map(|r| r.duration_ms).collect::<Vec<_>>()),
            Box::new(records.iter().map(|r| i64::from(r.upstream_calls)).collect::<Vec<_>>()),
            Box::new(records.iter().map(|r| i64::try_from(r.upstream_bytes).unwrap_or(i64::MAX)).collect::<Vec<_>>()),
            Box::new(records.iter().map(|r| r.request_id.clone()).collect::<Vec<_>>()),
            Box::new(records.iter().map(|r| r.trace_id.clone()).collect::<Vec<_>>()),
            Box::new(records.iter().map(|r| r.cost).collect::<Vec<_>>()),
            Box::new(records.iter().map(|r| r.currency.clone()).collect::<Vec<_>>()),
        ];
        let pool = self.pool.clone();
        self.run(async move {
            let client = pool.get().await?;
            let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as _).collect();
            client.execute(APPEND, &params).await?;
            Ok(())
        })
    }

    pub(super) fn query_invocations(&self, filter: &RecordFilter) -> Result<Vec<InvocationRecord>> {
        let (clause, mut params) = conditions(filter);
        params.push(Box::new(i64::try_from(filter.limit).unwrap_or(i64::MAX)));
        let sql = format!("SELECT {COLUMNS} FROM invocations{clause} ORDER BY id DESC LIMIT ${}", params.len());
        self.rows(sql, params, record)
    }

    /// Ordered as SQLite orders them: by bytes, calls that were no named operation first.
    pub(super) fn invocation_usage(&self, filter: &RecordFilter) -> Result<Vec<Usage>> {
        let (clause, params) = conditions(filter);
        let clause = match clause.is_empty() {
            true => " WHERE server IS NOT NULL".to_owned(),
            false => format!("{clause} AND server IS NOT NULL"),
        };
        let sql = format!(
            "SELECT server, operation, count(*), count(error_type), sum(cost), max(currency)
             FROM invocations{clause} GROUP BY server, operation
             ORDER BY server COLLATE \"C\", operation COLLATE \"C\" NULLS FIRST"
        );
        self.rows(sql, params, |row| {
            Ok(Usage {
                server: row.try_get(0)?,
                operation: row.try_get(1)?,
                calls: row.try_get::<_, i64>(2)?.max(0) as u64,
                errors: row.try_get::<_, i64>(3)?.max(0) as u64,
                cost: row.try_get(4)?,
                currency: row.try_get(5)?,
            })
        })
    }

    /// As on SQLite, the cut by count is found from the last id: ids come from one sequence and
    /// records only ever go from the old end, so the newest `keep` are those above the last id minus
    /// `keep` (fewer, when a rolled-back batch left a gap).
    pub(super) fn prune_invocations(&self, keep: usize, before: i64) -> Result<u64> {
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        let pool = self.pool.clone();
        self.run(async move {
            let client = pool.get().await?;
            let by_count = "DELETE FROM invocations WHERE id <= (SELECT max(id) FROM invocations) - $1";
            let by_count = client.execute(by_count, &[&keep]).await?;
            let by_age = client.execute("DELETE FROM invocations WHERE time < $1", &[&before]).await?;
            Ok(by_count + by_age)
        })
    }
}

/// The `WHERE` clause of a filter (empty when it filters nothing) and its parameters, in order.
fn conditions(filter: &RecordFilter) -> (String, Vec<Param>) {
    let (clause, bounds) = filter.clause(|n| format!("${n}"));
    let params = bounds.into_iter().map(|bound| -> Param {
        match bound {
            Bound::Text(text) => Box::new(text),
            Bound::Time(time) => Box::new(time),
            Bound::Status(code) => Box::new(i32::from(code)),
        }
    });
    (clause, params.collect())
}

fn record(row: &Row) -> Sql<InvocationRecord> {
    let cid = |index: usize| -> Sql<Option<Cid>> {
        let bytes: Option<Vec<u8>> = row.try_get(index)?;
        bytes.map(super::cid_of).transpose()
    };
    let via: String = row.try_get(4)?;
    let status: i32 = row.try_get(7)?;
    Ok(InvocationRecord {
        time: row.try_get(0)?,
        server: row.try_get(1)?,
        operation: row.try_get(2)?,
        cid: cid(3)?,
        via: via.parse().map_err(Fault::Refused)?,
        input_cid: cid(5)?,
        output_cid: cid(6)?,
        status: u16::try_from(status).map_err(|_| Fault::Refused(format!("a record's status is {status}")))?,
        error_type: row.try_get(8)?,
        duration_ms: row.try_get(9)?,
        upstream_calls: u32::try_from(row.try_get::<_, i64>(10)?.max(0)).unwrap_or(u32::MAX),
        upstream_bytes: row.try_get::<_, i64>(11)?.max(0) as u64,
        request_id: row.try_get(12)?,
        trace_id: row.try_get(13)?,
        cost: row.try_get(14)?,
        currency: row.try_get(15)?,
    })
}
