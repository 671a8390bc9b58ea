//! Bounds on the shape of a script value before the runtime turns it into text.
//!
//! A script can build a value far larger than any one of Rhai's size limits: a 16 MB string shared by
//! a thousand map entries costs Rhai one string, but written as JSON it is 16 GB, and the allocation
//! aborts the process. It can also nest containers deeper than any stack a serialiser recurses on. So
//! every value is measured here first — each string counted by its full length, however many times it
//! is shared, and the nesting depth bounded — and the measurement stops at the first bound passed,
//! before anything is built. The serialisers then write into a [`Bounded`] buffer as a second fence
//! (escapes can make text longer than measured), unless even [`MAX_GROWTH`] times the measure is
//! within the limit and within one piece of paced work — the common case of a small output, whose
//! every write the fence would only slow.

use std::io::Write;

use rhai::{Array, Blob, Dynamic, EvalAltResult, FnPtr, Map};

use super::pace::{PIECE, Pacer};

/// Deepest nesting of arrays and maps the runtime serialises or sends. 128 is serde_json's own limit
/// for parsing, so anything a caller or an upstream can send in can be sent back out.
///
/// Stack per level of nesting, measured (8 MiB thread, deepest value that did not overflow): serde_json
/// writing a `Dynamic` 162 B in release, 2.1 KiB in debug; [`measure`] less. At this depth that is
/// 21 KiB (release) and 270 KiB (debug) of stack for the runtime's own walks, within the native
/// reserve of a script stack (`fiber::STACK_SIZE / 8`).
pub const MAX_DEPTH: usize = 128;

/// Largest JSON text the runtime writes from one script value (an output, a request body,
/// `json::stringify`).
pub const MAX_BYTES: usize = 32 * 1024 * 1024;

/// Which bound a value passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exceeded {
    Depth,
    Size,
}

impl Exceeded {
    /// The `limit` a `limit_exceeded` error names.
    pub fn limit(&self) -> &'static str {
        match self {
            Exceeded::Depth => "depth",
            Exceeded::Size => "size",
        }
    }

    pub fn message(&self, what: &str, max_bytes: usize) -> String {
        match self {
            Exceeded::Depth => format!("{what} nests arrays and maps deeper than {MAX_DEPTH} levels"),
            Exceeded::Size => format!("{what} would be larger than {max_bytes} bytes as JSON"),
        }
    }
}

/// How much longer than [`measure`]d the compact JSON text of a value can be: a string of control
/// characters, each written `\u0001`, or a number measured as 4 and written as up to 24 characters.
const MAX_GROWTH: usize = 6;

/// Checks that `value` nests at most [`MAX_DEPTH`] levels and that its JSON text would take at most
/// `max_bytes`. Returns the (lower-bound) size.
pub fn measure(value: &Dynamic, max_bytes: usize) -> Result<usize, Exceeded> {
    let mut size = 0;
    walk(value, 0, max_bytes, &mut size)?;
    Ok(size)
}

/// [`measure`] of a map's entries, for callers that hold the map itself.
pub fn measure_map(map: &Map, max_bytes: usize) -> Result<usize, Exceeded> {
    let mut size = 0;
    for (key, value) in map.iter() {
        size += key.len() + 3;
        walk(value, 1, max_bytes, &mut size)?;
    }
    Ok(size)
}

fn walk(value: &Dynamic, depth: usize, max_bytes: usize, size: &mut usize) -> Result<(), Exceeded> {
    let add = |size: &mut usize, bytes: usize| {
        *size = size.saturating_add(bytes);
        if *size > max_bytes { Err(Exceeded::Size) } else { Ok(()) }
    };
    if let Some(text) = value.read_lock::<rhai::ImmutableString>() {
        return add(size, text.len() + 2);
    }
    if value.is_unit() || value.is_bool() || value.is_int() || value.is_float() || value.is_char() {
        // A few characters.
        return add(size, 4);
    }
    if let Some(blob) = value.read_lock::<Blob>() {
        // Written as an array of numbers: at least two characters per byte.
        return add(size, blob.len() * 2 + 2);
    }
    let is_container = value.is_array() || value.is_map();
    if is_container && depth >= MAX_DEPTH {
        return Err(Exceeded::Depth);
    }
    if let Some(array) = value.read_lock::<Array>() {
        add(size, array.len() + 2)?;
        return array.iter().try_for_each(|item| walk(item, depth + 1, max_bytes, size));
    }
    if let Some(map) = value.read_lock::<Map>() {
        add(size, map.len() + 2)?;
        for (key, item) in map.iter() {
            add(size, key.len() + 3)?;
            walk(item, depth + 1, max_bytes, size)?;
        }
        return Ok(());
    }
    if let Some(function) = value.read_lock::<FnPtr>() {
        // Written as its name; curried, as an array of its name and the values it carries.
        add(size, function.fn_name().len() + 2)?;
        if !function.is_curried() {
            return Ok(());
        }
        if depth >= MAX_DEPTH {
            return Err(Exceeded::Depth);
        }
        add(size, function.curry().len() + 3)?;
        return function.iter_curry().try_for_each(|item| walk(item, depth + 1, max_bytes, size));
    }
    // Anything else (a timestamp, a native type) is written as its type's name.
    add(size, value.type_name().len() + 2)
}

/// A buffer that refuses to grow past its limit, pacing the writing against the run's deadline (see
/// `engine::pace`).
pub struct Bounded {
    pub bytes: Vec<u8>,
    limit: usize,
    pacer: Pacer,
    /// Why the run must stop, if the deadline passed while writing.
    stopped: Option<Box<EvalAltResult>>,
}

