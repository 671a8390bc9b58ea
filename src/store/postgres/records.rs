//! Invocation records on PostgreSQL: one table (`invocation_blocks`) shared by every instance, so that
//! `/api/invocations` and `/api/usage` on any of them see the calls all of them served.
//!
//! Records are not configuration: writing them sends no NOTIFY and takes no lock, so no instance
//! re-reads anything for them. They come from each instance's record writer a batch at a time, off the
//! invocation path, each batch one row as the SQLite store keeps it ([`record_block`]): one insert per
//! batch for the database however many calls it holds. Reads go back from the newest row a page at a
//! time; retention is serialised across instances by the store's lock row `records`.

use deadpool_postgres::Transaction;

use super::{PostgresStore, Sql, TAKE_LOCK};
use crate::error::Result;
use crate::store::record_block::{self, Block, Visit};
use crate::store::{InvocationRecord, RecordFilter, Usage};

/// One batch as one row.
const INSERT_BLOCK: &str = "INSERT INTO invocation_blocks (count, min_time, max_time, records) VALUES ($1, $2, $3, $4)";

/// Rows read per round trip when going back through the records.
const PAGE: i64 = 16;

/// The migration that made `invocation_blocks` (see `schema.rs`), after which [`move_rows`] moves the
/// records of the table it replaces.
pub(super) const BLOCKS_MIGRATION: i32 = 5;

impl PostgresStore {
    pub(super) fn append_invocations(&self, records: &[InvocationRecord]) -> Result<()> {
        let Some(block) = Block::of(records) else { return Ok(()) };
        let pool = self.pool.clone();
        self.run(async move {
            let client = pool.get().await?;
            client.execute(INSERT_BLOCK, &[&block.count, &block.min_time, &block.max_time, &block.records]).await?;
            Ok(())
        })
    }

    pub(super) fn query_invocations(&self, filter: &RecordFilter) -> Result<Vec<InvocationRecord>> {
        record_block::newest_of(filter, |visit| self.scan(filter, visit))
    }

    pub(super) fn invocation_usage(&self, filter: &RecordFilter) -> Result<Vec<Usage>> {
        record_block::usage_of(|visit| self.scan(filter, visit))
    }

    /// Hands `visit` every record that matches `filter`, newest first, until it answers `false`.
    fn scan(&self, filter: &RecordFilter, visit: Visit<'_>) -> Result<()> {
        let (since, until) = (filter.since.unwrap_or(i64::MIN), filter.until.unwrap_or(i64::MAX));
        let mut below = i64::MAX;
        loop {
            let pool = self.pool.clone();
            let page: Vec<(i64, Vec<u8>)> = self.run(async move {
                let client = pool.get().await?;
                let sql = "SELECT id, records FROM invocation_blocks
                           WHERE max_time >= $1 AND min_time < $2 AND id < $3 ORDER BY id DESC LIMIT $4";
                let rows = client.query(sql, &[&since, &until, &below, &PAGE]).await?;
                rows.iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?))).collect::<Sql<_>>()
            })?;
            let last = page.len() < PAGE as usize;
            for (id, records) in page {
                if !record_block::visit(id, &records, filter, visit)? {
                    return Ok(());
                }
                below = id;
            }
            if last {
                return Ok(());
            }
        }
    }

    /// Keeps the newest `keep` records and none older than `before` (Unix ms), as the SQLite store does;
    /// returns how many went.
    pub(super) fn prune_invocations(&self, keep: usize, before: i64) -> Result<u64> {
        let pool = self.pool.clone();
        self.run(async move {
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            tx.execute(TAKE_LOCK, &[&"records"]).await?;
            let old = tx.query("DELETE FROM invocation_blocks WHERE max_time < $1 RETURNING count", &[&before]).await?;
            let mut removed = old.iter().map(|row| row.try_get::<_, i64>(0)).sum::<Result<i64, _>>()?.max(0) as u64;
            let straddling = tx.query("SELECT id FROM invocation_blocks WHERE min_time < $1", &[&before]).await?;
            for row in straddling {
                removed += rewrite(&tx, row.try_get(0)?, |records| records.retain(|r| r.time >= before)).await?;
            }
            let sizes = tx.query("SELECT id, count FROM invocation_blocks ORDER BY id DESC", &[]).await?;
            let sizes = sizes.iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?))).collect::<Sql<Vec<_>>>()?;
            let (partly, through) = record_block::cut_by_count(sizes, keep);
            if let Some((id, room)) = partly {
                removed += rewrite(&tx, id, |records| record_block::newest(records, room)).await?;
            }
            if let Some(id) = through {
                let older = tx.query("DELETE FROM invocation_blocks WHERE id <= $1 RETURNING count", &[&id]).await?;
                removed += older.iter().map(|row| row.try_get::<_, i64>(0)).sum::<Result<i64, _>>()?.max(0) as u64;
            }
            tx.commit().await?;
            Ok(removed)
        })
    }
}

/// Rewrites the row `id` with what `cut` leaves of its records (removing the row when nothing is
/// left); returns how many records went.
async fn rewrite(tx: &Transaction<'_>, id: i64, cut: impl FnOnce(&mut Vec<InvocationRecord>)) -> Sql<u64> {
    let row = tx.query_one("SELECT records FROM invocation_blocks WHERE id = $1", &[&id]).await?;
    let records: Vec<u8> = row.try_get(0)?;
    let (left, removed) =
        record_block::cut(id, &records, cut).map_err(|error| super::Fault::Refused(error.message()))?;
    match left {
        Some(block) => {
            let sql =
                "UPDATE invocation_blocks SET count = $2, min_time = $3, max_time = $4, records = $5 WHERE id = $1";
            tx.execute(sql, &[&id, &block.count, &block.min_time, &block.max_time, &block.records]).await?
        }
        None => tx.execute("DELETE FROM invocation_blocks WHERE id = $1", &[&id]).await?,
    };
    Ok(removed)
}

/// Moves the records of the table written before blocks (`invocations`, a row per record) into blocks
/// of at most [`record_block::MOVED_PER_ROW`], in their order, and drops it: part of the migration
/// that made the blocks, so in its transaction.
pub(super) async fn move_rows(tx: &Transaction<'_>) -> Sql<()> {
    const COLUMNS: &str = "time, server, operation, cid, via, input_cid, output_cid, status, error_type, \
                           duration_ms, upstream_calls, upstream_bytes, request_id, trace_id, cost, currency";
    let rows = tx.query(&format!("SELECT {COLUMNS} FROM invocations ORDER BY id"), &[]).await?;
    let records = rows.iter().map(legacy_record).collect::<Sql<Vec<_>>>()?;
    for block in records.chunks(record_block::MOVED_PER_ROW).filter_map(Block::of) {
        tx.execute(INSERT_BLOCK, &[&block.count, &block.min_time, &block.max_time, &block.records]).await?;
    }
    tx.batch_execute("DROP TABLE invocations").await?;
    Ok(())
}

fn legacy_record(row: &tokio_postgres::Row) -> Sql<InvocationRecord> {
    use super::Fault;
    let cid = |index: usize| -> Sql<_> {
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
