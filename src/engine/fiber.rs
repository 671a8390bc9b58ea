//! Where scripts run: every evaluation on a stack of its own, and scripts that wait on I/O as fibers.
//!
//! A script that calls the network or a database keeps its synchronous look (`let r = http::get(url);`)
//! yet holds no OS thread while it waits. It runs as a *fiber*: a stackful coroutine (`corosensei`)
//! driven by an async task. A native function that must wait hands a future to [`wait`], which suspends
//! the fiber; the driving task awaits the future — racing it against the invocation's deadline and its
//! caller going away — and resumes the fiber with the outcome. Thousands of waiting scripts cost a few
//! KiB of touched stack each, and no threads.
//!
//! Fibers are not `Send`, so a fiber stays on the thread that started it; the sandbox keeps the state
//! of the run it is executing in thread-locals, which [`suspend`] takes out before switching away and
//! puts back when the fiber resumes, so every fiber always sees its own.
//!
//! Two kinds of thread drive fibers ([`Threads::run`]):
//!
//! * a *request worker* ([`worker`]) — a current-thread tokio runtime that accepts and serves requests
//!   and runs the fibers they start beside them. A call that waits is suspended and resumed on the
//!   thread that received it: its upstream connection, its timer and the response to its caller all
//!   live there, and nothing is handed to another thread. Such a fiber is bounded like an inline run
//!   until it first waits (see `sandbox`): one that computes for long before that moves to a script
//!   thread, and a script that later computes for a whole slice on a worker is marked to start on the
//!   script threads from then on, so that computation never takes a request worker for long.
//! * a *script thread* — one of a few current-thread runtimes of their own (a `LocalPoolHandle`): for
//!   scripts known to compute, and for callers that are not request workers (the CLI, the webhook
//!   queue).
//!
//! Stacks: every evaluation, inline runs and script loading included, runs on a stack from this
//! module's pool, never on whatever thread stack happened to call it, so the depth limits below hold
//! everywhere. A stack is reserved whole but the kernel only backs pages a script touched; stacks
//! come back to a per-thread pool after use, and stacks past the pool's warm set return their pages to
//! the kernel. The engine's call-depth limit is derived from the stack size (see
//! [`call_levels_that_fit`]); what still overflows a stack (Rhai's own recursion over deeply nested
//! values) ends that run with [`Overflow`] rather than the process (see [`trap`](super::trap)).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use corosensei::stack::{DefaultStack, Stack};
use corosensei::{Coroutine, CoroutineResult, Yielder};
use rhai::EvalAltResult;
use tokio::sync::oneshot;
use tokio::task::LocalSet;
use tokio_util::task::LocalPoolHandle;

use super::sandbox::{self, Stop};
use super::trap::{self, Bounds, Overflow};

/// Native stack one script call level may use, with margin: measured at ~7.5 KiB in release builds and
/// ~55 KiB in debug builds (which is what `cargo test` runs), expressions nested within a level included.
const PER_CALL_LEVEL: usize = if cfg!(debug_assertions) { 128 * 1024 } else { 24 * 1024 };

/// Stack reserved per evaluation. Only touched pages cost memory.
pub const STACK_SIZE: usize = if cfg!(debug_assertions) { 32 << 20 } else { 4 << 20 };

/// Stack kept free for native functions and the engine's own frames around the script's.
const NATIVE_RESERVE: usize = STACK_SIZE / 8;

/// Stacks a thread keeps with their touched pages; more idle stacks than this give their pages back.
const WARM_STACKS: usize = 64;

/// Idle stacks a thread keeps at most (the rest are unmapped).
const POOLED_STACKS: usize = 1024;

/// The deepest script call nesting a stack of [`STACK_SIZE`] holds.
pub const fn call_levels_that_fit() -> usize {
    (STACK_SIZE - NATIVE_RESERVE) / PER_CALL_LEVEL
}

/// What a suspended fiber waits for. It is polled on the fiber's own thread, so it need not be `Send`.
type Pending = Pin<Box<dyn Future<Output = Box<dyn Any>>>>;

/// What a fiber is resumed with.
enum Resume {
    Start,
    Ready(Box<dyn Any>),
    Stopped(Stop),
}

