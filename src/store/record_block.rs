//! A batch of invocation records as one compact value, the way both stores keep them: a row per batch
//! costs the database one insert however many calls the batch holds, where a row per record cost it an
//! insert and two index updates each — more than serving the call.
//!
//! Beside the codec, what both stores do with such rows: read them newest first and filter the records
//! in them ([`visit`], [`newest_of`]), sum usage ([`usage_of`]), and apply the retention exactly —
//! whole rows go, and the one row a bound cuts through is rewritten ([`cut`], [`cut_by_count`]).
//!
//! The layout is fixed-width numbers (little-endian), strings as a `u32` length and their UTF-8 bytes,
//! CIDs as their 32-byte digests, and one byte saying which optional fields follow. Version 2 adds a
//! second byte that lets a record say "the same server and script as the record before" and keep its
//! request id (a UUID) and trace id (32 hex digits) as the 16 bytes they stand for: a batch is mostly
//! calls of a few scripts, and its size is what the database writes (≈ 75 bytes a record where version 1
//! took ≈ 160). A block starts with its format's version (1 is still read); one that is cut short or does
//! not parse is refused whole, never read in part.

use std::collections::BTreeMap;

use super::records::{InvocationRecord, RecordFilter, Usage, Via};
use crate::cid::Cid;
use crate::error::{Error, Result};

/// The format written; a block of any version but this one and [`FIRST`] is refused.
const VERSION: u8 = 2;
/// The first format, still read: no [`SAME_SERVER`] byte.
const FIRST: u8 = 1;

/// Which optional fields a record carries, one bit each.
const SERVER: u8 = 1;
const OPERATION: u8 = 1 << 1;
const SCRIPT: u8 = 1 << 2;
const INPUT: u8 = 1 << 3;
const OUTPUT: u8 = 1 << 4;
const ERROR_TYPE: u8 = 1 << 5;
const CURRENCY: u8 = 1 << 6;

/// What version 2's second byte says of a record, one bit each: its server and script are the record
/// before's (and not written again); its ids are kept as bytes.
const SAME_SERVER: u8 = 1;
const SAME_SCRIPT: u8 = 1 << 1;
const UUID_REQUEST_ID: u8 = 1 << 2;
const HEX_TRACE_ID: u8 = 1 << 3;

/// Most records one row holds when rows written a record each are moved into blocks.
pub const MOVED_PER_ROW: usize = 1_000;

/// A batch as a row holds it: how many records, the bounds of their times, and the records encoded.
pub struct Block {
    pub count: i64,
    pub min_time: i64,
    pub max_time: i64,
    pub records: Vec<u8>,
}

impl Block {
    /// `records` as one row; `None` when there are none.
    pub fn of(records: &[InvocationRecord]) -> Option<Block> {
        Some(Block {
            count: records.len() as i64,
            min_time: records.iter().map(|r| r.time).min()?,
            max_time: records.iter().map(|r| r.time).max()?,
            records: encode(records),
        })
    }
}

/// The error for a row whose records do not decode.
fn damaged(id: i64) -> Error {
    Error::Internal(format!("invocation records: the block {id} is damaged and cannot be read"))
}

/// What a store gives a scan: each record that matches, newest first, until it answers `false`.
pub type Visit<'a> = &'a mut dyn FnMut(InvocationRecord) -> bool;

/// Hands `visit` the records of the row `id` (its encoded `records`) that match `filter`, newest first;
/// `false` once `visit` has answered `false` (it wants no more).
pub fn visit(id: i64, records: &[u8], filter: &RecordFilter, visit: Visit<'_>) -> Result<bool> {
    let records = decode(records).ok_or_else(|| damaged(id))?;
    Ok(records.into_iter().rev().filter(|record| filter.matches(record)).all(visit))
}

