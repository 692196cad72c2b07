//! Waiting in the kernel (Linux): a waiter sleeps in `flock`, and the
//! deadline thread ends that sleep at the waiter's limit with a real-time
//! signal the crate takes for itself. What that must never do: leave a
//! waiter blocked past its limit, leave a signal behind for the program's
//! own system calls, run or replace a handler of the program, or change a
//! thread's signal mask.
#![cfg(target_os = "linux")]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{program_signals, realtime_handler, take_signal, Holding};
use pidlockfile::{LockError, LockFile, LockOptions};

helper_process!();

fn waiting(limit: Duration) -> LockOptions {
    let mut options = LockOptions::new();
    options.wait(limit);
    options
}

/// The system call thread `tid` of this process is blocked in, from
/// `/proc/self/task/<tid>/syscall` (its first field), if any.
fn blocked_in(tid: libc::pid_t) -> Option<i64> {
    let said = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall")).ok()?;
    said.split_whitespace().next()?.parse().ok()
}

fn gettid() -> libc::pid_t {
    unsafe { libc::syscall(libc::SYS_gettid) as libc::pid_t }
}

/// The user and system CPU time thread `tid` has used, in clock ticks.
fn thread_cpu_ticks(tid: libc::pid_t) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Runs `scenario` alone (see [`common::run_alone`]), with `signal` blocked
/// in every thread of the process (the mask is inherited from its first
/// thread).
fn run_alone_blocking(scenario: &str, signal: libc::c_int) {
    use std::os::unix::process::CommandExt;
    common::run_alone(scenario, |command| {
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(move || {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, signal);
                libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                Ok(())
            });
        }
    });
}

/// Waits up to `limit` for the lock at `path`, held elsewhere, and checks
/// that the wait ended by timing out, within 2 s.
fn times_out_on_time(path: &std::path::Path, limit: Duration) {
    let start = Instant::now();
    let err = waiting(limit).lock(path).unwrap_err();
    assert!(matches!(err, LockError::TimedOut { .. }), "{err:?}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

/// The real-time signal the crate took: the one with a handler, in a
/// process where the program has taken none.
fn crates_signal() -> libc::c_int {
    (libc::SIGRTMIN()..=libc::SIGRTMAX())
        .find(|&signal| realtime_handler(signal) != libc::SIG_DFL)
        .expect("the crate's signal")
}

/// A waiter sleeps in `flock` itself, using no CPU, and wakes with the lock
/// when the holder releases it.
#[test]
fn a_waiter_sleeps_in_flock_and_burns_no_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let holder = Holding::start("hold", &path);
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let waiter = {
        let path = path.clone();
        std::thread::spawn(move || {
            tid_tx.send(gettid()).unwrap();
            waiting(Duration::from_secs(60)).lock(&path).unwrap()
        })
    };
    let tid = tid_rx.recv().unwrap();
    let started = Instant::now();
    while blocked_in(tid) != Some(libc::SYS_flock) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the waiter never blocked in flock: {:?}",
            blocked_in(tid)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let cpu = thread_cpu_ticks(tid);
    std::thread::sleep(Duration::from_secs(1));
    // A tick is 10 ms; the waiter wakes every 50 ms to check the path,
    // for microseconds each time.
    assert!(thread_cpu_ticks(tid) - cpu <= 1, "the waiter used CPU");
    assert_eq!(blocked_in(tid), Some(libc::SYS_flock));
    holder.release();
    let lock = waiter.join().unwrap();
    assert_eq!(
        pidlockfile::Holder::read(&path).unwrap().unwrap().pid(),
        Some(std::process::id())
    );
    lock.close().unwrap();
}

/// A waiter blocked in `flock` is woken at its limit, whatever the limit,
/// and holds nothing afterwards.
#[test]
fn a_blocked_waiter_times_out_at_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let holder = Holding::start("hold", &path);
    for limit in [1, 20, 100, 300, 1000].map(Duration::from_millis) {
        let start = Instant::now();
        let err = waiting(limit).lock(&path).unwrap_err();
        let elapsed = start.elapsed();
        assert!(matches!(err, LockError::TimedOut { .. }), "{err:?}");
        assert!(elapsed >= limit, "{limit:?}: returned after {elapsed:?}");
        assert!(
            elapsed < limit + Duration::from_millis(250),
            "{limit:?}: returned after {elapsed:?}"
        );
    }
    holder.release();
    // Nothing kept: another process takes the lock at once.
    assert_eq!(common::try_lock_elsewhere(&path).line("locked"), "");
}

