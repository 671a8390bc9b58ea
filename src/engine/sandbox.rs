//! Per-run limits that Rhai cannot know about: the wall-clock deadline, cancellation, the operation
//! budget of one call, and whether the run may block.
//!
//! Rhai calls one engine-wide progress callback on every operation. A run is always synchronous on one
//! thread, so the state of the current run lives in thread-locals set by [`enter`] and cleared when the
//! returned guard drops. The callback compares the operation count on every operation (a
//! register compare) and reads the clock only every 256 operations.
//!
//! A run is *inline* when it executes on a tokio worker thread. Inline runs may not block and get a
//! small operation budget; when they would exceed either, they stop with [`Stop::Demote`] and the
//! caller re-runs them from scratch on the blocking pool. That is safe because nothing a script can do
//! before its first blocking call has an effect outside the run.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rhai::{Dynamic, EvalAltResult, Position};

use super::context::Context;

/// Why a run was stopped from outside the script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The per-call operation limit was reached.
    Operations,
    /// The wall-clock deadline passed.
    Timeout,
    /// Whoever was waiting for the result went away.
    Cancelled,
    /// An inline run needs to block or has outgrown its inline budget: re-run it on the blocking pool.
    Demote,
}

#[derive(Clone, Copy)]
struct Budget {
    max_operations: u64,
    /// Operations allowed before an inline run is demoted (`u64::MAX` off the tokio workers).
    inline_operations: u64,
    deadline: Instant,
}

thread_local! {
    static BUDGET: Cell<Option<Budget>> = const { Cell::new(None) };
    static CANCEL: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
    static CONTEXT: RefCell<Option<Arc<Context>>> = const { RefCell::new(None) };
}

/// What [`enter`] needs to know about the run.
pub struct Run {
    pub max_operations: u64,
    pub inline_operations: Option<u64>,
    pub deadline: Instant,
    pub cancel: Option<Arc<AtomicBool>>,
    /// `None` while a script's top level is being loaded.
    pub context: Option<Arc<Context>>,
}

/// Clears the thread's run state when the run ends, however it ends.
pub struct Guard {
    previous: (Option<Budget>, Option<Arc<AtomicBool>>, Option<Arc<Context>>),
}

impl Drop for Guard {
    fn drop(&mut self) {
        let (budget, cancel, context) = self.previous.clone();
        BUDGET.with(|b| b.set(budget));
        CANCEL.with(|c| *c.borrow_mut() = cancel);
        CONTEXT.with(|c| *c.borrow_mut() = context);
    }
}

/// Installs `run` as the current thread's run state until the guard drops. Runs nest (a loading
/// script inside an invocation), so the previous state is restored, not cleared.
pub fn enter(run: Run) -> Guard {
    let budget = Budget {
        max_operations: run.max_operations,
        inline_operations: run.inline_operations.unwrap_or(u64::MAX),
        deadline: run.deadline,
    };
    Guard {
        previous: (
            BUDGET.with(|b| b.replace(Some(budget))),
            CANCEL.with(|c| c.replace(run.cancel)),
            CONTEXT.with(|c| c.replace(run.context)),
        ),
    }
}

/// The engine's progress callback.
pub fn on_progress(operations: u64) -> Option<Dynamic> {
    let budget = BUDGET.with(Cell::get)?;
    if operations > budget.inline_operations {
        return Some(Dynamic::from(Stop::Demote));
    }
    if operations > budget.max_operations {
        return Some(Dynamic::from(Stop::Operations));
    }
    if operations & 0xff == 0 {
        if Instant::now() >= budget.deadline {
            return Some(Dynamic::from(Stop::Timeout));
        }
        if CANCEL.with(|c| c.borrow().as_ref().is_some_and(|flag| flag.load(Ordering::Relaxed))) {
            return Some(Dynamic::from(Stop::Cancelled));
        }
    }
    None
}

/// Called by every native function that blocks (network, disk): inline runs are demoted before the
/// first such call, so the call itself only ever happens off the tokio workers.
pub fn may_block() -> Result<(), Box<EvalAltResult>> {
    let inline = BUDGET.with(Cell::get).is_some_and(|b| b.inline_operations != u64::MAX);
    if inline {
        return Err(EvalAltResult::ErrorTerminated(Dynamic::from(Stop::Demote), Position::NONE).into());
    }
    Ok(())
}

/// The invocation the run on this thread serves, for native functions (`None` while loading).
pub fn context() -> Option<Arc<Context>> {
    CONTEXT.with(|c| c.borrow().clone())
}
