//! Arbitrary bytes as a boot image: import → export → import gives the same state.
#![no_main]

#[path = "../../tests/harness/image.rs"]
mod image;

libfuzzer_sys::fuzz_target!(|input: &[u8]| image::run(input));
