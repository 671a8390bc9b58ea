//! Rhai built-ins that allocate in proportion to their input, re-registered to check the sandbox's
//! limits *before* allocating.
//!
//! Rhai checks a value's size after the function that made it returns: `s.split("")` of a 16 MiB string
//! first builds sixteen million strings (hundreds of MiB, most of a second), then refuses them; `pad`
//! grows a string one piece at a time (an empty padding never ends). These replacements count without
//! allocating, refuse what is over the limit, and admit the work (see `sandbox::admit`) so that large
//! work never runs on a request thread or past the deadline. Registered in the engine's global
//! namespace, they take precedence over the built-in packages.

use rhai::{Array, Blob, Dynamic, Engine, EvalAltResult, INT, ImmutableString, Position};

use super::sandbox::admit;

/// Builds the array of `pieces` items only when `count` of them fit within `max`.
fn bounded<T: Into<Dynamic>>(
    max: usize,
    work: usize,
    count: usize,
    pieces: impl Iterator<Item = T>,
) -> Result<Array, Box<EvalAltResult>> {
    admit(work)?;
    if max > 0 && count > max {
        return Err(too_large("Size of array"));
    }
    Ok(pieces.map(Into::into).collect())
}

fn too_large(what: &str) -> Box<EvalAltResult> {
    EvalAltResult::ErrorDataTooLarge(what.into(), Position::NONE).into()
}

/// Pads `s` to `len` characters with `padding` repeated (and cut), as Rhai's `pad` does.
fn pad(max: usize, s: &mut ImmutableString, len: INT, padding: &str) -> Result<(), Box<EvalAltResult>> {
    let len = usize::try_from(len).unwrap_or(0);
    let missing = len.saturating_sub(s.chars().count());
    if missing == 0 || padding.is_empty() {
        return Ok(());
    }
    let width = padding.chars().map(char::len_utf8).max().unwrap_or(1);
    if max > 0 && s.len().saturating_add(missing.saturating_mul(width)) > max {
        return Err(too_large("Length of string"));
    }
    admit(missing)?;
    s.make_mut().extend(padding.chars().cycle().take(missing));
    if max > 0 && s.len() > max {
        return Err(too_large("Length of string"));
    }
    Ok(())
}

/// How many pieces `split` with at most `segments` makes of `count` unbounded ones.
fn at_most(count: usize, segments: INT) -> usize {
    count.min(segments.max(1) as usize)
}

pub fn register(engine: &mut Engine, max: usize, max_string: usize) {
    engine.register_fn("pad", move |s: &mut ImmutableString, len: INT, padding: &str| pad(max_string, s, len, padding));
    engine.register_fn("pad", move |s: &mut ImmutableString, len: INT, padding: char| {
        pad(max_string, s, len, padding.encode_utf8(&mut [0; 4]))
    });
    engine.register_fn("to_chars", move |s: &str| bounded(max, s.len(), s.chars().count(), s.chars()));
    engine.register_fn("split", move |s: &str| {
        bounded(max, s.len(), s.split_whitespace().count(), s.split_whitespace().map(str::to_owned))
    });
    engine.register_fn("split", move |s: &str, d: &str| {
        bounded(max, s.len(), s.split(d).count(), s.split(d).map(str::to_owned))
    });
    engine.register_fn("split", move |s: &str, d: char| {
        bounded(max, s.len(), s.split(d).count(), s.split(d).map(str::to_owned))
    });
    engine.register_fn("split", move |s: &str, d: &str, n: INT| {
        let pieces = s.splitn(n.max(1) as usize, d).map(str::to_owned);
        bounded(max, s.len(), at_most(s.split(d).count(), n), pieces)
    });
    engine.register_fn("split", move |s: &str, d: char, n: INT| {
        let pieces = s.splitn(n.max(1) as usize, d).map(str::to_owned);
        bounded(max, s.len(), at_most(s.split(d).count(), n), pieces)
    });
    engine.register_fn("split_rev", move |s: &str, d: &str| {
        bounded(max, s.len(), s.rsplit(d).count(), s.rsplit(d).map(str::to_owned))
    });
    engine.register_fn("split_rev", move |s: &str, d: char| {
        bounded(max, s.len(), s.rsplit(d).count(), s.rsplit(d).map(str::to_owned))
    });
    engine
        .register_fn("to_array", move |b: &mut Blob| bounded(max, b.len(), b.len(), b.iter().map(|&byte| byte as INT)));
}
