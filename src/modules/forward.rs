//! `webhook`: what a catalog server does with a verified event unless its operator says otherwise.
//!
//! `webhook::forward(event)` sends the event, as JSON, to the URL the operator set in
//! `<NAME>_WEBHOOK_FORWARD_URL` — a destination egress admits for servers that receive webhooks, and
//! only then — and answers `#{ cid, forwarded: status }`; without that variable it answers
//! `#{ cid }` and sends nothing, so the event is only kept. An answer outside 2xx is an `upstream`
//! error, which the webhook queue retries.

use std::sync::Arc;

use reqwest::Method;
use rhai::{Dynamic, EvalAltResult, Map, Module};

use super::egress;
use super::http::{Body, Outgoing, parse_url};
use super::native::{context, func};
use super::services::Services;
use super::template::operator_url;
use super::values::to_json;
use crate::engine::raise;
use crate::error::Error;
use crate::meta::webhook::FORWARD_URL;

/// Longest excerpt of a refusing answer kept in the error.
const EXCERPT: usize = 512;

fn forward(services: &Services, event: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
    let context = context()?;
    let mut answer = Map::new();
    let cid = event.read_lock::<Map>().and_then(|event| event.get("cid").cloned()).unwrap_or(Dynamic::UNIT);
    answer.insert("cid".into(), cid);
    let Some(url) = operator_url(services, &context, FORWARD_URL) else { return Ok(answer.into()) };
    let mut outgoing = Outgoing::new(Method::POST, parse_url(&url)?);
    outgoing.body = Body::Json(to_json(&event)?);
    egress::check(services, &context, &outgoing.url)?;
    let upstream = outgoing.url.host_str().unwrap_or_default().to_owned();
    let response = services.http.send(outgoing, &context)?;
    let status = response.status.as_u16();
    if !response.status.is_success() {
        let body = context.excerpt(&String::from_utf8_lossy(&response.body), EXCERPT);
        let message = format!("the webhook forward URL ({upstream}) answered {status}");
        return Err(raise(Error::Upstream { status, upstream, message, body }));
    }
    answer.insert("forwarded".into(), (status as i64).into());
    Ok(answer.into())
}

pub fn module(services: Arc<Services>) -> Module {
    let mut module = Module::new();
    func("forward").set_into_module(&mut module, move |event: Dynamic| forward(&services, event));
    module
}
