//! Says which tests did not run here because they need Unix (fork, uid,
//! signals, FIFOs, /proc, flock(1), Python's zc.lockfile): each shows as
//! ignored, with the reason, in this platform's test output.
#![cfg(not(unix))]

macro_rules! unix_only {
    ($($name:ident: $what:literal,)*) => {$(
        #[test]
        #[ignore = $what]
        fn $name() {}
    )*};
}

unix_only! {
    allocations: "Unix only: tests/allocations.rs (on Windows std also allocates each path's UTF-16 copy)",
    bad_input: "Unix only: tests/bad_input.rs (FIFOs, sockets, devices, uid nobody, tmpfs, RLIMIT_FSIZE)",
    diagnostics: "Unix only: tests/diagnostics.rs (kill(2), /proc/locks, flock(1))",
    holder: "Unix only: tests/holder.rs (raw flock on a sparse file)",
    lock_file: "Unix only: tests/lock_file.rs (fork, SIGKILL, /proc/PID/fd)",
    logging: "Unix only: tests/logging.rs (gethostname through libc)",
    paths: "Unix only: tests/paths.rs (non-UTF-8 names, chown, mount)",
    stress: "Unix only: tests/stress.rs (its workers use the Unix test helpers)",
    waiting: "Unix only: tests/waiting.rs (the Unix test helpers, /proc/self/fd)",
    zc_lockfile: "Unix only: tests/zc_lockfile.rs (python3 with zc.lockfile)",
    cli: "Unix only: tests/cli.rs (the command forwards Unix signals)",
    replaced_file: "Linux only: tests/replaced_file.rs (on Windows a held lock file cannot be deleted or renamed: see any_platform)",
    shared: "Unix only: tests/shared.rs (readers in helper processes, uid nobody; any_platform has readers in one process)",
    async_wait: "Unix only: tests/async_wait.rs (helper processes, /proc/self/fd)",
    kernel_wait: "Linux only: tests/kernel_wait.rs (waits that sleep in flock, ended by a real-time signal; elsewhere waiters watch or retry)",
    doctests: "not run under Wine: doctests are not cross-compiled",
}
