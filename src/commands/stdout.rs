//! What commands print on stdout, written so that a reader who stops early ends nothing badly.
//!
//! `switchboard servers | head -1` closes the pipe after one line. Rust ignores `SIGPIPE`, so the next
//! write fails with `BrokenPipe`, and `println!` panics on it (exit 101). A reader that has gone wants
//! nothing more: that is a success (exit 0), and any other write error is reported like other failures.

use std::io::Write;
use std::process::ExitCode;

use super::{Exit, INVOCATION_ERROR};

/// Writes `text` to stdout and flushes it.
pub fn print(text: impl AsRef<[u8]>) -> Exit {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_ref()).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => {
            eprintln!("switchboard: cannot write to stdout: {e}");
            Err(ExitCode::from(INVOCATION_ERROR))
        }
    }
}

/// Writes `line` and a newline.
pub fn line(line: impl std::fmt::Display) -> Exit {
    print(format!("{line}\n"))
}