/// The newest `filter.limit` records a store's `scan` hands over.
pub fn newest_of(filter: &RecordFilter, scan: impl FnOnce(Visit<'_>) -> Result<()>) -> Result<Vec<InvocationRecord>> {
    let mut found = Vec::new();
    if filter.limit > 0 {
        scan(&mut |record| {
            found.push(record);
            found.len() < filter.limit
        })?;
    }
    Ok(found)
}

/// The usage of every record a store's `scan` hands over.
pub fn usage_of(scan: impl FnOnce(Visit<'_>) -> Result<()>) -> Result<Vec<Usage>> {
    let mut tally = Tally::default();
    scan(&mut |record| {
        tally.add(record);
        true
    })?;
    Ok(tally.usage())
}

/// Calls, errors and cost per server and operation, summed record by record.
#[derive(Default)]
struct Tally(BTreeMap<(String, Option<String>), Usage>);

impl Tally {
    /// Counts `record` (one that ran as no server counts nowhere).
    fn add(&mut self, record: InvocationRecord) {
        let Some(server) = record.server else { return };
        let key = (server, record.operation);
        let usage = self.0.entry(key.clone()).or_insert_with(|| Usage {
            server: key.0,
            operation: key.1,
            calls: 0,
            errors: 0,
            cost: 0.0,
            currency: None,
        });
        usage.calls += 1;
        usage.errors += u64::from(record.error_type.is_some());
        usage.cost += record.cost;
        usage.currency = usage.currency.take().max(record.currency);
    }

    /// Ordered by server and operation (by bytes; calls that were no named operation first).
    fn usage(self) -> Vec<Usage> {
        self.0.into_values().collect()
    }
}

/// What is left of the row `id` once `cut` has removed records from it (`None`: nothing is), and how
/// many went.
pub fn cut(id: i64, records: &[u8], cut: impl FnOnce(&mut Vec<InvocationRecord>)) -> Result<(Option<Block>, u64)> {
    let mut records = decode(records).ok_or_else(|| damaged(id))?;
    let before = records.len();
    cut(&mut records);
    Ok((Block::of(&records), (before - records.len()) as u64))
}

/// Where a retention by count cuts, given every row's id and count, newest first: the row to keep only
/// the newest records of (its id and how many), and the id at and below which every row goes.
pub fn cut_by_count(sizes: impl IntoIterator<Item = (i64, i64)>, keep: usize) -> (Option<(i64, usize)>, Option<i64>) {
    let mut kept = 0usize;
    let mut partly = None;
    for (id, count) in sizes {
        if kept >= keep {
            return (partly, Some(id));
        }
        let count = usize::try_from(count).unwrap_or(0);
        if kept + count > keep {
            partly = Some((id, keep - kept));
        }
        kept = (kept + count).min(keep);
    }
    (partly, None)
}

/// Keeps the newest `room` of `records`.
pub fn newest(records: &mut Vec<InvocationRecord>, room: usize) {
    records.drain(..records.len().saturating_sub(room));
}

/// Encodes `records`, in order.
pub fn encode(records: &[InvocationRecord]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + records.len() * 80);
    out.push(VERSION);
    let mut previous: Option<&InvocationRecord> = None;
    for r in records {
        let present = [
            (r.server.is_some(), SERVER),
            (r.operation.is_some(), OPERATION),
            (r.cid.is_some(), SCRIPT),
            (r.input_cid.is_some(), INPUT),
            (r.output_cid.is_some(), OUTPUT),
            (r.error_type.is_some(), ERROR_TYPE),
            (r.currency.is_some(), CURRENCY),
        ];
        let same_server = r.server.is_some() && previous.is_some_and(|p| p.server == r.server);
        let same_script = r.cid.is_some() && previous.is_some_and(|p| p.cid == r.cid);
        let request_uuid = uuid_bytes(&r.request_id);
        let trace_bytes = hex_bytes(&r.trace_id);
        let kept = [
            (same_server, SAME_SERVER),
            (same_script, SAME_SCRIPT),
            (request_uuid.is_some(), UUID_REQUEST_ID),
            (trace_bytes.is_some(), HEX_TRACE_ID),
        ];
        out.push(bits(&present));
        out.push(bits(&kept));
        out.extend_from_slice(&r.time.to_le_bytes());
        out.push(Via::ALL.iter().position(|via| *via == r.via).unwrap_or(0) as u8);
        out.extend_from_slice(&r.status.to_le_bytes());
        out.extend_from_slice(&r.duration_ms.to_le_bytes());
        out.extend_from_slice(&r.upstream_calls.to_le_bytes());
        out.extend_from_slice(&r.upstream_bytes.to_le_bytes());
        out.extend_from_slice(&r.cost.to_le_bytes());
        let server = if same_server { None } else { r.server.as_ref() };
        for text in [server, r.operation.as_ref(), r.error_type.as_ref(), r.currency.as_ref()].into_iter().flatten() {
            put_text(&mut out, text);
        }
        let cid = if same_script { None } else { r.cid.as_ref() };
        for cid in [cid, r.input_cid.as_ref(), r.output_cid.as_ref()].into_iter().flatten() {
            out.extend_from_slice(cid.digest());
        }
        match request_uuid {
            Some(bytes) => out.extend_from_slice(&bytes),
            None => put_text(&mut out, &r.request_id),
        }
        match trace_bytes {
            Some(bytes) => out.extend_from_slice(&bytes),
            None => put_text(&mut out, &r.trace_id),
        }
        previous = Some(r);
    }
    out
}

/// The byte whose bits are those set in `flags`.
fn bits(flags: &[(bool, u8)]) -> u8 {
    flags.iter().filter(|(set, _)| *set).fold(0, |bits, (_, bit)| bits | bit)
}

/// The 16 bytes of a UUID written the way this runtime writes request ids (hyphenated, lower case);
/// `None` for any other text, which is kept as it is.
fn uuid_bytes(text: &str) -> Option<[u8; 16]> {
    let uuid = uuid::Uuid::try_parse(text).ok()?;
    (uuid.hyphenated().encode_lower(&mut [0; uuid::fmt::Hyphenated::LENGTH]) == text).then(|| uuid.into_bytes())
}

/// The 16 bytes 32 lower-case hex digits stand for; `None` for any other text.
fn hex_bytes(text: &str) -> Option<[u8; 16]> {
    let mut bytes = [0; 16];
    let lower = text.bytes().all(|b| !b.is_ascii_uppercase());
    (lower && hex::decode_to_slice(text, &mut bytes).is_ok()).then_some(bytes)
}

/// Decodes a block [`encode`] wrote (of this version or the first); `None` when it is damaged or of
/// another version.
pub fn decode(bytes: &[u8]) -> Option<Vec<InvocationRecord>> {
    let (&version, rest) = bytes.split_first()?;
    if version != VERSION && version != FIRST {
        return None;
    }
    let mut reader = Reader { rest, version };
    let mut records: Vec<InvocationRecord> = Vec::new();
    while !reader.rest.is_empty() {
        let record = reader.record(records.last())?;
        records.push(record);
    }
    Some(records)
}

fn put_text(out: &mut Vec<u8>, text: &str) {
    // A record's texts are names and ids, far below 4 GiB; a longer one is cut rather than wrapped.
    let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&text.as_bytes()[..len as usize]);
}

