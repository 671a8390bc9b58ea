//! Upstream JSON that a script returns untouched goes back out as the upstream's own bytes.
//!
//! A gateway script is mostly `fn main(…) { api::call(…) }`: the upstream's JSON is parsed into Rhai
//! values for the script, and `main`'s value is written back out as JSON. When the script returned the
//! very value it was handed, unchanged, the second half is wasted work: the bytes it would write are
//! the ones that arrived (the upstream's key order and spelling of numbers aside).
//!
//! So the value an `api` call hands over is *marked*: a random tag on the outer map or array, and the
//! address of the container it holds. Rhai moves a value returned by a call straight through `main`
//! without copying it; anything that could change it copies it first — reading a variable or `this`
//! clones, and the operators that build a new map or array build a new container with no tag. So a
//! returned value with the same container and the same tag is the one handed over, as it was handed
//! over. Anything else (a clone, a changed copy, a part of it, a value built anew) is written out from
//! its Rhai values as before.
//!
//! Only the last value handed over is remembered, and only for one invocation: at most one upstream
//! body is held beyond what the script holds itself.

use std::sync::Mutex;

use bytes::Bytes;
use rhai::{Array, Dynamic, Map};

/// The last upstream JSON an invocation's script was handed.
#[derive(Default)]
pub struct Passthrough {
    handed: Mutex<Option<Handed>>,
}

struct Handed {
    /// Rhai's tag type is as wide as a pointer allows: kept here as the widest.
    tag: i64,
    container: usize,
    body: Bytes,
}

/// Where a map's or an array's contents live: stable while the value moves, new in every copy.
fn container(value: &Dynamic) -> Option<usize> {
    if value.is_shared() {
        return None;
    }
    if let Some(map) = value.read_lock::<Map>() {
        return Some(&*map as *const Map as usize);
    }
    value.read_lock::<Array>().map(|array| &*array as *const Array as usize)
}

impl Passthrough {
    /// Marks `value`, parsed from `body`, as handed to the script; a map or an array only (other JSON
    /// is written out as cheaply as it is compared).
    pub fn hand_over(&self, mut value: Dynamic, body: Bytes) -> Dynamic {
        let mut handed = self.handed.lock().unwrap_or_else(|p| p.into_inner());
        *handed = None;
        if let Some(container) = container(&value) {
            // Odd, so never 0, which every value starts with.
            value.set_tag((rand::random::<i32>() | 1) as _);
            *handed = Some(Handed { tag: value.tag() as i64, container, body });
        }
        value
    }

    /// The upstream's bytes when `value` is the one last handed over, unchanged.
    pub fn returned(&self, value: &Dynamic) -> Option<Bytes> {
        let handed = self.handed.lock().unwrap_or_else(|p| p.into_inner()).take()?;
        let same = value.tag() as i64 == handed.tag && container(value) == Some(handed.container);
        same.then_some(handed.body)
    }
}
