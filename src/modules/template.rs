//! Templates: text with `{NAME}` placeholders filled from what a script declares, and declared URLs
//! with the operator's overrides.
//!
//! A placeholder reads only a secret the script declares in `META.secrets` (recorded, so the invocation
//! masks it wherever it shows) or a variable it declares in `META.variables`; anything else in braces
//! (a JSON body, `{id}` in a path) is left as written. A declared URL — the base URL, a `META.hosts`
//! entry, an OAuth URL — gives way to the operator's `<NAME>_<SUFFIX>` variable (`STRIPE_BASE_URL`,
//! `BOX_UPLOAD_BASE_URL`, `ZOOM_TOKEN_URL`): one naming only a scheme and host keeps the declared path.

use std::sync::Arc;

use rhai::EvalAltResult;

use super::native::arg_error;
use super::secret;
use super::services::Services;
use crate::engine::Context;
use crate::meta::routes::{Routes, overridden, overriding};

/// The value of a `{NAME}` placeholder: a declared secret, or a declared variable (registry variables,
/// then the environment).
fn placeholder(name: &str, services: &Services, context: &Context) -> Result<String, Box<EvalAltResult>> {
    if context.script.meta.variables.iter().any(|v| v == name) {
        let default = || context.script.meta.variable_defaults.get(name).cloned();
        return services.variable(name).or_else(default).ok_or_else(|| {
            arg_error(&format!("variable {name} is not set: give it in the boot image's variables or the environment"))
        });
    }
    secret::require(services, context, name)
}

/// Fills `{NAME}` placeholders from the script's declared secrets and variables.
pub fn fill(template: &str, services: &Services, context: &Context) -> Result<String, Box<EvalAltResult>> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let Some(length) = rest[start + 1..].find('}') else { break };
        let name = &rest[start + 1..start + 1 + length];
        let is_name =
            !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        out.push_str(&rest[..start]);
        if is_name {
            out.push_str(&placeholder(name, services, context)?);
        } else {
            out.push_str(&rest[start..start + 2 + length]);
        }
        rest = &rest[start + 2 + length..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The operator's override `<NAME>_<SUFFIX>` for the server an invocation runs as (`STRIPE_BASE_URL`).
pub fn operator_url(services: &Services, context: &Context, suffix: &str) -> Option<String> {
    overriding(context.server.as_ref()?, suffix, &services.variables.load())
}

/// `declared` with the operator's `<NAME>_<SUFFIX>` applied, placeholders not yet filled.
pub fn url(services: &Services, context: &Context, suffix: &str, declared: &str) -> String {
    overridden(declared, operator_url(services, context, suffix).as_deref())
}

/// Where the invocation's calls go under the registry's variables now (see [`Routes`]).
pub fn routes(services: &Services, context: &Context) -> Arc<Routes> {
    context.script.routes(context.server.as_deref(), &services.variables.load())
}
