//! `pidlockfile run`: a program run while the lock is held, which never runs
//! on without it.

use std::ffi::OsString;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitCode, ExitStatus};

use crate::signals::{self, set_mask, signal_set};
use crate::{fail, LockArgs, ERROR};

pub fn run(args: &LockArgs, inherit: bool, command: &[OsString]) -> ExitCode {
    let lock = match args.lock() {
        Ok(lock) => lock,
        Err(e) => return fail(&e),
    };
    // Blocked until the handlers are in place: one of them in between would
    // end this process, releasing the lock while the program runs. (SIGINT
    // and SIGQUIT are not: ending `run` before the program has started, and
    // with it, as the group's member, is what they ask for.)
    let forwarded = signals::forwarded();
    let old_mask = set_mask(libc::SIG_BLOCK, &signal_set(&forwarded));
    let mut program = Command::new(&command[0]);
    program.args(&command[1..]);
    let parent = std::process::id() as libc::pid_t;
    let fd = lock.as_raw_fd();
    // SAFETY: the closure makes only async-signal-safe system calls (fcntl,
    // prctl, getppid, kill, pthread_sigmask), as pre_exec requires.
    unsafe {
        program.pre_exec(move || {
            // The program starts with the mask `run` started with.
            set_mask(libc::SIG_SETMASK, &old_mask);
            // The program inherits the lock's open file description, so that
            // the lock lives as long as it does even if `run` is killed, or
            // the death signal below is lost (the kernel clears it when the
            // program execs a set-user-ID binary or changes its uid).
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                return Err(io::Error::last_os_error());
            }
            if !inherit {
                die_with_parent(parent)?;
            }
            Ok(())
        })
    };
    let spawned = program.spawn();
    let mut terminal_actions = Vec::new();
    if let Ok(child) = &spawned {
        signals::set_program(child.id() as libc::pid_t);
        signals::pass_on_to_program(&forwarded);
        terminal_actions = signals::pass_on_to_program(&signals::TERMINAL);
    }
    set_mask(libc::SIG_SETMASK, &old_mask);
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            crate::output::complain(format_args!(
                "pidlockfile: cannot run {:?}: {e}",
                command[0]
            ));
            return ExitCode::from(match e.kind() {
                io::ErrorKind::NotFound => 127,
                _ => 126,
            });
        }
    };
    let status = match wait_without_reaping(child.id() as libc::pid_t) {
        Ok(status) => status,
        Err(e) => {
            crate::output::complain(format_args!(
                "pidlockfile: waiting for {:?}: {e}",
                command[0]
            ));
            return ExitCode::from(ERROR);
        }
    };
    // The program is a zombie now, so its pid cannot be reused yet: stop
    // signalling it, then reap it. A signal after the reap goes nowhere.
    signals::set_program(0);
    let _ = child.wait();
    if inherit {
        // Processes the program started may hold the lock on; the kernel
        // releases it when the last of them exits.
        lock.detach();
    } else if let Err(e) = lock.close() {
        // The explicit unlock releases the lock for every process that holds
        // the descriptor, those the program started included.
        crate::output::complain(format_args!("pidlockfile: {e}"));
    }
    // Ctrl-C from now on ends `run` again, as before the program started.
    signals::restore(&terminal_actions);
    if let Some(signal) = status.signal() {
        signals::die_of(signal);
        // As a shell reports it, if the signal did not kill us.
        return ExitCode::from((128 + signal) as u8);
    }
    ExitCode::from(status.code().unwrap_or(ERROR.into()) as u8)
}

/// Asks the kernel to kill this (child) process when its parent dies, then
/// checks that the parent had not died already (it would not be ours then).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn die_with_parent(parent: libc::pid_t) -> io::Result<()> {
    // SAFETY: prctl, getppid and kill are async-signal-safe system calls.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::getppid() != parent {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
    Ok(())
}

/// No death signal on this platform: the README says what that means.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn die_with_parent(_: libc::pid_t) -> io::Result<()> {
    Ok(())
}

/// Waits for the program to end and gives its status, leaving it a zombie
/// (`WNOWAIT`), so that its pid stays its own until it is reaped.
fn wait_without_reaping(pid: libc::pid_t) -> io::Result<ExitStatus> {
    loop {
        // SAFETY: a zeroed siginfo_t is filled by waitid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waits for our own child; info is valid.
        let result = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if result != 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        // SAFETY: waitid filled in a SIGCHLD siginfo.
        let value = unsafe { info.si_status() };
        return Ok(match info.si_code {
            libc::CLD_EXITED => ExitStatus::from_raw((value & 0xff) << 8),
            libc::CLD_DUMPED => ExitStatus::from_raw(value | 0x80),
            _ => ExitStatus::from_raw(value),
        });
    }
}
