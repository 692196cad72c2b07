//! Every bad input gets a clear error naming the path and the cause, and
//! nothing is created, changed or left locked.
#![cfg(unix)]

mod common;

use std::io::ErrorKind;
use std::os::unix::fs::{symlink, OpenOptionsExt};
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use common::{bytes, helper_command, helper_command_as_nobody, limit_file_size, run};
use pidlockfile::{Holder, LockError, LockFile, LockOptions};

helper_process!();

/// The I/O error from locking `path`, after checking that it names the path.
fn io_error(path: &Path) -> (std::io::Error, String) {
    match LockFile::lock(path) {
        Err(err @ LockError::Io { .. }) => {
            let message = err.to_string();
            assert!(
                message.starts_with(&format!("cannot lock {path:?}: ")),
                "{message}"
            );
            assert_eq!(err.path(), path);
            let LockError::Io { source, .. } = err else {
                unreachable!()
            };
            (source, message)
        }
        other => panic!("expected an I/O error for {path:?}, got {other:?}"),
    }
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (source, message) = io_error(dir.path());
    assert_eq!(source.raw_os_error(), Some(libc::EISDIR), "{message}");
    assert!(message.contains("Is a directory"), "{message}");
    assert!(entries(dir.path()).is_empty());
}

#[test]
fn a_missing_parent_directory_is_refused_and_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing").join("LOCK");
    let (source, message) = io_error(&path);
    assert_eq!(source.kind(), ErrorKind::NotFound, "{message}");
    assert!(message.contains("No such file or directory"), "{message}");
    assert!(entries(dir.path()).is_empty());
}

#[test]
fn a_path_with_a_nul_byte_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LO\0CK");
    let (source, message) = io_error(&path);
    assert_eq!(source.kind(), ErrorKind::InvalidInput, "{message}");
    assert!(message.contains("NUL"), "{message}");
    assert!(entries(dir.path()).is_empty());
}

#[test]
fn a_directory_the_user_cannot_write_is_refused_and_gets_no_file() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("root-only"); // 0755, owned by root
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join("LOCK");
    let test = "a_directory_the_user_cannot_write_is_refused_and_gets_no_file";
    let Some(command) = helper_command_as_nobody("try", &path, scratch.path(), test) else {
        return;
    };
    let said = run(command);
    assert_eq!(said.status.code(), Some(1), "{said:?}");
    assert_eq!(said.line("kind"), "PermissionDenied");
    assert!(said.line("error").contains("Permission denied"), "{said:?}");
    assert!(
        said.line("error").contains(&format!("{path:?}")),
        "{said:?}"
    );
    assert!(!path.exists());
}

#[test]
fn a_lock_file_the_user_cannot_write_is_refused_and_left_intact() {
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("LOCK");
    std::fs::write(&path, " 1;db1\n").unwrap(); // 0644, owned by root
    let test = "a_lock_file_the_user_cannot_write_is_refused_and_left_intact";
    let Some(command) = helper_command_as_nobody("try", &path, scratch.path(), test) else {
        return;
    };
    let said = run(command);
    assert_eq!(said.status.code(), Some(1), "{said:?}");
    assert_eq!(said.line("kind"), "PermissionDenied");
    assert_eq!(bytes(&path), b" 1;db1\n");
}

#[test]
fn a_symbolic_link_is_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join(".bashrc");
    std::fs::write(&victim, "export PATH=/usr/bin\n").unwrap();
    let path = dir.path().join("app.lock");
    symlink(&victim, &path).unwrap();

    let (source, message) = io_error(&path);
    assert_eq!(source.kind(), ErrorKind::InvalidInput, "{message}");
    assert!(message.contains("symbolic link"), "{message}");
    assert_eq!(bytes(&victim), b"export PATH=/usr/bin\n");
    assert!(Holder::read(&path)
        .unwrap_err()
        .to_string()
        .contains("symbolic link"));
}

#[test]
fn a_dangling_symbolic_link_does_not_create_its_target() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("created-through-the-link");
    let path = dir.path().join("app.lock");
    symlink(&target, &path).unwrap();
    let (_, message) = io_error(&path);
    assert!(message.contains("symbolic link"), "{message}");
    assert!(!target.exists());
}

/// Runs `f` on another thread and fails the test if it has not finished in 5 s.
fn without_hanging<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(f()).unwrap());
    rx.recv_timeout(Duration::from_secs(5))
        .expect("the call blocked")
}

#[test]
fn a_fifo_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let c_path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0);

    let (source, message) = without_hanging({
        let path = path.clone();
        move || io_error(&path)
    });
    assert_eq!(source.kind(), ErrorKind::InvalidInput, "{message}");
    assert!(
        message.contains("is a FIFO, not a regular file"),
        "{message}"
    );
    let read = without_hanging(move || Holder::read(&path).map_err(|e| e.to_string()));
    assert!(read.unwrap_err().contains("FIFO"));
}

