//! Signal sets, masks and handlers, for holding a lock through signals.

use std::sync::atomic::{AtomicI32, Ordering};

pub fn signal_set(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: a zeroed sigset_t is emptied, then filled, by libc.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &signal in signals {
            libc::sigaddset(&mut set, signal);
        }
        set
    }
}

/// Changes this thread's signal mask, returning the mask it had.
pub fn set_mask(how: libc::c_int, set: &libc::sigset_t) -> libc::sigset_t {
    // SAFETY: changes this thread's signal mask; both sets are valid.
    unsafe {
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(how, set, &mut old);
        old
    }
}

/// Signals whose default action ends a process and that `run` passes on to
/// its program, once: all but SIGINT and SIGQUIT (see [`terminal_signal`]),
/// SIGKILL and SIGSTOP (which cannot be caught), SIGPIPE (which Rust
/// programs ignore), and the faults (SIGSEGV, SIGBUS, SIGILL, SIGFPE,
/// SIGTRAP, SIGSYS, SIGABRT), for which `run`'s own death and the program's
/// death signal stand.
pub fn forwarded() -> Vec<libc::c_int> {
    let mut signals = vec![
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGALRM,
        libc::SIGVTALRM,
        libc::SIGPROF,
        libc::SIGXCPU,
        libc::SIGXFSZ,
    ];
    #[cfg(any(target_os = "linux", target_os = "android"))]
    signals.extend([libc::SIGIO, libc::SIGPWR, libc::SIGSTKFLT]);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    signals.extend(libc::SIGRTMIN()..=libc::SIGRTMAX());
    signals
}

/// The signals a terminal's keys send to its whole foreground process group
/// (Ctrl-C, Ctrl-\): the program, in the same group, receives them itself.
pub const TERMINAL: [libc::c_int; 2] = [libc::SIGINT, libc::SIGQUIT];

/// The running program's pid while it may be signalled; 0 once it has ended.
static PROGRAM: AtomicI32 = AtomicI32::new(0);

/// Sets the pid that [`pass_on`] signals: the program's, or 0 to stop.
pub fn set_program(pid: i32) {
    PROGRAM.store(pid, Ordering::SeqCst);
}

/// Whether the program is in this process's process group, and so receives
/// what is sent to the group.
fn program_in_our_group(program: libc::pid_t) -> bool {
    // SAFETY: getpgid and getpgrp are plain system calls.
    unsafe { libc::getpgid(program) == libc::getpgrp() }
}

/// The handler for every forwarded and terminal signal, while the program runs.
extern "C" fn pass_on(signal: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let program = PROGRAM.load(Ordering::SeqCst);
    if program <= 0 {
        return;
    }
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let code = unsafe { (*info).si_code };
    // A terminal's hang-up reaches the session leader and the foreground
    // process group; not being the leader, we got it as a member of that
    // group, so the program got it too when it is in our group.
    // SAFETY: getsid and getpid are plain system calls.
    let kernel_sent_to_group =
        code == libc::SI_KERNEL && unsafe { libc::getsid(0) != libc::getpid() };
    let group_got_it =
        TERMINAL.contains(&signal) || (signal == libc::SIGHUP && kernel_sent_to_group);
    if group_got_it && program_in_our_group(program) {
        return;
    }
    // SAFETY: kill is async-signal-safe.
    unsafe { libc::kill(program, signal) };
}

/// Installs [`pass_on`] for `signals`, returning the actions it replaced.
pub fn pass_on_to_program(signals: &[libc::c_int]) -> Vec<(libc::c_int, libc::sigaction)> {
    let mut replaced = Vec::with_capacity(signals.len());
    for &signal in signals {
        // SAFETY: installs a handler that only reads an atomic and makes
        // async-signal-safe system calls; SA_RESTART keeps waitid going.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                pass_on;
            action.sa_sigaction = handler as libc::sighandler_t;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, &action, &mut old) == 0 {
                replaced.push((signal, old));
            }
        }
    }
    replaced
}

/// Puts back actions that [`pass_on_to_program`] replaced.
pub fn restore(actions: &[(libc::c_int, libc::sigaction)]) {
    for (signal, action) in actions {
        // SAFETY: the action was the signal's before.
        unsafe { libc::sigaction(*signal, action, std::ptr::null_mut()) };
    }
}

/// Dies of `signal`, as a wrapper should when its program died of it, so that
/// a shell sees the signal (and stops a loop on Ctrl-C). No core dump is
/// written for this process. Returns only if `signal` does not kill.
pub fn die_of(signal: libc::c_int) {
    // SAFETY: plain system calls on this process.
    unsafe {
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        libc::signal(signal, libc::SIG_DFL);
        set_mask(libc::SIG_UNBLOCK, &signal_set(&[signal]));
        libc::raise(signal);
    }
}
