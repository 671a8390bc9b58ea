//! Per-run limits that Rhai cannot know about: the wall-clock deadline, cancellation, the operation
//! budget of one call, and how long a run may keep its thread.
//!
//! Rhai calls one engine-wide progress callback on every operation, with nothing but the count. The
//! state of the run being executed therefore lives in thread-locals, installed by [`enter`] and
//! restored when the returned guard drops; a fiber that suspends takes its state out ([`detach`]) and
//! puts it back when it resumes ([`attach`]), so each run on a script thread sees only its own. The
//! callback compares the operation count on every operation (a register compare) and reads the clock
//! only every 256 operations.
//!
//! Where a run executes decides what happens when it has had the thread for long enough:
//!
//! * *inline* — on a tokio worker that accepts requests, the fastest place for a trivial script. It
//!   gets a small operation budget and a short time slice, and may not wait on I/O; past any of them it
//!   stops with [`Stop::Demote`] and the caller runs it again as a fiber. That is safe because nothing a
//!   script can do before its first wait has an effect outside the run.
//! * *fiber* — on a request worker or a script thread, shared with many waiting fibers. Past its time
//!   slice it yields to the others, so a long computation slows down only itself. How to yield is given
//!   with the run ([`enter_on_fiber`]): the sandbox keeps the limits and leaves switching stacks to the
//!   fibers. A fiber on a request worker is *restartable* until it first waits: bounded like an inline
//!   run, past its budget it stops with [`Stop::Demote`] and runs again on a script thread, for the
//!   same reason an inline run may (see `fiber`).
//! * *load* — a script's top level, once, when it is compiled: bounded like an inline run, and it may
//!   not wait at all.
//!
//! Expensive native functions (hashing or encoding megabytes) call [`admit`] first, so that one such
//! call cannot hold a worker or overshoot a deadline by much: an inline run moves to a fiber before
//! large work, and every run stops at its deadline before starting more.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rhai::{Dynamic, EvalAltResult, Position};

use super::context::Context;
use super::leak;

/// Why a run was stopped from outside the script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The per-call operation limit was reached.
    Operations,
    /// The wall-clock deadline passed.
    Timeout,
    /// Whoever was waiting for the result went away.
    Cancelled,
    /// An inline run needs to wait, or has had its worker long enough: run it again as a fiber.
    Demote,
    /// A native function refused to build a value where Rhai would not let it fail (see [`refuse`]).
    Refused,
}

/// How long an inline run may keep a tokio worker before it moves to a fiber.
const INLINE_SLICE: Duration = Duration::from_millis(2);

/// How long a fiber runs before it lets the other fibers of its thread run.
const FIBER_SLICE: Duration = Duration::from_millis(5);

/// Work (in bytes) a native function may do inline; more moves the run to a fiber first.
const INLINE_WORK: usize = 256 * 1024;

/// How a fiber lets the other fibers of its thread run, returning why it must stop instead, if it must.
pub type Yield = fn() -> Option<Stop>;

/// Where a run executes (see the module docs).
#[derive(Clone, Copy)]
enum Mode {
    Inline,
    /// With the way to yield its thread when its slice is over.
    Fiber(Yield),
    Load,
}

#[derive(Clone, Copy)]
struct Budget {
    mode: Mode,
    max_operations: u64,
    /// Operations allowed before an inline run is demoted (`u64::MAX` elsewhere).
    inline_operations: u64,
    deadline: Instant,
    /// When the run's current time slice ends.
    slice_end: Instant,
    /// A native refused to build a value: the run stops at its next operation.
    refused: bool,
}

impl Budget {
    /// Whether the run may still stop with [`Stop::Demote`] to run again elsewhere: an inline run, or a
    /// fiber given an inline budget that has not waited yet.
    fn restartable(&self) -> bool {
        match self.mode {
            Mode::Inline => true,
            Mode::Fiber(_) => self.inline_operations != u64::MAX,
            Mode::Load => false,
        }
    }
}

/// The state of the run on this thread, as [`detach`] takes it and [`attach`] puts it back.
pub struct RunState {
    budget: Option<Budget>,
    cancel: Option<Arc<AtomicBool>>,
    context: Option<Arc<Context>>,
    refusal: Option<Box<EvalAltResult>>,
    /// Net bytes the run allocated while it was attached (see `engine::leak`).
    held: isize,
}