#[test]
fn a_socket_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let (_, message) = io_error(&path);
    assert!(
        message.contains("is a socket, not a regular file"),
        "{message}"
    );
}

#[test]
fn a_device_is_refused_and_nothing_is_written_to_it() {
    let (_, message) = io_error(Path::new("/dev/null"));
    assert!(
        message.contains("is a character device, not a regular file"),
        "{message}"
    );
}

#[test]
fn a_bad_template_is_refused_before_the_file_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let err = LockOptions::new()
        .content_template("{pid};{host}")
        .lock(&path)
        .unwrap_err();
    assert!(matches!(err, LockError::Template { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "cannot lock {path:?}: bad content template \"{{pid}};{{host}}\": unknown placeholder \
             {{host}}; the placeholders are {{pid}} and {{hostname}}, and {{{{ and }}}} stand for braces"
        )
    );
    assert!(!path.exists());
}

/// A tmpfs of one page, unmounted when dropped.
struct TinyTmpfs(tempfile::TempDir);

impl TinyTmpfs {
    fn mount() -> Result<TinyTmpfs, String> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4k,mode=0755", "pidlockfile-test"])
            .arg(dir.path())
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(TinyTmpfs(dir))
    }
}

impl Drop for TinyTmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

#[test]
fn a_full_disk_releases_the_lock_and_says_so() {
    let tmpfs = match TinyTmpfs::mount() {
        Ok(tmpfs) => tmpfs,
        Err(why) => {
            // Said out loud, not skipped in silence; the injected write error below still runs.
            common::not_run(
                "a_full_disk_releases_the_lock_and_says_so",
                &format!("cannot mount a tmpfs: {why}"),
            );
            return;
        }
    };
    let filler = tmpfs.0.path().join("filler");
    std::fs::write(&filler, vec![b'x'; 4096]).unwrap();
    assert!(
        std::fs::write(tmpfs.0.path().join("probe"), "x").is_err(),
        "the tmpfs is not full"
    );
    let path = tmpfs.0.path().join("LOCK");

    let (source, message) = io_error(&path);
    assert_eq!(source.raw_os_error(), Some(libc::ENOSPC), "{message}");
    assert!(message.contains("No space left on device"), "{message}");
    // Not half-held: once there is room, the lock can be taken at once.
    std::fs::remove_file(&filler).unwrap();
    let lock = LockFile::lock(&path).unwrap();
    assert_eq!(
        Holder::read(&path).unwrap().unwrap().pid(),
        Some(std::process::id())
    );
    drop(lock);
}

#[test]
fn a_write_error_releases_the_lock_and_keeps_the_old_content() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    std::fs::write(&path, " 1;db1\n").unwrap();

    let mut command = helper_command("try", &path);
    limit_file_size(&mut command, 0);
    let said = run(command);
    assert_eq!(said.status.code(), Some(1), "{said:?}");
    assert_eq!(said.line("kind"), "FileTooLarge");
    assert!(said.line("error").contains("File too large"), "{said:?}");
    assert_eq!(bytes(&path), b" 1;db1\n");
    drop(LockFile::lock(&path).expect("the failed holder released the lock"));
}

#[test]
fn a_write_that_fails_part_way_leaves_no_torn_holder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    std::fs::write(&path, " 12345678;an-old-holder\n").unwrap();

    let mut command = helper_command("try", &path);
    limit_file_size(&mut command, 4); // " 123" fits; the rest does not
    let said = run(command);
    assert_eq!(said.line("kind"), "FileTooLarge", "{said:?}");
    assert_eq!(
        bytes(&path),
        b"",
        "a torn line would name a pid that never held the lock"
    );
    drop(LockFile::lock(&path).expect("the failed holder released the lock"));
}

#[test]
fn a_hard_link_to_another_file_is_refused_and_that_file_kept() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger");
    let path = dir.path().join("LOCK");
    let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&ledger, &data).unwrap();
    std::fs::hard_link(&ledger, &path).unwrap();
    let (source, message) = io_error(&path);
    assert_eq!(source.kind(), ErrorKind::InvalidInput, "{message}");
    assert!(message.contains("the file has 2 hard links"), "{message}");
    assert_eq!(std::fs::read(&ledger).unwrap(), data);
    // The zc.lockfile-sized case of the report: 27,000 bytes survive too.
    let big: Vec<u8> = (0..27_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&ledger, &big).unwrap();
    let (_, message) = io_error(&path);
    assert!(message.contains("the file has 2 hard links"), "{message}");
    assert_eq!(std::fs::read(&ledger).unwrap(), big);
}

