//! `LockOptions::wait`: waiting for a lock held elsewhere, with a time limit.
#![cfg(unix)]

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::{hostname, try_lock_elsewhere, Holding};
use pidlockfile::{Holder, LockError, LockFile, LockOptions};

helper_process!();

fn waiting(limit: Duration) -> LockOptions {
    common::watch_if_asked();
    let mut options = LockOptions::new();
    options.wait(limit);
    options
}

#[test]
fn a_waiter_gets_the_lock_once_the_holder_releases_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let holder = Holding::start("hold", &path);
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        holder.release()
    });

    let lock = waiting(Duration::from_secs(30)).lock(&path).unwrap();
    assert!(releaser.join().unwrap().success());
    assert_eq!(
        Holder::read(&path).unwrap().unwrap().pid(),
        Some(std::process::id())
    );
    lock.close().unwrap();
}

#[test]
fn a_waiter_gets_the_lock_once_the_holder_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let holder = Holding::start("hold", &path);
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        holder.kill()
    });
    let lock = waiting(Duration::from_secs(30)).lock(&path).unwrap();
    killer.join().unwrap();
    drop(lock);
}

#[test]
fn a_waiter_that_runs_out_of_time_is_told_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let holder = Holding::start("hold", &path);

    let limit = Duration::from_millis(300);
    let err = waiting(limit).lock(&path).unwrap_err();
    let LockError::TimedOut {
        waited,
        holder: Some(named),
        ..
    } = &err
    else {
        panic!("expected a timeout naming the holder, got {err:?}");
    };
    assert!(*waited >= limit, "{waited:?}");
    assert_eq!(named.pid(), Some(holder.pid));
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("cannot lock {path:?}: timed out after 0.")),
        "{message}"
    );
    assert!(
        message.ends_with(&format!(
            ", held by pid {} on host {}",
            holder.pid,
            hostname()
        )),
        "{message}"
    );
    holder.release();
}

#[test]
fn a_waiter_that_timed_out_holds_nothing_afterwards() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let open_on_path = || {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|fd| std::fs::read_link(fd.unwrap().path()).ok())
            .filter(|target| target == &path)
            .count()
    };
    let holder = Holding::start("hold", &path);
    let before = open_on_path();
    let err = waiting(Duration::from_millis(100)).lock(&path).unwrap_err();
    assert!(matches!(err, LockError::TimedOut { .. }), "{err:?}");
    assert_eq!(open_on_path(), before, "the waiter left a descriptor open");

    holder.release();
    // The lock is free at once: nothing of the waiter's holds it or takes it.
    assert_eq!(try_lock_elsewhere(&path).status.code(), Some(0));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(try_lock_elsewhere(&path).status.code(), Some(0));
}

#[test]
fn twenty_waiters_on_one_lock_all_get_it_in_turn_each_exactly_once() {
    const WAITERS: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let path = Arc::new(dir.path().join("LOCK"));
    let holder = Holding::start("hold", &path);
    let inside = Arc::new(AtomicBool::new(false));
    let turns = Arc::new(AtomicUsize::new(0));
    let all_waiting = Arc::new(Barrier::new(WAITERS + 1));

    let waiters: Vec<_> = (0..WAITERS)
        .map(|_| {
            let (path, inside, turns) = (path.clone(), inside.clone(), turns.clone());
            let all_waiting = all_waiting.clone();
            std::thread::spawn(move || {
                all_waiting.wait();
                let lock = waiting(Duration::from_secs(60)).lock(&*path).unwrap();
                assert!(!inside.swap(true, Ordering::SeqCst), "two holders at once");
                let holder = Holder::read(&*path).unwrap().unwrap();
                assert_eq!(holder.pid(), Some(std::process::id()));
                std::thread::sleep(Duration::from_millis(5));
                turns.fetch_add(1, Ordering::SeqCst);
                inside.store(false, Ordering::SeqCst);
                lock.close().unwrap();
            })
        })
        .collect();
    all_waiting.wait();
    std::thread::sleep(Duration::from_millis(100)); // all of them are waiting now
    assert_eq!(turns.load(Ordering::SeqCst), 0);
    holder.release();
    for waiter in waiters {
        waiter.join().unwrap();
    }
    assert_eq!(turns.load(Ordering::SeqCst), WAITERS);
}

