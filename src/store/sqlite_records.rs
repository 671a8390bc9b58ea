//! The SQLite store's invocation records, in a file of their own beside the store
//! (`store.invocations.sqlite`).
//!
//! Records are many small appends. Kept apart, they neither wait for nor hold the lock registry changes
//! take, and they do not move the store's change feed (`PRAGMA data_version`), which would make every
//! process rebuild its registry after every batch.
//!
//! Each batch the writer hands over is one row ([`record_block`](super::record_block)), with the
//! bounds of its records' times beside it: a busy server writes a row per thousand calls instead of a
//! row and two index entries per call. Queries read the rows newest first, skip those outside the
//! asked time range, and filter the records in them. Retention removes whole rows where it can and
//! rewrites the one row it cuts through, so it keeps exactly what it is asked to.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::record_block::{self, Block, Visit};
use super::records::{InvocationRecord, RecordFilter, Usage};
use crate::cid::Cid;
use crate::error::{Error, Result};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS invocation_blocks (
    id       INTEGER PRIMARY KEY,
    count    INTEGER NOT NULL,
    min_time INTEGER NOT NULL,
    max_time INTEGER NOT NULL,
    records  BLOB NOT NULL
);
";

/// The layout before blocks: a row per record. A file that still has it is moved into blocks when
/// opened, in one transaction.
const LEGACY_COLUMNS: &str = "time, server, operation, cid, via, input_cid, output_cid, status, error_type, \
                              duration_ms, upstream_calls, upstream_bytes, request_id, trace_id, cost, currency";

fn db_error(err: rusqlite::Error) -> Error {
    Error::internal("invocation records", err)
}

pub struct Records {
    conn: Mutex<Connection>,
}

impl Records {
    /// Opens (creating if needed) the file at `path`; the store made it private first.
    pub fn open(path: &Path) -> Result<Records> {
        Records::prepare(Connection::open(path).map_err(db_error)?)
    }

    pub fn in_memory() -> Result<Records> {
        Records::prepare(Connection::open_in_memory().map_err(db_error)?)
    }

