//! Taking turns: every participant loops "take the lock, hold it 50 µs,
//! release it, wait for it again", so that at any time one holds the lock
//! and the others wait. It shows how waiting scales with the number of
//! waiters: handoffs per second and the CPU the participants burn, against
//! blocking `flock(LOCK_EX)` doing the same work in the same run.
//!
//! Three floors block in `flock(LOCK_EX)`, which cannot time out. The
//! target one makes the same calls as the crate's lock and release (the
//! checks of the file and the path, the previous holder's line, the release
//! mark) and the two checks a wait with a time limit must make before it
//! blocks (on Linux: that the signal that will end it is still the crate's,
//! and not blocked in this thread; without them a wait could outlast its
//! limit), so that the ratio to it is the cost of keeping the time. The
//! second makes the same calls without those two checks, so that their
//! cost shows; the bare one makes only open, lock, write, unlock and close.
//!
//! Each configuration runs in fresh child processes of this bench (one
//! process with all the threads, or one process per participant). The
//! participants take turns for a warm-up ([`WARM_UP`]) before the timed
//! window, so that the window measures turns taken in the steady state,
//! not a process's first waits (its first wait that blocks starts the
//! crate's timer thread, and a new thread unsettles the scheduler's
//! placement for a few hundred milliseconds; see BENCHMARKS.md). Each
//! child reports its turns, its handoffs (turns that took the lock from
//! another participant, counted through a shared memory word) and its own
//! CPU time (`getrusage(RUSAGE_SELF)`) over the timed window only.
//!
//! These machines are virtual and shared: when the hypervisor runs another
//! guest on our cores (steal time, in `/proc/stat`), handoffs stall for
//! milliseconds at a time and a round's ratios scatter by tens of percent,
//! or by orders of magnitude. A round during which more than
//! [`STEAL_ALLOWED`] of the machine's CPU time was stolen is run again (all
//! its kinds, up to [`RERUNS`] times), and the report says how many were.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pidlockfile::{LockFile, LockOptions};

#[cfg(target_os = "linux")]
use crate::common::calls::time_limit_checks;
use crate::common::calls::{open_checked, path_inode};
use crate::common::median;
use crate::unix::monotonic_ns;

/// How long the lock is held on each turn.
const HOLD: Duration = Duration::from_micros(50);
/// Waiter counts (participants are one more: the holder).
const SIZES: [usize; 4] = [1, 4, 16, 64];
/// The waiting limit the crate's participants pass: long enough never to
/// expire, so that the comparison is with a waiter that has a timeout at all.
const LIMIT: Duration = Duration::from_secs(60);
/// How long the participants take turns before the timed window.
const WARM_UP: Duration = Duration::from_millis(300);
/// The share of the machine's CPU time the hypervisor may take (steal
/// time) during a round before the round is run again.
const STEAL_ALLOWED: f64 = 0.01;
/// How many times a round is run again at most.
const RERUNS: usize = 4;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// Blocking `flock`, with the crate's other calls and checks.
    Floor,
    Crate,
    /// Blocking `flock`, with only open, write, unlock and close.
    Bare,
    /// Blocking `flock`, with the crate's other calls but not the checks
    /// that the time limit needs.
    Unchecked,
}

/// The kinds in the order of a round's tallies.
const KINDS: [Kind; 4] = [Kind::Floor, Kind::Crate, Kind::Bare, Kind::Unchecked];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Floor => "floor",
            Kind::Crate => "crate",
            Kind::Bare => "bare",
            Kind::Unchecked => "unchecked",
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Threads,
    Processes,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Threads => "threads",
            Mode::Processes => "processes",
        }
    }
}

#[derive(Default, Clone, Copy)]
struct Tally {
    turns: u64,
    handoffs: u64,
    cpu_ns: u64,
    wall_ns: u64,
}

fn process_cpu_ns() -> u64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) }, 0);
    let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
    ns(usage.ru_utime) + ns(usage.ru_stime)
}

fn sleep_until(at_ns: u64) {
    let now = monotonic_ns();
    if at_ns > now {
        std::thread::sleep(Duration::from_nanos(at_ns - now));
    }
}

