//! The signal that ends a blocked `flock`: taken once, checked at each wait.
//!
//! It is the highest-numbered real-time signal that, the first time a wait
//! blocks, still has the default disposition (`SIG_DFL`) and is not blocked
//! in the thread taking it (a program that collects a signal with
//! `signalfd` or `sigwait` blocks it and leaves it at the default: such a
//! signal is the program's); the crate then installs a handler that does
//! nothing, without `SA_RESTART`, so that `flock` returns. Each wait uses it
//! only where it is still this crate's (a program that took it over since
//! would see its handler run, and a blocked `flock` might never return) and
//! not blocked in the waiting thread, whose mask the crate never changes.
//! The timer thread checks again before each send.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// The signal taken, or one of these states.
static TAKEN: AtomicI32 = AtomicI32::new(UNDECIDED);
const UNDECIDED: i32 = 0;
/// Another thread is taking it: a wait meanwhile does without.
const TAKING: i32 = -1;
const NONE: i32 = -2;

/// The program has installed its own handler on the signal since: the crate
/// no longer sends it.
static LOST: AtomicBool = AtomicBool::new(false);

extern "C" fn interrupt(_: libc::c_int) {}

fn handler() -> libc::sighandler_t {
    interrupt as extern "C" fn(libc::c_int) as libc::sighandler_t
}

/// Whether `signal` is blocked in this thread's mask.
fn blocked_here(signal: libc::c_int) -> bool {
    // SAFETY: a zeroed signal set, filled in by libc; the mask is only read.
    unsafe {
        let mut mask: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut mask) != 0
            || libc::sigismember(&mask, signal) == 1
    }
}

/// The handler `signal` has now.
fn disposition(signal: libc::c_int) -> Option<libc::sighandler_t> {
    // SAFETY: queries into a zeroed structure.
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        (libc::sigaction(signal, std::ptr::null(), &mut current) == 0)
            .then_some(current.sa_sigaction)
    }
}

/// What taking a signal came to.
enum Taken {
    Signal(libc::c_int),
    /// Every free signal is blocked in this thread: another thread may yet
    /// take one.
    BlockedHere,
    None,
}

/// The highest real-time signal left at its default disposition and not
/// blocked in this thread, now with this crate's handler.
fn take() -> Taken {
    let mut blocked = false;
    for signal in (libc::SIGRTMIN()..=libc::SIGRTMAX()).rev() {
        if disposition(signal) != Some(libc::SIG_DFL) {
            continue;
        }
        if blocked_here(signal) {
            blocked = true;
            continue;
        }
        // SAFETY: sigaction structures zeroed and then filled in; the
        // handler is async-signal-safe (it does nothing).
        unsafe {
            let mut ours: libc::sigaction = std::mem::zeroed();
            ours.sa_sigaction = handler();
            libc::sigemptyset(&mut ours.sa_mask);
            ours.sa_flags = 0;
            let mut previous: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, &ours, &mut previous) != 0 {
                continue;
            }
            if previous.sa_sigaction != libc::SIG_DFL {
                // Taken by another thread meanwhile: given back.
                libc::sigaction(signal, &previous, std::ptr::null_mut());
                continue;
            }
        }
        return Taken::Signal(signal);
    }
    if blocked {
        Taken::BlockedHere
    } else {
        Taken::None
    }
}

/// The signal this wait can be ended with: taken (at the first call), still
/// this crate's, and not blocked in this thread. `None` otherwise: the wait
/// watches the file instead.
pub(super) fn usable() -> Option<libc::c_int> {
    let signal = match TAKEN.load(Ordering::Acquire) {
        UNDECIDED => {
            // Decided by one thread, without a lock a fork could leave held.
            if TAKEN
                .compare_exchange(UNDECIDED, TAKING, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                return None;
            }
            match take() {
                Taken::Signal(signal) => {
                    TAKEN.store(signal, Ordering::Release);
                    signal
                }
                Taken::BlockedHere => {
                    TAKEN.store(UNDECIDED, Ordering::Release);
                    return None;
                }
                Taken::None => {
                    TAKEN.store(NONE, Ordering::Release);
                    return None;
                }
            }
        }
        TAKING | NONE => return None,
        signal => signal,
    };
    (still_ours(signal) && !blocked_here(signal)).then_some(signal)
}

/// Whether `signal` still has this crate's handler; once it has not, it is
/// never used again.
pub(super) fn still_ours(signal: libc::c_int) -> bool {
    if LOST.load(Ordering::Relaxed) {
        return false;
    }
    let ours = disposition(signal) == Some(handler());
    if !ours {
        LOST.store(true, Ordering::Relaxed);
    }
    ours
}
