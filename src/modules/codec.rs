//! Encodings scripts need to talk to APIs: `json`, `base64`, `hex` and `url`.

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD, URL_SAFE_NO_PAD};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use rhai::{Blob, Dynamic, EvalAltResult, Map, Module};

use super::native::{Fallible, arg_error, func};
use super::values::{scalar_text, to_json_text};
use crate::engine::admit;

/// Characters left as they are in a URL component (RFC 3986 unreserved).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

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

pub fn json_module() -> Module {
    let mut module = Module::new();
    func("parse").set_into_module(&mut module, |text: &str| {
        serde_json::from_str::<Dynamic>(admitted(text)?).map_err(|e| arg_error(&format!("not valid JSON: {e}")))
    });
    func("stringify").set_into_module(&mut module, |value: Dynamic| to_json_text(&value, false));
    func("pretty").set_into_module(&mut module, |value: Dynamic| to_json_text(&value, true));
    module
}

pub fn base64_module() -> Module {
    let mut module = Module::new();
    func("encode").set_into_module(&mut module, |value: Dynamic| -> Fallible<String> {
        Ok(STANDARD.encode(bytes_of(&value, "base64 input")?))
    });
    func("encode_url").set_into_module(&mut module, |value: Dynamic| -> Fallible<String> {
        Ok(URL_SAFE_NO_PAD.encode(bytes_of(&value, "base64 input")?))
    });
    let decode = |engine: &GeneralPurpose, text: &str| {
        engine.decode(admitted(text)?.trim()).map_err(|e| arg_error(&format!("not valid base64: {e}")))
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
        Ok(hex::encode(bytes_of(&value, "hex input")?))
    });
    func("decode").set_into_module(&mut module, |text: &str| {
        hex::decode(admitted(text)?.trim()).map_err(|e| arg_error(&format!("not valid hex: {e}")))
    });
    module
}

pub fn url_module() -> Module {
    let mut module = Module::new();
    func("encode").set_into_module(&mut module, |text: &str| -> Fallible<String> {
        Ok(utf8_percent_encode(admitted(text)?, COMPONENT).to_string())
    });
    func("decode").set_into_module(&mut module, |text: &str| {
        percent_decode_str(admitted(text)?)
            .decode_utf8()
            .map(|t| t.into_owned())
            .map_err(|_| arg_error("the decoded value is not UTF-8"))
    });
    func("query").set_into_module(&mut module, |params: Map| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in &params {
            query.append_pair(name, &scalar_text(value));
        }
        query.finish()
    });
    module
}