/// After a wait, whether it timed out or took the lock just as its limit
/// came, no signal is left to interrupt the program's next blocking call:
/// `poll` on a silent pipe sleeps its full timeout instead of failing with
/// `EINTR`, and a thread that blocks every signal has none pending. Limits
/// are chosen to end while another thread takes the lock and gives it back,
/// so that the limit and the lock often come together.
fn waits_leave_no_signal(block_every_signal: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let mut pipe = [0; 2];
    assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = {
        let (path, stop) = (path.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(lock) = LockFile::lock(&path) {
                    std::thread::sleep(Duration::from_micros(1500));
                    drop(lock);
                }
                std::thread::sleep(Duration::from_micros(300));
            }
        })
    };
    let waiter = std::thread::spawn(move || {
        if block_every_signal {
            unsafe {
                let mut all: libc::sigset_t = std::mem::zeroed();
                libc::sigfillset(&mut all);
                libc::pthread_sigmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
            }
        }
        let (mut timed_out, mut locked) = (0, 0);
        for i in 0..400 {
            let limit = Duration::from_micros(200 + (i % 13) * 150);
            match waiting(limit).lock(&path) {
                Ok(lock) => {
                    locked += 1;
                    drop(lock);
                }
                Err(LockError::TimedOut { .. }) => timed_out += 1,
                Err(e) => panic!("{e}"),
            }
            let mut fd = libc::pollfd {
                fd: pipe[0],
                events: libc::POLLIN,
                revents: 0,
            };
            let rc = unsafe { libc::poll(&mut fd, 1, 3) };
            let error = std::io::Error::last_os_error();
            assert_eq!(rc, 0, "poll after wait {i}: {error}");
            unsafe {
                let mut pending: libc::sigset_t = std::mem::zeroed();
                libc::sigpending(&mut pending);
                for signal in 1..=libc::SIGRTMAX() {
                    assert_eq!(
                        libc::sigismember(&pending, signal),
                        0,
                        "signal {signal} pending"
                    );
                }
            }
        }
        (timed_out, locked)
    });
    let (timed_out, locked) = waiter.join().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    churn.join().unwrap();
    // (A thread that blocks the crate's signal watches the file instead, and
    // tiny limits then mostly end with the lock.)
    if !block_every_signal {
        assert!(
            timed_out > 20 && locked > 20,
            "{timed_out} timeouts, {locked} locks"
        );
    }
}

#[test]
fn no_signal_outlives_a_wait() {
    waits_leave_no_signal(false);
}

#[test]
fn no_signal_outlives_a_wait_of_a_thread_that_blocks_every_signal() {
    waits_leave_no_signal(true);
}

/// A thread that blocks every signal still has its waits end at their
/// limits, and gets its mask back unchanged, with nothing pending.
#[test]
fn a_thread_that_blocks_every_signal_still_times_out_and_keeps_its_mask() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let holder = Holding::start("hold", &path);
    let path2 = path.clone();
    let (done, ended) = std::sync::mpsc::channel();
    std::thread::spawn(move || unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        assert_eq!(
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, std::ptr::null_mut()),
            0
        );
        times_out_on_time(&path2, Duration::from_millis(200));
        let mut now: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut now);
        for signal in 1..=libc::SIGRTMAX() {
            // SIGKILL and SIGSTOP cannot be blocked, nor the C library's own
            // signals (between 31 and SIGRTMIN).
            let unblockable = [libc::SIGKILL, libc::SIGSTOP].contains(&signal)
                || (32..libc::SIGRTMIN()).contains(&signal);
            if !unblockable {
                assert_eq!(
                    libc::sigismember(&now, signal),
                    1,
                    "signal {signal} unblocked"
                );
            }
        }
        let mut pending: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut pending);
        for signal in 1..=libc::SIGRTMAX() {
            assert_eq!(
                libc::sigismember(&pending, signal),
                0,
                "signal {signal} pending"
            );
        }
        done.send(()).unwrap();
    });
    // A wait that the signal cannot end stays blocked until the holder
    // releases: the test fails instead of waiting for that.
    ended
        .recv_timeout(Duration::from_secs(10))
        .expect("the wait did not end at its limit, or failed");
    holder.release();
}

