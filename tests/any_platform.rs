//! The guarantees every platform keeps, run on Unix and (cross-compiled,
//! under Wine) on Windows: a second process is refused and told the first
//! one's pid, release leaves the file, a killed holder frees the lock.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

use pidlockfile::{Holder, LockError, LockFile};

const ROLE: &str = "PIDLOCKFILE_ANY_PLATFORM_ROLE";
const PATH: &str = "PIDLOCKFILE_ANY_PLATFORM_PATH";

/// In a re-run copy of this binary: `hold` holds the lock until its input
/// ends; `try` tries once and says what happened.
#[test]
#[ignore = "not a test: the process other tests in this file spawn"]
fn helper_process() {
    let role = std::env::var(ROLE).expect("run only by the tests in this file");
    let path = std::env::var_os(PATH).unwrap();
    let mut out = std::io::stdout().lock();
    match (role.as_str(), LockFile::lock(&path)) {
        ("hold", Ok(lock)) => {
            writeln!(out, "\n@@ locked").unwrap();
            out.flush().unwrap();
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            lock.close().unwrap();
            std::process::exit(0)
        }
        ("try", Ok(_)) => {
            writeln!(out, "\n@@ locked").unwrap();
            std::process::exit(0)
        }
        (_, Err(LockError::Locked { holder, .. })) => {
            let pid = holder
                .and_then(|h| h.pid())
                .map_or("-".into(), |p| p.to_string());
            writeln!(out, "\n@@ refused {pid}").unwrap();
            std::process::exit(2)
        }
        (_, Err(e)) => panic!("{e}"),
        (other, Ok(_)) => panic!("unknown role {other}"),
    }
}

fn helper(role: &str, path: &Path) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "helper_process",
            "--ignored",
            "--nocapture",
            "--quiet",
        ])
        .env(ROLE, role)
        .env(PATH, path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    command
}

/// A helper holding the lock, and the pipe that tells it to release.
fn hold(path: &Path) -> (Child, ChildStdin) {
    let mut child = helper("hold", path).spawn().unwrap();
    let stdin = child.stdin.take().unwrap();
    let said = said(child.stdout.take().unwrap());
    assert_eq!(said, "locked");
    (child, stdin)
}

fn said(stdout: impl Read) -> String {
    BufReader::new(stdout)
        .lines()
        .map(Result::unwrap)
        .find_map(|line| line.find("@@ ").map(|at| line[at + 3..].trim().to_owned()))
        .expect("the helper said nothing")
}

fn try_elsewhere(path: &Path) -> String {
    let output = helper("try", path).stdin(Stdio::null()).output().unwrap();
    said(&output.stdout[..])
}

#[test]
fn a_second_process_is_refused_and_told_the_first_ones_pid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let (mut first, release) = hold(&path);

    assert_eq!(try_elsewhere(&path), format!("refused {}", first.id()));
    let err = LockFile::lock(&path).unwrap_err();
    assert!(matches!(err, LockError::Locked { .. }), "{err:?}");
    assert_eq!(err.holder().unwrap().pid(), Some(first.id()));
    assert!(LockFile::is_locked(&path).unwrap());
    // Readable while held: on Windows only byte 0 is locked.
    assert_eq!(
        Holder::read(&path).unwrap().unwrap().pid(),
        Some(first.id())
    );

    drop(release);
    assert!(first.wait().unwrap().success());
}

#[test]
fn release_leaves_the_file_and_a_relock_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let (mut holder, release) = hold(&path);
    drop(release);
    assert!(holder.wait().unwrap().success());
    assert!(path.is_file());
    assert!(!LockFile::is_locked(&path).unwrap());
    assert_eq!(try_elsewhere(&path), "locked");
    let lock = LockFile::lock(&path).unwrap();
    assert_eq!(
        Holder::read(&path).unwrap().unwrap().pid(),
        Some(std::process::id())
    );
    lock.close().unwrap();
    assert!(path.is_file());
}

#[test]
fn a_killed_holder_releases_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let (mut holder, _release) = hold(&path);
    holder.kill().unwrap();
    holder.wait().unwrap();
    let lock = LockFile::lock(&path).expect("free once its holder is dead");
    lock.close().unwrap();
}

#[test]
fn two_lock_files_in_one_process_exclude_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let first = LockFile::lock(&path).unwrap();
    let err = LockFile::lock(&path).unwrap_err();
    assert_eq!(err.holder().unwrap().pid(), Some(std::process::id()));
    drop(first);
    LockFile::lock(&path).unwrap().close().unwrap();
}

#[test]
fn the_file_holds_a_space_the_pid_and_the_hostname() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let lock = LockFile::lock(&path).unwrap();
    drop(lock);
    let text = std::fs::read_to_string(&path).unwrap();
    let (pid, host) = text[1..].trim_end().split_once(';').unwrap();
    assert!(text.starts_with(' ') && text.ends_with('\n'), "{text:?}");
    assert_eq!(pid, std::process::id().to_string());
    assert!(!host.is_empty());
}

#[test]
fn a_held_lock_file_deleted_or_moved_is_noticed_or_cannot_be_touched() {
    // Unix: nothing stops the deletion, and the holder can find out.
    // Windows: the file is open without FILE_SHARE_DELETE, so neither
    // deleting nor renaming it succeeds while it is held.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let moved = dir.path().join("LOCK.old");
    let lock = LockFile::lock(&path).unwrap();
    assert!(lock.is_at_path().unwrap());
    let renamed = std::fs::rename(&path, &moved);
    let removed = std::fs::remove_file(&path);
    if cfg!(windows) {
        assert!(
            renamed.is_err() && removed.is_err(),
            "{renamed:?} {removed:?}"
        );
        assert!(lock.is_at_path().unwrap());
    } else {
        renamed.unwrap();
        assert_eq!(removed.unwrap_err().kind(), std::io::ErrorKind::NotFound);
        assert!(!lock.is_at_path().unwrap());
    }
    lock.close().unwrap();
}

#[test]
fn readers_share_the_lock_and_exclude_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let mut reader = pidlockfile::LockOptions::new();
    reader.shared(true).log_refusal(None);
    let first = reader.lock(&path).unwrap();
    let second = reader.lock(&path).unwrap();
    let writer = pidlockfile::LockOptions::new()
        .log_refusal(None)
        .lock(&path);
    assert!(
        matches!(writer, Err(LockError::Locked { .. })),
        "{writer:?}"
    );
    drop((first, second));
    LockFile::lock(&path).unwrap().close().unwrap();
    assert!(reader.lock(&path).is_ok());
}