/// A floor's turn, blocking in `flock(LOCK_EX)`, which cannot time out.
/// The same-calls floors make the calls of the crate's lock and release
/// (see `common::calls` and benches/lock), the target one also the checks
/// a wait with a time limit makes; the bare one makes only open, lock,
/// `ftruncate`, `pwrite`, unlock and close.
struct FloorLock {
    fd: i32,
    /// The same-calls floor marks its release, as the crate does.
    marks_release: bool,
}

impl FloorLock {
    fn lock(path: &std::ffi::CStr, content: &[u8], kind: Kind) -> FloorLock {
        unsafe {
            if kind == Kind::Bare {
                let fd = libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
                assert!(fd >= 0);
                assert_eq!(libc::flock(fd, libc::LOCK_EX), 0);
                assert_eq!(libc::ftruncate(fd, content.len() as libc::off_t), 0);
                let n = libc::pwrite(fd, content.as_ptr().cast(), content.len(), 0);
                assert_eq!(n, content.len() as isize);
                return FloorLock {
                    fd,
                    marks_release: false,
                };
            }
            let (fd, ino) = open_checked(path);
            #[cfg(target_os = "linux")]
            if kind == Kind::Floor {
                time_limit_checks(libc::SIGRTMAX());
            }
            assert_eq!(libc::flock(fd, libc::LOCK_EX), 0);
            assert_eq!(path_inode(path), ino);
            let mut previous = [0u8; 96];
            assert!(libc::pread(fd, previous.as_mut_ptr().cast(), previous.len(), 0) >= 0);
            assert!(libc::getpid() > 0);
            let n = libc::pwrite(fd, content.as_ptr().cast(), content.len(), 0);
            assert_eq!(n, content.len() as isize);
            assert_eq!(libc::ftruncate(fd, content.len() as libc::off_t), 0);
            FloorLock {
                fd,
                marks_release: true,
            }
        }
    }
}

impl Drop for FloorLock {
    fn drop(&mut self) {
        unsafe {
            if self.marks_release {
                assert!(libc::getpid() > 0);
                let mark = b"released 4242\n";
                libc::pwrite(self.fd, mark.as_ptr().cast(), mark.len(), 16);
            }
            libc::flock(self.fd, libc::LOCK_UN);
            libc::close(self.fd);
        }
    }
}

/// A child's part: `threads` participants take turns until the end time the
/// parent sends, then the child prints its tally.
pub fn child(args: &[String]) {
    let kind = match args[0].as_str() {
        "floor" => Kind::Floor,
        "bare" => Kind::Bare,
        "unchecked" => Kind::Unchecked,
        _ => Kind::Crate,
    };
    let threads: usize = args[1].parse().unwrap();
    let path = PathBuf::from(&args[2]);
    let shared = PathBuf::from(&args[3]);
    // A 50 µs sleep, not the default 50 µs of timer slack on top of it.
    #[cfg(target_os = "linux")]
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1, 0, 0, 0)
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&shared)
        .unwrap();
    // SAFETY: maps the shared file's first word, which outlives every use.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            8,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    assert_ne!(map, libc::MAP_FAILED);
    let last: &'static AtomicU64 = unsafe { &*(map as *const AtomicU64) };

    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).unwrap();
    let mut times = line.split_whitespace().map(|t| t.parse::<u64>().unwrap());
    let (begin, start, end) = (
        times.next().unwrap(),
        times.next().unwrap(),
        times.next().unwrap(),
    );

    let content = format!(" {};bench\n", std::process::id()).into_bytes();
    let participants: Vec<_> = (0..threads)
        .map(|i| {
            let (path, content) = (path.clone(), content.clone());
            let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
            let me = ((std::process::id() as u64) << 16) | (i as u64 + 1);
            std::thread::spawn(move || {
                let (mut turns, mut handoffs) = (0u64, 0u64);
                sleep_until(begin);
                loop {
                    let guard: Box<dyn Send> = match kind {
                        Kind::Floor | Kind::Bare | Kind::Unchecked => {
                            Box::new(FloorLock::lock(&c_path, &content, kind))
                        }
                        Kind::Crate => {
                            Box::new(LockOptions::new().wait(LIMIT).lock(&path).unwrap())
                        }
                    };
                    let now = monotonic_ns();
                    if now >= end {
                        break;
                    }
                    let handoff = last.swap(me, Ordering::SeqCst) != me;
                    // Counted from the window's start: the warm-up's turns
                    // are not.
                    if now >= start {
                        turns += 1;
                        handoffs += u64::from(handoff);
                    }
                    std::thread::sleep(HOLD);
                    drop(guard);
                }
                (turns, handoffs)
            })
        })
        .collect();
    sleep_until(start);
    let cpu = process_cpu_ns();
    let mut tally = Tally::default();
    for participant in participants {
        let (turns, handoffs) = participant.join().unwrap();
        tally.turns += turns;
        tally.handoffs += handoffs;
    }
    tally.cpu_ns = process_cpu_ns() - cpu;
    writeln!(out, "{} {} {}", tally.turns, tally.handoffs, tally.cpu_ns).unwrap();
}

