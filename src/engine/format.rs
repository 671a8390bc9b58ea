//! The text of maps, arrays and strings, bounded: `to_string`, `to_debug`, `print`, `debug`, string
//! interpolation and `+` of a map or an array, `to_debug` of a string, and a map's `to_json`.
//!
//! Rhai builds these texts without a bound: a 16 MB string shared by a thousand map entries is one
//! string to Rhai and 16 GB of text, and `${m}` aborted the process allocating it. These replacements
//! write the same text as Rhai's own into a buffer that refuses to grow past the string limit, measure
//! the value first (each string at its full length, however often it is shared; nesting within
//! `nesting::MAX_DEPTH`), and pace the work against the deadline.
//!
//! Rhai calls `to_string` itself for interpolation and `+`, and when that call fails it formats the
//! value again on its own, unbounded. So a refusal here is never an error returned to Rhai: the
//! formatter answers an empty string and fails the run through `sandbox::refuse`, which stops it at its
//! next operation.

use std::fmt::Write as _;

use rhai::{
    Array, Dynamic, Engine, EvalAltResult, FuncRegistration, ImmutableString, Map, NativeCallContext, Position,
};

use super::fault::raise;
use super::nesting::{self, Exceeded, MAX_DEPTH};
use super::pace::Pacer;
use super::sandbox::refuse;
use crate::error::{Error, Location};

/// A text buffer that refuses to grow past `max` bytes, pacing the work as it grows.
struct Capped {
    text: String,
    max: usize,
    pacer: Pacer,
    /// Why writing stopped, when it did.
    stopped: Option<Box<EvalAltResult>>,
}

impl Capped {
    /// A buffer for about `expected` bytes of text, admitted as work of that size.
    fn new(expected: usize, max: usize) -> Result<Capped, Box<EvalAltResult>> {
        let pacer = Pacer::start(expected)?;
        Ok(Capped { text: String::with_capacity(expected.min(max)), max, pacer, stopped: None })
    }

    /// The text written, or why it could not be.
    fn finish(self, written: std::fmt::Result) -> Result<ImmutableString, Box<EvalAltResult>> {
        match written {
            Ok(()) => Ok(self.text.into()),
            Err(_) => Err(self.stopped.unwrap_or_else(|| too_long(self.max))),
        }
    }
}

impl std::fmt::Write for Capped {
    fn write_str(&mut self, piece: &str) -> std::fmt::Result {
        if self.text.len() + piece.len() > self.max {
            self.stopped = Some(too_long(self.max));
            return Err(std::fmt::Error);
        }
        if let Err(stop) = self.pacer.step(piece.len()) {
            self.stopped = Some(stop);
            return Err(std::fmt::Error);
        }
        self.text.push_str(piece);
        Ok(())
    }
}

fn too_long(max: usize) -> Box<EvalAltResult> {
    let message = format!("the text of the value would be longer than {max} bytes");
    raise(Error::limit_exceeded("size", message, Location::default()))
}

fn exceeded(exceeded: Exceeded, max: usize) -> Box<EvalAltResult> {
    match exceeded {
        Exceeded::Size => too_long(max),
        Exceeded::Depth => {
            let message = format!("the value nests arrays and maps deeper than {MAX_DEPTH} levels to be written");
            raise(Error::limit_exceeded("depth", message, Location::default()))
        }
    }
}

