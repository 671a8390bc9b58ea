//! What one statement may bring back, counted while its rows are read.
//!
//! A result judged once it is whole has already cost its memory: `SELECT randomblob(400000000)`, a
//! 3 M-row recursive select or `generate_series(1, 3000000)` grew the process by 1.3–3 GiB before the
//! sandbox refused the array. Every backend counts each row and value as it reads it and stops the read
//! at the first bound passed: as many rows as a script's array may hold, each value within the string
//! limit, and all of them within the JSON text bound. A stopped read is `limit_exceeded` (`size`).

use rhai::{Dynamic, EvalAltResult};

use crate::engine::nesting::MAX_BYTES;
use crate::engine::raise;
use crate::error::{Error, Location};

/// Rows one statement may return: the sandbox's array limit.
pub const MAX_ROWS: usize = 100_000;

/// The longest single value: the sandbox's string limit.
pub const MAX_VALUE: usize = 16 * 1024 * 1024;

/// The rows and bytes read so far by one statement.
#[derive(Default)]
pub struct Tally {
    rows: usize,
    bytes: usize,
}

fn too_large(message: String) -> Box<EvalAltResult> {
    raise(Error::limit_exceeded("size", message, Location::default()))
}

impl Tally {
    /// Counts one more row.
    pub fn row(&mut self) -> Result<(), Box<EvalAltResult>> {
        self.rows += 1;
        match self.rows > MAX_ROWS {
            true => Err(too_large(format!("the query returns more than {MAX_ROWS} rows: page through it"))),
            false => Ok(()),
        }
    }

    /// Counts a value of `bytes` (its text or its bytes).
    pub fn bytes(&mut self, bytes: usize) -> Result<(), Box<EvalAltResult>> {
        if bytes > MAX_VALUE {
            return Err(too_large(format!("a value of the result is longer than {MAX_VALUE} bytes")));
        }
        self.bytes += bytes;
        match self.bytes > MAX_BYTES {
            true => Err(too_large(format!("the query's result is larger than {MAX_BYTES} bytes: page through it"))),
            false => Ok(()),
        }
    }

    /// Counts a converted value: a string by its length, anything else by a few bytes.
    pub fn value(&mut self, value: &Dynamic) -> Result<(), Box<EvalAltResult>> {
        let length = value.read_lock::<rhai::ImmutableString>().map_or(8, |text| text.len());
        self.bytes(length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_values_and_totals_are_bounded() {
        let mut tally = Tally::default();
        assert!((0..MAX_ROWS).all(|_| tally.row().is_ok()));
        assert!(tally.row().is_err());
        let mut tally = Tally::default();
        assert!(tally.bytes(MAX_VALUE).is_ok());
        assert!(tally.bytes(MAX_VALUE + 1).is_err());
        assert!(tally.bytes(MAX_VALUE).is_ok());
        assert!(tally.bytes(1).is_err(), "over the total");
        assert!(Tally::default().value(&Dynamic::from("x".repeat(MAX_VALUE + 1))).is_err());
    }
}
