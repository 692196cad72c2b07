//! The signal that ends a blocked `flock`: taken once, checked at each wait.
//!
//! It is the highest-numbered real-time signal whose disposition is still
//! the default (`SIG_DFL`) the first time a wait blocks, so that no handler
//! of the program is replaced; the crate then installs a handler that does
//! nothing, without `SA_RESTART` (so that `flock` returns). Only the
//! deadline thread raises it, and only at a thread blocked in this crate's
//! `flock`. Each wait checks that the handler is still this crate's (a
//! program that took the signal over since would otherwise see its handler
//! run, and a blocked `flock` might never return) and unblocks the signal
//! for the waiting thread, restoring the thread's mask afterwards.

use std::sync::OnceLock;

/// The signal this process took, if any (decided once).
static TAKEN: OnceLock<Option<libc::c_int>> = OnceLock::new();

extern "C" fn interrupt(_: libc::c_int) {}

fn handler() -> libc::sighandler_t {
    interrupt as extern "C" fn(libc::c_int) as libc::sighandler_t
}

/// The highest real-time signal left at its default disposition, now with
/// this crate's handler.
fn take() -> Option<libc::c_int> {
    for signal in (libc::SIGRTMIN()..=libc::SIGRTMAX()).rev() {
        // SAFETY: sigaction structures zeroed and then filled in; the
        // handler is async-signal-safe (it does nothing).
        unsafe {
            let mut current: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &mut current) != 0
                || current.sa_sigaction != libc::SIG_DFL
            {
                continue;
            }
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
        return Some(signal);
    }
    None
}

/// The signal, unblocked for this thread while this lives.
pub(super) struct Unblocked {
    signal: libc::c_int,
    /// The thread's mask before, when it blocked the signal.
    previous: Option<libc::sigset_t>,
}

impl Unblocked {
    /// `None` when no signal could be taken, or the program has since
    /// installed its own handler on it.
    pub(super) fn new() -> Option<Unblocked> {
        let signal = (*TAKEN.get_or_init(take))?;
        // SAFETY: a zeroed structure and signal sets, filled in by libc.
        unsafe {
            let mut current: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &mut current) != 0
                || current.sa_sigaction != handler()
            {
                return None;
            }
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, signal);
            let mut previous: libc::sigset_t = std::mem::zeroed();
            if libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, &mut previous) != 0 {
                return None;
            }
            let was_blocked = libc::sigismember(&previous, signal) == 1;
            Some(Unblocked {
                signal,
                previous: was_blocked.then_some(previous),
            })
        }
    }

    pub(super) fn number(&self) -> libc::c_int {
        self.signal
    }
}

impl Drop for Unblocked {
    fn drop(&mut self) {
        if let Some(previous) = &self.previous {
            // SAFETY: restores the mask saved above.
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, previous, std::ptr::null_mut()) };
        }
    }
}
