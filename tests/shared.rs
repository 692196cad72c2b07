//! Shared (reader) locks, between real processes: readers hold together,
//! exclude a writer, and write nothing.
#![cfg(unix)]

mod common;

use std::time::Duration;

use common::{bytes, helper_command, run, shared, wait_secs, Holding, Listening};
use pidlockfile::{LockError, LockFile, LockOptions};

helper_process!();

fn reader(path: &std::path::Path) -> Holding {
    let mut command = helper_command("hold", path);
    shared(&mut command);
    Holding::start_with(command)
}

fn try_shared_elsewhere(path: &std::path::Path) -> common::Said {
    let mut command = helper_command("try", path);
    shared(&mut command);
    run(command)
}

#[test]
fn readers_in_separate_processes_hold_together_exclude_a_writer_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    LockFile::lock(&path).unwrap().close().unwrap();
    let before = bytes(&path);

    let readers: Vec<_> = (0..3).map(|_| reader(&path)).collect();
    assert_eq!(try_shared_elsewhere(&path).status.code(), Some(0));
    let writer = common::try_lock_elsewhere(&path);
    assert_eq!(
        writer.status.code(),
        Some(2),
        "a writer is refused: {writer:?}"
    );
    assert_eq!(bytes(&path), before, "readers leave the bytes as they were");

    for reader in readers {
        assert!(reader.release().success());
    }
    assert_eq!(bytes(&path), before);
    assert_eq!(common::try_lock_elsewhere(&path).status.code(), Some(0));
}

#[test]
fn a_reader_is_refused_by_a_writer_and_told_who_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let writer = Holding::start("hold", &path);
    let said = try_shared_elsewhere(&path);
    assert_eq!(said.line("refused"), writer.pid.to_string(), "{said:?}");
    let mut options = LockOptions::new();
    options.shared(true).log_refusal(None);
    let err = options.lock(&path).unwrap_err();
    assert_eq!(err.holder().unwrap().pid(), Some(writer.pid));
    assert!(writer.release().success());
}

#[test]
fn a_waiting_reader_gets_the_lock_when_the_writer_releases_and_a_waiting_writer_when_the_last_reader_does(
) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let writer = Holding::start("hold", &path);
    let mut command = helper_command("hold", &path);
    shared(&mut command);
    wait_secs(&mut command, 30);
    let waiting_reader = Listening::start(command);
    assert_eq!(waiting_reader.said_within(Duration::from_millis(300)), None);
    assert!(writer.release().success());
    assert_eq!(
        waiting_reader.said_within(Duration::from_secs(10)),
        Some(format!("locked {}", waiting_reader.pid))
    );

    let mut command = helper_command("hold", &path);
    wait_secs(&mut command, 30);
    let waiting_writer = Listening::start(command);
    assert_eq!(waiting_writer.said_within(Duration::from_millis(300)), None);
    assert!(waiting_reader.finish().success());
    assert_eq!(
        waiting_writer.said_within(Duration::from_secs(10)),
        Some(format!("locked {}", waiting_writer.pid))
    );
    assert!(waiting_writer.finish().success());
}

#[test]
fn a_shared_lock_is_not_upgraded_and_a_second_reader_in_the_process_shares() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let mut reader = LockOptions::new();
    reader.shared(true);
    let first = reader.lock(&path).unwrap();
    assert!(first.is_shared());
    let second = reader.lock(&path).unwrap();
    let upgrade = LockOptions::new().log_refusal(None).lock(&path);
    match upgrade {
        Err(LockError::Locked { .. }) => {}
        other => panic!("an exclusive lock while this process reads: {other:?}"),
    }
    drop((first, second));
    let writer = LockFile::lock(&path).unwrap();
    assert!(!writer.is_shared());
}

#[test]
fn a_reader_may_hold_a_lock_file_it_can_only_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    LockFile::lock(&path).unwrap().close().unwrap(); // root's, 0644
    let before = bytes(&path);
    let Some(mut command) = common::helper_command_as_nobody(
        "try",
        &path,
        dir.path(),
        "a_reader_may_hold_a_lock_file_it_can_only_read",
    ) else {
        return;
    };
    shared(&mut command);
    let said = run(command);
    assert_eq!(said.status.code(), Some(0), "{said:?}");
    assert_eq!(bytes(&path), before);
    // A writer as nobody is refused: it may not write the holder.
    let Some(command) =
        common::helper_command_as_nobody("try", &path, dir.path(), "a writer as nobody")
    else {
        return;
    };
    let said = run(command);
    assert!(said.line("error").contains("Permission denied"), "{said:?}");
}

#[cfg(target_os = "linux")]
#[test]
fn a_writer_refused_by_readers_is_told_who_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    LockFile::lock(&path).unwrap().close().unwrap(); // the last writer: this process
    let readers: Vec<_> = (0..3).map(|_| reader(&path)).collect();
    let mut pids: Vec<u32> = readers.iter().map(|r| r.pid).collect();
    pids.sort_unstable();
    let err = LockOptions::new()
        .log_refusal(None)
        .lock(&path)
        .unwrap_err();
    let holder = err.holder().unwrap();
    assert!(holder.holds_shared());
    assert_eq!(holder.readers(), pids);
    assert_eq!(holder.pid(), Some(pids[0]));
    assert_eq!(
        err.to_string(),
        format!(
            "cannot lock {path:?}: held by 3 readers: pids {}, {}, {} on host {} \
             (the file names the last exclusive holder, pid {})",
            pids[0],
            pids[1],
            pids[2],
            common::hostname(),
            std::process::id()
        )
    );
    // A reader refused by a writer gets the writer, as before.
    for reader in readers {
        assert!(reader.release().success());
    }
}
