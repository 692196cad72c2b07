//! The Unix measurements of benches/lock.rs.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::common::calls::{open_checked, path_inode};
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
    stale_refused(dir.path());
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

/// Reads the holder's line as the crate does: to the end of its second
/// line (the release mark), here two `pread`s, the second at the end.
unsafe fn read_holder(fd: libc::c_int) {
    let mut buf = [0u8; 4096];
    let n = libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), 0);
    assert!(n > 0);
    let rest = &mut buf[n as usize..];
    assert!(libc::pread(fd, rest.as_mut_ptr().cast(), rest.len(), n as libc::off_t) >= 0);
}

/// The bare refusal: `open`, `flock` failing with `EWOULDBLOCK`, `pread` of
/// the holder, `close`; none of the checks.
unsafe fn bare_refusal(path: &CString) {
    let fd = open_raw(path);
    assert_eq!(libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB), -1);
    let mut buf = [0u8; 4096];
    assert!(libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), 0) > 0);
    libc::close(fd);
}

fn c_path(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap()
}

/// The calls every lock cycle makes, and why: `open` (no link, no blocking,
/// no controlling terminal, close-on-exec), `statx` of the descriptor
/// (`fstat` off Linux: a regular file with one link and a lock file's size,
/// checked before locking), `geteuid` (is it
/// ours, or planted by another user?), `flock`, `lstat` of
/// the path (it still names the locked file), `pread` (the previous holder,
/// for `previous()`), `getpid` (whose content, and who may unlock),
/// `pwrite` and `ftruncate` (the content), then on release `getpid` (only the
/// process that locked unlocks), `pwrite` of the clean-release mark,
/// `flock(LOCK_UN)`, `close`.
const SAME_CALLS: &str =
    "floor: libc open, statx (fstat off Linux), geteuid, flock, lstat, pread, getpid, \
     pwrite, ftruncate, getpid, pwrite (release mark), unlock, close";
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
                let (fd, ino) = open_checked(&c_path);
                assert_eq!(libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB), 0);
                assert_eq!(path_inode(&c_path), ino);
                // The previous holder's line, into a small inline buffer.
                let mut previous = [0u8; 96];
                assert!(libc::pread(fd, previous.as_mut_ptr().cast(), previous.len(), 0) > 0);
                assert!(libc::getpid() > 0);
                // The content, then its length (a reader never sees the old
                // line without its release mark).
                let n = libc::pwrite(fd, content.as_ptr().cast(), content.len(), 0);
                assert_eq!(n, content.len() as isize);
                assert_eq!(libc::ftruncate(fd, content.len() as libc::off_t), 0);
                // Only the process that took the lock marks its release.
                assert!(libc::getpid() > 0);
                let mark = b"released 4242\n";
                let at = content.len() as libc::off_t;
                assert_eq!(
                    libc::pwrite(fd, mark.as_ptr().cast(), mark.len(), at),
                    mark.len() as isize
                );
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
    // Another process holds the lock and names itself: the common refusal.
    let holder = HoldingChild::start(path);
    let c_path = c_path(path);
    let holder_pid = holder.pid;
    let stat_path = CString::new(format!("/proc/{holder_pid}/stat")).unwrap();
    let mut cases = vec![
        Case {
            name: "floor: libc open, statx (fstat off Linux), geteuid, flock (EWOULDBLOCK), lstat, pread x2, fstat, getpid, \
                   open+read+close /proc/<pid>/stat, close",
            run: Box::new(|| unsafe {
                let (fd, ino) = open_checked(&c_path);
                assert_eq!(libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB), -1);
                assert_eq!(path_inode(&c_path), ino);
                read_holder(fd);
                let mut stat: libc::stat = std::mem::zeroed();
                assert_eq!(libc::fstat(fd, &mut stat), 0);
                assert!(libc::getpid() > 0);
                let proc_fd = libc::open(stat_path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                assert!(proc_fd >= 0);
                let mut stat_buf = [0u8; 512];
                assert!(libc::read(proc_fd, stat_buf.as_mut_ptr().cast(), stat_buf.len()) > 0);
                libc::close(proc_fd);
                libc::close(fd);
            }),
        },
        Case {
            name: "bare floor: libc open, flock (EWOULDBLOCK), pread, close",
            run: Box::new(|| unsafe { bare_refusal(&c_path) }),
        },
        Case {
            name: "pidlockfile: refused, holder named, no logger",
            run: Box::new(|| {
                log::set_max_level(log::LevelFilter::Off);
                refuse(path, Some(holder_pid));
            }),
        },
        Case {
            name: "pidlockfile: refused, holder named, discarding logger",
            run: Box::new(|| {
                log::set_max_level(log::LevelFilter::Trace);
                refuse(path, Some(holder_pid));
            }),
        },
    ];
    log::set_logger(&Discard).unwrap();
    let reads = pidlockfile::__lock_table_reads();
    let results = measure(&mut cases, ROUNDS, BATCH);
    assert_eq!(
        pidlockfile::__lock_table_reads(),
        reads,
        "the common refusal read /proc/locks"
    );
    log::set_max_level(log::LevelFilter::Off);
    report(
        "Refused attempt: another process holds the lock and its content names it; the error names the holder",
        &results,
        &[
            ("pidlockfile: refused, holder named, no logger", 1.3),
            ("pidlockfile: refused, holder named, discarding logger", 1.3),
        ],
    );
    drop(cases);
    drop(holder);

    // This process holds it: the list of held files vouches, one fstat more.
    let _held = LockFile::lock(path).unwrap();
    let mut cases = vec![
        Case {
            name: "floor: libc open, statx (fstat off Linux), geteuid, flock (EWOULDBLOCK), lstat, pread x2, fstat, getpid, fstat, close",
            run: Box::new(|| unsafe {
                let (fd, ino) = open_checked(&c_path);
                assert_eq!(libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB), -1);
                assert_eq!(path_inode(&c_path), ino);
                read_holder(fd);
                let mut stat: libc::stat = std::mem::zeroed();
                assert_eq!(libc::fstat(fd, &mut stat), 0);
                assert!(libc::getpid() > 0);
                assert_eq!(libc::fstat(fd, &mut stat), 0);
                libc::close(fd);
            }),
        },
        Case {
            name: "pidlockfile: refused, held by this process",
            run: Box::new(|| refuse(path, Some(std::process::id()))),
        },
    ];
    let results = measure(&mut cases, ROUNDS, BATCH);
    report(
        "Refused attempt: this process holds the lock",
        &results,
        &[("pidlockfile: refused, held by this process", 1.3)],
    );
}