thread_local! {
    /// The yielder of the fiber running on this thread; null when no fiber runs.
    static YIELDER: Cell<*const Yielder<Resume, Pending>> = const { Cell::new(std::ptr::null()) };
    /// The lowest usable address of the running fiber's stack; 0 when no fiber runs.
    static STACK_LIMIT: Cell<usize> = const { Cell::new(0) };
    static STACKS: RefCell<Vec<DefaultStack>> = const { RefCell::new(Vec::new()) };
    /// The fibers of the request worker this thread is, if it is one (see [`worker`]).
    static WORKER: RefCell<Option<Rc<LocalSet>>> = const { RefCell::new(None) };
}

fn take_stack() -> DefaultStack {
    if let Some(stack) = STACKS.with(|stacks| stacks.borrow_mut().pop()) {
        return stack;
    }
    // Without address space for a stack nothing can run; there is no meaningful way to go on.
    DefaultStack::new(STACK_SIZE).unwrap_or_else(|e| panic!("cannot reserve a script stack: {e}"))
}

/// Returns a stack to the pool. One whose run overflowed gives its pages back at once (all of them were
/// touched), and the thread forgets that run's state, which its abandoned frames would have cleared,
/// counting what the run held as lost (see `engine::leak`).
fn give_back<R>(stack: DefaultStack, result: &Result<R, Overflow>) {
    if result.is_err() {
        YIELDER.with(|y| y.set(std::ptr::null()));
        STACK_LIMIT.with(|l| l.set(0));
        super::leak::overflowed(sandbox::detach().held());
    }
    STACKS.with(|stacks| {
        let mut stacks = stacks.borrow_mut();
        if stacks.len() >= POOLED_STACKS {
            return;
        }
        if stacks.len() >= WARM_STACKS || result.is_err() {
            release_pages(&stack);
        }
        stacks.push(stack);
    });
}

/// Tells the kernel that the stack's touched pages may be dropped (they read back as zeros).
fn release_pages(stack: &DefaultStack) {
    let (limit, base) = (stack.limit().get(), stack.base().get());
    // SAFETY: the range is the stack's own mapping, which no one uses while it sits in the pool.
    unsafe {
        libc::madvise(limit as *mut libc::c_void, base - limit, libc::MADV_DONTNEED);
    }
}

/// Runs `f` to completion on a pooled stack; `Err(Overflow)` if it overflowed that stack. Inline runs
/// and script loading use this: they never suspend, so [`wait`] inside them asks for the run to move to
/// a fiber instead.
pub fn on_stack<R: 'static>(f: impl FnOnce() -> R) -> Result<R, Overflow> {
    let stack = take_stack();
    let bounds = Bounds::of(&stack);
    // SAFETY: the coroutine runs to its end within this function, so whatever `f` borrows outlives it.
    let mut coroutine =
        unsafe { Coroutine::with_stack_unchecked(stack, move |_: &Yielder<(), Infallible>, ()| Ok(f())) };
    let result = match trap::resume(&mut coroutine, bounds, ()) {
        CoroutineResult::Return(result) => result,
        CoroutineResult::Yield(never) => match never {},
    };
    give_back(coroutine.into_stack(), &result);
    result
}

/// Whether the current thread is running a fiber (and so may wait).
pub fn on_fiber() -> bool {
    YIELDER.with(|y| !y.get().is_null())
}

/// Switches away from the running fiber until its driver resumes it. While many fibers wait, the one
/// suspending gives back the pages of its stack below the frames it still uses (see [`release_below`]).
fn suspend(pending: Pending) -> Resume {
    let yielder = YIELDER.with(|y| y.replace(std::ptr::null()));
    let limit = STACK_LIMIT.with(|l| l.replace(0));
    if WAITING.load(Ordering::Relaxed) > LEAN_AFTER {
        release_below(limit);
    }
    let run = sandbox::detach();
    // SAFETY: the pointer was set by this fiber's own body (see `Fiber::new`), whose frame — and so the
    // yielder it borrows — lives until the body returns; we are inside that body.
    let resumed = unsafe { &*yielder }.suspend(pending);
    sandbox::attach(run);
    YIELDER.with(|y| y.set(yielder));
    STACK_LIMIT.with(|l| l.set(limit));
    resumed
}

/// Fibers waiting in the process past which a suspending fiber trims its stack: below that, the pages
/// stay for the fiber's next calls, which would otherwise fault them in again.
const LEAN_AFTER: usize = 128;

/// Room left below the caller's frame for the frames that switch stacks, which are still to run.
const SWITCH_ROOM: usize = 16 * 1024;

