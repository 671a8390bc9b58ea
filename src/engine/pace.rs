//! Native work over large inputs, done in pieces with the deadline checked between them.
//!
//! The sandbox checks the deadline between a script's operations, but one native call is one operation:
//! `to_upper` of 16 MB, hashing 8 MB or formatting a large map used to run to its end however late
//! that was (a 100 ms limit answered after 500–800 ms). A native that works in proportion to its input
//! takes a [`Pacer`]: [`Pacer::start`] admits the work (large work never runs on a request thread, and
//! none starts past the deadline), and [`Pacer::step`] counts what was done and, every [`PIECE`] bytes,
//! stops at the deadline or when the caller left, and lets the other fibers of the thread run.

use rhai::EvalAltResult;

use super::sandbox::{admit, checkpoint};

/// Work between two deadline checks: a fraction of a millisecond for the natives that use it.
pub const PIECE: usize = 256 * 1024;

/// Counts a native's work and checks the deadline every [`PIECE`] bytes of it.
pub struct Pacer {
    since: usize,
}

impl Pacer {
    /// Admits work of about `bytes` (see `sandbox::admit`).
    pub fn start(bytes: usize) -> Result<Pacer, Box<EvalAltResult>> {
        admit(bytes)?;
        Ok(Pacer { since: 0 })
    }

    /// Counts `bytes` of work done; stops the run if its time is up.
    pub fn step(&mut self, bytes: usize) -> Result<(), Box<EvalAltResult>> {
        self.since += bytes;
        if self.since >= PIECE {
            self.since = 0;
            checkpoint()?;
        }
        Ok(())
    }
}

/// `text` in consecutive pieces of about [`PIECE`] bytes, each cut at a character boundary.
pub fn pieces(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = PIECE.min(rest.len());
        while !rest.is_char_boundary(end) {
            end += 1;
        }
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        Some(piece)
    })
}

/// `items` collected into a string of at most `max` bytes, paced: `None` when it would be longer.
pub fn collect(
    items: impl Iterator<Item = char>,
    max: usize,
    pacer: &mut Pacer,
) -> Result<Option<String>, Box<EvalAltResult>> {
    let mut out = String::new();
    for c in items {
        if out.len() + c.len_utf8() > max {
            return Ok(None);
        }
        out.push(c);
        pacer.step(c.len_utf8())?;
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_text_and_cut_between_characters() {
        let text = "é".repeat(PIECE) + "tail";
        let pieces: Vec<&str> = pieces(&text).collect();
        assert_eq!(pieces.concat(), text);
        assert!(pieces.len() >= 2 && pieces.iter().all(|p| p.len() <= PIECE + 3));
        assert_eq!(super::pieces("").count(), 0);
    }

    #[test]
    fn collecting_stops_at_the_bound() {
        let mut pacer = Pacer::start(0).unwrap();
        assert_eq!(collect("abc".chars(), 3, &mut pacer).unwrap().as_deref(), Some("abc"));
        assert_eq!(collect("abcd".chars(), 3, &mut pacer).unwrap(), None);
    }
}
