//! Paths as users give them: relative ones, names that are not UTF-8, names
//! too long, and directories or file systems that are read-only.
#![cfg(unix)]

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::{bytes, chdir_after_locking, helper_command, helper_command_as_nobody, run, Holding};
use pidlockfile::{Holder, LockError, LockFile};

helper_process!();

#[test]
fn a_relative_path_locks_the_file_in_the_working_directory_and_survives_a_chdir() {
    let here = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let mut command = helper_command("hold", "LOCK".as_ref());
    command.current_dir(here.path());
    chdir_after_locking(&mut command, elsewhere.path());
    let holder = Holding::start_with(command);
    let pid = holder.pid;

    let path = here.path().join("LOCK");
    assert_eq!(
        LockFile::lock(&path).unwrap_err().holder().unwrap().pid(),
        Some(pid)
    );
    assert!(holder.release().success());
    assert!(
        !elsewhere.path().join("LOCK").exists(),
        "the release touched the new working directory"
    );
    assert_eq!(Holder::read(&path).unwrap().unwrap().pid(), Some(pid));
    drop(LockFile::lock(&path).expect("released"));
}

#[test]
fn a_file_name_that_is_not_utf8_works_and_is_shown_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(OsStr::from_bytes(b"lock-\xff\xfe\n"));
    let lock = LockFile::lock(&path).unwrap();
    assert_eq!(
        Holder::read(&path).unwrap().unwrap().pid(),
        Some(std::process::id())
    );
    let message = LockFile::lock(&path).unwrap_err().to_string();
    assert!(message.contains(r#"lock-\xFF\xFE\n""#), "{message}");
    assert!(!message.contains('\n'), "{message}");
    lock.close().unwrap();
}

#[test]
fn a_name_too_long_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x".repeat(300));
    let err = LockFile::lock(&path).unwrap_err();
    let LockError::Io { source, .. } = &err else {
        panic!("expected an I/O error, got {err:?}");
    };
    assert_eq!(source.raw_os_error(), Some(libc::ENAMETOOLONG));
    assert!(err.to_string().contains("File name too long"), "{err}");
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}

#[test]
fn a_path_longer_than_a_stack_buffer_locks_waits_and_is_checked_all_the_same() {
    let dir = tempfile::tempdir().unwrap();
    // Deeper than the crate's 384-byte stack buffer for C paths.
    let deep = dir
        .path()
        .join(["d".repeat(200), "e".repeat(200)].join("/"));
    std::fs::create_dir_all(&deep).unwrap();
    let path = deep.join("LOCK");
    assert!(path.as_os_str().len() > 400);
    let lock = LockFile::lock(&path).unwrap();
    assert!(lock.is_at_path().unwrap());
    let refused = pidlockfile::LockOptions::new()
        .wait(std::time::Duration::from_millis(20))
        .lock(&path)
        .unwrap_err();
    assert!(matches!(refused, LockError::TimedOut { .. }), "{refused}");
    std::fs::rename(&path, deep.join("LOCK.old")).unwrap();
    assert!(!lock.is_at_path().unwrap());
    lock.close().unwrap();
    let nul = deep.join("LO\0CK");
    let err = LockFile::lock(&nul).unwrap_err();
    let LockError::Io { source, .. } = &err else {
        panic!("expected an I/O error, got {err:?}");
    };
    assert_eq!(source.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("NUL"), "{err}");
}

#[test]
fn paths_at_the_edge_of_the_stack_buffer_lock_and_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("s".repeat(200));
    std::fs::create_dir(&sub).unwrap();
    // 383 bytes and its NUL fill the 384-byte buffer; 384 goes to the heap.
    let name_len = |len: usize| {
        let name = len.checked_sub(sub.as_os_str().len() + 1);
        name.expect("a temporary directory short enough for a 382-byte path")
    };
    let line = format!(" {};", std::process::id());
    for len in [382, 383, 384, 385] {
        let path = sub.join("n".repeat(name_len(len)));
        assert_eq!(path.as_os_str().len(), len);
        let lock = LockFile::lock(&path).unwrap();
        // The file at this very path (read through std) holds our line.
        let content = std::fs::read(&path).unwrap();
        assert!(content.starts_with(line.as_bytes()), "{len}");
        assert!(lock.is_at_path().unwrap(), "{len}");
        assert!(LockFile::lock(&path).is_err(), "{len}");
        lock.close().unwrap();
        assert!(LockFile::is_locked(&path).is_ok_and(|held| !held), "{len}");
    }
}

#[test]
fn a_read_only_directory_still_lets_its_existing_lock_file_be_locked() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join("LOCK");
    std::fs::write(&path, "").unwrap();
    // The file is nobody's; the directory is root's and read-only to nobody.
    let chown = |p: &std::path::Path| {
        std::os::unix::fs::chown(p, Some(common::NOBODY), Some(common::NOBODY))
    };
    chown(&path).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();

    let test = "a_read_only_directory_still_lets_its_existing_lock_file_be_locked";
    let Some(command) = helper_command_as_nobody("try", &path, scratch.path(), test) else {
        return;
    };
    let said = run(command);
    assert_eq!(said.status.code(), Some(0), "{said:?}");
    assert!(Holder::read(&path).unwrap().unwrap().pid().is_some());
}

#[test]
fn a_read_only_file_system_is_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "pidlockfile-test"])
        .arg(dir.path())
        .output();
    if !mounted.as_ref().is_ok_and(|out| out.status.success()) {
        common::not_run(
            "a_read_only_file_system_is_refused_and_left_as_it_was",
            &format!("cannot mount a tmpfs: {mounted:?}"),
        );
        return;
    }
    let path = dir.path().join("LOCK");
    std::fs::write(&path, " 1;db1\n").unwrap();
    let remount = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(dir.path())
        .status()
        .unwrap();
    let err = LockFile::lock(&path).unwrap_err();
    let content = bytes(&path);
    let _ = Command::new("umount").arg("-l").arg(dir.path()).status();
    assert!(remount.success());
    let LockError::Io { source, .. } = &err else {
        panic!("expected an I/O error, got {err:?}");
    };
    assert_eq!(source.raw_os_error(), Some(libc::EROFS), "{err}");
    assert!(err.to_string().contains("Read-only file system"), "{err}");
    assert_eq!(content, b" 1;db1\n");
}
