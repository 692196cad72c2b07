//! `LockOptions::lock_async`: waiting on a tokio runtime, never blocking it,
//! cancelled by dropping the future. Every runtime here is current-thread,
//! so a wait that blocked its thread would stop every other task.
#![cfg(all(feature = "tokio", unix))]

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::{try_lock_elsewhere, Holding};
use pidlockfile::{Holder, LockError, LockFile, LockOptions};

helper_process!();

fn waiting(limit: Duration) -> LockOptions {
    let mut options = LockOptions::new();
    options.wait(limit);
    options
}

/// The tests that wait run one at a time: each counts this process's
/// inotify watches, and a process has at most 4 inotify instances to share.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `future` on a new current-thread runtime, alone among this file's
/// waiting tests.
fn run<F: std::future::Future>(future: F) -> F::Output {
    let _serial = serial();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// How many of this process's descriptors are open on the file `path` names.
fn descriptors_of(path: &Path) -> usize {
    let file = std::fs::metadata(path).unwrap();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|fd| std::fs::metadata(fd.unwrap().path()).ok())
        .filter(|open| open.dev() == file.dev() && open.ino() == file.ino())
        .count()
}

/// How many inotify watches this process has on the file `path` names: the
/// `inotify wd:` lines of its inotify descriptors' fdinfo with that inode.
fn watches_on(path: &Path) -> usize {
    let ino = format!("ino:{:x} ", std::fs::metadata(path).unwrap().ino());
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .map(|fd| fd.unwrap())
        .filter(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|target| target.as_os_str() == "anon_inode:inotify")
        })
        .filter_map(|fd| {
            std::fs::read_to_string(format!(
                "/proc/self/fdinfo/{}",
                fd.file_name().to_str().unwrap()
            ))
            .ok()
        })
        .map(|info| {
            info.lines()
                .filter(|line| line.starts_with("inotify wd:") && line.contains(&ino))
                .count()
        })
        .sum()
}

/// The inotify instances this process has open.
fn inotify_instances() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.unwrap().path()).ok())
        .filter(|target| target.as_os_str() == "anon_inode:inotify")
        .count()
}

/// Waits, on a thread, until this process is waiting for `path`: it has the
/// file open and (on Linux) watched.
fn until_waiting(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while descriptors_of(path) == 0 || (cfg!(target_os = "linux") && watches_on(path) == 0) {
        assert!(Instant::now() < deadline, "never started waiting");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn lock_path() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    (dir, path)
}

/// A task that counts ticks of the runtime's timer keeps counting while the
/// wait goes on. The holder releases only once it has seen 20 ticks: a wait
/// that blocked the runtime's one thread would stop the ticks and never see
/// the release, and time out.
#[test]
fn another_task_keeps_running_while_the_wait_goes_on() {
    let (_dir, path) = lock_path();
    let holder = Holding::start("hold", &path);
    let ticks = Arc::new(AtomicUsize::new(0));
    let seen = ticks.clone();
    let releaser = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        while seen.load(Ordering::Relaxed) < 20 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        holder.release()
    });
    let (lock, ticks_meanwhile) = run(async {
        let counter = ticks.clone();
        // Spawned tasks run only once this one awaits: after the first try.
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(1)).await;
                counter.fetch_add(1, Ordering::Relaxed);
            }
        });
        let lock = waiting(Duration::from_secs(30)).lock_async(&path).await;
        ticker.abort();
        (lock, ticks.load(Ordering::Relaxed))
    });
    assert!(releaser.join().unwrap().success());
    let lock = lock.expect("the release ends the wait");
    assert!(ticks_meanwhile >= 20, "{ticks_meanwhile} ticks");
    assert_eq!(
        Holder::read(&path).unwrap().unwrap().pid(),
        Some(std::process::id())
    );
    lock.close().unwrap();
}

/// A `tokio::time::timeout` that gives up drops the future: at once, the
/// lock file's descriptor is closed and the watch is removed, and the lock
/// is free as soon as its holder releases it. Six waits in a row each get a
/// watch: the instances go back to the pool (which has 4).
#[test]
fn a_timeout_cancels_the_wait_and_leaves_nothing_behind() {
    let (_dir, path) = lock_path();
    let holder = Holding::start("hold", &path);
    run(async {
        for _ in 0..6 {
            let observer = {
                let path = path.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    (descriptors_of(&path), watches_on(&path))
                })
            };
            let options = waiting(Duration::from_secs(60));
            let outcome =
                tokio::time::timeout(Duration::from_millis(300), options.lock_async(&path)).await;
            assert!(outcome.is_err(), "the lock stayed held: {outcome:?}");
            let (descriptors, watches) = observer.await.unwrap();
            assert_eq!(descriptors, 1, "the waiter's descriptor while it waited");
            if cfg!(target_os = "linux") {
                assert_eq!(watches, 1, "the waiter's watch while it waited");
            }
            assert_eq!(descriptors_of(&path), 0, "a descriptor left behind");
            assert_eq!(watches_on(&path), 0, "a watch left behind");
            assert!(
                inotify_instances() <= 4,
                "{} instances",
                inotify_instances()
            );
        }
    });
    holder.release();
    assert_eq!(try_lock_elsewhere(&path).status.code(), Some(0));
}