/// The thread of this process named `pidlock-timer`, if any.
fn timer_thread() -> Option<std::path::PathBuf> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .map(|t| t.unwrap().path())
        .find(|t| {
            std::fs::read_to_string(t.join("comm")).is_ok_and(|c| c.trim() == "pidlock-timer")
        })
}

/// The timer thread exists only while waits that block come and go: a wait
/// for a free lock starts none, the first wait that blocks starts one, which
/// blocks every signal (so that it never takes one meant for the program's
/// own threads), and it exits after a second without a wait, leaving a
/// single-threaded program single-threaded again.
#[test]
fn the_timer_thread_takes_no_signal_and_lives_only_while_waits_block() {
    // Alone: the other tests' waits would keep it alive.
    common::run_alone("timer_thread_scenario", |_| {});
}

#[test]
#[ignore = "not a test: run alone by the_timer_thread_takes_no_signal_and_lives_only_while_waits_block"]
fn timer_thread_scenario() {
    if !common::alone("timer_thread_scenario") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    waiting(Duration::from_secs(1))
        .lock(&path)
        .unwrap()
        .close()
        .unwrap();
    assert_eq!(
        timer_thread(),
        None,
        "a wait for a free lock started a thread"
    );
    let holder = Holding::start("hold", &path);
    let _ = waiting(Duration::from_millis(10)).lock(&path).unwrap_err();
    let task = timer_thread().expect("a timer thread");
    let status = std::fs::read_to_string(task.join("status")).unwrap();
    let blocked = status
        .lines()
        .find_map(|l| l.strip_prefix("SigBlk:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    // Every signal but SIGKILL (9) and SIGSTOP (19), which cannot be
    // blocked, and the C library's own (between 31 and SIGRTMIN).
    let every = (1..=libc::SIGRTMAX())
        .filter(|&s| {
            s != libc::SIGKILL && s != libc::SIGSTOP && !(32..libc::SIGRTMIN()).contains(&s)
        })
        .fold(0u64, |mask, s| mask | 1 << (s - 1));
    assert_eq!(blocked & every, every, "SigBlk {blocked:x}");
    // More than a second without a wait: the thread has exited.
    std::thread::sleep(Duration::from_millis(1600));
    assert_eq!(timer_thread(), None, "the timer thread outlived the waits");
    // The next wait that blocks starts another, and ends on time.
    times_out_on_time(&path, Duration::from_millis(100));
    holder.release();
}

/// The crate takes the highest real-time signal the program has left at
/// its default, leaving the program's own handlers alone and never running
/// them.
#[test]
fn the_crate_takes_the_highest_free_realtime_signal() {
    common::run_alone("highest_free_signal_scenario", |_| {});
}

#[test]
#[ignore = "not a test: run alone by the_crate_takes_the_highest_free_realtime_signal"]
fn highest_free_signal_scenario() {
    if !common::alone("highest_free_signal_scenario") {
        return;
    }
    let max = libc::SIGRTMAX();
    take_signal(max);
    let program = realtime_handler(max);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let holder = Holding::start("hold", &path);
    let err = waiting(Duration::from_millis(100)).lock(&path).unwrap_err();
    assert!(matches!(err, LockError::TimedOut { .. }), "{err:?}");
    holder.release();
    assert_eq!(
        realtime_handler(max),
        program,
        "the program's handler replaced"
    );
    assert_ne!(
        realtime_handler(max - 1),
        libc::SIG_DFL,
        "the crate took no signal"
    );
    for signal in libc::SIGRTMIN()..max - 1 {
        assert_eq!(
            realtime_handler(signal),
            libc::SIG_DFL,
            "signal {signal} taken"
        );
    }
    assert_eq!(program_signals(), 0, "the program's handler ran");
}

/// A program that uses every real-time signal still waits, by watching the
/// file: the waiter gets the lock at the release and times out on time, and
/// the program's handlers never run.
#[test]
fn a_program_with_every_realtime_signal_taken_still_waits() {
    common::run_alone("every_signal_taken_scenario", |_| {});
}

#[test]
#[ignore = "not a test: run alone by a_program_with_every_realtime_signal_taken_still_waits"]
fn every_signal_taken_scenario() {
    if !common::alone("every_signal_taken_scenario") {
        return;
    }
    let taken = common::take_every_realtime_signal();
    assert!(!taken.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let holder = Holding::start("hold", &path);
    times_out_on_time(&path, Duration::from_millis(300));
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        holder.release()
    });
    let lock = waiting(Duration::from_secs(30)).lock(&path).unwrap();
    releaser.join().unwrap();
    lock.close().unwrap();
    assert_eq!(program_signals(), 0, "the program's handler ran");
    let program = realtime_handler(taken[0]);
    for signal in taken {
        assert_eq!(
            realtime_handler(signal),
            program,
            "signal {signal} taken from the program"
        );
    }
}

/// A program that installs its own handler on the crate's signal after the
/// crate took it is left alone: later waits watch the file, end on time,
/// and never run the program's handler.
#[test]
fn a_program_that_takes_the_crates_signal_over_is_left_alone() {
    common::run_alone("signal_taken_over_scenario", |_| {});
}

#[test]
#[ignore = "not a test: run alone by a_program_that_takes_the_crates_signal_over_is_left_alone"]
fn signal_taken_over_scenario() {
    if !common::alone("signal_taken_over_scenario") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let holder = Holding::start("hold", &path);
    let _ = waiting(Duration::from_millis(50)).lock(&path).unwrap_err();
    let crates = crates_signal();
    // The program's handler restarts interrupted calls: a crate that still
    // sent this signal would leave its waiter blocked in flock.
    take_signal(crates);
    times_out_on_time(&path, Duration::from_millis(300));
    holder.release();
    assert_eq!(program_signals(), 0, "the program's handler ran");
}

/// While waits of the process block in the kernel lately, a new wait skips
/// its first try and blocks in `flock` at once; that blocked `flock` is its
/// try. It still takes a free lock, still times out at its limit on a held
/// one, and, where it announces the wait (`log` at `Info`), it tries first,
/// so that no record says a free lock was held.
#[test]
fn waits_that_begin_blocking_still_try_time_out_and_announce_truly() {
    common::run_alone("begin_blocking_scenario", |_| {});
}

#[test]
#[ignore = "not a test: run alone by waits_that_begin_blocking_still_try_time_out_and_announce_truly"]
fn begin_blocking_scenario() {
    if !common::alone("begin_blocking_scenario") {
        return;
    }
    struct Capture(std::sync::Mutex<Vec<String>>);
    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata) -> bool {
            true
        }
        fn log(&self, record: &log::Record) {
            self.0.lock().unwrap().push(record.args().to_string());
        }
        fn flush(&self) {}
    }
    static CAPTURE: Capture = Capture(std::sync::Mutex::new(Vec::new()));
    log::set_logger(&CAPTURE).unwrap();
    let records_about = |path: &std::path::Path| {
        let path = path.to_str().unwrap();
        let records = CAPTURE.0.lock().unwrap();
        records.iter().filter(|r| r.contains(path)).count()
    };

    let dir = tempfile::tempdir().unwrap();
    let (held, free) = (dir.path().join("HELD"), dir.path().join("FREE"));
    let holder = Holding::start("hold", &held);
    // Quiet: waits block in the kernel from the first on, and the next begin
    // blocking.
    times_out_on_time(&held, Duration::from_millis(50));
    for limit in [1, 100].map(Duration::from_millis) {
        let start = Instant::now();
        times_out_on_time(&held, limit);
        assert!(start.elapsed() >= limit);
    }
    waiting(Duration::from_secs(30))
        .lock(&free)
        .unwrap()
        .close()
        .unwrap();
    // Announced: a wait on a free lock takes it, and says nothing.
    log::set_max_level(log::LevelFilter::Info);
    times_out_on_time(&held, Duration::from_millis(50));
    assert_eq!(records_about(&held), 2, "{:?}", CAPTURE.0.lock().unwrap());
    waiting(Duration::from_secs(30))
        .lock(&free)
        .unwrap()
        .close()
        .unwrap();
    assert_eq!(records_about(&free), 0, "{:?}", CAPTURE.0.lock().unwrap());
    holder.release();
}

