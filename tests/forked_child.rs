//! A child forked at any instant can lock and wait itself. A child has only
//! the thread that forked: a lock another thread of the parent held at that
//! instant (the list of held lock files, the pool of inotify instances) or a
//! one-time value it was initializing (the hostname, the default template)
//! would stay taken in the child for good, and the child's first lock would
//! hang. Here the parent forks hundreds of times while its threads lock,
//! release and wait without pause, and each child must lock and wait within
//! its watchdog's time, after dropping its copy of a lock the parent holds
//! with a thread waiting behind it (whose queue is the parent's).
#![cfg(unix)]

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pidlockfile::{LockFile, LockOptions};

const FORKS: usize = 300;

fn waiting(limit: Duration) -> LockOptions {
    let mut options = LockOptions::new();
    options.wait(limit);
    options
}

/// While threads lock, release and wait (in the kernel, where it can), a
/// child forked at any instant locks and waits.
#[test]
fn a_child_forked_at_any_instant_locks_and_waits() {
    common::run_alone("forks_among_busy_threads_scenario", |_| {});
}

/// The same where waits watch the file, with the pool of inotify instances.
#[test]
#[cfg(target_os = "linux")]
fn a_child_forked_at_any_instant_locks_and_waits_watching() {
    common::run_alone("forks_among_busy_threads_scenario", |command| {
        command.env(common::WATCH, "1");
    });
}

#[test]
#[ignore = "not a test: run alone by a_child_forked_at_any_instant_locks_and_waits"]
fn forks_among_busy_threads_scenario() {
    if !common::alone("forks_among_busy_threads_scenario") {
        return;
    }
    common::watch_if_asked();
    let dir = tempfile::tempdir().unwrap();
    let held = dir.path().join("HELD");
    // Taken by a wait, with a thread of this process waiting behind it.
    let behind_path = held.clone();
    let wait_behind = move || drop(waiting(Duration::from_secs(60)).lock(&behind_path).unwrap());
    let (held_lock, behind) = common::held_with_threads_behind(
        &held,
        &waiting(Duration::from_secs(10)),
        vec![Box::new(wait_behind)],
    );
    let stop = Arc::new(AtomicBool::new(false));
    // Threads that each start their first lock (the hostname, the default
    // template) and then lock, release and wait without pause: each on a
    // file of its own, and all four for one file they keep taking from one
    // another, so that waits begin and end all the time.
    let contended = dir.path().join("CONTENDED");
    let busy: Vec<_> = (0..4)
        .map(|i| {
            let (stop, contended) = (stop.clone(), contended.clone());
            let own = dir.path().join(format!("OWN{i}"));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    LockFile::lock(&own).unwrap().close().unwrap();
                    let lock = waiting(Duration::from_secs(10)).lock(&contended).unwrap();
                    std::thread::sleep(Duration::from_micros(20));
                    lock.close().unwrap();
                }
            })
        })
        .collect();
    for round in 0..FORKS {
        // SAFETY: the child locks, waits and exits; the parent reaps it.
        let child = unsafe { libc::fork() };
        if child == 0 {
            // SAFETY: the child's own copy of the parent's lock, dropped
            // once, here; the parent's stays the parent's.
            drop(unsafe { std::ptr::read(&held_lock) });
            let code = in_child(dir.path(), &held);
            unsafe { libc::_exit(code) };
        }
        let what = format!("the child forked in round {round}");
        let code = common::exit_code_within(child, Duration::from_secs(10), &what);
        assert_eq!(code, 0, "{what}");
    }
    stop.store(true, Ordering::Relaxed);
    for thread in busy {
        thread.join().unwrap();
    }
    // The thread behind still gets the lock at the release: no child's drop
    // handed anything over, or released the lock.
    drop(held_lock);
    for thread in behind {
        thread.join().unwrap();
    }
}

/// A forked child's part: a lock of its own, whose file names the child
/// and then its release by the child, and a wait that times out.
fn in_child(dir: &Path, held: &Path) -> i32 {
    let Ok(lock) = LockFile::lock(dir.join("CHILD")) else {
        return 3;
    };
    // The child's own line, not the one its parent rendered before the fork.
    let line = format!(" {};", std::process::id());
    if !std::fs::read(dir.join("CHILD")).is_ok_and(|content| content.starts_with(line.as_bytes())) {
        return 6;
    }
    if lock.close().is_err() {
        return 4;
    }
    // And the child's own release mark.
    let mark = format!("released {}\n", std::process::id());
    let content = std::fs::read(dir.join("CHILD")).unwrap_or_default();
    if !content.ends_with(mark.as_bytes()) {
        return 7;
    }
    match waiting(Duration::from_millis(5)).lock(held) {
        Err(pidlockfile::LockError::TimedOut { .. }) => 0,
        _ => 5,
    }
}
