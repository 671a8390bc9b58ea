//! Arbitrary values returned by a script: the runtime frames every response itself.
#![no_main]

#[path = "../../tests/harness/envelope.rs"]
mod envelope;
#[path = "../../tests/harness/serving.rs"]
mod serving;

use std::sync::OnceLock;

static WIRE: OnceLock<std::sync::Mutex<envelope::Wire>> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|input: &[u8]| {
    let wire = WIRE.get_or_init(|| std::sync::Mutex::new(envelope::Wire::new()));
    wire.lock().unwrap_or_else(|p| p.into_inner()).run(input);
});