impl Bounded {
    pub fn new(capacity: usize, limit: usize) -> Result<Bounded, Box<EvalAltResult>> {
        let pacer = Pacer::start(capacity)?;
        Ok(Bounded { bytes: Vec::with_capacity(capacity.min(limit)), limit, pacer, stopped: None })
    }
}

impl Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > self.limit {
            return Err(std::io::Error::other("over the size limit"));
        }
        if let Err(stop) = self.pacer.step(buf.len()) {
            self.stopped = Some(stop);
            return Err(std::io::Error::other("stopped"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `value` as JSON text, within [`MAX_DEPTH`] and `max_bytes`.
pub fn to_json_bytes(value: &Dynamic, pretty: bool, max_bytes: usize) -> Result<Vec<u8>, JsonError> {
    let measured = measure(value, max_bytes).map_err(JsonError::Exceeded)?;
    if !pretty && measured.saturating_mul(MAX_GROWTH) <= PIECE.min(max_bytes) {
        Pacer::start(measured).map_err(JsonError::Stopped)?;
        let mut bytes = Vec::with_capacity(measured);
        return match serde_json::to_writer(&mut bytes, value) {
            Ok(()) => Ok(bytes),
            Err(e) => Err(JsonError::Invalid(e.to_string())),
        };
    }
    let mut out = Bounded::new(measured, max_bytes).map_err(JsonError::Stopped)?;
    let written = match pretty {
        false => serde_json::to_writer(&mut out, value),
        true => serde_json::to_writer_pretty(&mut out, value),
    };
    match (written, out.stopped) {
        (Ok(()), _) => Ok(out.bytes),
        (Err(_), Some(stop)) => Err(JsonError::Stopped(stop)),
        (Err(e), None) if e.is_io() => Err(JsonError::Exceeded(Exceeded::Size)),
        (Err(e), None) => Err(JsonError::Invalid(e.to_string())),
    }
}

/// Why a value could not be written as JSON.
#[derive(Debug)]
pub enum JsonError {
    Exceeded(Exceeded),
    /// Not representable as JSON (a function pointer, a custom type).
    Invalid(String),
    /// The run's time was up (or its caller left) while writing: the run stops with this.
    Stopped(Box<EvalAltResult>),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> Dynamic {
        (0..depth).fold(Dynamic::UNIT, |inner, _| Dynamic::from_array(vec![inner]))
    }

    #[test]
    fn shared_strings_count_by_their_length() {
        let big: rhai::ImmutableString = "a".repeat(1024 * 1024).into();
        let map: Map = (0..100).map(|i| (format!("k{i}").into(), Dynamic::from(big.clone()))).collect();
        let value = Dynamic::from_map(map);
        assert_eq!(measure(&value, 200 * 1024 * 1024).map(|n| n > 100 * 1024 * 1024), Ok(true));
        assert_eq!(measure(&value, 10 * 1024 * 1024), Err(Exceeded::Size));
        assert!(matches!(to_json_bytes(&value, false, 10 * 1024 * 1024), Err(JsonError::Exceeded(Exceeded::Size))));
    }

    #[test]
    fn nesting_is_bounded_at_max_depth() {
        assert!(to_json_bytes(&nested(MAX_DEPTH), false, MAX_BYTES).is_ok());
        assert_eq!(measure(&nested(MAX_DEPTH + 1), MAX_BYTES), Err(Exceeded::Depth));
        let deep = nested(100_000);
        assert!(matches!(to_json_bytes(&deep, false, MAX_BYTES), Err(JsonError::Exceeded(Exceeded::Depth))));
        // Dropping a value this deep recurses in Rhai's own Drop; keep the test about measuring.
        std::mem::forget(deep);
    }

    #[test]
    fn a_curried_function_is_measured_with_the_values_it_carries() {
        let curried = |value: Dynamic| {
            let mut function = FnPtr::new("main").unwrap();
            function.add_curry(value);
            Dynamic::from(function)
        };
        assert_eq!(measure(&curried(nested(MAX_DEPTH)), MAX_BYTES), Err(Exceeded::Depth));
        let big: Dynamic = "a".repeat(1024 * 1024).into();
        assert_eq!(measure(&curried(Dynamic::from_array(vec![big; 20])), 10 * 1024 * 1024), Err(Exceeded::Size));
    }

    #[test]
    fn compact_text_is_at_most_max_growth_times_the_measure() {
        let mut function = FnPtr::new("main").unwrap();
        function.add_curry(Dynamic::from_blob(vec![255; 8]));
        let map: Map = [("\u{1}".into(), Dynamic::from(i64::MIN))].into_iter().collect();
        let worst: [Dynamic; 10] = [
            "\u{1}".repeat(100).into(),
            Dynamic::from(i64::MIN),
            Dynamic::from(-2.2250738585072014e-308_f64),
            Dynamic::FALSE,
            Dynamic::from('\u{1}'),
            Dynamic::UNIT,
            Dynamic::from_blob(vec![255; 100]),
            Dynamic::from_map(map),
            Dynamic::from(function),
            Dynamic::from(std::time::Instant::now()),
        ];
        for value in worst {
            let text = serde_json::to_vec(&value).unwrap();
            let measured = measure(&value, MAX_BYTES).unwrap();
            assert!(text.len() <= MAX_GROWTH * measured, "{value:?}: {} > {MAX_GROWTH} × {measured}", text.len());
            assert_eq!(to_json_bytes(&value, false, MAX_BYTES).unwrap(), text);
        }
    }

    #[test]
    fn escapes_cannot_outgrow_the_buffer() {
        let control: Dynamic = "\u{1}".repeat(1000).into();
        assert!(measure(&control, 2000).is_ok());
        assert!(matches!(to_json_bytes(&control, false, 2000), Err(JsonError::Exceeded(Exceeded::Size))));
    }
}