impl RunState {
    /// Net bytes the run allocated, up to when it was detached.
    pub fn held(&self) -> isize {
        self.held
    }
}

thread_local! {
    static BUDGET: Cell<Option<Budget>> = const { Cell::new(None) };
    static CANCEL: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
    static CONTEXT: RefCell<Option<Arc<Context>>> = const { RefCell::new(None) };
    static REFUSAL: RefCell<Option<Box<EvalAltResult>>> = const { RefCell::new(None) };
    /// The attached run's net allocation before it was attached, and the thread's when it was.
    static HELD: Cell<(isize, isize)> = const { Cell::new((0, 0)) };
}

/// What [`enter`] needs to know about the run.
pub struct Run {
    pub max_operations: u64,
    /// The inline operation budget; `None` for a run that is not inline.
    pub inline_operations: Option<u64>,
    pub deadline: Instant,
    pub cancel: Option<Arc<AtomicBool>>,
    /// `None` while a script's top level is being loaded.
    pub context: Option<Arc<Context>>,
}

/// Restores the thread's previous run state when the run ends, however it ends.
pub struct Guard {
    previous: Option<RunState>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(previous) = self.previous.take() {
            attach(previous);
        }
    }
}

/// Installs `run` as the current thread's run state until the guard drops. Runs nest (a loading
/// script inside an invocation), so the previous state is restored, not cleared.
pub fn enter(run: Run) -> Guard {
    enter_as(run, None)
}

/// [`enter`] for a run on a fiber, which yields its thread with `yield_now` when its slice is over.
pub fn enter_on_fiber(run: Run, yield_now: Yield) -> Guard {
    enter_as(run, Some(yield_now))
}

fn enter_as(run: Run, fiber: Option<Yield>) -> Guard {
    let mode = match (run.context.is_some(), run.inline_operations.is_some(), fiber) {
        (true, _, Some(yield_now)) => Mode::Fiber(yield_now),
        (true, true, None) => Mode::Inline,
        _ => Mode::Load,
    };
    let now = Instant::now();
    let slice = match (mode, run.inline_operations) {
        (Mode::Fiber(_), None) => FIBER_SLICE,
        _ => INLINE_SLICE,
    };
    let budget = Budget {
        mode,
        max_operations: run.max_operations,
        inline_operations: run.inline_operations.unwrap_or(u64::MAX),
        deadline: run.deadline,
        slice_end: now + slice,
        refused: false,
    };
    let previous = detach();
    attach(RunState { budget: Some(budget), cancel: run.cancel, context: run.context, refusal: None, held: 0 });
    Guard { previous: Some(previous) }
}

/// Takes the current run state off the thread, leaving none.
pub fn detach() -> RunState {
    RunState {
        budget: BUDGET.with(|b| b.take()),
        cancel: CANCEL.with(|c| c.borrow_mut().take()),
        context: CONTEXT.with(|c| c.borrow_mut().take()),
        refusal: REFUSAL.with(|r| r.borrow_mut().take()),
        held: HELD.with(|held| {
            let (before, since) = held.replace((0, leak::net()));
            before + (leak::net() - since)
        }),
    }
}

/// Makes `state` the thread's run state.
pub fn attach(state: RunState) {
    BUDGET.with(|b| b.set(state.budget));
    CANCEL.with(|c| *c.borrow_mut() = state.cancel);
    CONTEXT.with(|c| *c.borrow_mut() = state.context);
    REFUSAL.with(|r| *r.borrow_mut() = state.refusal);
    HELD.with(|held| held.set((state.held, leak::net())));
}

fn stop(reason: Stop) -> Option<Dynamic> {
    Some(Dynamic::from(reason))
}

/// The engine's progress callback.
pub fn on_progress(operations: u64) -> Option<Dynamic> {
    let budget = BUDGET.with(Cell::get)?;
    if budget.refused {
        return stop(Stop::Refused);
    }
    if operations > budget.inline_operations {
        return stop(Stop::Demote);
    }
    if operations > budget.max_operations {
        return stop(Stop::Operations);
    }
    if operations & 0xff == 0 {
        return check_time(budget).map(Dynamic::from);
    }
    None
}

