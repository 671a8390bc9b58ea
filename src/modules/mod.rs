//! Native modules bound into every script, and the services they share.
//!
//! Each file is one Rhai module registered under its own namespace (`http::get`, `secret::require`,
//! `db::query`, …). Functions that wait on the network, the disk or the store first call
//! [`may_block`](crate::engine::may_block): only a run on a fiber may wait (it suspends on the future and
//! holds no thread), so an inline run stops there and starts again as a fiber. Functions that
//! need to know which invocation they serve (its server name, declared secrets, deadline) read it from
//! the sandbox with [`native::context`]; none of them can reach the runtime's own store other than
//! through the narrow doors of [`services`] (secrets the script declared, variables).
//!
//! Below the modules scripts see lie what they share: [`services`], the plumbing of every native
//! function ([`native`]), values on their way out ([`values`]), templates and declared URLs
//! ([`template`]), where a server may send ([`egress`]) and how fast ([`throttle`]), and the one HTTP
//! client ([`http`]). `oauth` builds on those, and `api` on all of them.

pub mod api;
mod aws;
mod azure;
mod codec;
mod crypto;
pub mod db;
pub mod egress;
mod forward;
pub mod http;
pub(crate) mod jwt;
pub mod multipart;
pub(crate) mod native;
pub(crate) mod secret;
pub mod services;
pub(crate) mod template;
pub(crate) mod throttle;
mod time;
mod values;
mod xml;

use std::sync::Arc;

use rhai::{Engine, Module};

use services::Services;

/// Registers every native module on the engine.
pub fn register(engine: &mut Engine, services: Arc<Services>) {
    let modules: [(&str, Module); 16] = [
        ("http", http::functions::module(services.clone())),
        ("secret", secret::module(services.clone())),
        ("db", db::functions::module(services.clone())),
        ("api", api::module(services.clone())),
        ("webhook", forward::module(services.clone())),
        ("json", codec::json_module()),
        ("base64", codec::base64_module()),
        ("hex", codec::hex_module()),
        ("url", codec::url_module()),
        ("crypto", crypto::module()),
        ("uuid", crypto::uuid_module()),
        ("time", time::module()),
        ("aws", aws::module()),
        ("azure", azure::module()),
        ("jwt", jwt::module()),
        ("xml", xml::module()),
    ];
    for (name, module) in modules {
        engine.register_static_module(name, module.into());
    }
    db::functions::register_types(engine);
}
