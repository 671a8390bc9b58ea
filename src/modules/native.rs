//! What every native function is made of: its registration, its errors, and the invocation it serves.

use std::sync::Arc;

use rhai::{EvalAltResult, FuncRegistration, Position};

use crate::engine::Context;

/// What a native function returns.
pub(crate) type Fallible<T> = Result<T, Box<EvalAltResult>>;

/// A function registration in the module's own namespace, never constant-folded (natives read the
/// clock, the network or the store).
pub(crate) fn func(name: &str) -> FuncRegistration {
    FuncRegistration::new(name).in_internal_namespace().with_volatility(true)
}

/// A script passed something a native function cannot use: a script error at the call.
pub(crate) fn arg_error(message: &str) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(message.into(), Position::NONE).into()
}

/// The invocation this run serves.
pub(crate) fn context() -> Result<Arc<Context>, Box<EvalAltResult>> {
    crate::engine::context().ok_or_else(|| arg_error("this function is only available while a server runs"))
}