/// The time-based checks of a run: its deadline, its caller, its slice.
fn check_time(budget: Budget) -> Option<Stop> {
    let now = Instant::now();
    if now >= budget.deadline {
        return Some(Stop::Timeout);
    }
    if CANCEL.with(|c| c.borrow().as_ref().is_some_and(|flag| flag.load(Ordering::Relaxed))) {
        return Some(Stop::Cancelled);
    }
    if now < budget.slice_end {
        return None;
    }
    if budget.restartable() {
        return Some(Stop::Demote);
    }
    match budget.mode {
        Mode::Inline | Mode::Load => None,
        Mode::Fiber(yield_now) => {
            let stopped = yield_now();
            // The slice starts again when the fiber is back (the state was re-attached by then).
            BUDGET.with(|b| b.set(Some(Budget { slice_end: Instant::now() + FIBER_SLICE, ..budget })));
            stopped
        }
    }
}

/// The error that stops a script for `reason` (read back by `fault::classify`).
pub fn terminated(reason: Stop) -> Box<EvalAltResult> {
    EvalAltResult::ErrorTerminated(Dynamic::from(reason), Position::NONE).into()
}

/// Called by every native function that waits on I/O or the disk without suspending: only a fiber may
/// do that, so any other run stops here (an inline one to be run again as a fiber). Outside any run
/// (a management flow filling a server's templates on the blocking pool) the caller decides where it
/// blocks.
pub fn may_block() -> Result<(), Box<EvalAltResult>> {
    match BUDGET.with(Cell::get) {
        None => Ok(()),
        Some(budget) if budget.restartable() || matches!(budget.mode, Mode::Load) => Err(terminated(Stop::Demote)),
        Some(_) => Ok(()),
    }
}

/// Called by a fiber that is back from a wait: what it waited for may have had an effect outside the
/// run (a request sent), so the run can no longer be started again elsewhere; it keeps its thread, with
/// a fresh time slice.
pub fn waited() {
    BUDGET.with(|b| {
        if let Some(budget) = b.get() {
            let slice_end = Instant::now() + FIBER_SLICE;
            b.set(Some(Budget { inline_operations: u64::MAX, slice_end, ..budget }));
        }
    });
}

/// Called by native functions before work proportional to `bytes` (hashing, encoding, splitting):
/// large work never runs inline, and no work starts past the deadline or after the caller left.
pub fn admit(bytes: usize) -> Result<(), Box<EvalAltResult>> {
    let Some(budget) = BUDGET.with(Cell::get) else { return Ok(()) };
    if budget.restartable() && bytes > INLINE_WORK {
        return Err(terminated(Stop::Demote));
    }
    checkpoint()
}

/// Called by native functions between pieces of long work (see `engine::pace`): stops at the deadline
/// or when the caller left, and lets the other fibers of the thread run when the slice is over.
pub fn checkpoint() -> Result<(), Box<EvalAltResult>> {
    let Some(budget) = BUDGET.with(Cell::get) else { return Ok(()) };
    match check_time(budget) {
        Some(reason) => Err(terminated(reason)),
        None => Ok(()),
    }
}

/// Fails the run with `error` at its next operation (or as it returns). For natives Rhai calls where an
/// error is not an option: when `to_string` fails inside string interpolation, Rhai falls back to
/// formatting the value itself, without any bound — so a bounded formatter answers an empty string and
/// refuses through here instead. The first refusal of a run stands.
pub fn refuse(error: Box<EvalAltResult>) {
    let Some(budget) = BUDGET.with(Cell::get) else { return };
    BUDGET.with(|b| b.set(Some(Budget { refused: true, ..budget })));
    REFUSAL.with(|r| {
        r.borrow_mut().get_or_insert(error);
    });
}

/// Whether a native refused the current run (see [`refuse`]): it ends at its next operation, and
/// nothing it built since may have an effect.
pub fn refused() -> bool {
    BUDGET.with(Cell::get).is_some_and(|budget| budget.refused)
}

/// The error a native refused the current run with, if any (see [`refuse`]).
pub fn take_refusal() -> Option<Box<EvalAltResult>> {
    REFUSAL.with(|r| r.borrow_mut().take())
}

/// The invocation the run on this thread serves, for native functions (`None` while loading).
pub fn context() -> Option<Arc<Context>> {
    CONTEXT.with(|c| c.borrow().clone())
}
