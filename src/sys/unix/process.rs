//! What this host says about a process: whether it runs, whether it is a
//! zombie, and when it started.

use std::io;
use std::time::SystemTime;

/// What the process table says about a pid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProcessState {
    /// No process has this pid.
    NotRunning,
    /// The process has exited and not been reaped: it holds no file, and
    /// `kill(pid, 0)` still succeeds on it.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))] // only /proc tells
    Zombie,
    /// A process runs with this pid; it started at `started` (wall-clock
    /// time, truncated to the clock tick), where the system says.
    Running { started: Option<SystemTime> },
}

/// Whether a process with this pid exists: `kill(pid, 0)`, where `EPERM`
/// (it exists, but is another user's) counts as alive. A zombie exists.
fn process_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false; // 0 and -1 address groups of processes, not one
    }
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The state of the process with this pid. On Linux it is read from
/// `/proc/<pid>/stat` (readable for every user's processes): one open, one
/// read and one close, with no allocation. Elsewhere, or where `/proc`
/// cannot be read, `kill(pid, 0)` decides and the start time is unknown.
pub(crate) fn process_state(pid: u32) -> ProcessState {
    #[cfg(target_os = "linux")]
    if let Some(state) = linux::stat(pid) {
        return state;
    }
    match process_exists(pid) {
        true => ProcessState::Running { started: None },
        false => ProcessState::NotRunning,
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use super::ProcessState;
    use once_cell::race::{OnceBool, OnceBox};
    use std::io::Write;
    use std::time::{Duration, SystemTime};

    /// `/proc/<pid>/stat`, or `None` when `/proc` cannot say (it is not
    /// mounted, or hides other users' processes: `hidepid`).
    pub(super) fn stat(pid: u32) -> Option<ProcessState> {
        let mut path = [0u8; 32];
        let mut cursor = &mut path[..];
        write!(cursor, "/proc/{pid}/stat\0").ok()?;
        let mut buf = [0u8; 512];
        // SAFETY: a NUL-terminated path in `path`; the descriptor is closed below.
        let fd = unsafe {
            libc::open(
                path.as_ptr().cast(),
                libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY,
            )
        };
        if fd < 0 {
            let error = std::io::Error::last_os_error().raw_os_error();
            // ENOENT or ESRCH: no such process, provided /proc is there at
            // all and does not hide other users' processes (`hidepid`), which
            // `kill` then finds.
            return match error {
                Some(libc::ENOENT | libc::ESRCH) if proc_is_mounted() => {
                    match super::process_exists(pid) {
                        true => None,
                        false => Some(ProcessState::NotRunning),
                    }
                }
                _ => None,
            };
        }
        // SAFETY: reads into `buf`, then closes the descriptor opened above.
        let len = unsafe {
            let len = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
            libc::close(fd);
            len
        };
        match usize::try_from(len) {
            Ok(len) => parse_stat(&buf[..len]),
            // ESRCH: the process was reaped between the open and the read.
            Err(_) => Some(ProcessState::NotRunning),
        }
    }

    /// Parses `pid (comm) S ppid … starttime …`: the state is the first
    /// field after the last `)` (a command name may hold anything, even
    /// parentheses), the start time the 20th, in clock ticks since boot.
    pub(super) fn parse_stat(text: &[u8]) -> Option<ProcessState> {
        let after = &text[text.iter().rposition(|&b| b == b')')? + 1..];
        let mut fields = after
            .split(|b| b.is_ascii_whitespace())
            .filter(|f| !f.is_empty());
        let state = fields.next()?;
        if matches!(state, b"Z" | b"X" | b"x") {
            return Some(ProcessState::Zombie);
        }
        let ticks: u64 = std::str::from_utf8(fields.nth(18)?).ok()?.parse().ok()?;
        Some(ProcessState::Running {
            started: started_at(ticks),
        })
    }

    /// The wall-clock time `ticks` clock ticks after boot: now, less the
    /// time since boot (`CLOCK_BOOTTIME`, which counts suspended time as
    /// the kernel's start times do), plus the ticks.
    fn started_at(ticks: u64) -> Option<SystemTime> {
        let hz = clock_ticks_per_second()?;
        let since_boot = Duration::from_secs(ticks / hz)
            + Duration::from_nanos((ticks % hz) * 1_000_000_000 / hz);
        let (real, boot) = (now(libc::CLOCK_REALTIME)?, now(libc::CLOCK_BOOTTIME)?);
        let booted = SystemTime::UNIX_EPOCH + real.checked_sub(boot)?;
        Some(booted + since_boot)
    }

    fn now(clock: libc::clockid_t) -> Option<Duration> {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: one valid timespec.
        if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
            return None;
        }
        Some(Duration::new(
            u64::try_from(ts.tv_sec).ok()?,
            u32::try_from(ts.tv_nsec).ok()?,
        ))
    }

    fn clock_ticks_per_second() -> Option<u64> {
        static HZ: OnceBox<Option<u64>> = OnceBox::new();
        *HZ.get_or_init(|| {
            // SAFETY: sysconf has no preconditions.
            let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
            Box::new(u64::try_from(hz).ok().filter(|&hz| hz > 0))
        })
    }

    fn proc_is_mounted() -> bool {
        static MOUNTED: OnceBool = OnceBool::new();
        MOUNTED.get_or_init(|| std::path::Path::new("/proc/self/stat").exists())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        #[cfg_attr(
            miri,
            ignore = "asks sysconf(3) for the clock tick, which Miri does not run"
        )]
        fn the_state_and_start_time_are_read_past_a_tricky_command_name() {
            let line = b"4242 (a) b (Z) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                         1 2 0 0 20 0 1 0 12345 1000 100 18446744073709551615";
            let Some(ProcessState::Running {
                started: Some(started),
            }) = parse_stat(line)
            else {
                panic!("{:?}", parse_stat(line));
            };
            assert!(started < SystemTime::now());
            let zombie = b"4242 (x) Z 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 12345";
            assert_eq!(parse_stat(zombie), Some(ProcessState::Zombie));
            assert_eq!(parse_stat(b"4242 (x"), None);
            assert_eq!(parse_stat(b"4242 (x) S 1"), None);
        }

        #[test]
        #[cfg_attr(miri, ignore = "reads /proc, which Miri's isolation hides")]
        fn this_process_runs_and_started_before_now() {
            let Some(ProcessState::Running {
                started: Some(started),
            }) = stat(std::process::id())
            else {
                panic!("this process cannot be read");
            };
            let age = SystemTime::now().duration_since(started).unwrap();
            assert!(age < Duration::from_secs(3600), "{age:?}");
        }
    }
}
