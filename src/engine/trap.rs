//! A script that overflows its stack ends with an error instead of killing the process.
//!
//! The call-depth limit keeps script recursion within a script stack, but some of Rhai's own operations
//! recurse once per level of a value the script built (dropping, cloning, comparing or printing values
//! nested thousands deep, or a chain of closures each capturing the last), and no limit bounds that
//! depth. Such a run reaches its stack's guard page. The fault handler installed here recognises a
//! fault on the guard page of the script stack this thread is running, and — through `corosensei`'s
//! trap support — makes that coroutine return [`Overflow`] to whoever resumed it. The stack is reset,
//! not unwound: what the abandoned frames owned is leaked (a few objects per overflow), which is the
//! price of not aborting. Every other fault goes on to the handler that was there before (Rust's own,
//! which reports an overflow of a thread's stack and aborts).
//!
//! Supported on Linux x86-64 and AArch64; elsewhere an overflow still aborts.

use std::cell::Cell;
use std::sync::Once;

use corosensei::stack::{DefaultStack, Stack};
use corosensei::trap::{CoroutineTrapHandler, TrapHandlerRegs};
use corosensei::{Coroutine, CoroutineResult};

use crate::error::{Error, Location};

/// A run that overflowed its stack and was stopped there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;

/// Where a script stack lies: its lowest address (its guard page starts there) and its base.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    limit: usize,
    base: usize,
}

impl Bounds {
    pub fn of(stack: &DefaultStack) -> Bounds {
        Bounds { limit: stack.limit().get(), base: stack.base().get() }
    }
}

/// What the fault handler needs about the coroutine this thread is running.
#[derive(Clone, Copy)]
struct Armed {
    stack: Bounds,
    /// The end of the guard page: a fault in `stack.limit..guard_end` is an overflow.
    guard_end: usize,
    /// The coroutine's `CoroutineTrapHandler<Result<R, Overflow>>`, behind `reset`'s type.
    handler: *const (),
    reset: unsafe fn(*const ()) -> TrapHandlerRegs,
}

thread_local! {
    static ARMED: Cell<Option<Armed>> = const { Cell::new(None) };
    static ALTERNATE_STACK: Cell<bool> = const { Cell::new(false) };
}

/// The handlers that were installed before ours, for faults that are not ours.
static mut PREVIOUS: [Option<libc::sigaction>; 2] = [None, None];
static INSTALL: Once = Once::new();
const SIGNALS: [libc::c_int; 2] = [libc::SIGSEGV, libc::SIGBUS];
const ALTERNATE_STACK_SIZE: usize = 64 * 1024;

/// Resumes `coroutine`, which runs on the stack `stack`: if it overflows that stack, it returns
/// `Err(Overflow)` at once. The thread's trap state is restored afterwards, so resumes nest.
pub fn resume<I, Y, R: 'static>(
    coroutine: &mut Coroutine<I, Y, Result<R, Overflow>, DefaultStack>,
    stack: Bounds,
    input: I,
) -> CoroutineResult<Y, Result<R, Overflow>> {
    prepare_thread();
    let handler = coroutine.trap_handler();
    let armed = Armed {
        stack,
        guard_end: stack.limit + page_size(),
        handler: &handler as *const CoroutineTrapHandler<Result<R, Overflow>> as *const (),
        reset: reset::<R>,
    };
    let _disarm = Disarm(ARMED.with(|a| a.replace(Some(armed))));
    coroutine.resume(input)
}

/// Puts back the trap state of the resume this one nests in, however the resume ends (a panic in the
/// coroutine comes back through `resume` too).
struct Disarm(Option<Armed>);

impl Drop for Disarm {
    fn drop(&mut self) {
        ARMED.with(|a| a.set(self.0));
    }
}

impl Overflow {
    /// The error a caller gets for a run that overflowed its stack.
    pub fn error(self, at: Location) -> Error {
        Error::limit_exceeded(
            "stack",
            "the script overflowed its stack: a value or a chain of closures is nested too deeply",
            at,
        )
    }

    /// The error for a call to a script that overflowed on an earlier run and is not run again.
    pub fn again(at: Location) -> Error {
        Error::limit_exceeded(
            "stack",
            "the script overflowed its stack on an earlier run and is not run again until it changes",
            at,
        )
    }
}

/// # Safety
/// `handler` points at a live `CoroutineTrapHandler<Result<R, Overflow>>` whose coroutine faulted.
unsafe fn reset<R: 'static>(handler: *const ()) -> TrapHandlerRegs {
    // SAFETY: as the caller promises; the closure only builds a unit value on the reset stack.
    unsafe {
        let handler = &*(handler as *const CoroutineTrapHandler<Result<R, Overflow>>);
        handler.setup_trap_handler(|| Err(Overflow))
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096)
}

