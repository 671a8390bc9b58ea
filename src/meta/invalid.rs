//! The one error of the declaration layer: what is wrong with a declaration, in words a script author
//! can act on ("META.api.pagination: 'limit' needs 'limit_param', …").
//!
//! It carries no position and no error type of its own: whoever asked decides what it becomes — the
//! engine an `invalid_script` at `META`'s line when a script loads, a native function a script error
//! at the call when a call's own options refine a declaration.

use rhai::{EvalAltResult, Position};

/// A declaration that does not hold, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(String);

impl Invalid {
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl From<String> for Invalid {
    fn from(message: String) -> Invalid {
        Invalid(message)
    }
}

impl From<&str> for Invalid {
    fn from(message: &str) -> Invalid {
        Invalid(message.to_owned())
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Invalid {}

/// An `Invalid` is its message: it reads and compares as one.
impl std::ops::Deref for Invalid {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<&str> for Invalid {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// A declaration refused during a call (a call's own `pagination` refining the declared one) is a script
/// error at that call.
impl From<Invalid> for Box<EvalAltResult> {
    fn from(invalid: Invalid) -> Box<EvalAltResult> {
        EvalAltResult::ErrorRuntime(invalid.0.into(), Position::NONE).into()
    }
}
