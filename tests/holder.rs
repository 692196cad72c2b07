//! Reading who holds a lock file, without locking it.
#![cfg(unix)]

use std::io::{Seek, SeekFrom, Write};

use pidlockfile::{Holder, LockError, LockFile, LockOptions};

mod common;

use common::{hostname, Holding};

/// The roles this file adds to the helpers in `common`.
#[test]
#[ignore = "not a test: the process other tests in this file spawn"]
fn helper_process() {
    if std::env::var("PIDLOCKFILE_TEST_ROLE").unwrap() == "hold-fork-child-drops" {
        // Takes the lock, forks a child that drops its copy of the LockFile
        // and exits, then holds until told to release.
        let path = std::env::var_os("PIDLOCKFILE_TEST_PATH").unwrap();
        let lock = LockFile::lock(&path).unwrap();
        let child = unsafe { libc::fork() };
        if child == 0 {
            drop(lock);
            unsafe { libc::_exit(0) };
        }
        assert_eq!(
            unsafe { libc::waitpid(child, std::ptr::null_mut(), 0) },
            child
        );
        println!("\n@@ locked {}", std::process::id());
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
        lock.close().unwrap();
        println!("\n@@ released");
        std::process::exit(0);
    }
    common::play_role();
}

#[test]
fn a_missing_file_names_nobody() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(Holder::read(dir.path().join("LOCK")).unwrap(), None);
}

#[test]
fn an_empty_or_blank_file_names_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    for content in ["", "\n", " \r\n", "   \t "] {
        std::fs::write(&path, content).unwrap();
        assert_eq!(Holder::read(&path).unwrap(), None, "{content:?}");
    }
}

#[test]
fn reading_a_held_lock_names_the_holder_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let lock = LockFile::lock(&path).unwrap();
    let before = std::fs::read(&path).unwrap();
    let holder = Holder::read(&path).unwrap().unwrap();
    assert_eq!(holder.pid(), Some(std::process::id()));
    assert_eq!(std::fs::read(&path).unwrap(), before);
    // Reading took no lock: the holder still holds it, and closes it cleanly.
    assert!(matches!(
        LockFile::lock(&path),
        Err(LockError::Locked { .. })
    ));
    lock.close().unwrap();
}

#[test]
fn the_last_holder_is_still_named_after_release() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    LockFile::lock(&path).unwrap().close().unwrap();
    assert_eq!(
        Holder::read(&path).unwrap().unwrap().pid(),
        Some(std::process::id())
    );
}

#[test]
fn a_huge_sparse_file_of_garbage_is_read_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(&[0xff, 0x00, 0x1b, b'7'].repeat(4096))
        .unwrap();
    file.seek(SeekFrom::Start(1 << 30)).unwrap();
    file.write_all(b"end").unwrap();
    drop(file);

    let holder = Holder::read(&path).unwrap().unwrap();
    // At most 4 KiB is read; each invalid byte shows as one 3-byte U+FFFD.
    assert!(
        holder.content().len() <= 4096 * 3,
        "{}",
        holder.content().len()
    );
    assert_eq!(holder.pid(), None);
    assert!(holder.to_string().starts_with("holder unknown"), "{holder}");

    // Taking the lock refuses a file that large before locking it, names
    // its size, and leaves its gigabyte as it is, held or not.
    let raw = std::fs::File::open(&path).unwrap();
    fs2::FileExt::try_lock_exclusive(&raw).unwrap();
    let refused = LockFile::lock(&path).unwrap_err().to_string();
    assert!(
        refused.contains("the file holds 1073741827 bytes")
            && refused.contains("does not look like a lock file"),
        "{refused}"
    );
    assert_eq!(std::fs::metadata(&path).unwrap().len(), (1 << 30) + 3);
}

#[test]
fn a_refusal_reads_a_bounded_prefix_of_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    // As large as a lock file may be, and garbage from its first byte.
    std::fs::write(&path, [0xff, 0x00, 0x1b, b'7'].repeat(2048)).unwrap();
    let holder = Holder::read(&path).unwrap().unwrap();
    let raw = std::fs::File::open(&path).unwrap();
    fs2::FileExt::try_lock_exclusive(&raw).unwrap();
    let refused = LockFile::lock(&path).unwrap_err();
    assert_eq!(refused.holder().unwrap().content(), holder.content());
    #[cfg(target_os = "linux")]
    assert_eq!(
        refused.holder().unwrap().kernel_pid(),
        Some(std::process::id())
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        [0xff, 0x00, 0x1b, b'7'].repeat(2048)
    );
}

