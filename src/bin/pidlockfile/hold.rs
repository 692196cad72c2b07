//! `pidlockfile hold`: hold a lock until told to stop.

use std::process::ExitCode;

use crate::output::print_line;
use crate::signals::{set_mask, signal_set};
use crate::{fail, LockArgs, ERROR};

pub fn hold(args: &LockArgs) -> ExitCode {
    // While it waits, these signals keep their default action: one of them
    // ends the wait, and `hold`, without taking the lock.
    let lock = match args.lock() {
        Ok(lock) => lock,
        Err(e) => return fail(&e),
    };
    // Blocked, then awaited with sigwait: no handler. One that lands in
    // between kills us holding the lock, and the kernel releases it.
    let signals = signal_set(&[libc::SIGINT, libc::SIGTERM, libc::SIGHUP]);
    set_mask(libc::SIG_BLOCK, &signals);
    let announced = print_line(&format!(
        "pidlockfile: holding {:?} as pid {} until SIGINT, SIGTERM or SIGHUP",
        lock.path(),
        std::process::id()
    ));
    if let Err(code) = announced {
        // Nobody was told that it is held: do not hold it.
        if let Err(e) = lock.close() {
            crate::output::complain(format_args!("pidlockfile: {e}"));
        }
        return code;
    }
    let mut signal = 0;
    // SAFETY: waits for one of the blocked signals.
    unsafe { libc::sigwait(&signals, &mut signal) };
    let path = lock.path().to_owned();
    if let Err(e) = lock.close() {
        crate::output::complain(format_args!("pidlockfile: {e}"));
        return ExitCode::from(ERROR);
    }
    match print_line(&format!("pidlockfile: released {path:?}")) {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}