/// Installs the fault handler once per process and an alternate signal stack once per thread (the
/// handler cannot run on the stack that overflowed).
fn prepare_thread() {
    if !cfg!(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))) {
        return;
    }
    INSTALL.call_once(install);
    if ALTERNATE_STACK.with(|done| done.replace(true)) {
        return;
    }
    // SAFETY: plain libc calls; the new stack is mapped for the life of the thread (and never freed:
    // a thread's alternate stack must outlive every signal it may take).
    unsafe {
        let mut current: libc::stack_t = std::mem::zeroed();
        if libc::sigaltstack(std::ptr::null(), &mut current) != 0 || current.ss_flags & libc::SS_DISABLE == 0 {
            return;
        }
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
        let memory =
            libc::mmap(std::ptr::null_mut(), ALTERNATE_STACK_SIZE, libc::PROT_READ | libc::PROT_WRITE, flags, -1, 0);
        if memory == libc::MAP_FAILED {
            return;
        }
        let stack = libc::stack_t { ss_sp: memory, ss_flags: 0, ss_size: ALTERNATE_STACK_SIZE };
        libc::sigaltstack(&stack, std::ptr::null_mut());
    }
}

fn install() {
    // SAFETY: installing a handler with a zeroed, then filled, sigaction; the previous ones are kept
    // before ours can run (`PREVIOUS` is written only here, inside `Once`).
    unsafe {
        let mut ours: libc::sigaction = std::mem::zeroed();
        ours.sa_sigaction = on_fault as *const () as usize;
        ours.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut ours.sa_mask);
        for (slot, signal) in SIGNALS.into_iter().enumerate() {
            let mut previous: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &mut previous) == 0 {
                (*std::ptr::addr_of_mut!(PREVIOUS))[slot] = Some(previous);
                libc::sigaction(signal, &ours, std::ptr::null_mut());
            }
        }
    }
}

/// The fault handler: an overflow of the armed coroutine's stack returns from that coroutine;
/// anything else goes to the previous handler.
unsafe extern "C" fn on_fault(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo and ucontext; ARMED is a const thread-local (no lazy
    // initialisation, safe in a handler), and its handler pointer is live while it is armed.
    unsafe {
        if let Some(armed) = ARMED.with(Cell::get) {
            let address = (*info).si_addr() as usize;
            let context = &mut *(context as *mut libc::ucontext_t);
            let (overflowed, sp) = ((armed.stack.limit..armed.guard_end).contains(&address), stack_pointer(context));
            if overflowed && (armed.stack.limit..armed.stack.base).contains(&sp) {
                ARMED.with(|a| a.set(None));
                set_registers(context, (armed.reset)(armed.handler));
                return;
            }
        }
        chain(signal, info, context);
    }
}

unsafe fn chain(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let slot = SIGNALS.iter().position(|s| *s == signal);
    // SAFETY: PREVIOUS was written once, before this handler was installed.
    let previous = slot.and_then(|slot| unsafe { (*std::ptr::addr_of!(PREVIOUS))[slot] });
    unsafe {
        match previous {
            Some(previous) if previous.sa_sigaction == libc::SIG_IGN => {}
            Some(previous) if previous.sa_sigaction != libc::SIG_DFL && previous.sa_flags & libc::SA_SIGINFO != 0 => {
                let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    std::mem::transmute(previous.sa_sigaction);
                handler(signal, info, context);
            }
            Some(previous) if previous.sa_sigaction != libc::SIG_DFL => {
                let handler: extern "C" fn(libc::c_int) = std::mem::transmute(previous.sa_sigaction);
                handler(signal);
            }
            _ => {
                // The default action: returning re-runs the faulting instruction, which now kills the
                // process as it would have without us.
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(signal, &default, std::ptr::null_mut());
            }
        }
    }
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn stack_pointer(context: &libc::ucontext_t) -> usize {
    context.uc_mcontext.gregs[libc::REG_RSP as usize] as usize
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn set_registers(context: &mut libc::ucontext_t, regs: TrapHandlerRegs) {
    let TrapHandlerRegs { rip, rsp, rbp, rdi, rsi } = regs;
    let gregs = &mut context.uc_mcontext.gregs;
    gregs[libc::REG_RIP as usize] = rip as i64;
    gregs[libc::REG_RSP as usize] = rsp as i64;
    gregs[libc::REG_RBP as usize] = rbp as i64;
    gregs[libc::REG_RDI as usize] = rdi as i64;
    gregs[libc::REG_RSI as usize] = rsi as i64;
}

#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
fn stack_pointer(context: &libc::ucontext_t) -> usize {
    context.uc_mcontext.sp as usize
}

#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
fn set_registers(context: &mut libc::ucontext_t, regs: TrapHandlerRegs) {
    let TrapHandlerRegs { pc, sp, x0, x1, x29, lr } = regs;
    context.uc_mcontext.pc = pc;
    context.uc_mcontext.sp = sp;
    context.uc_mcontext.regs[0] = x0;
    context.uc_mcontext.regs[1] = x1;
    context.uc_mcontext.regs[29] = x29;
    context.uc_mcontext.regs[30] = lr;
}

#[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
fn stack_pointer(_: &libc::ucontext_t) -> usize {
    0
}

#[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
fn set_registers(_: &mut libc::ucontext_t, _: TrapHandlerRegs) {}