/// A wait never ends without a try: the tiniest limit on a free lock takes
/// it, also while another thread of the process waits (for another file),
/// so that the thread joins its process's queue without trying first.
#[test]
fn a_tiny_limit_on_a_free_lock_takes_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let other = dir.path().join("OTHER");
    let holder = Holding::start("hold", &other);
    let waiter = std::thread::spawn(move || waiting(Duration::from_secs(2)).lock(&other));
    std::thread::sleep(Duration::from_millis(100)); // the other thread waits
    for _ in 0..200 {
        for limit in [Duration::from_nanos(1), Duration::from_micros(1)] {
            waiting(limit).lock(&path).unwrap().close().unwrap();
        }
    }
    assert!(!waiter.is_finished(), "the other thread stopped waiting");
    drop(holder);
    let _ = waiter.join().unwrap();
}

#[test]
fn without_wait_a_held_lock_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let _held = LockFile::lock(&path).unwrap();
    for options in [LockOptions::new(), waiting(Duration::ZERO)] {
        // `Locked`, not `TimedOut`: it never entered the wait.
        let err = options.lock(&path).unwrap_err();
        assert!(matches!(err, LockError::Locked { .. }), "{err:?}");
    }
}

/// The inotify instances this process has open, from its descriptors.
#[cfg(target_os = "linux")]
fn inotify_instances() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.unwrap().path()).ok())
        .filter(|target| target.as_os_str() == "anon_inode:inotify")
        .count()
}

again_with_waits_that_watch!();

/// More threads wait at once, each for its own file, than the user may have
/// inotify instances (`fs.inotify.max_user_instances`, 128 by default, for
/// all of the user's programs together): where waits watch the file, the
/// process keeps at most 4, other programs can still make one, and the
/// waiters without an instance still get their locks, retrying on their
/// schedule; where they sleep in `flock`, it keeps none.
#[test]
#[cfg(target_os = "linux")]
fn more_waiters_than_the_users_inotify_instances_keep_at_most_four() {
    const BOUND: usize = 4;
    let user_limit: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_instances")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Above the user's limit where that is the usual 128; each waiter costs
    // three descriptors, so a much larger limit is not exceeded here.
    let waiters = (user_limit + 2).clamp(130, 300);
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<_> = (0..waiters)
        .map(|i| dir.path().join(format!("LOCK{i}")))
        .collect();
    let held: Vec<_> = paths.iter().map(|p| LockFile::lock(p).unwrap()).collect();
    let all_waiting = Arc::new(Barrier::new(waiters + 1));
    let threads: Vec<_> = paths
        .iter()
        .map(|path| {
            let (path, all_waiting) = (path.clone(), all_waiting.clone());
            std::thread::spawn(move || {
                all_waiting.wait();
                waiting(Duration::from_secs(60)).lock(&path).unwrap()
            })
        })
        .collect();
    all_waiting.wait();
    std::thread::sleep(Duration::from_millis(500)); // all of them are waiting now
    let while_waiting = inotify_instances();
    // SAFETY: a new descriptor, closed at once.
    let another = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    let another_error = std::io::Error::last_os_error();
    if another >= 0 {
        unsafe { libc::close(another) };
    }
    let expected = if common::watching() { 1..=BOUND } else { 0..=0 };
    assert!(
        expected.contains(&while_waiting),
        "{waiters} waiting threads keep {while_waiting} inotify instances"
    );
    assert!(another >= 0, "another inotify instance: {another_error}");

    drop(held);
    for thread in threads {
        thread.join().unwrap().close().unwrap();
    }
    assert!(inotify_instances() <= BOUND);
}

/// A thread that releases the lock and at once waits for it again queues
/// behind the thread of its process already waiting, instead of taking the
/// lock back before the waiter, woken by the release, can: two threads
/// taking turns alternate. (A thread preempted between its release and its
/// next wait for longer than the other's hold is not waiting yet, so a few
/// repeats are allowed; without the queueing nearly every turn repeats.)
#[test]
fn a_thread_that_waits_again_queues_behind_a_waiting_thread_of_its_process() {
    let (repeats, order) = take_turns(2, 50, Duration::from_millis(3));
    assert!(repeats <= 5, "{repeats} repeats in turns {order:?}");
}

/// Threads of one process taking turns hand the lock to one another at
/// each release: a thread that releases and waits again queues behind the
/// threads of its process that were waiting, and never takes the lock back
/// ahead of them (with four threads one of the others always waits).
#[test]
fn threads_taking_turns_never_take_the_lock_back_ahead_of_their_process() {
    let (repeats, order) = take_turns(4, 60, Duration::from_millis(2));
    assert_eq!(repeats, 0, "a thread took its lock back: {order:?}");
}

