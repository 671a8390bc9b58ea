//! Encodings scripts need to talk to APIs: `json`, `base64`, `hex` and `url`.

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD, URL_SAFE_NO_PAD};
use percent_encoding::{percent_decode_str, utf8_percent_encode};
use rhai::{Blob, Dynamic, EvalAltResult, Map, Module};

use super::native::{Fallible, arg_error, func};
use super::values::{text_pairs, to_json_text};
use crate::engine::pace::{self, PIECE, Pacer};
use crate::engine::{URL_COMPONENT, admit};

/// Decoders that accept input with or without padding.
const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);

/// The bytes of a string or blob argument, admitted as work of their size (see `engine::admit`).
pub fn bytes_of(value: &Dynamic, what: &str) -> Result<Vec<u8>, Box<EvalAltResult>> {
    admit(dynamic_len(value))?;
    if value.is_blob() {
        Ok(value.clone().cast::<Blob>())
    } else if let Some(text) = value.read_lock::<rhai::ImmutableString>() {
        Ok(text.as_bytes().to_vec())
    } else {
        Err(arg_error(&format!("{what} must be a string or a blob, not {}", value.type_name())))
    }
}

fn dynamic_len(value: &Dynamic) -> usize {
    if let Some(blob) = value.read_lock::<Blob>() {
        blob.len()
    } else {
        value.read_lock::<rhai::ImmutableString>().map_or(0, |text| text.len())
    }
}

/// A text argument, admitted as work of its size.
fn admitted(text: &str) -> Result<&str, Box<EvalAltResult>> {
    admit(text.len()).map(|()| text)
}

fn utf8(bytes: Vec<u8>, what: &str) -> Result<String, Box<EvalAltResult>> {
    String::from_utf8(bytes).map_err(|_| arg_error(&format!("{what} is not UTF-8 text (use the _blob variant)")))
}

/// Reads a text in pieces for a parser, stopping at the run's deadline between them.
struct PacedReader<'a> {
    rest: &'a [u8],
    pacer: Pacer,
    stopped: Option<Box<EvalAltResult>>,
}

impl std::io::Read for PacedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.rest.len());
        buf[..n].copy_from_slice(&self.rest[..n]);
        self.rest = &self.rest[n..];
        if let Err(stop) = self.pacer.step(n) {
            self.stopped = Some(stop);
            return Err(std::io::Error::other("stopped"));
        }
        Ok(n)
    }
}

/// `text` parsed as JSON; a long text is read in paced pieces (see `engine::pace`).
fn parse_json(text: &str) -> Fallible<Dynamic> {
    let invalid = |e: serde_json::Error| arg_error(&format!("not valid JSON: {e}"));
    if text.len() <= PIECE {
        return serde_json::from_str::<Dynamic>(admitted(text)?).map_err(invalid);
    }
    let mut reader = PacedReader { rest: text.as_bytes(), pacer: Pacer::start(text.len())?, stopped: None };
    let parsed = serde_json::from_reader::<_, Dynamic>(std::io::BufReader::with_capacity(PIECE / 4, &mut reader));
    match (parsed, reader.stopped) {
        (Ok(value), _) => Ok(value),
        (Err(_), Some(stop)) => Err(stop),
        (Err(e), None) => Err(invalid(e)),
    }
}

/// `encode` applied to `input` in pieces of `unit`-aligned length (so that the pieces' encodings join
/// into the whole's), stopping at the run's deadline between them.
fn encode_paced(input: &[u8], unit: usize, encode: impl Fn(&[u8], &mut String)) -> Fallible<String> {
    let mut pacer = Pacer::start(input.len())?;
    let mut out = String::new();
    for piece in input.chunks(PIECE / unit * unit) {
        encode(piece, &mut out);
        pacer.step(piece.len())?;
    }
    Ok(out)
}

/// `decode` applied to `text` in pieces of `unit`-aligned length, paced like [`encode_paced`].
fn decode_paced<E>(
    text: &str,
    unit: usize,
    decode: impl Fn(&[u8], &mut Vec<u8>) -> Result<(), E>,
) -> Fallible<Result<Vec<u8>, E>> {
    let mut pacer = Pacer::start(text.len())?;
    let mut out = Vec::new();
    for piece in text.as_bytes().chunks(PIECE / unit * unit) {
        if let Err(e) = decode(piece, &mut out) {
            return Ok(Err(e));
        }
        pacer.step(piece.len())?;
    }
    Ok(Ok(out))
}

pub fn json_module() -> Module {
    let mut module = Module::new();
    func("parse").set_into_module(&mut module, parse_json);
    func("stringify").set_into_module(&mut module, |value: Dynamic| to_json_text(&value, false));
    func("pretty").set_into_module(&mut module, |value: Dynamic| to_json_text(&value, true));
    module
}

pub fn base64_module() -> Module {
    let mut module = Module::new();
    let encode = |engine: &GeneralPurpose, value: &Dynamic| {
        encode_paced(&bytes_of(value, "base64 input")?, 3, |piece, out| engine.encode_string(piece, out))
    };
    func("encode").set_into_module(&mut module, move |value: Dynamic| encode(&STANDARD, &value));
    func("encode_url").set_into_module(&mut module, move |value: Dynamic| encode(&URL_SAFE_NO_PAD, &value));
    let decode = |engine: &GeneralPurpose, text: &str| {
        decode_paced(text.trim(), 4, |piece, out| engine.decode_vec(piece, out))?
            .map_err(|e| arg_error(&format!("not valid base64: {e}")))
    };
    func("decode")
        .set_into_module(&mut module, move |text: &str| utf8(decode(&STANDARD_LENIENT, text)?, "the decoded value"));
    func("decode_blob").set_into_module(&mut module, move |text: &str| decode(&STANDARD_LENIENT, text));
    func("decode_url")
        .set_into_module(&mut module, move |text: &str| utf8(decode(&URL_SAFE_LENIENT, text)?, "the decoded value"));
    func("decode_url_blob").set_into_module(&mut module, move |text: &str| decode(&URL_SAFE_LENIENT, text));
    module
}

pub fn hex_module() -> Module {
    let mut module = Module::new();
    func("encode").set_into_module(&mut module, |value: Dynamic| -> Fallible<String> {
        encode_paced(&bytes_of(&value, "hex input")?, 1, |piece, out| out.push_str(&hex::encode(piece)))
    });
    func("decode").set_into_module(&mut module, |text: &str| {
        let decoded = decode_paced(text.trim(), 2, |piece, out| hex::decode(piece).map(|bytes| out.extend(bytes)))?;
        decoded.map_err(|e| arg_error(&format!("not valid hex: {e}")))
    });
    module
}

pub fn url_module() -> Module {
    let mut module = Module::new();
    func("encode").set_into_module(&mut module, |text: &str| -> Fallible<String> {
        let mut pacer = Pacer::start(text.len())?;
        let mut out = String::with_capacity(text.len());
        for piece in pace::pieces(text) {
            out.extend(utf8_percent_encode(piece, URL_COMPONENT));
            pacer.step(piece.len())?;
        }
        Ok(out)
    });
    func("decode").set_into_module(&mut module, |text: &str| {
        let mut pacer = Pacer::start(text.len())?;
        let mut out = Vec::with_capacity(text.len());
        for byte in percent_decode_str(text) {
            out.push(byte);
            pacer.step(1)?;
        }
        String::from_utf8(out).map_err(|_| arg_error("the decoded value is not UTF-8"))
    });
    func("query").set_into_module(&mut module, |params: Map| -> Fallible<String> {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.extend_pairs(text_pairs(&params)?);
        Ok(query.finish())
    });
    module
}
