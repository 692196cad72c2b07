//! `pidlockfile hold`: hold a lock until told to stop.

use std::path::Path;
use std::process::ExitCode;

use pidlockfile::LockOptions;

use crate::signals::{set_mask, signal_set};
use crate::{fail, ERROR};

pub fn hold(path: &Path, options: &LockOptions) -> ExitCode {
    // Blocked before anything else runs, then awaited with sigwait: no
    // handler, and no window in which a signal kills us holding the lock.
    let signals = signal_set(&[libc::SIGINT, libc::SIGTERM]);
    set_mask(libc::SIG_BLOCK, &signals);
    let lock = match options.lock(path) {
        Ok(lock) => lock,
        Err(e) => return fail(&e),
    };
    println!(
        "pidlockfile: holding {:?} as pid {} until SIGINT or SIGTERM",
        lock.path(),
        std::process::id()
    );
    let mut signal = 0;
    // SAFETY: waits for one of the blocked signals.
    unsafe { libc::sigwait(&signals, &mut signal) };
    match lock.close() {
        Ok(()) => {
            println!("pidlockfile: released {:?}", path);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pidlockfile: {e}");
            ExitCode::from(ERROR)
        }
    }
}
