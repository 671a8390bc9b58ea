//! Arbitrary requests through the service `serve` runs (the edge): an answer every time, and every error JSON.
#![no_main]

#[path = "../../tests/harness/dispatch.rs"]
mod dispatch;
#[path = "../../tests/harness/serving.rs"]
mod serving;

use std::sync::OnceLock;

static DISPATCHER: OnceLock<std::sync::Mutex<dispatch::Dispatcher>> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|input: &[u8]| {
    let dispatcher = DISPATCHER.get_or_init(|| std::sync::Mutex::new(dispatch::Dispatcher::new()));
    dispatcher.lock().unwrap_or_else(|p| p.into_inner()).run(input);
});
