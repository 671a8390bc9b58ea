//! Arbitrary multipart parts to the bytes an upstream receives: every part in its place.
#![no_main]

#[path = "../../tests/harness/multipart.rs"]
mod multipart;

libfuzzer_sys::fuzz_target!(|input: &[u8]| multipart::run(input));
