//! `pidlockfile run`: a program run while the lock is held.

use std::ffi::OsString;
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicI32, Ordering};

use pidlockfile::LockOptions;

use crate::signals::{set_mask, signal_set};
use crate::{fail, ERROR};

/// The running program's pid, for the signal handler.
static CHILD: AtomicI32 = AtomicI32::new(0);

/// Signals that would end this process, and so release the lock while the
/// program still runs: they are passed on to the program instead.
const FORWARDED: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

extern "C" fn forward(signal: libc::c_int) {
    let child = CHILD.load(Ordering::SeqCst);
    if child > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(child, signal) };
    }
}

pub fn run(path: &Path, options: &LockOptions, command: &[OsString]) -> ExitCode {
    let lock = match options.lock(path) {
        Ok(lock) => lock,
        Err(e) => return fail(&e),
    };
    // Blocked until the handlers are in place: a signal in between would end
    // this process, releasing the lock while the program runs. The program
    // inherits the mask, so it unblocks them itself before exec.
    let forwarded = signal_set(&FORWARDED);
    set_mask(libc::SIG_BLOCK, &forwarded);
    let mut program = Command::new(&command[0]);
    program.args(&command[1..]);
    // SAFETY: pthread_sigmask is async-signal-safe, as pre_exec requires.
    unsafe {
        program.pre_exec(move || {
            set_mask(libc::SIG_UNBLOCK, &forwarded);
            Ok(())
        })
    };
    // The lock's descriptor is close-on-exec: the program does not inherit it.
    let spawned = program.spawn();
    if let Ok(child) = &spawned {
        CHILD.store(child.id() as i32, Ordering::SeqCst);
        for signal in FORWARDED {
            let handler: extern "C" fn(libc::c_int) = forward;
            // SAFETY: installs a handler that only calls kill(2).
            unsafe { libc::signal(signal, handler as libc::sighandler_t) };
        }
    }
    set_mask(libc::SIG_UNBLOCK, &forwarded);
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            eprintln!("pidlockfile: cannot run {:?}: {e}", command[0]);
            return ExitCode::from(match e.kind() {
                io::ErrorKind::NotFound => 127,
                _ => 126,
            });
        }
    };
    let status = match child.wait() {
        Ok(status) => status,
        Err(e) => {
            eprintln!("pidlockfile: waiting for {:?}: {e}", command[0]);
            return ExitCode::from(ERROR);
        }
    };
    if let Err(e) = lock.close() {
        eprintln!("pidlockfile: {e}");
    }
    // As a shell reports it: the exit code, or 128 + the signal that killed it.
    let code = status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(ERROR.into());
    ExitCode::from(code as u8)
}
