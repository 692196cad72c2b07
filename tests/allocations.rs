//! Taking and releasing a lock allocates only what the path needs: one
//! `PathBuf` (the content is rendered on the stack, or, for the default
//! template, once per process and kept, as the release mark is). A refusal allocates the
//! error's path and the holder's line. Counted with a counting global allocator.
#![cfg(unix)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use pidlockfile::{LockError, LockFile};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations this thread makes while running `f`.
fn allocations<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOCATIONS.with(Cell::get);
    let result = f();
    (result, ALLOCATIONS.with(Cell::get) - before)
}

#[test]
fn a_lock_and_release_allocate_the_path_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    // The hostname, the default line and the release mark: once per process.
    LockFile::lock(&path).unwrap().close().unwrap();
    for _ in 0..3 {
        let ((), n) = allocations(|| LockFile::lock(&path).unwrap().close().unwrap());
        assert_eq!(n, 1);
    }
}

#[test]
fn a_refusal_allocates_the_errors_path_and_the_holders_line_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let _held = LockFile::lock(&path).unwrap();
    for _ in 0..3 {
        let (result, n) = allocations(|| LockFile::lock(&path));
        assert!(matches!(
            result,
            Err(LockError::Locked {
                holder: Some(_),
                ..
            })
        ));
        assert_eq!(n, 2);
    }
}

/// A wait on a free lock allocates what a lock does, also while waits of
/// the process block in the kernel (the timer thread runs) and this thread's
/// last wait found the lock held, so that the wait begins blocking: its
/// place in the process's queue reuses the one its last wait made.
#[test]
#[cfg(target_os = "linux")]
fn a_wait_on_a_free_lock_allocates_the_path_only_also_while_waits_block() {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let (held, free) = (dir.path().join("HELD"), dir.path().join("FREE"));
    let waiting = |limit| {
        let mut options = pidlockfile::LockOptions::new();
        options.wait(limit);
        options
    };
    LockFile::lock(&free).unwrap().close().unwrap(); // the hostname, once per process
    let holder = LockFile::lock(&held).unwrap();
    for round in 0..3 {
        // This thread waits for a held lock: waits block lately, and its
        // next wait expects the lock held.
        let _ = waiting(Duration::from_millis(2)).lock(&held).unwrap_err();
        let ((), n) = allocations(|| {
            waiting(Duration::from_secs(5))
                .lock(&free)
                .unwrap()
                .close()
                .unwrap()
        });
        assert_eq!(n, 1, "round {round}");
    }
    // A thread that has never waited tries first: it makes no queue (and no
    // timer), also while waits of the process block.
    let _ = waiting(Duration::from_millis(2)).lock(&held).unwrap_err();
    let fresh = std::thread::spawn(move || {
        allocations(|| {
            waiting(Duration::from_secs(5))
                .lock(&free)
                .unwrap()
                .close()
                .unwrap()
        })
        .1
    });
    assert_eq!(fresh.join().unwrap(), 1, "a new thread's first wait");
    drop(holder);
}
