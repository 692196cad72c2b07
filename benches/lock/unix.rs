//! The Unix measurements of benches/lock.rs.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::common::{bench_dir, machine, measure, ratio_between, report, Case, CountingAllocator};
use pidlockfile::{LockError, LockFile};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

const ROUNDS: usize = 41;
const BATCH: usize = 2000;

pub fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and test discovery
    }
    let dir = bench_dir();
    let path = dir.path().join("LOCK");
    println!(
        "machine: {}; lock file in {}",
        machine(),
        dir.path().display()
    );
    uncontended(&path);
    refused(&path);
}

/// The floor's open: `open(O_RDWR|O_CREAT|O_CLOEXEC, 0644)`.
unsafe fn open_raw(path: &CString) -> libc::c_int {
    let fd = libc::open(
        path.as_ptr(),
        libc::O_RDWR | libc::O_CREAT | libc::O_CLOEXEC,
        0o644,
    );
    assert!(fd >= 0);
    fd
}

/// The inode the path names now, asked as std's `symlink_metadata` asks:
/// `statx` on Linux, `lstat` elsewhere.
#[allow(clippy::unnecessary_cast)]
unsafe fn path_inode(path: &CString) -> u64 {
    #[cfg(target_os = "linux")]
    {
        let mut stat = std::mem::zeroed::<libc::statx>();
        let flags = libc::AT_SYMLINK_NOFOLLOW | libc::AT_STATX_SYNC_AS_STAT;
        let mask = libc::STATX_BASIC_STATS | libc::STATX_BTIME;
        assert_eq!(
            libc::statx(libc::AT_FDCWD, path.as_ptr(), flags, mask, &mut stat),
            0
        );
        stat.stx_ino
    }
    #[cfg(not(target_os = "linux"))]
    {
        let mut stat = std::mem::zeroed::<libc::stat>();
        assert_eq!(libc::lstat(path.as_ptr(), &mut stat), 0);
        stat.st_ino as u64
    }
}

fn c_path(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap()
}

/// The calls every lock cycle makes, and why: `open` (no link, no blocking,
/// no controlling terminal, close-on-exec), `fstat` (a regular file with one
/// link and a lock file's size, checked before locking), `geteuid` (is it
/// ours, or planted by another user?), `flock`, `lstat` of
/// the path (it still names the locked file), `getpid` (whose content, and
/// who may unlock), `ftruncate` and `pwrite` (the content), then on release
/// `getpid` (only the process that locked unlocks), `flock(LOCK_UN)`, `close`.
const SAME_CALLS: &str =
    "floor: libc open, fstat, geteuid, flock, lstat, getpid, ftruncate, pwrite, getpid, unlock, close";
const BARE: &str = "bare floor: libc open, flock, pwrite, ftruncate, unlock, close";
const CYCLE: &str = "pidlockfile: LockFile::lock, close";

