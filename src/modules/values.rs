//! What a script's value becomes on the way out: JSON, the text of a query parameter, form fields —
//! each measured first against the bounds of [`nesting`], so that no value is built past them.

use rhai::{Dynamic, EvalAltResult, Map};

use super::native::{Fallible, arg_error};
use crate::engine::{nesting, raise};
use crate::error::Error;

/// The `limit_exceeded` error for a value over a bound of [`nesting`].
fn over_bound(exceeded: nesting::Exceeded) -> Box<EvalAltResult> {
    let message = exceeded.message("the value", nesting::MAX_BYTES);
    raise(Error::limit_exceeded(exceeded.limit(), message, crate::error::Location::default()))
}

/// A Rhai value as JSON, refused beyond the bounds of [`nesting`].
pub(crate) fn to_json(value: &Dynamic) -> Result<serde_json::Value, Box<EvalAltResult>> {
    nesting::measure(value, nesting::MAX_BYTES).map_err(over_bound)?;
    rhai::serde::from_dynamic(value).map_err(|e| arg_error(&format!("value cannot be sent as JSON: {e}")))
}

/// A Rhai value as JSON text, refused beyond the bounds of [`nesting`].
pub(crate) fn to_json_text(value: &Dynamic, pretty: bool) -> Fallible<String> {
    match nesting::to_json_bytes(value, pretty, nesting::MAX_BYTES) {
        Ok(bytes) => String::from_utf8(bytes).map_err(|_| arg_error("JSON text is UTF-8")),
        Err(nesting::JsonError::Exceeded(exceeded)) => Err(over_bound(exceeded)),
        Err(nesting::JsonError::Invalid(e)) => Err(arg_error(&format!("value cannot be written as JSON: {e}"))),
        Err(nesting::JsonError::Stopped(stop)) => Err(stop),
    }
}

/// A scalar as the text it stands for in a query string or form (strings without quotes). A container
/// is its JSON text; when that cannot be written (too large, or the run must stop first) the text is
/// empty and the run is refused, so that nothing built from it is sent (see `engine::refuse`).
pub(crate) fn scalar_text(value: &Dynamic) -> String {
    if value.is_string() || value.is_int() || value.is_float() || value.is_bool() || value.is_unit() {
        if value.is_unit() { String::new() } else { value.to_string() }
    } else {
        to_json_text(value, false).unwrap_or_else(|refusal| {
            crate::engine::refuse(refusal);
            String::new()
        })
    }
}

/// A map's entries as names and texts (query parameters, headers, signed fields), measured first like
/// [`form_fields`]: a 16 MB string shared by a thousand entries is 16 GB of text, refused before it is
/// built.
pub(crate) fn text_pairs(map: &Map) -> Fallible<Vec<(String, String)>> {
    nesting::measure_map(map, nesting::MAX_BYTES).map_err(over_bound)?;
    Ok(map.iter().map(|(name, value)| (name.to_string(), scalar_text(value))).collect())
}

/// A value as form fields, nesting in the bracket notation most form-encoded APIs read:
/// `#{ a: 1, meta: #{ k: "v" }, items: ["x"] }` → `a=1`, `meta[k]=v`, `items[0]=x`.
pub(crate) fn form_fields(value: &Dynamic) -> Fallible<Vec<(String, String)>> {
    nesting::measure(value, nesting::MAX_BYTES).map_err(over_bound)?;
    fn walk(prefix: &str, value: &Dynamic, out: &mut Vec<(String, String)>) {
        let key = |k: &str| if prefix.is_empty() { k.to_owned() } else { format!("{prefix}[{k}]") };
        if let Some(map) = value.read_lock::<rhai::Map>() {
            for (k, v) in map.iter() {
                walk(&key(k), v, out);
            }
        } else if let Some(array) = value.read_lock::<rhai::Array>() {
            for (i, v) in array.iter().enumerate() {
                walk(&key(&i.to_string()), v, out);
            }
        } else {
            out.push((prefix.to_owned(), scalar_text(value)));
        }
    }
    let mut out = Vec::new();
    walk("", value, &mut out);
    Ok(out)
}
