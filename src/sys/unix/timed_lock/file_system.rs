//! Whether a blocked `flock` on a file can be ended by a signal.
//!
//! On a local file system the kernel keeps `flock` locks itself, and a
//! signal ends the wait at once. A FUSE server, a network or cluster file
//! system may take the lock request over: FUSE, once a signal has come, waits
//! without interruption for the server's answer, and a server that ignores
//! interruptions would keep the waiter past its limit. So only the file
//! systems listed here wait in the kernel; on any other, the waiter watches
//! the file (a try that cannot block).

use std::fs::File;
use std::os::fd::AsRawFd;

/// `statfs` magic numbers of local file systems that keep `flock` locks in
/// the kernel's own table.
const LOCAL: [i64; 16] = [
    0xEF53,      // ext2, ext3, ext4
    0x5846_5342, // xfs
    0x9123_683E, // btrfs
    0x0102_1994, // tmpfs
    0x8584_58f6, // ramfs
    0x794c_7630, // overlayfs
    0xF2F5_2010, // f2fs
    0x2fc1_2fc1, // zfs
    0xca45_1a4e, // bcachefs
    0x3153_464a, // jfs
    0x5265_4973, // reiserfs
    0x3434,      // nilfs2
    0x4d44,      // vfat
    0x2011_BAB0, // exfat
    0x7366_746e, // ntfs3
    0x4244,      // hfs
];

/// Whether `file` is on a file system where a signal ends a blocked `flock`.
pub(super) fn signal_ends_flock(file: &File) -> bool {
    // SAFETY: a zeroed statfs, filled in for a descriptor `file` keeps open.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut fs) } != 0 {
        return false;
    }
    // `f_type` is signed, and of either width, on some targets; the magic
    // numbers are 32 bits.
    #[allow(clippy::unnecessary_cast)]
    let kind = (fs.f_type as i64) & 0xFFFF_FFFF;
    LOCAL.contains(&kind)
}