/// Gives back the pages of the running fiber's stack from its `limit` up to [`SWITCH_ROOM`] below this
/// frame. They held frames that have returned (building a request goes deeper than waiting for it), and
/// would otherwise stay resident for as long as the fiber waits; if the fiber goes deep again, they come
/// back as zeroed pages.
#[inline(never)]
fn release_below(limit: usize) {
    let here = std::ptr::addr_of!(limit) as usize;
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(1 << 16);
    let end = here.saturating_sub(SWITCH_ROOM) & !(page - 1);
    if limit == 0 || end <= limit {
        return;
    }
    // SAFETY: `limit..end` lies in this fiber's own stack mapping, below every frame still in use (this
    // one and its callers are above `here`; those that switch stacks need far less than `SWITCH_ROOM`),
    // and nothing else uses a fiber's stack while it is suspended.
    unsafe {
        libc::madvise(limit as *mut libc::c_void, end - limit, libc::MADV_DONTNEED);
    }
}

/// Suspends the running script until `future` completes and returns its output. Fails (a termination
/// the caller propagates with `?`) when the run was refused, leaving `future` unpolled; when the run is
/// not a fiber — an inline run then moves to a fiber, a script's top level is refused — when the
/// invocation's deadline passes, or when its caller went away. Never blocks the thread.
pub fn wait<T: 'static>(future: impl Future<Output = T> + 'static) -> Result<T, Box<EvalAltResult>> {
    // A formatter that could not fail answered an empty text and refused the run (see `sandbox::refuse`):
    // what was built from that text must not leave the process.
    if sandbox::refused() {
        return Err(sandbox::terminated(Stop::Refused));
    }
    if !on_fiber() {
        return Err(sandbox::terminated(Stop::Demote));
    }
    let _waiting = Waiting::start();
    let resumed = suspend(Box::pin(async move { Box::new(future.await) as Box<dyn Any> }));
    sandbox::waited();
    match resumed {
        Resume::Ready(output) => match output.downcast::<T>() {
            Ok(output) => Ok(*output),
            Err(_) => Err(EvalAltResult::ErrorSystem("fiber".into(), "resumed with the wrong value".into()).into()),
        },
        Resume::Stopped(stop) => Err(sandbox::terminated(stop)),
        Resume::Start => Err(EvalAltResult::ErrorSystem("fiber".into(), "resumed twice".into()).into()),
    }
}

/// How many scripts are suspended on I/O now, in the whole process.
static WAITING: AtomicUsize = AtomicUsize::new(0);

/// The number of scripts suspended on I/O (for the `switchboard_fibers_waiting` gauge).
pub fn waiting() -> usize {
    WAITING.load(Ordering::Relaxed)
}

/// Counts one suspended script for as long as it lives.
struct Waiting;