/// Writes `value` as Rhai writes a map or an array and their items: strings quoted and escaped,
/// containers recursively (as deep as [`nesting::measure`] let through), anything else as Rhai's own
/// `to_debug` has it (all of them short).
fn write_value(out: &mut Capped, call: &NativeCallContext, value: &Dynamic) -> std::fmt::Result {
    if let Some(map) = value.read_lock::<Map>() {
        out.write_str("#{")?;
        for (i, (key, item)) in map.iter().enumerate() {
            out.write_str(if i > 0 { ", " } else { "" })?;
            write!(out, "{:?}: ", key.as_str())?;
            write_value(out, call, item)?;
        }
        return out.write_str("}");
    }
    if let Some(array) = value.read_lock::<Array>() {
        out.write_str("[")?;
        for (i, item) in array.iter().enumerate() {
            out.write_str(if i > 0 { ", " } else { "" })?;
            write_value(out, call, item)?;
        }
        return out.write_str("]");
    }
    if let Some(text) = value.read_lock::<ImmutableString>() {
        return write!(out, "{:?}", text.as_str());
    }
    let mut item = value.clone();
    match call.call_native_fn_raw("to_debug", true, &mut [&mut item]) {
        Ok(text) if text.is_string() => out.write_str(&text.to_string()),
        _ => write!(out, "{item:?}"),
    }
}

/// The text of a map or an array within `max` bytes, or why it is not.
fn text_of(call: &NativeCallContext, value: &Dynamic, max: usize) -> Result<ImmutableString, Box<EvalAltResult>> {
    let measured = nesting::measure(value, max).map_err(|e| exceeded(e, max))?;
    let mut out = Capped::new(measured, max)?;
    let written = write_value(&mut out, call, value);
    out.finish(written)
}

/// What a formatter Rhai may call itself answers: the text, or an empty string and a refused run.
fn answered(text: Result<ImmutableString, Box<EvalAltResult>>) -> ImmutableString {
    text.unwrap_or_else(|refusal| {
        refuse(refusal);
        ImmutableString::new()
    })
}

/// Runs `f` on `container` as a `Dynamic` (what the measuring and writing walk), in place.
fn as_dynamic<T: Clone + Default + Send + Sync + 'static, R>(
    container: &mut T,
    wrap: fn(T) -> Dynamic,
    f: impl FnOnce(&Dynamic) -> R,
) -> R {
    let value = wrap(std::mem::take(container));
    let result = f(&value);
    *container = value.cast::<T>();
    result
}

/// The text of a container, or an empty string and a refused run, after which the container is
/// emptied: Rhai checks the size of the argument after the call, and when it fails (a map holding more
/// than the string limit) formats the value itself, unbounded. The run is refused, so nothing sees it.
fn container_text<T: Clone + Default + Send + Sync + 'static>(
    call: &NativeCallContext,
    container: &mut T,
    wrap: fn(T) -> Dynamic,
    max: usize,
) -> ImmutableString {
    let text = as_dynamic(container, wrap, |value| text_of(call, value, max));
    if text.is_err() {
        *container = T::default();
    }
    answered(text)
}

pub fn register(engine: &mut Engine, max: usize) {
    for name in ["to_string", "to_debug", "print", "debug"] {
        // Pure, as Rhai's own: they may be called on constants.
        FuncRegistration::new(name)
            .with_purity(true)
            .register_into_engine(engine, move |call: NativeCallContext, map: &mut Map| {
                container_text(&call, map, Dynamic::from_map, max)
            });
        FuncRegistration::new(name)
            .with_purity(true)
            .register_into_engine(engine, move |call: NativeCallContext, array: &mut Array| {
                container_text(&call, array, Dynamic::from_array, max)
            });
    }
    for name in ["to_debug", "debug"] {
        engine.register_fn(name, move |text: &str| {
            let written = Capped::new(text.len(), max).and_then(|mut out| {
                let written = write!(out, "{text:?}");
                out.finish(written)
            });
            answered(written)
        });
    }
    // Called only by name, so it may fail like any native.
    engine.register_fn("to_json", move |map: &mut Map| -> Result<String, Box<EvalAltResult>> {
        match as_dynamic(map, Dynamic::from_map, |value| nesting::to_json_bytes(value, false, max)) {
            Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
            Err(nesting::JsonError::Exceeded(e)) => Err(exceeded(e, max)),
            Err(nesting::JsonError::Stopped(stop)) => Err(stop),
            Err(nesting::JsonError::Invalid(e)) => Err(EvalAltResult::ErrorRuntime(
                format!("the map cannot be written as JSON: {e}").into(),
                Position::NONE,
            )
            .into()),
        }
    });
}
