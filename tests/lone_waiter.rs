//! A lone waiter: a thread that begins to wait while no other thread of its
//! process waits or holds a lock, and blocks at once (its waits lately found
//! the lock held), waits in the kernel's queue without a place in its
//! process's queue for its first 50 ms. The tests here run one at a time
//! ([`serial`]): a wait of another test in this process would make their
//! waits queue.
#![cfg(target_os = "linux")]

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use common::{wait_until_open_in, Holding};
use pidlockfile::{LockFile, LockOptions};

helper_process!();

fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn wait(path: &Path) -> LockFile {
    LockOptions::new()
        .wait(Duration::from_secs(60))
        .lock(path)
        .unwrap()
}

/// Waits of this thread for `path` that find it held by another process, so
/// that its next wait begins blocking; the last one just now.
fn warm_up(path: &Path) {
    for _ in 0..2 {
        let a = Holding::start("hold", path);
        let releasing = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            a.release()
        });
        drop(wait(path));
        assert!(releasing.join().unwrap().success());
    }
}

/// Threads of one process taking turns do not wait alone: a thread that
/// begins to wait while another thread of its process holds a lock queues,
/// so that the holder, when it waits again after its release, queues
/// behind it rather than racing it for the lock in the kernel's queue. A
/// wait for a lock another process holds, just before, does wait alone.
#[test]
fn a_thread_waits_alone_only_while_its_process_holds_no_lock() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.lock");
    // Whether a wait of this thread, begun while the lock `hold` takes is
    // held (it releases 200 ms in, in a thread of its own: long enough that
    // this thread begins its wait while it is held), began alone.
    let alone_while = |hold: &dyn Fn() -> Box<dyn FnOnce() + Send>| {
        warm_up(&path);
        let release = hold();
        let before = pidlockfile::__lone_waits();
        let releasing = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            release();
        });
        drop(wait(&path));
        releasing.join().unwrap();
        pidlockfile::__lone_waits() > before
    };
    let by_another_process = || -> Box<dyn FnOnce() + Send> {
        let a = Holding::start("hold", &path);
        Box::new(move || assert!(a.release().success()))
    };
    let by_this_process = || -> Box<dyn FnOnce() + Send> {
        let lock = LockFile::lock(&path).unwrap();
        Box::new(move || drop(lock))
    };
    for round in 0..3 {
        assert!(
            alone_while(&by_another_process),
            "round {round}: a wait for another process's lock did not wait alone"
        );
        assert!(
            !alone_while(&by_this_process),
            "round {round}: waited alone while this process held the lock"
        );
    }
}

/// A waiter that blocks in the kernel's queue at once, with no
/// place in its process's queue: its waits lately found the lock held (the
/// warm-up below), and no other thread of its process waits. When its
/// `flock` returns with the lock on the file the path no longer names, it
/// checks the path and moves to the new file, which the newcomer N (a thread
/// of its process, which locked the new file before it was put at the path,
/// in one rename, so that the path never names a free file) holds. Returns
/// whether the waiter's `flock` did return with the old file's lock, as it
/// does when the operator acts within the wait's first 50 ms.
fn a_waiter_that_blocks_at_once_never_holds_a_file_the_path_no_longer_names(
    keep_the_old_file: bool,
) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.lock");
    let wait = || LockOptions::new().wait(Duration::from_secs(60)).lock(&path);
    // Waits of this thread that find the lock held, the last one just now.
    for _ in 0..2 {
        let a = Holding::start("hold", &path);
        let releasing = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            a.release()
        });
        drop(wait().unwrap());
        assert!(releasing.join().unwrap().success());
    }
    let a = Holding::start("hold", &path);
    let n_released = Arc::new(AtomicBool::new(false));
    let operating = {
        let (path, n_released) = (path.clone(), n_released.clone());
        std::thread::spawn(move || {
            // N locks the new file once the waiter has begun (it waits alone
            // only while its process holds no lock).
            wait_until_open_in(std::process::id(), &path);
            let staged = path.with_extension("staged");
            let n = LockFile::lock(&staged).unwrap();
            if keep_the_old_file {
                // Moved away: the old file keeps a name elsewhere.
                std::fs::hard_link(&path, path.with_extension("old")).unwrap();
            }
            // Replaced by rename (without the link: deleted and replaced).
            std::fs::rename(&staged, &path).unwrap();
            assert!(a.release().success());
            // The waiter's flock returns now, on the file the path no
            // longer names; it must wait for N.
            std::thread::sleep(Duration::from_millis(300));
            n_released.store(true, Ordering::SeqCst);
            drop(n);
        })
    };
    let takes = pidlockfile::__lone_takes();
    let lock = wait().unwrap();
    let lone_took_the_old_file = pidlockfile::__lone_takes() > takes;
    assert!(
        n_released.load(Ordering::SeqCst),
        "held a file the path no longer names while N held the path's"
    );
    assert!(lock.is_at_path().unwrap());
    operating.join().unwrap();
    lone_took_the_old_file
}

/// Both cases in turn; each is run until the waiter's `flock` returned
/// with the old file's lock (the operator acts within 50 ms: on a loaded
/// machine it may take a few runs), 10 runs at most.
#[test]
fn a_waiter_blocking_at_once_never_holds_a_file_the_path_no_longer_names() {
    let _serial = serial();
    for (name, keep_the_old_file) in [("replaced", false), ("moved away", true)] {
        let exercised = (0..10).any(|_| {
            a_waiter_that_blocks_at_once_never_holds_a_file_the_path_no_longer_names(
                keep_the_old_file,
            )
        });
        assert!(
            exercised,
            "{name}: the lone waiter's flock never took the old file's lock"
        );
    }
}
