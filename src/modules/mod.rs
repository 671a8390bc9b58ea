//! Native modules bound into every script.

use rhai::Engine;

/// Registers every native module on the engine.
pub fn register(_engine: &mut Engine) {}