/// A holder in another process releases while the task waits: it takes the
/// lock, and its watch is gone.
#[test]
fn a_release_wakes_the_waiting_task() {
    let (_dir, path) = lock_path();
    let holder = Holding::start("hold", &path);
    let waited_for = path.clone();
    let releaser = std::thread::spawn(move || {
        until_waiting(&waited_for);
        let status = holder.release();
        (Instant::now(), status)
    });
    let lock = run(waiting(Duration::from_secs(30)).lock_async(&path)).unwrap();
    let taken = Instant::now();
    let (released, status) = releaser.join().unwrap();
    assert!(status.success());
    eprintln!(
        "taken {:?} after the holder's exit was reaped",
        taken.saturating_duration_since(released)
    );
    assert_eq!(
        Holder::read(&path).unwrap().unwrap().pid(),
        Some(std::process::id())
    );
    assert_eq!(watches_on(&path), 0, "the watch outlived the wait");
    assert_eq!(descriptors_of(&path), 1, "the lock's own descriptor only");
    lock.close().unwrap();
}

/// Without `wait`, a held lock is refused at once, with the error `lock`
/// gives, naming the holder; nothing stays open.
#[tokio::test]
async fn without_wait_a_held_lock_is_refused_at_once_like_lock() {
    let (_dir, path) = lock_path();
    let holder = Holding::start("hold", &path);
    let err = LockOptions::new().lock_async(&path).await.unwrap_err();
    let LockError::Locked { holder: named, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(named.as_ref().and_then(Holder::pid), Some(holder.pid));
    let blocking = LockOptions::new().lock(&path).unwrap_err();
    assert_eq!(err.to_string(), blocking.to_string());
    assert_eq!(descriptors_of(&path), 0);
    holder.release();
}

/// When `wait`'s limit passes: `TimedOut`, naming the holder.
#[test]
fn the_limit_of_wait_gives_timed_out_naming_the_holder() {
    let (_dir, path) = lock_path();
    let holder = Holding::start("hold", &path);
    let limit = Duration::from_millis(200);
    let err = run(waiting(limit).lock_async(&path)).unwrap_err();
    let LockError::TimedOut {
        waited,
        holder: named,
        ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert!(*waited >= limit, "{waited:?}");
    assert_eq!(named.as_ref().and_then(Holder::pid), Some(holder.pid));
    assert_eq!(descriptors_of(&path), 0);
    assert_eq!(watches_on(&path), 0);
    holder.release();
}

/// The other options hold as for `lock`: the content template, the mode of a
/// new file, shared locks (readers in this process and another share it
/// while a writer waits for them).
#[test]
fn the_other_options_hold() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, path) = lock_path();
    let mut options = LockOptions::new();
    options.content_template("{pid} async").mode(0o600);
    let lock = run(options.lock_async(&path)).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!(" {} async\n", std::process::id())
    );
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    lock.close().unwrap();

    let before = std::fs::read(&path).unwrap();
    let mut reader = LockOptions::new();
    reader.shared(true).wait(Duration::from_secs(30));
    let mut command = common::helper_command("hold", &path);
    common::shared(&mut command);
    let other_reader = Holding::start_with(command);
    let (first, second) = run(async {
        let first = reader.lock_async(&path).await.unwrap();
        let second = reader.lock_async(&path).await.unwrap();
        (first, second)
    });
    assert!(first.is_shared() && second.is_shared());
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "readers write nothing"
    );
    let writer = run(waiting(Duration::from_millis(100)).lock_async(&path)).unwrap_err();
    assert!(matches!(writer, LockError::TimedOut { .. }), "{writer:?}");
    drop((first, second));
    other_reader.release();
    drop(run(waiting(Duration::from_secs(30)).lock_async(&path)).unwrap());
}

/// The file waited for is renamed over while its holder keeps it: the task
/// wakes, finds the path naming another file, and takes that one's lock.
#[test]
fn a_wait_for_a_replaced_file_moves_to_the_new_one() {
    let (dir, path) = lock_path();
    let holder = Holding::start("hold", &path);
    let waited_for = path.clone();
    let replacement = dir.path().join("NEW");
    let replacer = std::thread::spawn(move || {
        until_waiting(&waited_for);
        std::fs::write(&replacement, b"").unwrap();
        std::fs::rename(&replacement, &waited_for).unwrap();
    });
    let lock = run(waiting(Duration::from_secs(30)).lock_async(&path)).unwrap();
    replacer.join().unwrap();
    assert!(lock.is_at_path().unwrap());
    lock.close().unwrap();
    holder.release();
}

