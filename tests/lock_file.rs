//! Scenarios around `LockFile`: real processes, real kills, real forks.
#![cfg(unix)]

mod common;

use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::{bytes, hostname, try_lock_elsewhere, Holding};
use pidlockfile::{Holder, LockError, LockFile, LockOptions};

helper_process!();

#[test]
fn a_second_instance_is_refused_and_told_the_first_ones_pid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let first = Holding::start("hold", &path);

    let second = try_lock_elsewhere(&path);
    assert_eq!(second.status.code(), Some(2), "{second:?}");
    assert_eq!(second.line("refused"), first.pid.to_string());

    // And in this process, through the public error.
    let err = LockFile::lock(&path).unwrap_err();
    let holder = err.holder().expect("the holder is named");
    assert_eq!(holder.pid(), Some(first.pid));
    assert_eq!(holder.hostname(), Some(hostname().as_str()));
    assert_eq!(
        err.to_string(),
        format!(
            "cannot lock {path:?}: held by pid {} on host {}",
            first.pid,
            hostname()
        )
    );
    assert!(first.release().success());
}

#[test]
fn the_file_holds_a_space_the_pid_and_hostname_and_a_newline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let holder = Holding::start("hold", &path);
    assert_eq!(
        String::from_utf8(bytes(&path)).unwrap(),
        format!(" {};{}\n", holder.pid, hostname())
    );
    holder.release();
}

#[test]
fn a_holder_killed_with_sigkill_releases_the_lock_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let holder = Holding::start("hold", &path);
    let pid = holder.pid;
    assert_eq!(
        LockFile::lock(&path).unwrap_err().holder().unwrap().pid(),
        Some(pid)
    );

    let status = holder.kill();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    // No retry: the kernel dropped the lock with the dead process's descriptors.
    let lock = LockFile::lock(&path).expect("the lock is free once its holder is dead");
    assert_eq!(
        Holder::read(&path).unwrap().unwrap().pid(),
        Some(std::process::id())
    );
    drop(lock);
}

#[test]
fn release_leaves_the_file_and_the_lock_can_be_taken_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let holder = Holding::start("hold", &path);
    assert!(holder.release().success());
    assert!(path.is_file(), "the lock file is left behind");
    assert_eq!(try_lock_elsewhere(&path).line("locked"), "");
    let lock = LockFile::lock(&path).unwrap();
    assert_eq!(lock.path(), path);
    lock.close().unwrap();
    assert!(path.is_file());
}

#[test]
fn a_failed_attempt_leaves_the_files_bytes_identical() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let holder = Holding::start("hold", &path);
    let before = bytes(&path);

    for _ in 0..3 {
        assert_eq!(try_lock_elsewhere(&path).status.code(), Some(2));
        let other = LockOptions::new()
            .content_template("a much longer content template that would leave a trace {pid}")
            .lock(&path);
        assert!(matches!(other, Err(LockError::Locked { .. })));
    }
    assert_eq!(bytes(&path), before);
    holder.release();
}

#[test]
fn new_content_replaces_the_old_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    std::fs::write(
        &path,
        " 99999;a-long-stale-hostname.example.com\nand a second line\n",
    )
    .unwrap();
    let lock = LockOptions::new()
        .content_template("{pid}")
        .lock(&path)
        .unwrap();
    assert_eq!(
        bytes(&path),
        format!(" {}\n", std::process::id()).into_bytes()
    );
    drop(lock);
}

#[test]
fn fifty_threads_each_with_its_own_lock_file_lose_no_increment() {
    // zc.lockfile's own test: each thread locks, reads a counter, writes it + 1.
    const THREADS: usize = 50;
    const ROUNDS: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let path = Arc::new(dir.path().join("LOCK"));
    let counter = Arc::new(dir.path().join("counter"));
    std::fs::write(&*counter, "0").unwrap();
    let start = Arc::new(Barrier::new(THREADS));

    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (path, counter, start) = (path.clone(), counter.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let mut refusals = 0;
                for _ in 0..ROUNDS {
                    let lock = loop {
                        match LockFile::lock(&*path) {
                            Ok(lock) => break lock,
                            Err(LockError::Locked { .. }) => {
                                refusals += 1;
                                std::thread::sleep(Duration::from_millis(1));
                            }
                            Err(e) => panic!("{e}"),
                        }
                    };
                    let n: usize = std::fs::read_to_string(&*counter).unwrap().parse().unwrap();
                    std::thread::yield_now();
                    std::fs::write(&*counter, (n + 1).to_string()).unwrap();
                    lock.close().unwrap();
                }
                refusals
            })
        })
        .collect();
    let refusals: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();

    let total: usize = std::fs::read_to_string(&*counter).unwrap().parse().unwrap();
    assert_eq!(total, THREADS * ROUNDS);
    assert!(
        refusals > 0,
        "the threads never contended, so the test proved nothing"
    );
}

