//! Reading an OpenAPI document: JSON or YAML, the version it claims, and its `$ref`s.
//!
//! A document may point into itself (`#/components/schemas/Pet`) and, when it was read from a file,
//! into files beside it (`pets.yaml#/Pet`). Every file is read once, up front, and its references are
//! rewritten to one form (`file#pointer`, the file relative to the first document's directory), so that
//! following a reference later needs no idea of "the current file". A document given over HTTP has no
//! directory: a reference to a file is refused rather than read from the server's disk, and a file
//! reference never leaves the first document's directory.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use percent_encoding::percent_decode_str;
use serde_json::Value;

use crate::error::Error;

/// Most files one import reads: the document and the files its references name.
const MAX_FILES: usize = 64;
/// Most references followed to reach one value (`$ref` to a `$ref` to …).
const MAX_HOPS: usize = 32;

fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidDocument(message.into())
}

/// A document and every file it refers to, references rewritten to `file#pointer`.
#[derive(Debug)]
pub struct Document {
    /// The files by their path relative to the first document's directory; the first document is `""`.
    files: HashMap<String, Value>,
}

impl Document {
    /// The document in `bytes`; `directory`, when it was read from a file, is where its file references
    /// are looked for.
    pub fn read(bytes: &[u8], directory: Option<&Path>) -> Result<Document, Error> {
        let mut root = parse(bytes)?;
        check_version(&root)?;
        let mut document = Document { files: HashMap::new() };
        let mut pending = Vec::new();
        rewrite(&mut root, "", &mut pending)?;
        document.files.insert(String::new(), root);
        while let Some(file) = pending.pop() {
            if document.files.contains_key(&file) {
                continue;
            }
            let Some(directory) = directory else {
                return Err(invalid(format!(
                    "the document refers to the file '{file}': a document sent over HTTP must be self-contained \
                     (bundle it first, e.g. with `redocly bundle`)"
                )));
            };
            if document.files.len() >= MAX_FILES {
                return Err(invalid(format!("the document refers to more than {MAX_FILES} files")));
            }
            let bytes = std::fs::read(directory.join(&file))
                .map_err(|e| invalid(format!("cannot read '{file}', which the document refers to: {e}")))?;
            let mut value = parse(&bytes).map_err(|e| invalid(format!("'{file}': {}", e.message())))?;
            rewrite(&mut value, &file, &mut pending)?;
            document.files.insert(file, value);
        }
        Ok(document)
    }

    /// The first document.
    pub fn root(&self) -> &Value {
        &self.files[""]
    }

    /// `value` itself, or what its `$ref` (and theirs) points to, with the reference it came through.
    pub fn resolve<'a>(&'a self, mut value: &'a Value) -> Result<(&'a Value, Option<&'a str>), Error> {
        let mut through = None;
        for _ in 0..MAX_HOPS {
            match value.get("$ref").and_then(Value::as_str) {
                Some(reference) => {
                    through = Some(reference);
                    value = self.target(reference)?;
                }
                None => return Ok((value, through)),
            }
        }
        Err(invalid(format!("the $ref chain through '{}' does not end", through.unwrap_or_default())))
    }

    /// What a rewritten reference (`file#pointer`) names.
    fn target(&self, reference: &str) -> Result<&Value, Error> {
        let (file, pointer) = reference.split_once('#').unwrap_or((reference, ""));
        let broken = || invalid(format!("the $ref '{reference}' points at nothing"));
        let document = self.files.get(file).ok_or_else(broken)?;
        let pointer = percent_decode_str(pointer).decode_utf8().map_err(|_| broken())?;
        document.pointer(&pointer).ok_or_else(broken)
    }
}

/// JSON, or else YAML (a superset of JSON, but far slower to read).
fn parse(bytes: &[u8]) -> Result<Value, Error> {
    let text = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    if text.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        return serde_json::from_slice(text).map_err(|e| invalid(format!("the document is not valid JSON: {e}")));
    }
    super::yaml::read(text).map_err(|e| invalid(format!("the document is neither JSON nor valid YAML: {e}")))
}

/// OpenAPI 3.0 and 3.1 only, said plainly for anything else.
fn check_version(root: &Value) -> Result<(), Error> {
    if !root.is_object() {
        return Err(invalid("an OpenAPI document is a JSON or YAML object"));
    }
    if let Some(swagger) = root.get("swagger") {
        return Err(invalid(format!(
            "this is a Swagger {} document; only OpenAPI 3.0 and 3.1 are read: convert it first (e.g. `npx \
             swagger2openapi spec.json -o openapi.json`)",
            swagger.as_str().unwrap_or("2.0")
        )));
    }
    match root.get("openapi").and_then(Value::as_str) {
        Some(version) if version.starts_with("3.0") || version.starts_with("3.1") => Ok(()),
        Some(version) => Err(invalid(format!("OpenAPI {version} is not supported: only 3.0 and 3.1"))),
        None => Err(invalid("the document has no 'openapi' version field: is it an OpenAPI document?")),
    }
}