fn uncontended(path: &Path) {
    drop(LockFile::lock(path).unwrap()); // an existing lock file, with content
    let c_path = c_path(path);
    let content = std::fs::read(path).unwrap();
    let mut cases = vec![
        Case {
            name: SAME_CALLS,
            run: Box::new(|| unsafe {
                let fd = libc::open(
                    c_path.as_ptr(),
                    libc::O_RDWR
                        | libc::O_CREAT
                        | libc::O_CLOEXEC
                        | libc::O_NOFOLLOW
                        | libc::O_NONBLOCK
                        | libc::O_NOCTTY,
                    0o644,
                );
                assert!(fd >= 0);
                let mut stat = std::mem::zeroed::<libc::stat>();
                assert_eq!(libc::fstat(fd, &mut stat), 0);
                assert!(stat.st_nlink == 1 && stat.st_size < 8192);
                assert_eq!(stat.st_uid, libc::geteuid());
                assert_eq!(libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB), 0);
                assert_eq!(path_inode(&c_path), stat.st_ino as u64);
                assert!(libc::getpid() > 0);
                assert_eq!(libc::ftruncate(fd, content.len() as libc::off_t), 0);
                let n = libc::pwrite(fd, content.as_ptr().cast(), content.len(), 0);
                assert_eq!(n, content.len() as isize);
                assert!(libc::getpid() > 0);
                assert_eq!(libc::flock(fd, libc::LOCK_UN), 0);
                libc::close(fd);
            }),
        },
        Case {
            name: BARE,
            run: Box::new(|| unsafe {
                let fd = open_raw(&c_path);
                assert_eq!(libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB), 0);
                let n = libc::pwrite(fd, content.as_ptr().cast(), content.len(), 0);
                assert_eq!(n, content.len() as isize);
                assert_eq!(libc::ftruncate(fd, content.len() as libc::off_t), 0);
                assert_eq!(libc::flock(fd, libc::LOCK_UN), 0);
                libc::close(fd);
            }),
        },
        Case {
            name: CYCLE,
            run: Box::new(|| LockFile::lock(path).unwrap().close().unwrap()),
        },
        Case {
            name: "fs2: open, try_lock_exclusive, unlock (no content)",
            run: Box::new(|| {
                let file = open_rw(path);
                fs2::FileExt::try_lock_exclusive(&file).unwrap();
                fs2::FileExt::unlock(&file).unwrap();
            }),
        },
        Case {
            name: "std: open, File::try_lock, unlock (no content)",
            run: Box::new(|| std_try_lock_cycle(path)),
        },
    ];
    let results = measure(&mut cases, ROUNDS, BATCH);
    report(
        "Uncontended cycle: lock an existing lock file, then release it",
        &results,
        &[(CYCLE, 1.1)],
    );
    println!(
        "\nThe cycle against the bare floor (no checks): {:.2}x; the checks' calls alone \
         (same-calls floor against the bare floor): {:.2}x.",
        ratio_between(&results, CYCLE, BARE),
        ratio_between(&results, SAME_CALLS, BARE),
    );
}

fn refused(path: &Path) {
    let _held = LockFile::lock(path).unwrap(); // another descriptor holds it, naming this process
    let c_path = c_path(path);
    let mut cases = vec![
        Case {
            name: "floor: libc open, flock (EWOULDBLOCK), pread, close",
            run: Box::new(|| unsafe {
                let fd = open_raw(&c_path);
                assert_eq!(libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB), -1);
                let mut buf = [0u8; 4096];
                assert!(libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), 0) > 0);
                libc::close(fd);
            }),
        },
        Case {
            name: "pidlockfile: refused, holder named, no logger",
            run: Box::new(|| {
                log::set_max_level(log::LevelFilter::Off);
                refuse(path);
            }),
        },
        Case {
            name: "pidlockfile: refused, holder named, discarding logger",
            run: Box::new(|| {
                log::set_max_level(log::LevelFilter::Trace);
                refuse(path);
            }),
        },
    ];
    log::set_logger(&Discard).unwrap();
    let results = measure(&mut cases, ROUNDS, BATCH);
    log::set_max_level(log::LevelFilter::Off);
    report(
        "Refused attempt: the lock is held by another descriptor; the error names the holder",
        &results,
        &[
            ("pidlockfile: refused, holder named, no logger", 1.5),
            ("pidlockfile: refused, holder named, discarding logger", 1.5),
        ],
    );
}

fn refuse(path: &Path) {
    match LockFile::lock(path) {
        Err(LockError::Locked {
            holder: Some(h), ..
        }) => assert!(h.pid().is_some()),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn open_rw(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap()
}

// std's file locks are newer (1.89) than this crate's minimum Rust version;
// only this comparison uses them.
#[allow(clippy::incompatible_msrv)]
fn std_try_lock_cycle(path: &Path) {
    let file = open_rw(path);
    file.try_lock().unwrap();
    file.unlock().unwrap();
}

/// A logger that takes every record and keeps none.
struct Discard;

impl log::Log for Discard {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, _: &log::Record) {}
    fn flush(&self) {}
}
