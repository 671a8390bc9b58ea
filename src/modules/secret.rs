//! `secret`: the values a script declared in `META.secrets`, and nothing else.
//!
//! `secret::get(name)` returns the value or `()`; `secret::require(name)` returns it or fails with
//! `missing_secret` naming it (`secret::require([a, b])`: the first of the alternatives that is set). Reading a name the script did not declare is an error, whatever the
//! store holds. Every value read is recorded so the invocation masks it in logs and errors. Values come
//! from the opened snapshot in memory, so reading one never blocks and may run inline.

use std::sync::Arc;

use rhai::{Dynamic, EvalAltResult, Module, NativeCallContext};

use super::native::{Fallible, arg_error, context, func};
use super::services::Services;
use crate::engine::{Context, raise};
use crate::error::Error;

/// The value of a declared secret, recorded for redaction. Used by every module that needs one.
pub fn read(services: &Services, context: &Context, name: &str) -> Result<Option<String>, Box<EvalAltResult>> {
    if !context.script.meta.declares_secret(name) {
        return Err(arg_error(&format!("secret '{name}' is not declared in META.secrets")));
    }
    let value = services.secrets().get(name).map_err(raise)?;
    if let Some(value) = &value {
        context.reveal(value);
    }
    Ok(value)
}

/// The value of a declared secret, or `missing_secret`.
pub fn require(services: &Services, context: &Context, name: &str) -> Result<String, Box<EvalAltResult>> {
    read(services, context, name)?.ok_or_else(|| raise(Error::missing_secret(name)))
}

/// `error`, positioned at the script's call.
fn at_call(mut error: Box<EvalAltResult>, call: &NativeCallContext) -> Box<EvalAltResult> {
    error.set_position(call.call_position());
    error
}

pub fn module(services: Arc<Services>) -> Module {
    let mut module = Module::new();
    let s = services.clone();
    // Rhai leaves errors of module functions without a position: these say where the script asked.
    func("get").set_into_module(&mut module, move |call: NativeCallContext, name: &str| -> Fallible<Dynamic> {
        let context = context()?;
        let value = read(&s, &context, name).map_err(|e| at_call(e, &call))?;
        Ok(value.map_or(Dynamic::UNIT, Dynamic::from))
    });
    let s = services.clone();
    func("require").set_into_module(&mut module, move |call: NativeCallContext, name: &str| -> Fallible<String> {
        let context = context()?;
        require(&s, &context, name).map_err(|e| at_call(e, &call))
    });
    // Alternatives: the first that is set, or `missing_secret` naming them all ("A or B").
    let s = services;
    func("require").set_into_module(
        &mut module,
        move |call: NativeCallContext, names: rhai::Array| -> Fallible<String> {
            let context = context()?;
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            for name in &names {
                if let Some(value) = read(&s, &context, name).map_err(|e| at_call(e, &call))? {
                    return Ok(value);
                }
            }
            Err(at_call(raise(Error::missing_secret(names.join(" or "))), &call))
        },
    );
    module
}