/// What is left of a block to read, and of which version.
struct Reader<'a> {
    rest: &'a [u8],
    version: u8,
}

impl Reader<'_> {
    fn bytes<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.rest.split_first_chunk::<N>()?;
        self.rest = rest;
        Some(*head)
    }

    fn text(&mut self) -> Option<String> {
        let len = u32::from_le_bytes(self.bytes()?) as usize;
        let (head, rest) = self.rest.split_at_checked(len)?;
        self.rest = rest;
        String::from_utf8(head.to_vec()).ok()
    }

    fn text_if(&mut self, present: u8, bit: u8) -> Option<Option<String>> {
        if present & bit == 0 { Some(None) } else { self.text().map(Some) }
    }

    fn cid_if(&mut self, present: u8, bit: u8) -> Option<Option<Cid>> {
        if present & bit == 0 { Some(None) } else { self.bytes().map(|digest| Some(Cid::from_digest(digest))) }
    }

    /// The next record; `previous` is the one read before it, whose server and script a record may say
    /// it shares (refused when there is none, or it had none).
    fn record(&mut self, previous: Option<&InvocationRecord>) -> Option<InvocationRecord> {
        let [present] = self.bytes()?;
        let [kept] = if self.version == FIRST { [0] } else { self.bytes()? };
        let time = i64::from_le_bytes(self.bytes()?);
        let [via] = self.bytes()?;
        let via = *Via::ALL.get(usize::from(via))?;
        let status = u16::from_le_bytes(self.bytes()?);
        let duration_ms = f64::from_le_bytes(self.bytes()?);
        let upstream_calls = u32::from_le_bytes(self.bytes()?);
        let upstream_bytes = u64::from_le_bytes(self.bytes()?);
        let cost = f64::from_le_bytes(self.bytes()?);
        let server = match (kept & SAME_SERVER, present & SERVER) {
            (0, _) => self.text_if(present, SERVER)?,
            (_, 0) => return None,
            _ => Some(previous?.server.clone()?),
        };
        let operation = self.text_if(present, OPERATION)?;
        let error_type = self.text_if(present, ERROR_TYPE)?;
        let currency = self.text_if(present, CURRENCY)?;
        let cid = match (kept & SAME_SCRIPT, present & SCRIPT) {
            (0, _) => self.cid_if(present, SCRIPT)?,
            (_, 0) => return None,
            _ => Some(previous?.cid?),
        };
        let input_cid = self.cid_if(present, INPUT)?;
        let output_cid = self.cid_if(present, OUTPUT)?;
        let request_id = match kept & UUID_REQUEST_ID {
            0 => self.text()?,
            _ => uuid::Uuid::from_bytes(self.bytes()?).hyphenated().to_string(),
        };
        let trace_id = match kept & HEX_TRACE_ID {
            0 => self.text()?,
            _ => hex::encode(self.bytes::<16>()?),
        };
        Some(InvocationRecord {
            time,
            server,
            operation,
            cid,
            via,
            input_cid,
            output_cid,
            status,
            error_type,
            duration_ms,
            upstream_calls,
            upstream_bytes,
            request_id,
            trace_id,
            cost,
            currency,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> InvocationRecord {
        InvocationRecord {
            time: 1_765_000_000_123,
            server: Some("crm".into()),
            operation: Some("list_deals".into()),
            cid: Some(Cid::of(b"script")),
            via: Via::Webhook,
            input_cid: Some(Cid::of(b"in")),
            output_cid: Some(Cid::of(b"out")),
            status: 502,
            error_type: Some("upstream_error".into()),
            duration_ms: 12.5,
            upstream_calls: 3,
            upstream_bytes: u64::MAX,
            request_id: "req-ü".into(),
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            cost: 0.002,
            currency: Some("USD".into()),
        }
    }

    fn bare() -> InvocationRecord {
        InvocationRecord {
            time: -1,
            server: None,
            operation: None,
            cid: None,
            via: Via::Cli,
            input_cid: None,
            output_cid: None,
            status: 200,
            error_type: None,
            duration_ms: 0.0,
            upstream_calls: 0,
            upstream_bytes: 0,
            request_id: String::new(),
            trace_id: String::new(),
            cost: 0.0,
            currency: None,
        }
    }

    #[test]
    fn records_come_back_as_they_went_in() {
        let records = vec![full(), bare(), full()];
        assert_eq!(decode(&encode(&records)), Some(records));
        assert_eq!(decode(&encode(&[])), Some(Vec::new()));
    }

    #[test]
    fn a_damaged_block_is_refused_whole() {
        let bytes = encode(&[full(), bare()]);
        for cut in 0..bytes.len() - 1 {
            let decoded = decode(&bytes[..cut]);
            // A cut that falls exactly between records leaves a shorter valid block; any other is refused.
            assert!(decoded.is_none() || decoded == Some(vec![]) || decoded == Some(vec![full()]), "cut at {cut}");
        }
        let mut other_version = bytes.clone();
        other_version[0] = VERSION + 1;
        assert_eq!(decode(&other_version), None);
        let mut bad_via = bytes;
        bad_via[1 + 2 + 8] = 9;
        assert_eq!(decode(&bad_via), None);
        // A first record cannot be "the same as the one before".
        let mut no_previous = encode(&[full()]);
        no_previous[2] |= SAME_SERVER;
        assert_eq!(decode(&no_previous), None);
    }

    /// Calls as the runtime records them: one script, a UUID request id, a 32-digit trace id.
    fn call(n: u8) -> InvocationRecord {
        InvocationRecord {
            request_id: uuid::Uuid::from_bytes([n; 16]).hyphenated().to_string(),
            trace_id: hex::encode([n.wrapping_add(1); 16]),
            ..InvocationRecord::sample(1_765_000_000_000 + i64::from(n), "crm")
        }
    }

    #[test]
    fn calls_of_one_script_keep_their_ids_as_bytes_and_their_script_once() {
        let calls: Vec<InvocationRecord> = (0..100).map(call).collect();
        let bytes = encode(&calls);
        assert_eq!(decode(&bytes), Some(calls.clone()));
        assert!(bytes.len() < 100 * 80, "{} bytes for 100 calls", bytes.len());
        // Texts that only look like ids are kept as they are.
        let mut odd = vec![call(1), call(2), call(3), call(4)];
        odd[0].request_id = odd[0].request_id.to_uppercase();
        odd[1].trace_id = odd[1].trace_id.to_uppercase();
        odd[2].request_id = odd[2].request_id.replace('-', "");
        odd[3].trace_id.push('0');
        odd[3].server = Some("other".into());
        odd[3].cid = Some(Cid::of(b"another script"));
        assert_eq!(decode(&encode(&odd)), Some(odd));
    }

    #[test]
    fn a_block_of_the_first_version_is_still_read() {
        let r = full();
        let mut block = vec![FIRST, SERVER | OPERATION | SCRIPT | INPUT | OUTPUT | ERROR_TYPE | CURRENCY];
        block.extend_from_slice(&r.time.to_le_bytes());
        block.push(Via::ALL.iter().position(|via| *via == Via::Webhook).unwrap() as u8);
        block.extend_from_slice(&r.status.to_le_bytes());
        block.extend_from_slice(&r.duration_ms.to_le_bytes());
        block.extend_from_slice(&r.upstream_calls.to_le_bytes());
        block.extend_from_slice(&r.upstream_bytes.to_le_bytes());
        block.extend_from_slice(&r.cost.to_le_bytes());
        for text in ["crm", "list_deals", "upstream_error", "USD"] {
            put_text(&mut block, text);
        }
        for name in [&b"script"[..], b"in", b"out"] {
            block.extend_from_slice(Cid::of(name).digest());
        }
        put_text(&mut block, &r.request_id);
        put_text(&mut block, &r.trace_id);
        assert_eq!(decode(&block), Some(vec![r]));
    }
}
