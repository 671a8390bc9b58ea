//! A batch of invocation records as one compact value, the way the SQLite store keeps them: a row per
//! batch costs the database one insert however many calls the batch holds, where a row per record cost
//! it an insert and two index updates each — more than serving the call.
//!
//! The layout is fixed-width numbers (little-endian), strings as a `u32` length and their UTF-8 bytes,
//! CIDs as their 32-byte digests, and one byte saying which optional fields follow. A block starts
//! with its format's version; one that is cut short or does not parse is refused whole, never read in
//! part.

use super::records::{InvocationRecord, Via};
use crate::cid::Cid;

/// The format written; a block of another version is refused.
const VERSION: u8 = 1;

/// Which optional fields a record carries, one bit each.
const SERVER: u8 = 1;
const OPERATION: u8 = 1 << 1;
const SCRIPT: u8 = 1 << 2;
const INPUT: u8 = 1 << 3;
const OUTPUT: u8 = 1 << 4;
const ERROR_TYPE: u8 = 1 << 5;
const CURRENCY: u8 = 1 << 6;

/// Encodes `records`, in order.
pub fn encode(records: &[InvocationRecord]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + records.len() * 160);
    out.push(VERSION);
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
        out.push(present.iter().filter(|(set, _)| *set).fold(0, |bits, (_, bit)| bits | bit));
        out.extend_from_slice(&r.time.to_le_bytes());
        out.push(Via::ALL.iter().position(|via| *via == r.via).unwrap_or(0) as u8);
        out.extend_from_slice(&r.status.to_le_bytes());
        out.extend_from_slice(&r.duration_ms.to_le_bytes());
        out.extend_from_slice(&r.upstream_calls.to_le_bytes());
        out.extend_from_slice(&r.upstream_bytes.to_le_bytes());
        out.extend_from_slice(&r.cost.to_le_bytes());
        for text in [&r.server, &r.operation, &r.error_type, &r.currency].into_iter().flatten() {
            put_text(&mut out, text);
        }
        for cid in [&r.cid, &r.input_cid, &r.output_cid].into_iter().flatten() {
            out.extend_from_slice(cid.digest());
        }
        put_text(&mut out, &r.request_id);
        put_text(&mut out, &r.trace_id);
    }
    out
}

/// Decodes a block [`encode`] wrote; `None` when it is damaged or of another version.
pub fn decode(bytes: &[u8]) -> Option<Vec<InvocationRecord>> {
    let (&version, rest) = bytes.split_first()?;
    if version != VERSION {
        return None;
    }
    let mut reader = Reader(rest);
    let mut records = Vec::new();
    while !reader.0.is_empty() {
        records.push(reader.record()?);
    }
    Some(records)
}

fn put_text(out: &mut Vec<u8>, text: &str) {
    // A record's texts are names and ids, far below 4 GiB; a longer one is cut rather than wrapped.
    let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&text.as_bytes()[..len as usize]);
}

/// What is left of a block to read.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn bytes<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn text(&mut self) -> Option<String> {
        let len = u32::from_le_bytes(self.bytes()?) as usize;
        let (head, rest) = self.0.split_at_checked(len)?;
        self.0 = rest;
        String::from_utf8(head.to_vec()).ok()
    }

    fn text_if(&mut self, present: u8, bit: u8) -> Option<Option<String>> {
        if present & bit == 0 { Some(None) } else { self.text().map(Some) }
    }

    fn cid_if(&mut self, present: u8, bit: u8) -> Option<Option<Cid>> {
        if present & bit == 0 { Some(None) } else { self.bytes().map(|digest| Some(Cid::from_digest(digest))) }
    }

    fn record(&mut self) -> Option<InvocationRecord> {
        let [present] = self.bytes()?;
        let time = i64::from_le_bytes(self.bytes()?);
        let [via] = self.bytes()?;
        let via = *Via::ALL.get(usize::from(via))?;
        let status = u16::from_le_bytes(self.bytes()?);
        let duration_ms = f64::from_le_bytes(self.bytes()?);
        let upstream_calls = u32::from_le_bytes(self.bytes()?);
        let upstream_bytes = u64::from_le_bytes(self.bytes()?);
        let cost = f64::from_le_bytes(self.bytes()?);
        let server = self.text_if(present, SERVER)?;
        let operation = self.text_if(present, OPERATION)?;
        let error_type = self.text_if(present, ERROR_TYPE)?;
        let currency = self.text_if(present, CURRENCY)?;
        let cid = self.cid_if(present, SCRIPT)?;
        let input_cid = self.cid_if(present, INPUT)?;
        let output_cid = self.cid_if(present, OUTPUT)?;
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
            request_id: self.text()?,
            trace_id: self.text()?,
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
        bad_via[1 + 1 + 8] = 9;
        assert_eq!(decode(&bad_via), None);
    }
}