/// While waits block lately, waits that begin blocking keep every promise
/// with tiny limits: on a held lock each ends `TimedOut` within 50 ms of its
/// limit (1 ns to 5 ms, 100 rounds), on a free lock each takes it, and no
/// signal is left pending.
#[test]
fn tiny_limits_while_waits_begin_blocking() {
    common::run_alone("tiny_limits_scenario", |_| {});
}

#[test]
#[ignore = "not a test: run alone by tiny_limits_while_waits_begin_blocking"]
fn tiny_limits_scenario() {
    if !common::alone("tiny_limits_scenario") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (held, free) = (dir.path().join("HELD"), dir.path().join("FREE"));
    let holder = Holding::start("hold", &held);
    times_out_on_time(&held, Duration::from_millis(20));
    assert!(timer_thread().is_some());
    let limits = [1, 1_000, 10_000, 100_000, 1_000_000, 5_000_000].map(Duration::from_nanos);
    for round in 0..100 {
        for limit in limits {
            let start = Instant::now();
            let err = waiting(limit).lock(&held).unwrap_err();
            let took = start.elapsed();
            assert!(matches!(err, LockError::TimedOut { .. }), "{err:?}");
            assert!(
                took < limit + Duration::from_millis(50),
                "round {round}: {limit:?} took {took:?}"
            );
            // This thread's last wait found the lock held: this one begins
            // blocking, and still takes the free lock.
            let lock = waiting(limit).lock(&free);
            assert!(lock.is_ok(), "round {round}, {limit:?}: {lock:?}");
            drop(lock);
            assert_eq!(pending_realtime_signals(), 0, "round {round}");
        }
    }
    holder.release();
}