#[test]
fn a_refusal_of_a_holder_that_wrote_no_pid_names_the_kernels_holder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let _held = LockOptions::new()
        .content_template("\u{1b}[31mnot a pid")
        .lock(&path)
        .unwrap();
    let err = LockFile::lock(&path).unwrap_err();
    // The file names no pid; on Linux the kernel names the real holder.
    let expected = if cfg!(target_os = "linux") {
        format!(
            "held by a process that wrote no holder (kernel says pid {}; the file says \
             \"\\u{{1b}}[31mnot a pid\")",
            std::process::id()
        )
    } else {
        "held, holder unknown (the lock file names no pid; it says \"\\u{1b}[31mnot a pid\")"
            .to_owned()
    };
    assert_eq!(err.to_string(), format!("cannot lock {path:?}: {expected}"));
}

#[test]
fn a_clean_close_or_drop_marks_the_release_and_keeps_the_first_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let me = std::process::id();
    for how in ["close", "drop"] {
        let lock = LockFile::lock(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!(" {me};{}\n", hostname()),
            "no mark while held"
        );
        match how {
            "close" => lock.close().unwrap(),
            _ => drop(lock),
        }
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!(" {me};{}\nreleased {me}\n", hostname()),
            "{how}"
        );
        let holder = Holder::read(&path).unwrap().unwrap();
        assert!(holder.released(), "{how}");
        assert_eq!(holder.content(), format!("{me};{}", hostname()));
    }
}

#[test]
fn previous_says_whether_the_last_holder_released_cleanly_or_was_killed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let lock = LockFile::lock(&path).unwrap();
    assert_eq!(lock.previous(), None, "a new file");
    lock.close().unwrap();

    // A clean shutdown in another process.
    let clean = Holding::start("hold", &path);
    let clean_pid = clean.pid;
    assert!(clean.release().success());
    let lock = LockFile::lock(&path).unwrap();
    let previous = lock.previous().unwrap();
    assert_eq!(previous.file_pid(), Some(clean_pid));
    assert!(previous.released());
    lock.close().unwrap();

    // A crash: SIGKILL while holding.
    let killed = Holding::start("hold", &path);
    let killed_pid = killed.pid;
    killed.kill();
    let lock = LockFile::lock(&path).unwrap();
    let previous = lock.previous().unwrap();
    assert_eq!(previous.file_pid(), Some(killed_pid));
    assert!(!previous.released(), "killed: recovery needed");
    assert_eq!(previous.hostname(), Some(hostname().as_str()));
    lock.close().unwrap();

    // An empty file names no previous holder.
    std::fs::write(&path, "").unwrap();
    assert_eq!(LockFile::lock(&path).unwrap().previous(), None);
}

#[test]
fn a_forked_child_that_drops_its_copy_writes_no_release_mark() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let holding = Holding::start("hold-fork-child-drops", &path);
    // The child dropped its copy and exited; the parent has not released.
    let holder = Holder::read(&path).unwrap().unwrap();
    assert_eq!(holder.file_pid(), Some(holding.pid));
    assert!(
        !holder.released(),
        "the child marked a release it did not make"
    );
    assert!(holding.release().success());
    assert!(Holder::read(&path).unwrap().unwrap().released());
}

#[test]
fn a_long_or_disguised_first_line_is_shown_short_and_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    // Right-to-left override: "4242;db1" would display as "1bd;2424".
    let line = format!(" \u{202E}{}\n", "x".repeat(4000));
    std::fs::write(&path, &line).unwrap();
    let raw = std::fs::File::open(&path).unwrap();
    fs2::FileExt::try_lock_exclusive(&raw).unwrap();
    let err = LockFile::lock(&path).unwrap_err();
    let message = err.to_string();
    assert!(message.len() < 400, "{} bytes: {message}", message.len());
    assert!(message.contains("\\u{202e}xxx"), "{message}");
    assert!(!message.contains('\u{202E}'), "{message}");
    assert!(message.contains("… (4003 bytes)"), "{message}");
    assert_eq!(
        err.holder().unwrap().content().len(),
        4003,
        "the holder keeps it all"
    );
}
