//! The system calls the crate makes, made through libc, for the benches'
//! floors that make the same calls.

/// The calls every attempt opens with: `open` (no link, no blocking, no
/// controlling terminal, close-on-exec), `fstat` of the descriptor (a
/// regular file with one link and a lock file's size) and `geteuid` (is it
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
    let mut stat = std::mem::zeroed::<libc::stat>();
    assert_eq!(libc::fstat(fd, &mut stat), 0);
    assert!(stat.st_nlink == 1 && stat.st_size < 8192);
    assert_eq!(stat.st_uid, libc::geteuid());
    #[allow(clippy::unnecessary_cast)]
    (fd, stat.st_ino as u64)
}

/// The inode the path names now, asked as std's `symlink_metadata` asks:
/// `statx` on Linux, `lstat` elsewhere.
#[allow(clippy::unnecessary_cast)]
pub unsafe fn path_inode(path: &std::ffi::CStr) -> u64 {
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
