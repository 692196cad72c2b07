//! Reading who holds a lock file, without locking it.
#![cfg(unix)]

use std::io::{Seek, SeekFrom, Write};

use pidlockfile::{Holder, LockError, LockFile, LockOptions};

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
