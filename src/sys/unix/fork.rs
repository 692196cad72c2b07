//! Telling a forked child from its parent without a system call.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

static FORKS: AtomicU64 = AtomicU64::new(0);
static COUNTING: Once = Once::new();

extern "C" fn forked() {
    FORKS.fetch_add(1, Ordering::Relaxed);
}

/// How many times this process's line has forked since it first asked:
/// state stamped with it is a parent's when the number has changed. It
/// counts the forks that run `pthread_atfork` handlers (every `fork(2)`
/// made through libc; a `vfork` child may only exec or exit). One atomic
/// load; `getpid` is a system call.
pub(crate) fn forks() -> u64 {
    COUNTING.call_once(|| {
        // SAFETY: registers a child handler that only bumps an atomic.
        unsafe { libc::pthread_atfork(None, None, Some(forked)) };
    });
    FORKS.load(Ordering::Relaxed)
}