/// The holder forks a child that keeps running with the inherited descriptor,
/// then releases the lock by `role`'s means; the lock must be free at once.
fn forked_child_does_not_keep_the_lock(role: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let holder = Holding::start(role, &path);
    let forked: i32 = holder
        .first_line
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(forked > 0, "{}", holder.first_line);

    assert!(holder.release().success());
    let alive = unsafe { libc::kill(forked, 0) } == 0;
    let attempt = try_lock_elsewhere(&path);
    unsafe { libc::kill(forked, libc::SIGKILL) };
    assert!(alive, "the forked child should still be running");
    assert_eq!(attempt.status.code(), Some(0), "{attempt:?}");
}

#[test]
fn a_child_forked_while_holding_does_not_keep_the_lock_after_close() {
    forked_child_does_not_keep_the_lock("hold-then-fork");
}

#[test]
fn a_child_forked_while_holding_does_not_keep_the_lock_after_drop() {
    forked_child_does_not_keep_the_lock("hold-then-fork-then-drop");
}

#[test]
fn a_child_forked_while_holding_that_drops_its_copy_leaves_the_parent_holding() {
    // The daemonize pattern and worker processes: the child's drop must
    // only close its descriptor, not unlock the lock the parent holds.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let holder = Holding::start("hold-then-fork-child-drops", &path);
    assert!(
        holder.first_line.ends_with(" dropped"),
        "{}",
        holder.first_line
    );
    let refused = try_lock_elsewhere(&path);
    assert_eq!(
        refused.line("refused"),
        holder.pid.to_string(),
        "{refused:?}"
    );
    assert!(holder.release().success());
    assert_eq!(try_lock_elsewhere(&path).status.code(), Some(0));
}

#[test]
fn a_program_started_by_the_holder_does_not_inherit_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let lock = LockFile::lock(&path).unwrap();
    // The program outlives our release; were the descriptor inherited, it would keep the lock.
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    let fds = std::fs::read_dir(format!("/proc/{}/fd", sleeper.id()))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.unwrap().path()).ok())
        .collect::<Vec<_>>();
    drop(lock);
    let attempt = LockFile::lock(&path);
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    assert!(
        !fds.contains(&path),
        "the child inherited the lock file: {fds:?}"
    );
    attempt.unwrap().close().unwrap();
}

#[test]
fn lock_file_is_send_and_sync_and_debug() {
    fn assert_traits<T: Send + Sync + std::fmt::Debug>() {}
    assert_traits::<LockFile>();
    assert_traits::<LockError>();
    assert_traits::<Holder>();
    let dir = tempfile::tempdir().unwrap();
    let lock = LockFile::lock(dir.path().join("LOCK")).unwrap();
    assert!(format!("{lock:?}").contains("LOCK"));
}

#[test]
fn a_lock_file_created_with_mode_0o666_can_be_taken_by_another_user() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    // The umask would make 0o666 into 0o644; the mode is applied exactly.
    let old_umask = unsafe { libc::umask(0o022) };
    let lock = LockOptions::new().mode(0o666).lock(&path);
    unsafe { libc::umask(old_umask) };
    lock.unwrap().close().unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o666);

    let Some(command) = common::helper_command_as_nobody(
        "hold",
        &path,
        dir.path(),
        "a_lock_file_created_with_mode_0o666_can_be_taken_by_another_user",
    ) else {
        return;
    };
    let nobody = Holding::start_with(command);
    assert_eq!(
        Holder::read(&path).unwrap().unwrap().pid(),
        Some(nobody.pid)
    );
    assert!(nobody.release().success());

    // An existing file keeps its mode.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    LockOptions::new()
        .mode(0o666)
        .lock(&path)
        .unwrap()
        .close()
        .unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o600);
}