/// The refusal when the content is stale (it names a dead process) and the
/// kernel must be asked, with `n` other locks held on the system (beyond
/// those other processes hold): reading `/proc/locks` grows with them.
fn stale_refused(dir: &Path) {
    raise_open_file_limit(1100);
    let path = dir.join("STALE");
    std::fs::write(&path, format!(" {}\n", dead_pid())).unwrap();
    let holder = open_rw(&path);
    fs2::FileExt::try_lock_exclusive(&holder).unwrap(); // writes nothing, like flock(1)
    let c_path = c_path(&path);
    let others_before = std::fs::read_to_string("/proc/locks")
        .unwrap()
        .lines()
        .count();
    let mut extra = Vec::new();
    for n in [10usize, 1000] {
        while extra.len() < n {
            let file = open_rw(&dir.join(format!("other-{}", extra.len())));
            fs2::FileExt::try_lock_exclusive(&file).unwrap();
            extra.push(file);
        }
        let mut cases = vec![
            Case {
                name: "floor: libc open, flock (EWOULDBLOCK), pread, close",
                run: Box::new(|| unsafe { bare_refusal(&c_path) }),
            },
            Case {
                name: "pidlockfile: refused, stale content, kernel asked",
                run: Box::new(|| refuse(&path, Some(std::process::id()))),
            },
        ];
        let results = measure(&mut cases, 11, 200);
        report(
            &format!(
                "Refused attempt, stale content: /proc/locks read, with {n} locks held by the \
                 bench and {others_before} lines in the table before it"
            ),
            &results,
            &[],
        );
    }
}

fn raise_open_file_limit(want: libc::rlim_t) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max.min(want.max(limit.rlim_cur));
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}

fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    child.wait().unwrap();
    child.id()
}

/// A forked child that holds the lock through a `LockFile` until dropped.
struct HoldingChild {
    pid: u32,
}

impl HoldingChild {
    fn start(path: &Path) -> HoldingChild {
        let mut ready = [0 as libc::c_int; 2];
        assert_eq!(unsafe { libc::pipe(ready.as_mut_ptr()) }, 0);
        let child = unsafe { libc::fork() };
        if child == 0 {
            let lock = LockFile::lock(path).unwrap();
            unsafe {
                libc::write(ready[1], b"x".as_ptr().cast(), 1);
                libc::pause();
            }
            drop(lock);
            unsafe { libc::_exit(0) };
        }
        let mut byte = [0u8; 1];
        assert_eq!(
            unsafe { libc::read(ready[0], byte.as_mut_ptr().cast(), 1) },
            1
        );
        unsafe {
            libc::close(ready[0]);
            libc::close(ready[1]);
        }
        HoldingChild { pid: child as u32 }
    }
}

impl Drop for HoldingChild {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGKILL);
            libc::waitpid(self.pid as libc::pid_t, std::ptr::null_mut(), 0);
        }
    }
}

fn refuse(path: &Path, holder: Option<u32>) {
    match LockFile::lock(path) {
        Err(e @ LockError::Locked { .. }) => {
            assert_eq!(e.holder().and_then(|h| h.pid()), holder, "{e}")
        }
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