impl Waiting {
    fn start() -> Waiting {
        WAITING.fetch_add(1, Ordering::Relaxed);
        Waiting
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        WAITING.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Lets the other fibers of this thread run; the sandbox calls it when a fiber used up its time slice.
/// Returns why the run must stop instead, if its deadline passed or its caller left meanwhile. On a
/// request worker, the script is marked as one that computes, so that its later calls start on a
/// script thread rather than take a worker's time again.
pub fn yield_now() -> Option<Stop> {
    if on_worker()
        && let Some(context) = sandbox::context()
    {
        context.script.mark_computes();
    }
    let yielded = async {
        tokio::task::yield_now().await;
        Box::new(()) as Box<dyn Any>
    };
    match suspend(Box::pin(yielded)) {
        Resume::Stopped(stop) => Some(stop),
        _ => None,
    }
}

/// One script run as a coroutine.
struct Fiber<R> {
    coroutine: Coroutine<Resume, Pending, Result<R, Overflow>, DefaultStack>,
    stack: Bounds,
}

/// Clears the thread's yielder when a fiber body ends, however it ends.
struct Exit;

impl Drop for Exit {
    fn drop(&mut self) {
        YIELDER.with(|y| y.set(std::ptr::null()));
        STACK_LIMIT.with(|l| l.set(0));
    }
}

impl<R: 'static> Fiber<R> {
    fn new(body: impl FnOnce() -> R + 'static) -> Fiber<R> {
        let stack = take_stack();
        let bounds = Bounds::of(&stack);
        let limit = stack.limit().get();
        let coroutine = Coroutine::with_stack(stack, move |yielder: &Yielder<Resume, Pending>, _: Resume| {
            YIELDER.with(|y| y.set(yielder));
            STACK_LIMIT.with(|l| l.set(limit));
            let _exit = Exit;
            Ok(body())
        });
        Fiber { coroutine, stack: bounds }
    }

    /// Runs the fiber to its end, serving its waits; a wait still pending at `deadline`, or when
    /// `gone` completes (the caller left), resumes the fiber with that reason to stop instead.
    async fn drive(mut self, deadline: Instant, gone: impl Future<Output = ()>) -> Result<R, Overflow> {
        let mut gone = std::pin::pin!(gone);
        let mut left = false;
        let mut input = Resume::Start;
        loop {
            let pending = match trap::resume(&mut self.coroutine, self.stack, input) {
                CoroutineResult::Return(result) => {
                    give_back(self.coroutine.into_stack(), &result);
                    return result;
                }
                CoroutineResult::Yield(pending) => pending,
            };
            input = match left {
                true => Resume::Stopped(Stop::Cancelled),
                false => tokio::select! {
                    output = pending => Resume::Ready(output),
                    () = tokio::time::sleep_until(deadline.into()) => Resume::Stopped(Stop::Timeout),
                    () = &mut gone => {
                        left = true;
                        Resume::Stopped(Stop::Cancelled)
                    }
                },
            };
        }
    }
}

/// Makes the current thread a request worker while `future` runs: a current-thread runtime that runs
/// `future` (a server's accept loop) and the fibers its requests start, beside each other.
pub fn worker<F: Future>(future: F) -> std::io::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let fibers = Rc::new(LocalSet::new());
    WORKER.with(|worker| *worker.borrow_mut() = Some(fibers.clone()));
    let output = runtime.block_on(fibers.run_until(future));
    WORKER.with(|worker| worker.borrow_mut().take());
    // Fibers whose callers are gone end at their next wait: let them, rather than drop them suspended.
    if let Ok(fibers) = Rc::try_unwrap(fibers) {
        runtime.block_on(async { tokio::time::timeout(DRAIN, fibers).await }).ok();
    }
    Ok(output)
}

/// How long a request worker that stops serving lets its remaining fibers end.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether this thread is a request worker, on which [`Threads::run`] starts fibers.
pub fn on_worker() -> bool {
    WORKER.with(|worker| worker.borrow().is_some())
}

/// The script threads fibers run on when they do not run on their caller's request worker.
pub struct Threads {
    pool: LocalPoolHandle,
}

impl Threads {
    /// `count` script threads (at least one).
    pub fn new(count: usize) -> Threads {
        Threads { pool: LocalPoolHandle::new(count.max(1)) }
    }

    /// Runs `body` as a fiber on this thread when it is a request worker, else on the least busy script
    /// thread, and returns its result: `Err(Overflow)` if it overflowed its stack, `None` if the fiber
    /// died (a panic in the runtime). Dropping the returned future stops the fiber at its next wait, as
    /// if its deadline had passed.
    pub async fn run<R: Send + 'static>(
        &self,
        deadline: Instant,
        body: impl FnOnce() -> R + Send + 'static,
    ) -> Option<Result<R, Overflow>> {
        self.start(deadline, body, true).await
    }

    /// [`run`](Self::run) on a script thread, wherever the caller is.
    pub async fn run_apart<R: Send + 'static>(
        &self,
        deadline: Instant,
        body: impl FnOnce() -> R + Send + 'static,
    ) -> Option<Result<R, Overflow>> {
        self.start(deadline, body, false).await
    }

    async fn start<R: Send + 'static>(
        &self,
        deadline: Instant,
        body: impl FnOnce() -> R + Send + 'static,
        here: bool,
    ) -> Option<Result<R, Overflow>> {
        let (sender, receiver) = oneshot::channel();
        let drive = move || async move {
            let mut sender = sender;
            let result = Fiber::new(body).drive(deadline, sender.closed()).await;
            let _ = sender.send(result);
        };
        match here.then(worker_fibers).flatten() {
            Some(fibers) => drop(fibers.spawn_local(drive())),
            None => drop(self.pool.spawn_pinned(drive)),
        }
        receiver.await.ok()
    }
}

/// The fibers of this thread's request worker, if it is one.
fn worker_fibers() -> Option<Rc<LocalSet>> {
    WORKER.with(|worker| worker.borrow().clone())
}
