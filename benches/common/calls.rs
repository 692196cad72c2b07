//! The system calls the crate makes, made through libc, for the benches'
//! floors that make the same calls.

/// The calls every attempt opens with: `open` (no link, no blocking, no
/// controlling terminal, close-on-exec), a stat of the descriptor (a
/// regular file with one link and a lock file's size; `statx` on Linux,
/// which also names the mount, `fstat` elsewhere) and `geteuid` (is it
/// ours, or planted by another user?); returns the descriptor and its inode.
pub unsafe fn open_checked(path: &std::ffi::CStr) -> (libc::c_int, u64) {
    let flags = libc::O_RDWR
        | libc::O_CREAT
        | libc::O_CLOEXEC
        | libc::O_NOFOLLOW
        | libc::O_NONBLOCK
        | libc::O_NOCTTY;
    let fd = libc::open(path.as_ptr(), flags, 0o644);
    assert!(fd >= 0);
    #[cfg(target_os = "linux")]
    {
        let mut stat = std::mem::zeroed::<libc::statx>();
        let mask = libc::STATX_TYPE
            | libc::STATX_MODE
            | libc::STATX_NLINK
            | libc::STATX_UID
            | libc::STATX_INO
            | libc::STATX_SIZE
            | 0x4000; // STATX_MNT_ID_UNIQUE
        let flags = libc::AT_EMPTY_PATH | libc::AT_STATX_SYNC_AS_STAT;
        // The system call, as the crate makes it.
        let rc = libc::syscall(libc::SYS_statx, fd, c"".as_ptr(), flags, mask, &mut stat);
        assert_eq!(rc, 0);
        assert!(stat.stx_nlink == 1 && stat.stx_size < 8192);
        assert_eq!(stat.stx_uid, libc::geteuid());
        (fd, stat.stx_ino)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let mut stat = std::mem::zeroed::<libc::stat>();
        assert_eq!(libc::fstat(fd, &mut stat), 0);
        assert!(stat.st_nlink == 1 && stat.st_size < 8192);
        assert_eq!(stat.st_uid, libc::geteuid());
        #[allow(clippy::unnecessary_cast)]
        (fd, stat.st_ino as u64)
    }
}

/// The checks a wait with a time limit makes before it blocks in `flock`
/// (Linux): that the signal that ends it still has the crate's handler,
/// and is not blocked in this thread (else the wait could not be ended).
pub unsafe fn time_limit_checks(signal: libc::c_int) {
    let mut action = std::mem::zeroed::<libc::sigaction>();
    assert_eq!(libc::sigaction(signal, std::ptr::null(), &mut action), 0);
    let mut mask = std::mem::zeroed::<libc::sigset_t>();
    libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut mask);
    assert_ne!(libc::sigismember(&mask, signal), 1);
}

/// The inode the path names now, asked as the crate asks: `fstatat` of the
/// path without following a link (an `lstat`).
#[allow(clippy::unnecessary_cast)]
pub unsafe fn path_inode(path: &std::ffi::CStr) -> u64 {
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    use libc::{fstatat, stat as StatBuf};
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    use libc::{fstatat64 as fstatat, stat64 as StatBuf};
    let mut stat = std::mem::zeroed::<StatBuf>();
    let rc = fstatat(
        libc::AT_FDCWD,
        path.as_ptr(),
        &mut stat,
        libc::AT_SYMLINK_NOFOLLOW,
    );
    assert_eq!(rc, 0);
    stat.st_ino as u64
}
