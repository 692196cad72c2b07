//! Whether a blocked `flock` on a file can be ended by a signal.
//!
//! On a local file system the kernel keeps `flock` locks itself, and a
//! signal ends the wait at once. A FUSE server, a network or cluster file
//! system may take the lock request over: FUSE, once a signal has come, waits
//! without interruption for the server's answer, and a server that ignores
//! interruptions would keep the waiter past its limit. So only the file
//! systems listed here wait in the kernel; on any other, the waiter watches
//! the file (a try that cannot block).
//!
//! The answer is the mount's to give, and a mount's file system never
//! changes: the last few mounts found local are kept by their unique ids
//! (which Linux never reuses while it runs), so that a waiter asks
//! `fstatfs` once per mount rather than at every wait. Where the kernel
//! gives no such id (before Linux 6.8), every wait asks.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

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

/// The unique ids of mounts found local (0: none), replaced in turn.
static LOCAL_MOUNTS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

/// Whether `file`, opened through the mount with unique id `mount` (if
/// known), is on a file system where a signal ends a blocked `flock`.
pub(super) fn signal_ends_flock(file: &File, mount: Option<u64>) -> bool {
    if let Some(mount) = mount {
        if LOCAL_MOUNTS
            .iter()
            .any(|slot| slot.load(Ordering::Relaxed) == mount)
        {
            return true;
        }
    }
    let local = is_local(file);
    if let (true, Some(mount)) = (local, mount) {
        let slot = NEXT_SLOT.fetch_add(1, Ordering::Relaxed) % LOCAL_MOUNTS.len();
        LOCAL_MOUNTS[slot].store(mount, Ordering::Relaxed);
    }
    local
}

/// Whether `fstatfs` names a file system of [`LOCAL`].
fn is_local(file: &File) -> bool {
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
