//! Turning what Rhai reports into the error users see.
//!
//! Rhai wraps an error raised deep in a call chain in one `ErrorInFunctionCall` per frame; the caller
//! wants the innermost error, at the innermost position, without Rhai's own position suffix. Errors
//! raised by native modules travel as a runtime error carrying an [`Error`] value and come out typed.

use rhai::{EvalAltResult, Position};

use super::sandbox::Stop;
use crate::error::{Error, Location};

/// How a run failed.
#[derive(Debug)]
pub enum Fault {
    /// The inline attempt must be repeated as a fiber.
    Demote,
    Error(Error),
}

impl From<Error> for Fault {
    fn from(error: Error) -> Fault {
        Fault::Error(error)
    }
}

/// Wraps an [`Error`] so that a native function can raise it inside a script.
pub fn raise(error: Error) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(rhai::Dynamic::from(error), Position::NONE).into()
}

/// The innermost error of a chain and the innermost known position along the way.
fn innermost(err: EvalAltResult) -> (EvalAltResult, Position) {
    let mut position = err.position();
    let mut current = err;
    while let EvalAltResult::ErrorInFunctionCall(.., inner, _) | EvalAltResult::ErrorInModule(_, inner, _) = current {
        current = *inner;
        if !current.position().is_none() {
            position = current.position();
        }
    }
    (current, position)
}

fn located(mut at: Location, position: Position) -> Location {
    at.line = position.line();
    at.column = position.position();
    at
}

fn limit(limit: &str, message: String, at: Location) -> Fault {
    Fault::Error(Error::limit_exceeded(limit, message, at))
}

/// Classifies a failed run. `at` names the server and CID; the position is filled in here.
pub fn classify(err: EvalAltResult, at: Location, timeout: std::time::Duration) -> Fault {
    let (inner, position) = innermost(err);
    let at = located(at, position);
    match inner {
        EvalAltResult::ErrorTerminated(token, _) => match token.try_cast::<Stop>() {
            Some(Stop::Demote) => Fault::Demote,
            Some(Stop::Operations) | None => limit("operations", "the script ran too many operations".into(), at),
            Some(Stop::Timeout) => {
                Fault::Error(Error::Timeout(format!("the script did not finish within {} ms", timeout.as_millis())))
            }
            Some(Stop::Cancelled) => Fault::Error(Error::Timeout("the caller went away".into())),
            // The engine raises the refusal itself (see `sandbox::refuse`); this is what is left of it.
            Some(Stop::Refused) => limit("size", "a value was over a limit".into(), at),
        },
        EvalAltResult::ErrorTooManyOperations(_) => {
            limit("operations", "the script ran too many operations".into(), at)
        }
        EvalAltResult::ErrorStackOverflow(_) => {
            limit("call_depth", "the script nested function calls too deeply".into(), at)
        }
        EvalAltResult::ErrorDataTooLarge(what, _) => limit("size", format!("{what} is over the limit"), at),
        EvalAltResult::ErrorTooManyVariables(_) => {
            limit("variables", "the script defined too many variables".into(), at)
        }
        EvalAltResult::ErrorTooManyModules(_) => Fault::Error(Error::script("scripts cannot import modules", at)),
        EvalAltResult::ErrorRuntime(value, _) if value.is::<Error>() => Fault::Error(value.cast::<Error>().located(at)),
        EvalAltResult::ErrorRuntime(value, _) => Fault::Error(Error::script(value.to_string(), at)),
        mut other => {
            other.clear_position();
            Fault::Error(Error::script(other.to_string(), at))
        }
    }
}