/// The real-time signals pending for this thread or the process.
fn pending_realtime_signals() -> usize {
    // SAFETY: a zeroed set, filled in by sigpending.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        assert_eq!(libc::sigpending(&mut set), 0);
        (libc::SIGRTMIN()..=libc::SIGRTMAX())
            .filter(|&signal| libc::sigismember(&set, signal) == 1)
            .count()
    }
}

/// A wait that begins blocking makes no try that cannot block: with every
/// `flock(LOCK_NB)` made to fail (a seccomp filter, `EDOM`), a wait for a
/// lock held by another process still takes it at the release.
#[test]
#[cfg(target_arch = "x86_64")]
fn a_wait_that_begins_blocking_makes_no_try_that_cannot_block() {
    common::run_alone("no_try_scenario", |_| {});
}

#[test]
#[cfg(target_arch = "x86_64")]
#[ignore = "not a test: run alone by a_wait_that_begins_blocking_makes_no_try_that_cannot_block"]
fn no_try_scenario() {
    if !common::alone("no_try_scenario") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (other, path) = (dir.path().join("OTHER"), dir.path().join("LOCK"));
    let other_holder = Holding::start("hold", &other);
    let holder = Holding::start("hold", &path);
    times_out_on_time(&other, Duration::from_millis(20));
    forbid_flock_that_cannot_block();
    // The filter works: a lock without a wait tries, and fails.
    assert!(LockFile::lock(dir.path().join("THIRD")).is_err());
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        holder.release();
    });
    let lock = waiting(Duration::from_secs(20)).lock(&path);
    releaser.join().unwrap();
    assert!(lock.is_ok(), "the wait made a LOCK_NB try: {lock:?}");
    other_holder.release();
}

/// Makes every `flock` with `LOCK_NB` of this process fail with `EDOM`, from
/// now on (seccomp, all threads).
#[cfg(target_arch = "x86_64")]
fn forbid_flock_that_cannot_block() {
    const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
    let statement = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let load = |offset| statement(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0, 0, offset);
    let equal = |k, jt, jf| statement(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, jt, jf, k);
    let any_bit = |k, jt, jf| statement(libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K, jt, jf, k);
    let give = |k| statement(libc::BPF_RET | libc::BPF_K, 0, 0, k);
    // seccomp_data: nr at 0, arch at 4, args[1] at 24.
    let filter = [
        load(4),
        equal(AUDIT_ARCH_X86_64, 0, 5),
        load(0),
        equal(libc::SYS_flock as u32, 0, 3),
        load(24),
        any_bit(libc::LOCK_NB as u32, 0, 1),
        give(libc::SECCOMP_RET_ERRNO | libc::EDOM as u32),
        give(libc::SECCOMP_RET_ALLOW),
    ];
    let program = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut _,
    };
    // SAFETY: a valid filter program, installed for every thread.
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        let rc = libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_TSYNC,
            &program,
        );
        assert_eq!(rc, 0);
    }
}

/// A child forked after its parent's waits blocked has no timer thread, and
/// does not take itself for a process whose waits block lately: its wait
/// for a free lock tries, and starts no thread.
#[test]
fn a_forked_childs_wait_for_a_free_lock_starts_no_thread() {
    common::run_alone("forked_free_lock_scenario", |_| {});
}

