//! What stack overflows cost the process, and the bound on it.
//!
//! A run that overflows its stack is abandoned where it stands (see `trap.rs`): its frames are never
//! unwound, so whatever they owned — the script's variables, the values it was building — stays
//! allocated for the life of the process. Each version of a script overflows at most once (it is not run
//! again), and only an operator binds versions, but a process that keeps serving new versions would
//! still grow without bound. So the process counts what it loses, and past a budget it runs no more
//! scripts until it is restarted: a `503 unavailable` that says why, rather than a slow climb to the
//! kernel's out-of-memory killer.
//!
//! Counting: [`Counting`] wraps the global allocator and keeps each thread's net allocation (bytes
//! allocated minus bytes freed). The sandbox notes it when a run starts or resumes on a thread and adds
//! the difference when it stops or suspends, so each run carries the net bytes it allocated; when it
//! overflows, that is what its frames held. It is an estimate: what the run stored elsewhere (a
//! connection it opened into a pool) counts as lost, and what it freed of values made before it
//! counts against it.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

thread_local! {
    /// Bytes this thread allocated minus bytes it freed. `const`, without a destructor, so the
    /// allocator may use it at any moment of a thread's life.
    static NET: Cell<isize> = const { Cell::new(0) };
}

/// Bytes lost to runs that overflowed, in this process.
static LOST: AtomicUsize = AtomicUsize::new(0);

/// The global allocator `A`, counting each thread's net allocation.
pub struct Counting<A>(pub A);

fn add(delta: isize) {
    let _ = NET.try_with(|net| net.set(net.get().wrapping_add(delta)));
}

// SAFETY: every call is forwarded unchanged to `A`; only a thread-local counter is updated besides.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as the caller made it.
        let ptr = unsafe { self.0.alloc(layout) };
        if !ptr.is_null() {
            add(layout.size() as isize);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as the caller made it.
        let ptr = unsafe { self.0.alloc_zeroed(layout) };
        if !ptr.is_null() {
            add(layout.size() as isize);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as the caller made it.
        unsafe { self.0.dealloc(ptr, layout) };
        add(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as the caller made it.
        let moved = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !moved.is_null() {
            add(new_size as isize - layout.size() as isize);
        }
        moved
    }
}

/// The current thread's net allocation (0 where [`Counting`] is not the global allocator).
pub fn net() -> isize {
    NET.with(Cell::get)
}

/// Records that a run which had allocated `held` net bytes overflowed and was abandoned.
pub fn overflowed(held: isize) {
    let lost = usize::try_from(held).unwrap_or(0);
    let total = LOST.fetch_add(lost, Ordering::Relaxed) + lost;
    tracing::warn!(lost, total, "a script overflowed its stack: what it held is not recovered");
}

/// Bytes lost so far.
pub fn lost() -> usize {
    LOST.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_counts_what_it_allocates_and_frees() {
        // The library's unit tests run under `Counting` (see lib.rs).
        let before = net();
        let held = vec![0u8; 1 << 20];
        assert!(net() - before >= 1 << 20);
        drop(held);
        assert!(net() - before < 1024);
        let before = lost();
        overflowed(1000);
        overflowed(-5);
        assert!(lost() >= before + 1000);
    }
}
