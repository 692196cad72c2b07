//! A small harness for ratios against a floor measured in the same run.
//!
//! Cases run in interleaved rounds (each round runs every case once, in a
//! rotating order), so that a noisy neighbour slows all of them alike; each
//! case's cost is the median over rounds, and its ratio is the median of its
//! per-round ratios to the floor.
#![allow(dead_code)]

#[cfg(unix)]
pub mod calls;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Counts heap allocations, so a bench can report them per operation.
pub struct CountingAllocator;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

pub struct Case<'a> {
    pub name: &'static str,
    pub run: Box<dyn FnMut() + 'a>,
}

pub struct Measured {
    pub name: &'static str,
    pub median_ns: f64,
    pub ratio: f64,
    pub allocations: f64,
    /// Nanoseconds per operation in each round, for ratios to other cases.
    pub per_round_ns: Vec<f64>,
}

/// The median per-round ratio of case `name` to case `floor`.
pub fn ratio_between(results: &[Measured], name: &str, floor: &str) -> f64 {
    let find = |n: &str| {
        results
            .iter()
            .find(|m| m.name == n)
            .expect("a measured case")
    };
    let (case, floor) = (find(name), find(floor));
    median(
        case.per_round_ns
            .iter()
            .zip(&floor.per_round_ns)
            .map(|(c, f)| c / f)
            .collect(),
    )
}

/// Runs `cases` (the first is the floor) for `rounds` rounds of `batch`
/// operations each, after one warm-up round.
pub fn measure(cases: &mut [Case], rounds: usize, batch: usize) -> Vec<Measured> {
    let n = cases.len();
    let mut ns = vec![Vec::with_capacity(rounds); n];
    let mut allocations = vec![0usize; n];
    for round in 0..=rounds {
        for k in 0..n {
            let i = (round + k) % n;
            let before = ALLOCATIONS.load(Ordering::Relaxed);
            let start = Instant::now();
            for _ in 0..batch {
                (cases[i].run)();
            }
            let elapsed = start.elapsed().as_nanos() as f64 / batch as f64;
            if round > 0 {
                ns[i].push(elapsed);
                allocations[i] += ALLOCATIONS.load(Ordering::Relaxed) - before;
            }
        }
    }
    (0..n)
        .map(|i| Measured {
            name: cases[i].name,
            median_ns: median(ns[i].clone()),
            ratio: median((0..rounds).map(|r| ns[i][r] / ns[0][r]).collect()),
            allocations: allocations[i] as f64 / (rounds * batch) as f64,
            per_round_ns: ns[i].clone(),
        })
        .collect()
}

pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// Prints a Markdown table; `target` is the largest ratio allowed, if any.
pub fn report(title: &str, results: &[Measured], targets: &[(&str, f64)]) {
    println!("\n### {title}\n");
    println!("| case | median ns/op | ratio to floor | allocations/op | target |");
    println!("| --- | ---: | ---: | ---: | --- |");
    for m in results {
        let target = match targets.iter().find(|(name, _)| *name == m.name) {
            Some((_, max)) if m.ratio <= *max => format!("≤ {max:.2}x: met"),
            Some((_, max)) => format!("≤ {max:.2}x: MISSED"),
            None => String::new(),
        };
        println!(
            "| {} | {:.0} | {:.2}x | {:.2} | {target} |",
            m.name, m.median_ns, m.ratio, m.allocations
        );
    }
}

/// The machine, for the record.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} cores, Linux {}", kernel.trim())
}

/// A directory on a tmpfs where there is one (`/dev/shm`), else the temp dir;
/// `PIDLOCKFILE_BENCH_DIR` chooses another.
pub fn bench_dir() -> tempfile::TempDir {
    let base = std::env::var_os("PIDLOCKFILE_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| Some(std::path::PathBuf::from("/dev/shm")).filter(|p| p.is_dir()))
        .unwrap_or_else(std::env::temp_dir);
    tempfile::tempdir_in(base).expect("a bench directory")
}
