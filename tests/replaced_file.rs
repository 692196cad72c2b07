//! The path no longer names the file that was locked: deleted, moved away
//! or replaced, by an operator or a tmp cleaner. Nobody may then hold a
//! lock on a file that the path does not name.
#![cfg(target_os = "linux")]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{
    helper_command, try_lock_elsewhere, wait_secs, wait_until_open_in, Holding, Listening,
};
use pidlockfile::{Holder, LockFile};

helper_process!();

fn remove(path: &Path) {
    std::fs::remove_file(path).unwrap();
}

fn move_away(path: &Path) {
    std::fs::rename(path, path.with_extension("old")).unwrap();
}

fn replace_by_rename(path: &Path) {
    let fresh = path.with_extension("new");
    std::fs::write(&fresh, "").unwrap();
    std::fs::rename(&fresh, path).unwrap();
}

/// Holder A; waiter W has opened the file and waits; the operator does its
/// deed; newcomer N waits for the path's lock too; A releases. From then on
/// exactly one of W and N holds, and it holds the file the path names: W
/// must not hold the old file while N holds the new one. (W may well take
/// the new file first: a retry reopens the path.)
fn a_waiter_never_holds_a_file_the_path_no_longer_names(operator: fn(&Path)) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.lock");
    let a = Holding::start("hold", &path);
    let waiter = || {
        let mut command = helper_command("hold", &path);
        wait_secs(&mut command, 60);
        Listening::start(command)
    };
    let w = waiter();
    wait_until_open_in(w.pid, &path);

    operator(&path);
    let n = waiter();
    a.release();

    // One of them holds the path's file within moments...
    let (first, second) = loop {
        if let Some(said) = w.said_within(Duration::from_millis(10)) {
            assert_eq!(said, format!("locked {}", w.pid));
            break (w, n);
        }
        if let Some(said) = n.said_within(Duration::from_millis(10)) {
            assert_eq!(said, format!("locked {}", n.pid));
            break (n, w);
        }
    };
    // ...and the other holds nothing while it does.
    assert_eq!(
        second.said_within(Duration::from_millis(500)),
        None,
        "two holders: pids {} and {}",
        first.pid,
        second.pid
    );
    assert_eq!(
        try_lock_elsewhere(&path).line("refused"),
        first.pid.to_string()
    );
    assert_eq!(Holder::read(&path).unwrap().unwrap().pid(), Some(first.pid));

    assert!(first.finish().success());
    assert_eq!(
        second.said_within(Duration::from_secs(20)),
        Some(format!("locked {}", second.pid))
    );
    assert_eq!(
        try_lock_elsewhere(&path).line("refused"),
        second.pid.to_string()
    );
    assert_eq!(
        Holder::read(&path).unwrap().unwrap().pid(),
        Some(second.pid)
    );
    assert!(second.finish().success());
}

#[test]
fn a_waiter_never_holds_a_deleted_lock_file() {
    a_waiter_never_holds_a_file_the_path_no_longer_names(remove);
}

#[test]
fn a_waiter_never_holds_a_lock_file_moved_away() {
    a_waiter_never_holds_a_file_the_path_no_longer_names(move_away);
}

#[test]
fn a_waiter_never_holds_a_lock_file_replaced_by_rename() {
    a_waiter_never_holds_a_file_the_path_no_longer_names(replace_by_rename);
}

#[test]
fn a_holder_can_ask_whether_the_path_still_names_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.lock");
    for operator in [remove, move_away, replace_by_rename] {
        let lock = LockFile::lock(&path).unwrap();
        assert!(lock.is_at_path().unwrap());
        operator(&path);
        assert!(!lock.is_at_path().unwrap());
        // The path's file is free for the next process, as the docs warn.
        let next = LockFile::lock(&path).unwrap();
        assert!(next.is_at_path().unwrap());
        drop((lock, next));
    }
}

#[test]
fn a_moved_away_file_still_has_one_link_so_the_check_compares_inodes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.lock");
    let lock = LockFile::lock(&path).unwrap();
    move_away(&path);
    use std::os::unix::fs::MetadataExt;
    let moved = std::fs::metadata(path.with_extension("old")).unwrap();
    assert_eq!(moved.nlink(), 1);
    assert!(!lock.is_at_path().unwrap());
}

again_with_waits_that_watch!();
