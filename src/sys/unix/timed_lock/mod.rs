//! A blocking `flock` with a time limit.
//!
//! A waiter that sleeps inside `flock(LOCK_EX)` costs what the kernel's own
//! queue costs: the release wakes it in the kernel, it takes the lock there,
//! and a waiter that loses sleeps again without returning to user space. No
//! watch of the file comes close when many processes wait, since each
//! release would wake every one of them. But the kernel cannot time that
//! sleep out. So on Linux a thread of this crate, the timer thread, sends a
//! waiter that is still blocked at its limit a real-time signal whose
//! handler does nothing, and `flock` fails with `EINTR` (`signal` says which
//! signal and how it is kept out of the program's way; `deadlines` how the
//! thread keeps time at no cost to the waiters; `file_system` where a signal
//! can end the wait at all).
//!
//! Where that cannot be done (another platform; every real-time signal
//! taken, or blocked in the waiting thread; a file system that may hand the
//! lock request to a server; no timer or timer thread to be had),
//! [`timed_lock`] says so and the waiter watches the file instead.

#[cfg(target_os = "linux")]
mod deadlines;
#[cfg(target_os = "linux")]
mod file_system;
#[cfg(target_os = "linux")]
mod signal;

use std::fs::File;
use std::io;
use std::time::Instant;

use super::FileId;

/// Whether a wait would most likely block in the kernel now, at no cost in
/// threads: waits of this process have lately (and the timer thread runs).
/// A waiter that would only find the lock held can then skip its first try
/// and block at once, as `flock(LOCK_EX)` does.
pub(crate) fn blocking_lately() -> bool {
    #[cfg(target_os = "linux")]
    {
        deadlines::running()
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// Blocks in `flock` on `file` (exclusive, or `shared`) until the lock is
/// taken (`Some(Ok(true))`), or until `until` passes or another signal
/// interrupts (`Some(Ok(false))`). `None` when this process cannot interrupt
/// a blocked `flock`: the caller waits another way.
pub(crate) fn timed_lock(
    file: &File,
    id: FileId,
    shared: bool,
    until: Instant,
) -> Option<io::Result<bool>> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;

        let signal = signal::usable()?;
        if !file_system::signal_ends_flock(file, id.mount()) {
            return None;
        }
        let waiting = deadlines::Waiting::begin(signal, until)?;
        let operation = if shared { libc::LOCK_SH } else { libc::LOCK_EX };
        // SAFETY: a descriptor `file` keeps open.
        let rc = unsafe { libc::flock(file.as_raw_fd(), operation) };
        // Read before `end`, whose calls may change it.
        let error = (rc != 0).then(io::Error::last_os_error);
        // After `end`, nothing is sent, and what was sent has been delivered
        // (to the empty handler).
        waiting.end();
        Some(match error {
            None => Ok(true),
            Some(error) if error.kind() == io::ErrorKind::Interrupted => Ok(false),
            Some(error) => Err(error),
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (file, id, shared, until);
        None
    }
}