/// The future can be spawned: it is `Send`, and an aborted task cancels it.
#[test]
fn an_aborted_task_cancels_its_wait() {
    let (_dir, path) = lock_path();
    let held = LockFile::lock(&path).unwrap();
    run(async {
        let options = waiting(Duration::from_secs(60));
        let waited_for = path.clone();
        let task = tokio::spawn(async move { options.lock_async(&waited_for).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(descriptors_of(&path), 2, "the holder's and the waiter's");
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        assert_eq!(descriptors_of(&path), 1, "the holder's only");
    });
    held.close().unwrap();
}

struct Capture(Mutex<Vec<(log::Level, String)>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        if record.target() == "pidlockfile" {
            let entry = (record.level(), record.args().to_string());
            self.0.lock().unwrap().push(entry);
        }
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

/// The records about `path` (tests run in parallel and share the logger).
fn records_about(path: &Path) -> Vec<(log::Level, String)> {
    let _ = log::set_logger(&CAPTURE);
    log::set_max_level(log::LevelFilter::Trace);
    let needle = path.to_str().unwrap();
    let records = CAPTURE.0.lock().unwrap();
    let about = records
        .iter()
        .filter(|(_, message)| message.contains(needle));
    about.cloned().collect()
}

/// The records are `lock`'s: one INFO when the wait starts, naming the
/// holder; one refusal at the level `log_refusal` gives, or none.
#[test]
fn the_log_records_are_those_of_lock() {
    let (_dir, path) = lock_path();
    records_about(&path);
    let holder = Holding::start("hold", &path);
    let pid = holder.pid;
    let mut options = waiting(Duration::from_millis(100));
    options.log_refusal(Some(log::Level::Warn));
    assert!(run(options.lock_async(&path)).is_err());
    let records = records_about(&path);
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[0].0, log::Level::Info);
    assert!(
        records[0]
            .1
            .starts_with("Blocking waiting for file lock on ")
            && records[0].1.contains(&format!("held by pid {pid}")),
        "{records:?}"
    );
    assert_eq!(records[1].0, log::Level::Warn);
    assert!(
        records[1].1.contains(&format!("; pid={pid}")),
        "{records:?}"
    );

    let mut quiet = LockOptions::new();
    quiet.log_refusal(None);
    assert!(run(quiet.lock_async(&path)).is_err());
    assert_eq!(
        records_about(&path).len(),
        2,
        "a quiet refusal logs nothing"
    );
    assert!(run(LockOptions::new().lock_async(&path)).is_err());
    let records = records_about(&path);
    assert_eq!(records.len(), 3);
    assert_eq!(records[2].0, log::Level::Error);
    holder.release();
}

/// The wait starts no thread: the process has as many threads while it
/// waits, and after a timeout gave up on it, as before. Run alone in a fresh
/// copy of this binary, on its main thread, so that no other test's thread
/// comes or goes meanwhile.
#[test]
fn the_wait_starts_no_thread() {
    common::run_alone("no_thread_scenario", |command| {
        command.arg("--test-threads=1");
    });
}

#[test]
#[ignore = "not a test: run alone by the_wait_starts_no_thread"]
fn no_thread_scenario() {
    if !common::alone("no_thread_scenario") {
        return;
    }
    let threads = || std::fs::read_dir("/proc/self/task").unwrap().count();
    let (_dir, path) = lock_path();
    let holder = Holding::start("hold", &path);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let before = threads();
    let (during, outcome) = runtime.block_on(async {
        let observer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            threads()
        });
        let options = waiting(Duration::from_secs(60));
        let outcome =
            tokio::time::timeout(Duration::from_millis(300), options.lock_async(&path)).await;
        (observer.await.unwrap(), outcome.is_err())
    });
    assert!(outcome, "the lock stayed held");
    assert_eq!((before, during, threads()), (before, before, before));
    holder.release();
}

/// On a runtime without I/O the wait cannot be woken by the watch: it
/// panics with tokio's message, as tokio's own I/O types do, and leaves
/// neither a descriptor nor a watch behind.
#[test]
#[cfg(target_os = "linux")]
fn a_runtime_without_io_panics_and_leaves_nothing_behind() {
    let (_dir, path) = lock_path();
    let holder = Holding::start("hold", &path);
    let _serial = serial();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let options = waiting(Duration::from_secs(60));
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(options.lock_async(&path))
    }));
    let message = panicked.unwrap_err();
    let message = message
        .downcast_ref::<&str>()
        .map(|m| m.to_string())
        .or_else(|| message.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    assert!(message.contains("IO is disabled"), "{message}");
    assert_eq!(descriptors_of(&path), 0, "a descriptor left behind");
    assert_eq!(watches_on(&path), 0, "a watch left behind");
    holder.release();
    drop(_serial);

    // The instance went back to the pool: four waits at once still get a
    // watch each.
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<PathBuf> = (0..4)
        .map(|i| dir.path().join(format!("LOCK{i}")))
        .collect();
    let held: Vec<LockFile> = paths.iter().map(|p| LockFile::lock(p).unwrap()).collect();
    let watched = run(async {
        let waits: Vec<_> = paths
            .iter()
            .map(|p| {
                let p = p.clone();
                tokio::spawn(async move { waiting(Duration::from_secs(60)).lock_async(&p).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let watched: Vec<usize> = paths.iter().map(|p| watches_on(p)).collect();
        for wait in waits {
            wait.abort();
            assert!(wait.await.unwrap_err().is_cancelled());
        }
        watched
    });
    assert_eq!(watched, [1, 1, 1, 1], "a watch per file");
    drop(held);
}
