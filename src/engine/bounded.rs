//! Rhai built-ins that allocate in proportion to their input, re-registered to check the sandbox's
//! limits *before* allocating.
//!
//! Rhai checks a value's size after the function that made it returns: `s.split("")` of a 16 MiB string
//! first builds sixteen million strings (hundreds of MiB, most of a second), then refuses them; `pad`
//! grows a string one piece at a time (an empty padding never ends); `replace` of every character of
//! a 4 KB string with a 16 MB one asks for 64 GB and aborts the process. These replacements count
//! without allocating, refuse what is over the limit, and pace the work (see `engine::pace`) so that
//! large work never runs on a request thread or past the deadline. Registered in the engine's global
//! namespace, they take precedence over the built-in packages. (Maps' and arrays' text is in
//! `engine::format`.)

use rhai::{Array, Blob, Dynamic, Engine, EvalAltResult, INT, ImmutableString, Position};

use super::pace::{self, Pacer};
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
    let mut pacer = Pacer::start(missing)?;
    let padded = pace::collect(padding.chars().cycle().take(missing), usize::MAX, &mut pacer)?.unwrap_or_default();
    s.make_mut().push_str(&padded);
    if max > 0 && s.len() > max {
        return Err(too_large("Length of string"));
    }
    Ok(())
}

/// Replaces every `find` in `s` with `with`, as Rhai's `replace` does, after counting that the result
/// fits within `max`: one 4 KB string with every character replaced by 16 MB would be 64 GB.
fn replace(max: usize, s: &mut ImmutableString, find: &str, with: &str) -> Result<(), Box<EvalAltResult>> {
    let mut pacer = Pacer::start(s.len())?;
    let mut count = 0usize;
    let mut scanned = 0;
    for (at, _) in s.match_indices(find) {
        count += 1;
        pacer.step(at - scanned)?;
        scanned = at;
    }
    if count == 0 {
        return Ok(());
    }
    let length = (s.len() as u128) + (count as u128) * (with.len() as u128) - (count as u128) * (find.len() as u128);
    if max > 0 && length > max as u128 {
        return Err(too_large("Length of string"));
    }
    let mut out = String::with_capacity(length as usize);
    let mut last = 0;
    for (at, found) in s.match_indices(find) {
        out.push_str(&s[last..at]);
        out.push_str(with);
        last = at + found.len();
        pacer.step(with.len() + found.len())?;
    }
    out.push_str(&s[last..]);
    *s = out.into();
    Ok(())
}

/// `s` upper- or lower-cased, in paced pieces. Lower-casing is context-sensitive (a final sigma), so a
/// text holding a capital sigma is lower-cased in one piece.
fn cased(max: usize, s: &str, upper: bool) -> Result<ImmutableString, Box<EvalAltResult>> {
    let mut pacer = Pacer::start(s.len())?;
    let pieces: Box<dyn Iterator<Item = &str>> = match !upper && s.contains('Σ') {
        true => Box::new(std::iter::once(s)),
        false => Box::new(pace::pieces(s)),
    };
    let mut out = String::with_capacity(s.len());
    for piece in pieces {
        out.push_str(&if upper { piece.to_uppercase() } else { piece.to_lowercase() });
        if max > 0 && out.len() > max {
            return Err(too_large("Length of string"));
        }
        pacer.step(piece.len())?;
    }
    Ok(out.into())
}

/// How many pieces `split` with at most `segments` makes of `count` unbounded ones.
fn at_most(count: usize, segments: INT) -> usize {
    count.min(segments.max(1) as usize)
}

pub fn register(engine: &mut Engine, max: usize, max_string: usize) {
    let m = max_string;
    engine.register_fn("replace", move |s: &mut ImmutableString, find: &str, with: &str| replace(m, s, find, with));
    engine.register_fn("replace", move |s: &mut ImmutableString, find: &str, with: char| {
        replace(m, s, find, with.encode_utf8(&mut [0; 4]))
    });
    engine.register_fn("replace", move |s: &mut ImmutableString, find: char, with: &str| {
        replace(m, s, find.encode_utf8(&mut [0; 4]), with)
    });
    engine.register_fn("replace", move |s: &mut ImmutableString, find: char, with: char| {
        replace(m, s, find.encode_utf8(&mut [0; 4]), with.encode_utf8(&mut [0; 4]))
    });
    engine.register_fn("to_upper", move |s: ImmutableString| cased(m, &s, true));
    engine.register_fn("to_lower", move |s: ImmutableString| cased(m, &s, false));
    engine.register_fn("make_upper", move |s: &mut ImmutableString| cased(m, s, true).map(|cased| *s = cased));
    engine.register_fn("make_lower", move |s: &mut ImmutableString| cased(m, s, false).map(|cased| *s = cased));
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