#[test]
#[ignore = "not a test: run alone by a_forked_childs_wait_for_a_free_lock_starts_no_thread"]
fn forked_free_lock_scenario() {
    if !common::alone("forked_free_lock_scenario") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (held, free) = (dir.path().join("HELD"), dir.path().join("FREE"));
    let holder = Holding::start("hold", &held);
    times_out_on_time(&held, Duration::from_millis(20));
    assert!(timer_thread().is_some());
    // SAFETY: the child locks, counts its threads and exits.
    let child = unsafe { libc::fork() };
    if child == 0 {
        let threads = || std::fs::read_dir("/proc/self/task").unwrap().count();
        let before = threads();
        let locked = waiting(Duration::from_secs(5)).lock(&free).is_ok();
        let code = match (locked, before, threads()) {
            (true, 1, 1) => 0,
            (true, _, _) => 7,
            _ => 8,
        };
        unsafe { libc::_exit(code) };
    }
    let code = common::exit_code_within(child, Duration::from_secs(30), "the child");
    holder.release();
    assert_eq!(
        code, 0,
        "the child's wait for a free lock started a thread (7) or failed (8)"
    );
}

/// A child forked after its parent has waited (and so has a deadline thread
/// the child does not) keeps its own limits: its wait ends on time.
#[test]
fn a_forked_child_keeps_its_own_limits() {
    common::run_alone("forked_child_limits_scenario", |_| {});
}

#[test]
#[ignore = "not a test: run alone by a_forked_child_keeps_its_own_limits"]
fn forked_child_limits_scenario() {
    if !common::alone("forked_child_limits_scenario") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let holder = Holding::start("hold", &path);
    let _ = waiting(Duration::from_millis(50)).lock(&path).unwrap_err();
    // SAFETY: the child only waits, measures and exits.
    let child = unsafe { libc::fork() };
    if child == 0 {
        let start = Instant::now();
        let code = match waiting(Duration::from_millis(300)).lock(&path) {
            Err(LockError::TimedOut { .. }) if start.elapsed() < Duration::from_secs(3) => 0,
            Err(LockError::TimedOut { .. }) => 2,
            _ => 1,
        };
        unsafe { libc::_exit(code) };
    }
    let code = common::exit_code_within(child, Duration::from_secs(10), "the child's wait");
    holder.release();
    assert_eq!(
        code, 0,
        "the child's wait ended late (2) or not by timing out (1)"
    );
}

/// A program with no room left in the user's queue of pending signals
/// (`RLIMIT_SIGPENDING`): a thread whose timer was made before still has
/// its waits end on time (the timer's queue entry was set aside when it was
/// made); a thread that cannot make one waits by watching, on time too.
#[test]
fn a_full_queue_of_pending_signals_still_ends_waits_on_time() {
    common::run_alone("full_signal_queue_scenario", |_| {});
}

#[test]
#[ignore = "not a test: run alone by a_full_queue_of_pending_signals_still_ends_waits_on_time"]
fn full_signal_queue_scenario() {
    if !common::alone("full_signal_queue_scenario") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let holder = Holding::start("hold", &path);
    // This thread's timer is made now, while the queue has room.
    let _ = waiting(Duration::from_millis(20)).lock(&path).unwrap_err();
    let mut none = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_SIGPENDING, &mut none) },
        0
    );
    none.rlim_cur = 0;
    assert_eq!(
        unsafe { libc::setrlimit(libc::RLIMIT_SIGPENDING, &none) },
        0
    );
    times_out_on_time(&path, Duration::from_millis(200));
    // A new thread can make no timer now.
    let other = path.clone();
    std::thread::spawn(move || times_out_on_time(&other, Duration::from_millis(200)))
        .join()
        .unwrap();
    holder.release();
}

/// A program that installs its own handler on the crate's signal while a
/// wait is blocked: the crate sends nothing more, so the program's handler
/// never runs; that wait can then only end when the lock is released (it
/// does, with the lock), and the next wait watches the file and ends on
/// time.
#[test]
fn a_signal_taken_over_during_a_wait_is_never_sent_again() {
    common::run_alone("taken_over_during_a_wait_scenario", |_| {});
}