/// `threads` threads each take the lock `turns` times (waiting for it),
/// holding it for `hold`: how many times one took it twice in a row until
/// the first of them had all its turns (then the others go on without it),
/// and the order in which they took it.
fn take_turns(threads: usize, turns: usize, hold: Duration) -> (usize, Vec<usize>) {
    let dir = tempfile::tempdir().unwrap();
    let path = Arc::new(dir.path().join("LOCK"));
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let start = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|me| {
            let (path, order, start) = (path.clone(), order.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                for _ in 0..turns {
                    let lock = waiting(Duration::from_secs(60)).lock(&*path).unwrap();
                    order.lock().unwrap().push(me);
                    std::thread::sleep(hold);
                    drop(lock);
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    let order = std::mem::take(&mut *order.lock().unwrap());
    let mut counts = vec![0; threads];
    let first_done = order
        .iter()
        .position(|&me| {
            counts[me] += 1;
            counts[me] == turns
        })
        .unwrap();
    let repeats = order[..=first_done]
        .windows(2)
        .filter(|w| w[0] == w[1])
        .count();
    (repeats, order)
}

/// A turn handed over is never lost: threads with a long limit take turns
/// while threads with a limit of a millisecond keep joining the queue and
/// timing out in it, so that some leave just as a turn is handed to them
/// (which they must pass on). A lost turn would leave every long waiter
/// asleep until its limit of a minute, with the lock free.
#[test]
fn a_turn_handed_to_a_thread_that_times_out_is_passed_on() {
    const LONG: usize = 3;
    const TURNS: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let path = Arc::new(dir.path().join("LOCK"));
    let done = Arc::new(AtomicBool::new(false));
    let inside = Arc::new(AtomicBool::new(false));
    let short: Vec<_> = (0..3)
        .map(|_| {
            let (path, done, inside) = (path.clone(), done.clone(), inside.clone());
            std::thread::spawn(move || {
                let (mut timed_out, mut locked) = (0, 0);
                while !done.load(Ordering::Relaxed) {
                    match waiting(Duration::from_millis(1)).lock(&*path) {
                        Ok(lock) => {
                            assert!(!inside.swap(true, Ordering::SeqCst), "two holders");
                            inside.store(false, Ordering::SeqCst);
                            locked += 1;
                            drop(lock);
                        }
                        Err(LockError::TimedOut { .. }) => timed_out += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
                (timed_out, locked)
            })
        })
        .collect();
    let started = std::time::Instant::now();
    let long: Vec<_> = (0..LONG)
        .map(|_| {
            let (path, inside) = (path.clone(), inside.clone());
            std::thread::spawn(move || {
                for _ in 0..TURNS {
                    let lock = waiting(Duration::from_secs(60)).lock(&*path).unwrap();
                    assert!(!inside.swap(true, Ordering::SeqCst), "two holders");
                    std::thread::sleep(Duration::from_micros(300));
                    inside.store(false, Ordering::SeqCst);
                    drop(lock);
                }
            })
        })
        .collect();
    for thread in long {
        thread.join().unwrap();
    }
    let took = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let timed_out: usize = short.into_iter().map(|t| t.join().unwrap().0).sum();
    // About a second of turns; a lost turn costs a minute.
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert!(timed_out > 100, "only {timed_out} short waits timed out");
}

/// The lock at `path`, taken by a wait of this thread with `n` threads of
/// this process waiting behind it (each for a minute, and each reporting
/// when it got the lock, and what it held then: see
/// [`common::held_with_threads_behind`]).
fn held_with_waiters_behind(
    path: &Arc<PathBuf>,
    n: usize,
) -> (LockFile, Vec<std::thread::JoinHandle<Got>>) {
    let behind = (0..n)
        .map(|_| {
            let path = path.clone();
            let wait = move || {
                let lock = waiting(Duration::from_secs(60)).lock(&*path).unwrap();
                let got = Got {
                    at: std::time::Instant::now(),
                    at_path: lock.is_at_path().unwrap(),
                    holder: Holder::read(&*path).unwrap().unwrap().pid(),
                };
                drop(lock);
                got
            };
            Box::new(wait) as Box<dyn FnOnce() -> Got + Send>
        })
        .collect();
    common::held_with_threads_behind(path, &waiting(Duration::from_secs(60)), behind)
}

/// What a thread that waited behind a holder of its process got.
struct Got {
    at: std::time::Instant,
    at_path: bool,
    holder: Option<u32>,
}

/// While a thread that took the lock by a wait holds it, the threads of its
/// process waiting behind it sleep in the process's queue: none of them
/// waits in the kernel's queue for the lock (`/proc/locks` lists no blocked
/// request on the file), and the next takes the lock at the release.
#[test]
#[cfg(target_os = "linux")]
fn none_of_a_process_waits_in_the_kernel_while_one_of_its_threads_holds() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let path = Arc::new(dir.path().join("LOCK"));
    drop(LockFile::lock(&*path).unwrap());
    let meta = std::fs::metadata(&*path).unwrap();
    let (major, minor) = (libc::major(meta.dev()), libc::minor(meta.dev()));
    let file = format!("{major:02x}:{minor:02x}:{}", meta.ino());
    let (held, behind) = held_with_waiters_behind(&path, 2);
    std::thread::sleep(Duration::from_millis(200)); // both wait behind now
    let table = std::fs::read_to_string("/proc/locks").unwrap();
    let blocked: Vec<_> = table
        .lines()
        .filter(|line| line.contains("->") && line.split_whitespace().any(|w| w == file))
        .collect();
    drop(held);
    for thread in behind {
        assert!(thread.join().unwrap().at_path);
    }
    assert!(blocked.is_empty(), "waiting in the kernel: {blocked:?}");
}

/// However a tenure ends (the lock dropped in another thread it was moved
/// to, detached, closed, dropped), the thread of its process waiting behind
/// it gets the lock at once.
#[test]
fn every_way_a_tenure_ends_wakes_the_thread_behind_at_once() {
    let dir = tempfile::tempdir().unwrap();
    for how in ["moved", "detached", "closed", "dropped"] {
        let path = Arc::new(dir.path().join(how));
        let (held, mut behind) = held_with_waiters_behind(&path, 1);
        std::thread::sleep(Duration::from_millis(100)); // it waits behind now
        assert!(!behind[0].is_finished(), "{how}: taken while held");
        let released = std::time::Instant::now();
        match how {
            "moved" => std::thread::spawn(move || drop(held)).join().unwrap(),
            "detached" => held.detach(),
            "closed" => held.close().unwrap(),
            _ => drop(held),
        }
        let got = behind.pop().unwrap().join().unwrap();
        let after = got.at.duration_since(released);
        assert!(after < Duration::from_secs(1), "{how}: after {after:?}");
    }
}

/// A thread queued behind a thread of its own process that holds the lock
/// waits for that thread's release even when the lock file is replaced
/// meanwhile (the threads of one process do not both hold "the" lock), and
/// then moves to the file the path names: it never takes the replaced file,
/// and takes the new one only when the other process that took it
/// releases it.
#[test]
fn a_thread_queued_behind_its_process_moves_to_a_replaced_file_at_the_release() {
    let dir = tempfile::tempdir().unwrap();
    let path = Arc::new(dir.path().join("LOCK"));
    let (held, mut behind) = held_with_waiters_behind(&path, 1);
    std::thread::sleep(Duration::from_millis(100)); // it waits behind now
                                                    // Replaced under the holder; the new file is free for 200 ms.
    let new = dir.path().join("LOCK.new");
    std::fs::write(&new, b"").unwrap();
    std::fs::rename(&new, &*path).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !behind[0].is_finished(),
        "the waiter left its process's holder for the new file"
    );
    let other = Holding::start("hold", &path);
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !behind[0].is_finished(),
        "the waiter took the replaced file, or the new one while held"
    );
    other.release();
    let got = behind.pop().unwrap().join().unwrap();
    assert!(
        got.at_path,
        "the waiter holds a file the path no longer names"
    );
    assert_eq!(got.holder, Some(std::process::id()));
}

/// A thread queued behind another of its process keeps its own deadline:
/// it times out when its limit passes, not when the watching thread's does,
/// and the watching thread still gets the lock at the release.
#[test]
fn a_queued_thread_times_out_on_its_own_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let path = Arc::new(dir.path().join("LOCK"));
    let holder = Holding::start("hold", &path);
    let long = {
        let path = path.clone();
        std::thread::spawn(move || waiting(Duration::from_secs(60)).lock(&*path))
    };
    std::thread::sleep(Duration::from_millis(100)); // the long waiter watches
    let start = std::time::Instant::now();
    let err = waiting(Duration::from_millis(200))
        .lock(&*path)
        .unwrap_err();
    let elapsed = start.elapsed();
    let LockError::TimedOut { waited, .. } = err else {
        panic!("expected a timeout, got {err:?}");
    };
    assert!(waited >= Duration::from_millis(200), "{waited:?}");
    assert!(elapsed < Duration::from_secs(30), "waited {elapsed:?}");
    holder.release();
    let lock = long.join().unwrap().unwrap();
    assert_eq!(
        Holder::read(&*path).unwrap().unwrap().pid(),
        Some(std::process::id())
    );
    lock.close().unwrap();
}

/// Threads of one process waiting for a file that is then replaced (renamed
/// over, while its holder keeps it) all move to the new file, and take it in
/// turn, one at a time, while the old file's holder still holds the old one.
#[test]
fn threads_waiting_for_a_replaced_file_move_to_the_new_one_and_take_turns() {
    const WAITERS: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let path = Arc::new(dir.path().join("LOCK"));
    let holder = Holding::start("hold", &path);
    let inside = Arc::new(AtomicBool::new(false));
    let all_waiting = Arc::new(Barrier::new(WAITERS + 1));
    let waiters: Vec<_> = (0..WAITERS)
        .map(|_| {
            let (path, inside, all_waiting) = (path.clone(), inside.clone(), all_waiting.clone());
            std::thread::spawn(move || {
                all_waiting.wait();
                let lock = waiting(Duration::from_secs(60)).lock(&*path).unwrap();
                assert!(!inside.swap(true, Ordering::SeqCst), "two holders at once");
                assert!(
                    lock.is_at_path().unwrap(),
                    "holds a file the path no longer names"
                );
                std::thread::sleep(Duration::from_millis(2));
                inside.store(false, Ordering::SeqCst);
                lock.close().unwrap();
            })
        })
        .collect();
    all_waiting.wait();
    std::thread::sleep(Duration::from_millis(200)); // all of them are waiting now
    let new = dir.path().join("LOCK.new");
    std::fs::write(&new, b"").unwrap();
    std::fs::rename(&new, &*path).unwrap();
    for waiter in waiters {
        waiter.join().unwrap();
    }
    // The old file's holder held it throughout.
    holder.release();
}

/// A child forked while a thread of its parent waits for a lock waits for
/// that lock itself: it does not queue behind the parent's waiting thread,
/// which the child does not have. Run in a fresh copy of this binary, so that
/// no other test's thread is in the middle of anything when it forks.
#[test]
fn a_child_forked_while_a_thread_waits_waits_on_its_own() {
    common::run_alone("forked_waiter_scenario", |_| {});
}

#[test]
#[ignore = "not a test: run alone by a_child_forked_while_a_thread_waits_waits_on_its_own"]
fn forked_waiter_scenario() {
    if !common::alone("forked_waiter_scenario") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = Arc::new(dir.path().join("LOCK"));
    let holder = Holding::start("hold", &path);
    let parent_waiter = {
        let path = path.clone();
        std::thread::spawn(move || drop(waiting(Duration::from_secs(60)).lock(&*path).unwrap()))
    };
    std::thread::sleep(Duration::from_millis(200)); // the parent's thread waits
                                                    // SAFETY: the child only locks, measures and exits.
    let child = unsafe { libc::fork() };
    if child == 0 {
        let start = std::time::Instant::now();
        let code = match waiting(Duration::from_secs(20)).lock(&*path) {
            // Queued behind a thread it does not have, it would only get the
            // lock by the last try at its deadline, after 20 s.
            Ok(_) if start.elapsed() < Duration::from_secs(10) => 0,
            Ok(_) => 2,
            Err(_) => 1,
        };
        unsafe { libc::_exit(code) };
    }
    assert!(child > 0);
    std::thread::sleep(Duration::from_millis(200)); // the child waits
                                                    // Killed, not told to release: the child has a copy of our end of the
                                                    // holder's stdin, so the holder would not see it closed.
    holder.kill();
    parent_waiter.join().unwrap();
    assert_eq!(
        common::exit_code_within(child, Duration::from_secs(60), "the child"),
        0,
        "the child's lock was late (2) or timed out (1)"
    );
}

/// Threads of one process waiting for the shared lock queue together, yet
/// all hold it at once when the writer releases: each, once in, waits until
/// all are in.
#[test]
fn threads_waiting_for_the_shared_lock_all_hold_it_together() {
    const READERS: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let path = Arc::new(dir.path().join("LOCK"));
    let writer = Holding::start("hold", &path);
    let all_in = Arc::new(Barrier::new(READERS));
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (path, all_in) = (path.clone(), all_in.clone());
            std::thread::spawn(move || {
                let mut options = waiting(Duration::from_secs(60));
                options.shared(true);
                let lock = options.lock(&*path).unwrap();
                all_in.wait();
                lock.close().unwrap();
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200)); // all of them are waiting now
    writer.release();
    for reader in readers {
        reader.join().unwrap();
    }
}
