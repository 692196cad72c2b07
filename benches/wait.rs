//! Waiting for a lock: how soon a waiter gets it once the holder releases it
//! (handoff latency), and how much CPU it burns meanwhile.
//!
//! `cargo bench --bench wait` prints Markdown tables (BENCHMARKS.md records a
//! run). The floor is a waiter blocked in `flock(LOCK_EX)`, woken by the kernel
//! itself; it cannot time out, which is why the crate does not use it. Two
//! fixed-sleep polling loops show what polling trades. With `--features
//! tokio`, `lock_async` on a current-thread runtime waits too, measured
//! against the blocking wait. Then many waiters take turns on one lock, as
//! threads and as processes (`wait/turns.rs`).
//!
//! `PIDLOCKFILE_BENCH_WAIT=handoff` or `=turns` runs one part only;
//! `PIDLOCKFILE_BENCH_TURN_ROUNDS`, `_TURN_MS`, `_TURN_WARM_MS` and
//! `_TURN_SIZES` (say `1,4`) size the second, and `_TURN_AS` (`threads` or
//! `processes`) runs one of its halves.

#[cfg(unix)]
mod common;
#[cfg(unix)]
#[path = "wait/turns.rs"]
mod turns;
#[cfg(unix)]
#[path = "wait/unix.rs"]
mod unix;

#[cfg(unix)]
fn main() {
    unix::main();
}

#[cfg(not(unix))]
fn main() {
    eprintln!("NOT RUN: benches/wait.rs measures a waiter woken by inotify against a blocking flock(2); Unix only");
}