#[test]
#[ignore = "not a test: run alone by a_signal_taken_over_during_a_wait_is_never_sent_again"]
fn taken_over_during_a_wait_scenario() {
    if !common::alone("taken_over_during_a_wait_scenario") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let holder = Holding::start("hold", &path);
    let blocked = {
        let path = path.clone();
        std::thread::spawn(move || waiting(Duration::from_millis(300)).lock(&path))
    };
    std::thread::sleep(Duration::from_millis(100)); // blocked in flock now
    let crates = crates_signal();
    take_signal(crates);
    std::thread::sleep(Duration::from_millis(700)); // past the wait's limit
    assert_eq!(program_signals(), 0, "the program's handler ran");
    assert!(!blocked.is_finished(), "ended without its signal?");
    holder.release();
    let lock = blocked.join().unwrap().expect("the lock, at the release");
    drop(lock);
    let holder = Holding::start("hold", &path);
    times_out_on_time(&path, Duration::from_millis(300));
    holder.release();
    assert_eq!(program_signals(), 0, "the program's handler ran");
}

/// A program that collects `SIGRTMAX` itself (blocked in every thread and
/// read from a `signalfd`, at its default disposition): the crate takes
/// another signal, and every `SIGRTMAX` sent to the process still reaches
/// the program's `signalfd`, also while a wait is blocked.
#[test]
fn a_signal_the_program_collects_with_signalfd_is_left_to_it() {
    run_alone_blocking("signalfd_scenario", libc::SIGRTMAX());
}

#[test]
#[ignore = "not a test: run alone by a_signal_the_program_collects_with_signalfd_is_left_to_it"]
fn signalfd_scenario() {
    if !common::alone("signalfd_scenario") {
        return;
    }
    // Blocked in every thread since the process began (`run_alone_blocking`).
    let max = libc::SIGRTMAX();
    let fd = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, max);
        libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK)
    };
    assert!(fd >= 0);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let holder = Holding::start("hold", &path);
    // Threads inherit the mask: this one blocks SIGRTMAX too.
    let waiter = {
        let path = path.clone();
        std::thread::spawn(move || waiting(Duration::from_millis(500)).lock(&path))
    };
    std::thread::sleep(Duration::from_millis(100));
    for _ in 0..20 {
        assert_eq!(unsafe { libc::kill(libc::getpid(), max) }, 0);
    }
    assert!(matches!(
        waiter.join().unwrap(),
        Err(LockError::TimedOut { .. })
    ));
    holder.release();
    assert_eq!(realtime_handler(max), libc::SIG_DFL, "SIGRTMAX taken");
    let mut read = 0;
    let mut info = [0u8; 128];
    while unsafe { libc::read(fd, info.as_mut_ptr().cast(), info.len()) } == 128 {
        read += 1;
    }
    assert_eq!(read, 20, "the program's signalfd lost signals");
}

/// On a FUSE file system (bindfs), whose server may take lock requests
/// over, a waiter watches the file instead of blocking in `flock`, and
/// still gets the lock at the release; also just after a wait on a local
/// file system blocked in `flock` (the crate keeps the mounts it found
/// local, and waits begin blocking at once while waits block lately).
#[test]
fn on_fuse_a_waiter_watches_instead_of_blocking_in_flock() {
    let backing = tempfile::tempdir().unwrap();
    let mount = tempfile::tempdir().unwrap();
    let mounted = Command::new("bindfs")
        .arg(backing.path())
        .arg(mount.path())
        .output();
    if !mounted.as_ref().is_ok_and(|out| out.status.success()) {
        common::not_run(
            "on_fuse_a_waiter_watches_instead_of_blocking_in_flock",
            &format!("bindfs: {mounted:?}"),
        );
        return;
    }
    struct Unmount<'a>(&'a std::path::Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(mount.path());
    let local = backing.path().join("LOCAL");
    let held_here = LockFile::lock(&local).unwrap();
    times_out_on_time(&local, Duration::from_millis(100));
    drop(held_here);
    let path = mount.path().join("LOCK");
    let holder = Holding::start("hold", &path);
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let waiter = {
        let path = path.clone();
        std::thread::spawn(move || {
            tid_tx.send(gettid()).unwrap();
            waiting(Duration::from_secs(30)).lock(&path).unwrap()
        })
    };
    let tid = tid_rx.recv().unwrap();
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(500) {
        assert_ne!(
            blocked_in(tid),
            Some(libc::SYS_flock),
            "blocked in flock on FUSE"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    holder.release();
    drop(waiter.join().unwrap());
}
