//! Telling a forked child from its parent without a system call.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static FORKS: AtomicU64 = AtomicU64::new(0);
/// Set once a handler is registered. A flag, not a `Once`, which a fork in
/// the middle of its first call would leave the child waiting on for good.
static REGISTERED: AtomicBool = AtomicBool::new(false);

extern "C" fn forked() {
    FORKS.fetch_add(1, Ordering::Relaxed);
}

/// How many times this process's line has forked since it first asked:
/// state stamped with it is a parent's when the number has changed. It
/// counts the forks that run `pthread_atfork` handlers: every `fork(3)` of
/// the C library. A child made otherwise (`vfork`, `_Fork`, a raw `clone`)
/// may only exec or exit before it uses this crate. One atomic load;
/// `getpid` is a system call.
#[inline]
pub(crate) fn forks() -> u64 {
    if !REGISTERED.load(Ordering::Acquire) {
        register();
    }
    FORKS.load(Ordering::Relaxed)
}

/// Every thread that finds no handler registers one before it goes on, so
/// that no state is stamped before a handler counts the next fork. Threads
/// that race here register one each: a fork then counts more than once,
/// which tells parent from child all the same.
#[cold]
fn register() {
    // SAFETY: registers a child handler that only bumps an atomic.
    unsafe { libc::pthread_atfork(None, None, Some(forked)) };
    REGISTERED.store(true, Ordering::Release);
}