#[test]
fn a_data_file_at_the_lock_path_is_refused_for_its_size_and_kept() {
    // Users of fs2, fd-lock or std's File::lock lock the data file itself.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.db");
    let file = std::fs::File::create(&path).unwrap();
    std::io::Write::write_all(&mut &file, b"SQLite format 3\0").unwrap();
    file.set_len(2 << 30).unwrap(); // 2 GiB, sparse
                                    // Its own user holds an fs2 lock on it; that changes nothing.
    fs2::FileExt::try_lock_exclusive(&file).unwrap();
    let (source, message) = io_error(&path);
    assert_eq!(source.kind(), ErrorKind::InvalidInput, "{message}");
    assert!(
        message.contains("the file holds 2147483648 bytes, more than any lock file (8192 at most)")
            && message.contains("does not look like a lock file"),
        "{message}"
    );
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 2 << 30);
    let mut head = [0u8; 16];
    std::io::Read::read_exact(&mut &std::fs::File::open(&path).unwrap(), &mut head).unwrap();
    assert_eq!(&head, b"SQLite format 3\0");
}

/// `app.lock` with forged content, owned by `nobody`, in a new directory
/// `name` of `parent` with permissions `mode`.
fn plant_as_nobody(parent: &Path, name: &str, mode: u32) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = parent.join(name);
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
    let path = dir.join("app.lock");
    std::fs::write(&path, " 1;forged\n").unwrap();
    std::os::unix::fs::chown(&path, Some(common::NOBODY), Some(common::NOBODY)).unwrap();
    path
}

#[test]
fn a_lock_file_planted_by_another_user_in_a_sticky_directory_is_refused() {
    if unsafe { libc::geteuid() } != 0 {
        common::not_run(
            "a_lock_file_planted_by_another_user_in_a_sticky_directory_is_refused",
            "needs root to chown",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = plant_as_nobody(dir.path(), "tmp", 0o1777);

    let (source, message) = io_error(&path);
    assert_eq!(source.kind(), ErrorKind::PermissionDenied, "{message}");
    assert!(
        message
            .contains("owned by user \"nobody\" (uid 65534), in a world-writable sticky directory"),
        "{message}"
    );
    assert_eq!(bytes(&path), b" 1;forged\n");

    // The same without the sticky bit, where anyone may replace it.
    let planted = plant_as_nobody(dir.path(), "open", 0o777);
    let (_, message) = io_error(&planted);
    assert!(
        message.contains("in a world-writable directory"),
        "{message}"
    );
    assert_eq!(bytes(&planted), b" 1;forged\n");

    // Our own file there is ours to lock; so is another user's file in a
    // directory that is not world-writable.
    std::fs::remove_file(&path).unwrap();
    LockFile::lock(&path).unwrap().close().unwrap();
    let private = dir.path().join("private");
    std::fs::create_dir(&private).unwrap();
    let theirs = private.join("app.lock");
    std::fs::write(&theirs, "").unwrap();
    std::os::unix::fs::chown(&theirs, Some(common::NOBODY), Some(common::NOBODY)).unwrap();
    LockFile::lock(&theirs).unwrap().close().unwrap();
}

#[cfg(target_os = "linux")]
#[test]
fn a_terminal_at_the_lock_path_is_refused_and_does_not_become_ours() {
    let master = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY) };
    assert!(master >= 0);
    assert_eq!(unsafe { libc::grantpt(master) }, 0);
    assert_eq!(unsafe { libc::unlockpt(master) }, 0);
    let mut name = [0 as libc::c_char; 64];
    assert_eq!(
        unsafe { libc::ptsname_r(master, name.as_mut_ptr(), name.len()) },
        0
    );
    let tty = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }
        .to_str()
        .unwrap()
        .to_owned();

    let said = run(helper_command("lock-as-session-leader", Path::new(&tty)));
    unsafe { libc::close(master) };
    assert!(
        said.line("error")
            .contains("is a character device, not a regular file"),
        "{said:?}"
    );
    assert_eq!(said.line("tty_nr"), "0", "the terminal became the helper's");
}

#[test]
fn a_fifo_someone_else_flocks_is_refused_as_a_fifo_not_as_held() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let c_path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0);
    let theirs = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .unwrap();
    fs2::FileExt::try_lock_exclusive(&theirs).unwrap();
    let (source, message) = without_hanging({
        let path = path.clone();
        move || io_error(&path)
    });
    assert_eq!(source.kind(), ErrorKind::InvalidInput, "{message}");
    assert!(
        message.contains("is a FIFO, not a regular file"),
        "{message}"
    );
}