    fn prepare(mut conn: Connection) -> Result<Records> {
        conn.busy_timeout(Duration::from_secs(10)).map_err(db_error)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(db_error)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(db_error)?;
        conn.execute_batch(SCHEMA).map_err(db_error)?;
        move_legacy_rows(&mut conn)?;
        Ok(Records { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends `records` as one row.
    pub fn append(&self, records: &[InvocationRecord]) -> Result<()> {
        insert(&self.conn(), records)
    }

    pub fn query(&self, filter: &RecordFilter) -> Result<Vec<InvocationRecord>> {
        record_block::newest_of(filter, |visit| self.scan(filter, visit))
    }

    pub fn usage(&self, filter: &RecordFilter) -> Result<Vec<Usage>> {
        record_block::usage_of(|visit| self.scan(filter, visit))
    }

    /// Hands `visit` every record that matches `filter`, newest first, until it answers `false`.
    fn scan(&self, filter: &RecordFilter, visit: Visit<'_>) -> Result<()> {
        let conn = self.conn();
        let mut rows = conn
            .prepare_cached(
                "SELECT id, records FROM invocation_blocks WHERE max_time >= ?1 AND min_time < ?2 ORDER BY id DESC",
            )
            .map_err(db_error)?;
        let mut rows = rows
            .query(params![filter.since.unwrap_or(i64::MIN), filter.until.unwrap_or(i64::MAX)])
            .map_err(db_error)?;
        while let Some(row) = rows.next().map_err(db_error)? {
            let id: i64 = row.get(0).map_err(db_error)?;
            let records = row.get_ref(1).and_then(|value| value.as_blob().map_err(Into::into)).map_err(db_error)?;
            if !record_block::visit(id, records, filter, visit)? {
                break;
            }
        }
        Ok(())
    }

    /// Keeps the newest `keep` records and none older than `before` (Unix ms); returns how many went.
    pub fn prune(&self, keep: usize, before: i64) -> Result<u64> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
        // By age: rows wholly older go at once; a row that reaches back past `before` keeps its newer records.
        let old: Option<i64> = tx
            .query_row("SELECT SUM(count) FROM invocation_blocks WHERE max_time < ?1", [before], |row| row.get(0))
            .map_err(db_error)?;
        let mut removed = old.unwrap_or(0).max(0) as u64;
        tx.execute("DELETE FROM invocation_blocks WHERE max_time < ?1", [before]).map_err(db_error)?;
        let straddling: Vec<i64> = tx
            .prepare("SELECT id FROM invocation_blocks WHERE min_time < ?1")
            .and_then(|mut ids| ids.query_map([before], |row| row.get(0))?.collect())
            .map_err(db_error)?;
        for id in straddling {
            removed += rewrite(&tx, id, |records| records.retain(|r| r.time >= before))?;
        }
        // By count, back from the newest row.
        let sizes: Vec<(i64, i64)> = tx
            .prepare("SELECT id, count FROM invocation_blocks ORDER BY id DESC")
            .and_then(|mut sizes| sizes.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?.collect())
            .map_err(db_error)?;
        let (partly, through) = record_block::cut_by_count(sizes, keep);
        if let Some((id, room)) = partly {
            removed += rewrite(&tx, id, |records| record_block::newest(records, room))?;
        }
        if let Some(id) = through {
            let older: Option<i64> = tx
                .query_row("SELECT SUM(count) FROM invocation_blocks WHERE id <= ?1", [id], |row| row.get(0))
                .map_err(db_error)?;
            removed += older.unwrap_or(0).max(0) as u64;
            tx.execute("DELETE FROM invocation_blocks WHERE id <= ?1", [id]).map_err(db_error)?;
        }
        tx.commit().map_err(db_error)?;
        Ok(removed)
    }
}

/// Adds `records` as one row (none when there are none).
fn insert(conn: &Connection, records: &[InvocationRecord]) -> Result<()> {
    let Some(block) = Block::of(records) else { return Ok(()) };
    conn.prepare_cached("INSERT INTO invocation_blocks (count, min_time, max_time, records) VALUES (?1, ?2, ?3, ?4)")
        .and_then(|mut insert| insert.execute(params![block.count, block.min_time, block.max_time, block.records]))
        .map_err(db_error)?;
    Ok(())
}

/// Rewrites the row `id` with what `cut` leaves of its records (removing the row when nothing is
/// left); returns how many records went.
fn rewrite(tx: &rusqlite::Transaction<'_>, id: i64, cut: impl FnOnce(&mut Vec<InvocationRecord>)) -> Result<u64> {
    let records: Vec<u8> = tx
        .query_row("SELECT records FROM invocation_blocks WHERE id = ?1", [id], |row| row.get(0))
        .map_err(db_error)?;
    let (left, removed) = record_block::cut(id, &records, cut)?;
    match left {
        Some(block) => tx.execute(
            "UPDATE invocation_blocks SET count = ?2, min_time = ?3, max_time = ?4, records = ?5 WHERE id = ?1",
            params![id, block.count, block.min_time, block.max_time, block.records],
        ),
        None => tx.execute("DELETE FROM invocation_blocks WHERE id = ?1", [id]),
    }
    .map_err(db_error)?;
    Ok(removed)
}

/// Moves the records of a file written before blocks (a row each, in `invocations`) into blocks, in
/// their order, and drops the old table — all or nothing. A file without that table is only read:
/// opening the records (every `switchboard call` beside a server does) takes no write lock.
fn move_legacy_rows(conn: &mut Connection) -> Result<()> {
    if !has_legacy_table(conn)? {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
    // Another process may have moved them between the look and the lock.
    if !has_legacy_table(&tx)? {
        return Ok(());
    }
    let records: Vec<InvocationRecord> = tx
        .prepare(&format!("SELECT {LEGACY_COLUMNS} FROM invocations ORDER BY id"))
        .and_then(|mut rows| rows.query_map([], legacy_record)?.collect())
        .map_err(db_error)?;
    for block in records.chunks(record_block::MOVED_PER_ROW) {
        insert(&tx, block)?;
    }
    tx.execute_batch("DROP TABLE invocations").map_err(db_error)?;
    tx.commit().map_err(db_error)
}

fn has_legacy_table(conn: &Connection) -> Result<bool> {
    let sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'invocations'";
    Ok(conn.query_row(sql, [], |_| Ok(())).optional().map_err(db_error)?.is_some())
}

fn legacy_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<InvocationRecord> {
    let conversion = |index: usize, e: String| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, e.into())
    };
    let cid = |index: usize| -> rusqlite::Result<Option<Cid>> {
        let text: Option<String> = row.get(index)?;
        text.map(|text| text.parse::<Cid>().map_err(|e| conversion(index, e.to_string()))).transpose()
    };
    Ok(InvocationRecord {
        time: row.get(0)?,
        server: row.get(1)?,
        operation: row.get(2)?,
        cid: cid(3)?,
        via: row.get::<_, String>(4)?.parse().map_err(|e| conversion(4, e))?,
        input_cid: cid(5)?,
        output_cid: cid(6)?,
        status: row.get(7)?,
        error_type: row.get(8)?,
        duration_ms: row.get(9)?,
        upstream_calls: row.get(10)?,
        upstream_bytes: row.get::<_, i64>(11)?.max(0) as u64,
        request_id: row.get(12)?,
        trace_id: row.get(13)?,
        cost: row.get(14)?,
        currency: row.get(15)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::records::Via;

    fn record(time: i64, server: &str) -> InvocationRecord {
        InvocationRecord::sample(time, server)
    }

    fn times(records: &Records, filter: RecordFilter) -> Vec<i64> {
        let limit = if filter.limit == 0 { 1_000 } else { filter.limit };
        records.query(&RecordFilter { limit, ..filter }).unwrap().iter().map(|r| r.time).collect()
    }

    fn blocks(records: &Records) -> i64 {
        records.conn().query_row("SELECT COUNT(*) FROM invocation_blocks", [], |row| row.get(0)).unwrap()
    }

    #[test]
    fn retention_cuts_through_blocks_exactly_and_reads_skip_blocks_outside_the_time_asked() {
        let records = Records::in_memory().unwrap();
        // Three batches; the middle one finished out of order, as concurrent calls do.
        records.append(&[record(1, "a"), record(2, "b"), record(3, "a")]).unwrap();
        records.append(&[record(6, "a"), record(4, "b"), record(5, "a")]).unwrap();
        records.append(&[record(7, "b"), record(8, "a")]).unwrap();
        assert_eq!(times(&records, RecordFilter::default()), [8, 7, 5, 4, 6, 3, 2, 1]);
        assert_eq!(times(&records, RecordFilter { since: Some(5), until: Some(8), ..Default::default() }), [7, 5, 6]);
        assert_eq!(times(&records, RecordFilter { server: Some("b".into()), ..Default::default() }), [7, 4, 2]);
        assert_eq!(times(&records, RecordFilter { limit: 2, ..Default::default() }), [8, 7]);

        // By age, through the middle of the out-of-order batch: only its records before 5 go.
        assert_eq!(records.prune(100, 5).unwrap(), 4);
        assert_eq!(times(&records, RecordFilter::default()), [8, 7, 5, 6]);
        assert_eq!(blocks(&records), 2);
        // By count, through a batch: its oldest go, the newest stay.
        assert_eq!(records.prune(3, 0).unwrap(), 1);
        assert_eq!(times(&records, RecordFilter::default()), [8, 7, 5]);
        assert_eq!(records.prune(2, 0).unwrap(), 1);
        assert_eq!(times(&records, RecordFilter::default()), [8, 7]);
        assert_eq!(blocks(&records), 1);
        assert_eq!(records.prune(2, 0).unwrap(), 0);
        assert_eq!(records.prune(0, 0).unwrap(), 2);
        assert_eq!(blocks(&records), 0);
    }

    #[test]
    fn a_damaged_block_is_an_error_not_a_crash() {
        let records = Records::in_memory().unwrap();
        records.append(&[record(1, "a")]).unwrap();
        records.conn().execute("UPDATE invocation_blocks SET records = x'01ff'", []).unwrap();
        let error = records.query(&RecordFilter { limit: 10, ..Default::default() }).unwrap_err();
        assert!(error.message().contains("damaged"), "{}", error.message());
        assert!(records.usage(&RecordFilter::default()).is_err());
    }

    #[test]
    fn a_file_with_a_row_per_record_is_moved_into_blocks_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.invocations.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(&format!(
                "CREATE TABLE invocations (id INTEGER PRIMARY KEY, time INTEGER NOT NULL, server TEXT, operation TEXT,
                     cid TEXT, via TEXT NOT NULL, input_cid TEXT, output_cid TEXT, status INTEGER NOT NULL,
                     error_type TEXT, duration_ms REAL NOT NULL, upstream_calls INTEGER NOT NULL,
                     upstream_bytes INTEGER NOT NULL, request_id TEXT NOT NULL, trace_id TEXT NOT NULL,
                     cost REAL NOT NULL, currency TEXT);
                 INSERT INTO invocations ({LEGACY_COLUMNS}) VALUES
                     (1, 'a', NULL, '{script}', 'http', NULL, NULL, 200, NULL, 1.0, 0, 0, 'r1', 't', 0.0, NULL),
                     (2, 'b', 'op', NULL, 'mcp', NULL, NULL, 502, 'upstream_error', 2.5, 1, 9, 'r2', 't', 0.5, 'USD');",
                script = Cid::of(b"script"),
            ))
            .unwrap();
        }
        let records = Records::open(&path).unwrap();
        let moved = records.query(&RecordFilter { limit: 10, ..Default::default() }).unwrap();
        assert_eq!(moved.len(), 2);
        assert_eq!(moved[1], record(1, "a"));
        assert_eq!(
            (moved[0].via, moved[0].error_type.as_deref(), moved[0].cost),
            (Via::Mcp, Some("upstream_error"), 0.5)
        );
        let legacy: i64 = records
            .conn()
            .query_row("SELECT COUNT(*) FROM sqlite_master WHERE name = 'invocations'", [], |row| row.get(0))
            .unwrap();
        assert_eq!(legacy, 0, "the old table is gone once its rows are moved");
        drop(records);
        assert_eq!(
            Records::open(&path).unwrap().query(&RecordFilter { limit: 10, ..Default::default() }).unwrap(),
            moved
        );
    }
}
