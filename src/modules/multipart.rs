//! `multipart/form-data` bodies: the parts a script's map stands for, checked before anything is sent,
//! and the form each attempt sends (sending consumes it, so a retry builds it anew).

use rhai::{Dynamic, Map};

use super::values::scalar_text;
use crate::error::Error;

/// One part of a multipart body.
#[derive(Debug, Clone)]
pub struct Part {
    pub name: String,
    pub content: PartContent,
}

#[derive(Debug, Clone)]
pub enum PartContent {
    Text(String),
    File { filename: Option<String>, content_type: Option<String>, data: Vec<u8> },
}

/// The keys a file part may have.
const FILE_KEYS: [&str; 3] = ["filename", "content_type", "data"];

/// The parts of a multipart body from a map, in its key order (a Rhai map keeps its keys sorted): a
/// scalar is a text field, a map `#{ filename, content_type, data }` (data text or a blob) a file, any
/// other map a field holding its JSON text (Box's `attributes`), an array several parts of one name,
/// `()` none. A part that is none of these says why; the error is the caller's (`bad_request`), who
/// sent the data.
pub fn multipart(fields: &Map) -> Result<Vec<Part>, Error> {
    let mut parts = Vec::new();
    for (name, value) in fields {
        add(name, value, false, &mut parts)?;
    }
    Ok(parts)
}

/// The parts of a multipart body in the order given: `fields` (a server's fixed fields) first, then
/// each map of `items` in the array's order, its parts read as [`multipart`] reads a map's. This is how
/// a caller chooses the order of the parts, which a map cannot keep.
pub fn ordered(fields: &Map, items: &rhai::Array) -> Result<Vec<Part>, Error> {
    let mut parts = multipart(fields)?;
    for (index, item) in items.iter().enumerate() {
        let map = item.read_lock::<Map>().ok_or_else(|| {
            Error::BadRequest(format!(
                "multipart item {index}: parts in a chosen order are an array of maps ([{{\"a\": 1}}, {{\"file\": {{…}}}}]), not {}",
                item.type_name()
            ))
        })?;
        parts.extend(multipart(&map)?);
    }
    Ok(parts)
}

fn add(name: &str, value: &Dynamic, nested: bool, parts: &mut Vec<Part>) -> Result<(), Error> {
    let bad = |why: String| Error::BadRequest(format!("multipart part '{name}': {why}"));
    if value.is_unit() {
        return Ok(());
    }
    let file = value.read_lock::<Map>().filter(|map| map.keys().any(|key| FILE_KEYS.contains(&key.as_str())));
    if let Some(file) = file {
        parts.push(Part { name: name.to_owned(), content: file_part(&file, bad)? });
    } else if let Some(items) = value.read_lock::<rhai::Array>() {
        if nested {
            return Err(bad("an array may hold text and file parts, not arrays".into()));
        }
        for item in items.iter() {
            add(name, item, true, parts)?;
        }
    } else if value.is_blob() {
        return Err(bad("a blob goes in a file part: #{ filename, content_type, data: blob }".into()));
    } else {
        parts.push(Part { name: name.to_owned(), content: PartContent::Text(scalar_text(value)) });
    }
    Ok(())
}

/// A file part `#{ filename, content_type, data }`, checked.
fn file_part(file: &Map, bad: impl Fn(String) -> Error) -> Result<PartContent, Error> {
    if let Some(key) = file.keys().find(|key| !FILE_KEYS.contains(&key.as_str())) {
        return Err(bad(format!("unknown key '{key}': a file part is #{{ filename, content_type, data }}")));
    }
    let text = |key: &str| match file.get(key) {
        None => Ok(None),
        Some(value) if value.is_string() => Ok(Some(value.to_string())),
        Some(_) => Err(bad(format!("'{key}' must be a string"))),
    };
    let data = match file.get("data") {
        Some(data) if data.is_blob() => data.clone().cast::<rhai::Blob>(),
        Some(data) if data.is_string() => data.to_string().into_bytes(),
        Some(_) => return Err(bad("'data' must be text or a blob".into())),
        None => return Err(bad("a file part needs 'data' (and may have filename, content_type)".into())),
    };
    let content_type = text("content_type")?;
    if let Some(content_type) = &content_type
        && reqwest::multipart::Part::bytes(Vec::new()).mime_str(content_type).is_err()
    {
        return Err(bad(format!("'{content_type}' is not a content type")));
    }
    let filename = text("filename")?.as_deref().map(header_safe);
    Ok(PartContent::File { filename, content_type, data })
}

/// A file name as a `filename="…"` parameter may carry it. Quotes and line breaks are percent-encoded as
/// browsers send them (HTML's rules for `multipart/form-data`), and so is every other control
/// character: a name must not end its header line and start a header, or a part, of its own. (Part
/// names are percent-encoded by the form itself.)
fn header_safe(filename: &str) -> String {
    let mut safe = String::with_capacity(filename.len());
    for c in filename.chars() {
        match c == '"' || c.is_control() {
            true => safe.extend(c.encode_utf8(&mut [0; 4]).bytes().map(|b| format!("%{b:02X}"))),
            false => safe.push(c),
        }
    }
    safe
}

/// Whether `data` holds a file part (`#{ data, filename?, content_type? }`) at its top level or in an
/// array there, or in one of the maps of an ordered array: what a script checks to choose a multipart
/// body for an upload.
pub fn has_files(data: &Dynamic) -> bool {
    let is_file = |value: &Dynamic| {
        value
            .read_lock::<Map>()
            .is_some_and(|part| part.contains_key("data") && part.keys().all(|key| FILE_KEYS.contains(&key.as_str())))
    };
    let in_map = |data: &Dynamic| {
        data.read_lock::<Map>().is_some_and(|map| {
            map.values().any(|value| {
                is_file(value) || value.read_lock::<rhai::Array>().is_some_and(|items| items.iter().any(is_file))
            })
        })
    };
    in_map(data) || data.read_lock::<rhai::Array>().is_some_and(|items| items.iter().any(in_map))
}

/// The form reqwest sends; built anew for each attempt, as sending consumes it.
pub fn form(parts: &[Part]) -> reqwest::multipart::Form {
    parts.iter().fold(reqwest::multipart::Form::new(), |form, part| match &part.content {
        PartContent::Text(text) => form.text(part.name.clone(), text.clone()),
        PartContent::File { filename, content_type, data } => {
            let bytes = || reqwest::multipart::Part::bytes(data.clone());
            // The content type was checked when the part was read (`multipart`).
            let file = match content_type {
                Some(content_type) => bytes().mime_str(content_type).unwrap_or_else(|_| bytes()),
                None => bytes(),
            };
            let file = match filename {
                Some(filename) => file.file_name(filename.clone()),
                None => file,
            };
            form.part(part.name.clone(), file)
        }
    })
}