/// Rewrites every `$ref` in `value` (which lives in `file`) to `file#pointer`, noting the files named.
fn rewrite(value: &mut Value, file: &str, pending: &mut Vec<String>) -> Result<(), Error> {
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(reference)) = map.get_mut("$ref") {
                    let (target, pointer) = reference.split_once('#').unwrap_or((reference.as_str(), ""));
                    let target = match target {
                        "" => file.to_owned(),
                        other => beside(file, other)?,
                    };
                    if !target.is_empty() && !pending.contains(&target) {
                        pending.push(target.clone());
                    }
                    *reference = format!("{target}#{pointer}");
                }
                stack.extend(map.values_mut());
            }
            Value::Array(items) => stack.extend(items.iter_mut()),
            _ => {}
        }
    }
    Ok(())
}

/// The path of `target`, named in `file`, relative to the first document's directory: never a URL, an
/// absolute path, or a path that climbs out of that directory.
fn beside(file: &str, target: &str) -> Result<String, Error> {
    if target.contains("://") || target.starts_with('/') {
        return Err(invalid(format!(
            "the $ref '{target}' is not a relative file: only files beside the document are read"
        )));
    }
    let mut path = PathBuf::from(file);
    path.pop();
    for component in Path::new(target).components() {
        match component {
            Component::Normal(part) => path.push(part),
            Component::CurDir => {}
            Component::ParentDir if path.pop() => {}
            _ => return Err(invalid(format!("the $ref '{target}' leaves the document's directory"))),
        }
    }
    Ok(path.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_within_and_beside_the_document_resolve() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("schemas")).unwrap();
        std::fs::write(
            dir.path().join("schemas/pet.yaml"),
            "Pet:\n  type: object\n  properties:\n    tag: {$ref: '#/Tag'}\nTag: {type: string}\n",
        )
        .unwrap();
        let root = br##"{"openapi": "3.0.3", "components": {"schemas": {
            "Alias": {"$ref": "#/components/schemas/Pet"}, "Pet": {"$ref": "schemas/pet.yaml#/Pet"}}}}"##;
        let document = Document::read(root, Some(dir.path())).unwrap();
        let (pet, through) = document.resolve(&document.root()["components"]["schemas"]["Alias"]).unwrap();
        assert_eq!(through, Some("schemas/pet.yaml#/Pet"));
        let (tag, _) = document.resolve(&pet["properties"]["tag"]).unwrap();
        assert_eq!(tag, &json!({"type": "string"}));
    }

    #[test]
    fn what_cannot_be_read_is_refused_with_the_reason() {
        let cases: [(&[u8], &str); 7] = [
            (br#"{"swagger": "2.0"}"#, "Swagger 2.0 document"),
            (br#"{"openapi": "4.0.0"}"#, "OpenAPI 4.0.0 is not supported"),
            (b"[1]", "is a JSON or YAML object"),
            (b"{\"openapi\": ", "not valid JSON"),
            (br##"{"openapi": "3.0.0", "x": {"$ref": "other.json#/a"}}"##, "must be self-contained"),
            (br#"{"openapi": "3.0.0", "x": {"$ref": "https://evil.example/a.json"}}"#, "not a relative file"),
            (br#"{"openapi": "3.0.0", "x": {"$ref": "/etc/passwd"}}"#, "not a relative file"),
        ];
        for (bytes, expected) in cases {
            let error = Document::read(bytes, None).unwrap_err();
            assert_eq!(error.kind(), "invalid_document");
            assert!(error.message().contains(expected), "{expected}: {}", error.message());
        }
        let dir = tempfile::tempdir().unwrap();
        let climbing = br#"{"openapi": "3.0.0", "x": {"$ref": "../secret.json"}}"#;
        assert!(Document::read(climbing, Some(dir.path())).unwrap_err().message().contains("leaves the document's"));
    }

    #[test]
    fn a_reference_loop_ends_in_an_error() {
        let looped = br##"{"openapi": "3.1.0", "a": {"$ref": "#/b"}, "b": {"$ref": "#/a"}}"##;
        let document = Document::read(looped, None).unwrap();
        assert!(document.resolve(&document.root()["a"]).unwrap_err().message().contains("does not end"));
        let broken = br##"{"openapi": "3.1.0", "a": {"$ref": "#/nothing"}}"##;
        let document = Document::read(broken, None).unwrap();
        assert!(document.resolve(&document.root()["a"]).unwrap_err().message().contains("points at nothing"));
    }
}
