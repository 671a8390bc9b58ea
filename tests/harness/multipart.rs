//! Fuzzing harness for multipart bodies, shared by `tests/fuzz_replay.rs` and
//! `fuzz/fuzz_targets/multipart.rs`.
//!
//! Arbitrary parts — names, file names, content types, data — from a script's map to the bytes the
//! upstream receives: either the parts are refused as the caller's mistake (`bad_request`), or the body
//! holds exactly those parts, each with its Content-Disposition line and at most a Content-Type line,
//! and its data byte for byte. Whatever a name or a file name holds, it cannot end its header line and
//! start another header or part.

use rhai::{Blob, Dynamic, Map};
use switchboard::error::Error;
use switchboard::modules::multipart::{PartContent, form, multipart};

/// One part as the input describes it: name, file name, content type, data.
type Described = (String, Option<String>, Option<String>, Vec<u8>);

/// Parts are separated by `\n\x01`; a part's fields by `\0`: name, file name, content type, data (the
/// data may hold anything). An empty file name or content type is none; with neither, a text part.
fn described(input: &[u8]) -> Vec<Described> {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let optional = |bytes: Option<&[u8]>| bytes.filter(|b| !b.is_empty()).map(text);
    input
        .split(|&b| b == 0x01)
        .map(|part| part.strip_suffix(b"\n").unwrap_or(part))
        .map(|part| {
            let mut fields = part.splitn(4, |&b| b == 0);
            let name = text(fields.next().unwrap_or_default());
            let (filename, content_type) = (optional(fields.next()), optional(fields.next()));
            (name, filename, content_type, fields.next().unwrap_or_default().to_vec())
        })
        .collect()
}

fn map_of(parts: &[Described]) -> Map {
    let mut map = Map::new();
    for (name, filename, content_type, data) in parts {
        let value = match (filename, content_type) {
            (None, None) => Dynamic::from(String::from_utf8_lossy(data).into_owned()),
            _ => {
                let mut file = Map::new();
                file.insert("data".into(), Dynamic::from_blob(data.clone() as Blob));
                if let Some(filename) = filename {
                    file.insert("filename".into(), filename.clone().into());
                }
                if let Some(content_type) = content_type {
                    file.insert("content_type".into(), content_type.clone().into());
                }
                Dynamic::from_map(file)
            }
        };
        map.insert(name.as_str().into(), value);
    }
    map
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// Checks one part of the body (between two boundary lines) against what was sent.
fn check_part(segment: &[u8], content: &PartContent) {
    let segment = segment.strip_prefix(b"\r\n").expect("a part starts on a new line");
    let segment = segment.strip_suffix(b"\r\n").expect("a part ends with a line break");
    let end = find(segment, b"\r\n\r\n").expect("a part's headers end with an empty line");
    let headers: Vec<&[u8]> = segment[..end].split(|&b| b == b'\n').collect();
    let data = &segment[end + 4..];
    assert!(
        (1..=2).contains(&headers.len()),
        "a part has other header lines: {:?}",
        String::from_utf8_lossy(&segment[..end])
    );
    let disposition = String::from_utf8_lossy(headers[0]);
    assert!(disposition.starts_with("Content-Disposition: form-data; "), "{disposition}");
    assert!(!disposition.trim_end_matches('\r').contains(['\r', '\n']), "{disposition:?}");
    if let Some(second) = headers.get(1) {
        assert!(second.starts_with(b"Content-Type: "), "{:?}", String::from_utf8_lossy(second));
    }
    match content {
        PartContent::Text(text) => assert_eq!(data, text.as_bytes()),
        PartContent::File { filename, data: sent, .. } => {
            assert_eq!(data, &sent[..]);
            assert_eq!(disposition.contains("; filename=\""), filename.is_some(), "{disposition}");
            if let Some(filename) = filename {
                assert!(!filename.chars().any(char::is_control), "{filename:?}");
            }
        }
    }
}

/// Checks the property for `input`.
pub fn run(input: &[u8]) {
    let parts = match multipart(&map_of(&described(input))) {
        Ok(parts) => parts,
        Err(Error::BadRequest(_)) => return,
        Err(other) => panic!("parts are refused as a bad request, not {other:?}"),
    };
    let form = form(&parts);
    let boundary = format!("--{}", form.boundary());
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
    let body = runtime.block_on(async {
        use futures_util::StreamExt;
        let mut stream = std::pin::pin!(form.into_stream());
        let mut body = Vec::new();
        while let Some(chunk) = stream.next().await {
            body.extend_from_slice(&chunk.expect("the form streams"));
        }
        body
    });
    let mut rest = body.strip_prefix(boundary.as_bytes()).expect("the body starts with the boundary");
    for part in &parts {
        let end = find(rest, boundary.as_bytes()).expect("every part ends at a boundary");
        check_part(&rest[..end], &part.content);
        rest = &rest[end + boundary.len()..];
    }
    assert_eq!(rest, b"--\r\n", "the body holds exactly the parts sent");
}
