//! The Unix measurements of benches/wait.rs.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{bench_dir, machine, median};
use pidlockfile::{LockError, LockFile, LockOptions};

const SAMPLES: usize = 40;
const CPU_WAIT: Duration = Duration::from_secs(5);

#[derive(Clone, Copy)]
enum Waiter {
    Floor,
    Crate,
    Poll(Duration),
}

impl Waiter {
    fn name(self) -> String {
        match self {
            Waiter::Floor => "floor: blocking flock(LOCK_EX)".to_owned(),
            Waiter::Crate => "pidlockfile: LockOptions::wait".to_owned(),
            Waiter::Poll(nap) => format!("polling: try, sleep {} ms", nap.as_millis()),
        }
    }

    /// Waits up to `limit` for the lock; returns the guard to drop to release.
    fn wait(self, path: &Path, limit: Duration) -> Option<Box<dyn Send>> {
        match self {
            Waiter::Floor => {
                let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
                let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
                assert!(fd >= 0);
                assert_eq!(unsafe { libc::flock(fd, libc::LOCK_EX) }, 0);
                Some(Box::new(Fd(fd)))
            }
            Waiter::Crate => match LockOptions::new().wait(limit).lock(path) {
                Ok(lock) => Some(Box::new(lock)),
                Err(LockError::TimedOut { .. }) => None,
                Err(e) => panic!("{e}"),
            },
            Waiter::Poll(nap) => {
                let start = Instant::now();
                loop {
                    match LockFile::lock(path) {
                        Ok(lock) => return Some(Box::new(lock)),
                        Err(LockError::Locked { .. }) if start.elapsed() < limit => {
                            std::thread::sleep(nap)
                        }
                        Err(LockError::Locked { .. }) => return None,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        }
    }
}

struct Fd(i32);

impl Drop for Fd {
    fn drop(&mut self) {
        unsafe {
            libc::flock(self.0, libc::LOCK_UN);
            libc::close(self.0);
        }
    }
}

pub fn monotonic_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

fn thread_cpu_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// The holder process: told to `lock`, it takes the lock and says so; told
/// to `release`, it releases it and says when (CLOCK_MONOTONIC). It re-locks
/// only when told, once the waiter has had its turn: flock is not fair, and
/// a holder that re-locked at once could win against the waiter it woke.
fn holder_process(path: &Path) {
    let mut out = std::io::stdout().lock();
    let mut lock = None;
    for line in std::io::stdin().lock().lines() {
        match line.unwrap().as_str() {
            "lock" => {
                lock = Some(LockFile::lock(path).unwrap());
                writeln!(out, "locked").unwrap();
            }
            "release" => {
                let released_at = monotonic_ns();
                drop(lock.take());
                writeln!(out, "{released_at}").unwrap();
            }
            other => panic!("unknown command {other}"),
        }
        out.flush().unwrap();
    }
}

pub fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    if let Some(at) = args.iter().position(|a| a == "--hold") {
        return holder_process(Path::new(&args[at + 1]));
    }
    if let Some(at) = args.iter().position(|a| a == "--turns") {
        return crate::turns::child(&args[at + 1..]);
    }
    let part = std::env::var("PIDLOCKFILE_BENCH_WAIT").unwrap_or_default();
    let dir = bench_dir();
    let path = dir.path().join("LOCK");
    drop(LockFile::lock(&path).unwrap());
    println!(
        "machine: {}; lock file in {}",
        machine(),
        dir.path().display()
    );
    if part != "turns" {
        handoff_table(&path);
    }
    if part != "handoff" {
        crate::turns::main(dir.path());
    }
}

/// The handoff latency table: one waiter, a holder in another process.
fn handoff_table(path: &Path) {
    let waiters = [
        Waiter::Floor,
        Waiter::Crate,
        Waiter::Poll(Duration::from_millis(1)),
        Waiter::Poll(Duration::from_millis(50)),
    ];
    let latencies = handoff(path, &waiters);
    let cpu = cpu_while_waiting(path, &waiters[1..]);

    println!("\n### Handoff: the holder (another process) releases; a waiter takes the lock\n");
    println!("| waiter | median handoff | 90th percentile | ratio to floor (median) | CPU while waiting {} s | targets |", CPU_WAIT.as_secs());
    println!("| --- | ---: | ---: | ---: | ---: | --- |");
    let floor = median(latencies[0].clone());
    for (i, waiter) in waiters.iter().enumerate() {
        let mut sorted = latencies[i].clone();
        sorted.sort_by(|a, b| a.total_cmp(b));
        let med = median(sorted.clone());
        let p90 = sorted[sorted.len() * 9 / 10];
        let cpu_share = if i == 0 { None } else { Some(cpu[i - 1]) };
        let targets = match waiter {
            Waiter::Crate => format!(
                "median < 1 ms: {}; CPU < 1%: {}",
                if med < 1000.0 { "met" } else { "MISSED" },
                if cpu_share.unwrap() < 1.0 {
                    "met"
                } else {
                    "MISSED"
                }
            ),
            _ => String::new(),
        };
        println!(
            "| {} | {:.0} µs | {:.0} µs | {:.1}x | {} | {targets} |",
            waiter.name(),
            med,
            p90,
            med / floor,
            cpu_share.map_or("0 (asleep in the kernel)".to_owned(), |c| format!(
                "{c:.3}%"
            )),
        );
    }
}

/// Handoff latencies in µs, per waiter, over interleaved samples.
fn handoff(path: &Path, waiters: &[Waiter]) -> Vec<Vec<f64>> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("--hold")
        .arg(path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut to_holder = child.stdin.take().unwrap();
    let mut from_holder = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let mut latencies = vec![Vec::new(); waiters.len()];
    for sample in 0..=SAMPLES {
        for (i, &waiter) in waiters.iter().enumerate() {
            writeln!(to_holder, "lock").unwrap();
            line.clear();
            from_holder.read_line(&mut line).unwrap();
            assert_eq!(line, "locked\n");
            let waiting_path: PathBuf = path.to_owned();
            let thread = std::thread::spawn(move || {
                let guard = waiter.wait(&waiting_path, Duration::from_secs(60)).unwrap();
                let acquired_at = monotonic_ns();
                drop(guard);
                acquired_at
            });
            std::thread::sleep(Duration::from_millis(20)); // the waiter is asleep by now
            writeln!(to_holder, "release").unwrap();
            line.clear();
            from_holder.read_line(&mut line).unwrap();
            let released_at: u64 = line.trim().parse().unwrap();
            let acquired_at = thread.join().unwrap();
            if sample > 0 {
                latencies[i].push((acquired_at.saturating_sub(released_at)) as f64 / 1000.0);
            }
        }
    }
    drop(to_holder);
    child.wait().unwrap();
    latencies
}

/// The CPU each waiter uses while the lock stays held for `CPU_WAIT`, as a
/// percentage of one core; each waits alone, so that no other waiter's opens
/// and closes wake it.
fn cpu_while_waiting(path: &Path, waiters: &[Waiter]) -> Vec<f64> {
    let _held = LockFile::lock(path).unwrap();
    waiters
        .iter()
        .map(|&waiter| {
            let path = path.to_owned();
            std::thread::spawn(move || {
                let (cpu, wall) = (thread_cpu_ns(), Instant::now());
                assert!(
                    waiter.wait(&path, CPU_WAIT).is_none(),
                    "the lock stayed held"
                );
                let used = (thread_cpu_ns() - cpu) as f64;
                100.0 * used / wall.elapsed().as_nanos() as f64
            })
            .join()
            .unwrap()
        })
        .collect()
}
