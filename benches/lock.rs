//! Lock and release, and a refused attempt, against the system-call floor.
//!
//! `cargo bench --bench lock` prints Markdown tables (BENCHMARKS.md records a run).

#[cfg(unix)]
mod common;
#[cfg(unix)]
#[path = "lock/unix.rs"]
mod unix;

#[cfg(unix)]
fn main() {
    unix::main();
}

#[cfg(not(unix))]
fn main() {
    eprintln!("NOT RUN: benches/lock.rs measures Unix system calls (open, flock, pwrite) against libc; Unix only");
}