/// Runs one configuration for `warm_up` and then `window`, and sums what
/// its children report of the window.
fn run(
    kind: Kind,
    mode: Mode,
    waiters: usize,
    dir: &Path,
    warm_up: Duration,
    window: Duration,
) -> Tally {
    let path = dir.join("TURNS.lock");
    let shared = dir.join("TURNS.shared");
    drop(LockFile::lock(&path).unwrap());
    std::fs::write(&shared, [0u8; 8]).unwrap();
    let participants = waiters + 1;
    let (children, threads) = match mode {
        Mode::Threads => (1, participants),
        Mode::Processes => (participants, 1),
    };
    let mut spawned: Vec<Child> = (0..children)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .arg("--turns")
                .arg(kind.name())
                .arg(threads.to_string())
                .arg(&path)
                .arg(&shared)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut readers: Vec<_> = spawned
        .iter_mut()
        .map(|child| BufReader::new(child.stdout.take().unwrap()))
        .collect();
    let mut line = String::new();
    for reader in &mut readers {
        line.clear();
        reader.read_line(&mut line).unwrap();
        assert_eq!(line, "ready\n");
    }
    let begin = monotonic_ns() + 20_000_000;
    let start = begin + warm_up.as_nanos() as u64;
    let end = start + window.as_nanos() as u64;
    for child in &mut spawned {
        writeln!(child.stdin.as_mut().unwrap(), "{begin} {start} {end}").unwrap();
    }
    let mut tally = Tally {
        wall_ns: end - start,
        ..Tally::default()
    };
    for (child, reader) in spawned.iter_mut().zip(&mut readers) {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let numbers: Vec<u64> = line
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect();
        tally.turns += numbers[0];
        tally.handoffs += numbers[1];
        tally.cpu_ns += numbers[2];
        assert!(child.wait().unwrap().success());
    }
    tally
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn main(dir: &Path) {
    let rounds: usize = env_or("PIDLOCKFILE_BENCH_TURN_ROUNDS", 3);
    let window = Duration::from_millis(env_or("PIDLOCKFILE_BENCH_TURN_MS", 500));
    let warm_up = Duration::from_millis(env_or(
        "PIDLOCKFILE_BENCH_TURN_WARM_MS",
        WARM_UP.as_millis() as u64,
    ));
    let sizes: Vec<usize> = std::env::var("PIDLOCKFILE_BENCH_TURN_SIZES")
        .ok()
        .map(|s| s.split(',').map(|n| n.parse().unwrap()).collect())
        .unwrap_or(SIZES.to_vec());
    let modes: Vec<Mode> = [Mode::Threads, Mode::Processes]
        .into_iter()
        .filter(|mode| {
            std::env::var("PIDLOCKFILE_BENCH_TURN_AS").map_or(true, |m| m == mode.name())
        })
        .collect();
    let mut configs = Vec::new();
    for &mode in &modes {
        for &waiters in &sizes {
            configs.push((mode, waiters));
        }
    }
    // results[config][round] = the tallies of KINDS, run back to back in a
    // rotating order, so that a noisy neighbour slows all alike.
    let mut results = vec![Vec::new(); configs.len()];
    let (mut rerun, mut kept_with_steal) = (0, 0);
    for round in 0..rounds {
        for (i, &(mode, waiters)) in configs.iter().enumerate() {
            let mut kinds = KINDS;
            kinds.rotate_left((round + i) % KINDS.len());
            let mut tallies = [Tally::default(); KINDS.len()];
            for attempt in 0..=RERUNS {
                let (stolen, began) = (stolen_ticks(), Instant::now());
                for kind in kinds {
                    let at = KINDS.iter().position(|&k| k == kind).unwrap();
                    tallies[at] = run(kind, mode, waiters, dir, warm_up, window);
                }
                match stolen_share(stolen, began.elapsed()) {
                    Some(share) if share > STEAL_ALLOWED && attempt < RERUNS => rerun += 1,
                    Some(share) if share > STEAL_ALLOWED => kept_with_steal += 1,
                    _ => break,
                }
            }
            results[i].push(tallies);
        }
    }

    println!(
        "\n### Taking turns: each participant locks, holds {} µs, releases, waits again\n",
        HOLD.as_micros()
    );
    println!(
        "{rounds} rounds of {} ms per configuration, each after {} ms of turns not counted; medians over rounds; ratios are medians of per-round ratios. Rounds run again because the hypervisor took more than {:.0}% of the CPU time during them (steal time): {rerun}; kept after {RERUNS} reruns: {kept_with_steal}. The floor blocks in flock(LOCK_EX) and makes the crate's other calls, with the two checks a wait with a time limit makes before it blocks (the signal's handler, the thread's mask); the unchecked floor makes the same calls without those checks; the bare floor blocks in flock(LOCK_EX) with only open, write, unlock and close. A handoff is a turn that took the lock from another participant; CPU is the participants' own (user + system) over the window.\n",
        window.as_millis(),
        warm_up.as_millis(),
        STEAL_ALLOWED * 100.0,
    );
    println!("| waiters | as | floor handoffs/s | pidlockfile handoffs/s | ratio | floor CPU/handoff | pidlockfile CPU/handoff | ratio | floor turns/s | pidlockfile turns/s | bare floor handoffs/s | bare floor CPU/handoff | ratios to the bare floor | ratios to the unchecked floor | target ≥ 0.9x handoffs, ≤ 1.1x CPU/handoff |");
    println!("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    for (i, &(mode, waiters)) in configs.iter().enumerate() {
        let per_second = |t: &Tally| t.handoffs as f64 * 1e9 / t.wall_ns as f64;
        let cpu_per = |t: &Tally| t.cpu_ns as f64 / 1000.0 / t.handoffs.max(1) as f64;
        let turns = |t: &Tally| t.turns as f64 * 1e9 / t.wall_ns as f64;
        let rounds = &results[i];
        // Indices in KINDS: 0 floor, 1 crate, 2 bare, 3 unchecked.
        let med = |f: &dyn Fn(&Tally) -> f64, which: usize| {
            median(rounds.iter().map(|r| f(&r[which])).collect())
        };
        let ratio = |f: &dyn Fn(&Tally) -> f64, floor: usize| {
            median(rounds.iter().map(|r| f(&r[1]) / f(&r[floor])).collect())
        };
        let (rate, cpu) = (ratio(&per_second, 0), ratio(&cpu_per, 0));
        let met = rate >= 0.9 && cpu <= 1.1;
        println!(
            "| {waiters} | {} | {:.0} | {:.0} | {rate:.2}x | {:.1} µs | {:.1} µs | {cpu:.2}x | {:.0} | {:.0} | {:.0} | {:.1} µs | {:.2}x, {:.2}x | {:.2}x, {:.2}x | {} |",
            mode.name(),
            med(&per_second, 0),
            med(&per_second, 1),
            med(&cpu_per, 0),
            med(&cpu_per, 1),
            med(&turns, 0),
            med(&turns, 1),
            med(&per_second, 2),
            med(&cpu_per, 2),
            ratio(&per_second, 2),
            ratio(&cpu_per, 2),
            ratio(&per_second, 3),
            ratio(&cpu_per, 3),
            if met { "met" } else { "MISSED" },
        );
    }
}

/// The CPU time the hypervisor has taken from this machine so far (steal
/// time, in clock ticks: the eighth number of `/proc/stat`'s first line),
/// where the system says.
fn stolen_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines().next()?.split_whitespace().nth(8)?.parse().ok()
}

/// The share of the machine's CPU time over `elapsed` that was stolen since
/// `before` (from [`stolen_ticks`]).
fn stolen_share(before: Option<u64>, elapsed: Duration) -> Option<f64> {
    // SAFETY: sysconf only reads.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let stolen = stolen_ticks()?.checked_sub(before?)? as f64;
    Some(stolen / (elapsed.as_secs_f64() * ticks_per_second * cores))
}
