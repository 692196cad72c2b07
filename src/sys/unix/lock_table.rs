//! The kernel's table of locks: who holds a lock, by the kernel's word, and
//! which processes hold it now through descriptors they inherited.
//!
//! Reading `/proc/locks` is not cheap: the kernel holds its lock-table lock
//! for the whole read, and the table grows with every lock on the system. It
//! is read only where the cheap checks cannot vouch for the file's content,
//! by [`Holder::inspect`](crate::Holder::inspect), and by `is_locked`.

use std::cell::Cell;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::time::SystemTime;

/// What `fstat` says about an open lock file: which file it is, and when
/// it was last written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileFacts {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) modified: Option<SystemTime>,
}

/// One `fstat` of the open file.
pub(crate) fn file_facts(file: &File) -> Option<FileFacts> {
    let meta = file.metadata().ok()?;
    Some(FileFacts {
        dev: meta.dev(),
        ino: meta.ino(),
        modified: meta.modified().ok(),
    })
}

/// Whether descriptor `fd` of this process is open on the file `facts`
/// describes: one `fstat`, no allocation.
pub(crate) fn descriptor_is(fd: std::os::fd::RawFd, facts: &FileFacts) -> bool {
    // SAFETY: fstat writes into `stat` and touches nothing else.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::fstat(fd, &mut stat) };
    rc == 0 && stat.st_dev as u64 == facts.dev && stat.st_ino as u64 == facts.ino
}

thread_local! {
    static TABLE_READS: Cell<usize> = const { Cell::new(0) };
}

/// How many times this thread has read the kernel's lock table: for tests
/// that prove the common refusal never reads it.
pub(crate) fn lock_table_reads() -> usize {
    TABLE_READS.with(Cell::get)
}

/// The processes the kernel says hold a `flock` lock on this file (Linux:
/// `/proc/locks`, as `lslocks` reads it): an exclusive holder, or every
/// shared holder. A pid of 0 or less is a holder outside this pid namespace.
/// `None` when the kernel cannot be asked.
pub(crate) fn lock_holders(file: &File) -> Option<Holders> {
    #[cfg(target_os = "linux")]
    {
        linux::lock_holders(file)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        None
    }
}

/// Whether any process holds a `flock` lock (shared or exclusive) on this
/// file, by the kernel's word and without taking a lock; `None` where the
/// kernel cannot be asked.
pub(crate) fn is_locked_by_table(file: &File) -> Option<bool> {
    lock_holders(file).map(|holders| !holders.pids.is_empty())
}

/// The processes that hold the lock on this file now through a descriptor
/// (Linux: each descriptor's `lock:` lines in `/proc/<pid>/fdinfo/<fd>`, as
/// newer `lslocks` reads them): for when the process that took the lock has
/// exited and the kernel's table still names it. Scans every process this
/// user may look into; an operator's call, never a common path.
pub(crate) fn holders_by_descriptor(file: &File) -> Vec<u32> {
    #[cfg(target_os = "linux")]
    if let Some(facts) = file_facts(file) {
        return linux::holders_by_descriptor(&facts, None);
    }
    let _ = file;
    Vec::new()
}

#[cfg(target_os = "linux")]
mod linux {
    use super::{file_facts, flock_holders_in, FileFacts, Holders, TABLE_READS};
    use std::fs::File;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;

    /// How many times the table is read before saying nobody holds the lock.
    const READS: usize = 3;

    /// The kernel shows its table a page at a time, and each read resumes by
    /// position: when other processes take and release locks meanwhile, an
    /// entry can slip past unseen. So a table that shows no holder is read
    /// again, up to [`READS`] times.
    pub(super) fn lock_holders(file: &File) -> Option<Holders> {
        let facts = file_facts(file)?;
        for _ in 1..READS {
            match holders_in_one_read(file, &facts)? {
                holders if holders.pids.is_empty() => continue,
                holders => return Some(holders),
            }
        }
        holders_in_one_read(file, &facts)
    }

    fn holders_in_one_read(file: &File, facts: &FileFacts) -> Option<Holders> {
        TABLE_READS.with(|n| n.set(n.get() + 1));
        let table = std::fs::read_to_string("/proc/locks").ok()?;
        let (major, minor) = split(facts.dev);
        let direct = flock_holders_in(&table, major, minor, facts.ino);
        if !direct.pids.is_empty() || major != 0 {
            return Some(direct);
        }
        // An anonymous device (btrfs and its subvolumes): the kernel's table
        // shows the file system's device, which `stat` does not report. Find
        // it as `lslocks` does, from the mount the file is on.
        let Some(mount) = mount_device(file).filter(|&dev| dev != facts.dev) else {
            return Some(direct);
        };
        let (major, minor) = split(mount);
        let candidates = flock_holders_in(&table, major, minor, facts.ino);
        if candidates.pids.is_empty() {
            return Some(candidates);
        }
        // Subvolumes share the device and reuse inode numbers (every
        // subvolume's first file is inode 257), so a candidate holds this
        // file only if one of its descriptors of this very file has a lock.
        Some(verified(candidates, facts))
    }

    /// Keeps the candidates that hold a lock on this file through a
    /// descriptor; a candidate that has exited counts when some process
    /// holds it through an inherited descriptor; one that cannot be looked
    /// into (another user's, for a user who is not root) is kept.
    fn verified(candidates: Holders, facts: &FileFacts) -> Holders {
        let mut inherited = None;
        let pids = candidates
            .pids
            .into_iter()
            .filter(|&pid| {
                let Ok(pid) = u32::try_from(pid) else {
                    return true;
                };
                let fds = format!("/proc/{pid}/fd");
                match std::fs::read_dir(&fds) {
                    Ok(_) => !holders_by_descriptor(facts, Some(pid)).is_empty(),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => *inherited
                        .get_or_insert_with(|| !holders_by_descriptor(facts, None).is_empty()),
                    Err(_) => true,
                }
            })
            .collect();
        Holders { pids, ..candidates }
    }

    pub(super) fn holders_by_descriptor(facts: &FileFacts, only: Option<u32>) -> Vec<u32> {
        let pids: Vec<u32> = match only {
            Some(pid) => vec![pid],
            None => match std::fs::read_dir("/proc") {
                Ok(entries) => entries
                    .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                    .collect(),
                Err(_) => return Vec::new(),
            },
        };
        let mut holders: Vec<u32> = pids
            .into_iter()
            .filter(|&pid| holds_through_a_descriptor(pid, facts))
            .collect();
        holders.sort_unstable();
        holders
    }

    /// Whether one of `pid`'s descriptors is open on this file and holds a
    /// `flock` lock (its fdinfo has a `lock:` line that is not a waiter's).
    fn holds_through_a_descriptor(pid: u32, facts: &FileFacts) -> bool {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            return false;
        };
        fds.filter_map(Result::ok).any(|fd| {
            let same_file = std::fs::metadata(fd.path())
                .is_ok_and(|m| m.dev() == facts.dev && m.ino() == facts.ino);
            same_file
                && std::fs::read_to_string(format!(
                    "/proc/{pid}/fdinfo/{}",
                    fd.file_name().to_string_lossy()
                ))
                .is_ok_and(|info| {
                    info.lines().any(|line| {
                        line.starts_with("lock:")
                            && line.contains(" FLOCK ")
                            && !line.contains("->")
                    })
                })
        })
    }

    /// The device of the mount this open file is on, from the `mnt_id` of
    /// its descriptor and `/proc/self/mountinfo`.
    fn mount_device(file: &File) -> Option<u64> {
        let info =
            std::fs::read_to_string(format!("/proc/self/fdinfo/{}", file.as_raw_fd())).ok()?;
        let mnt_id = info
            .lines()
            .find_map(|line| line.strip_prefix("mnt_id:"))?
            .trim();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        let line = mounts
            .lines()
            .find(|line| line.split_whitespace().next() == Some(mnt_id))?;
        let (major, minor) = line.split_whitespace().nth(2)?.split_once(':')?;
        Some(libc::makedev(major.parse().ok()?, minor.parse().ok()?))
    }

    fn split(dev: u64) -> (u64, u64) {
        (libc::major(dev).into(), libc::minor(dev).into())
    }
}

/// The holders of `FLOCK` locks on device `major:minor`, inode `ino`, in the
/// text of `/proc/locks`: `1: FLOCK  ADVISORY  WRITE 4242 fe:00:10010633 0
/// EOF` (the device in hex). Lines with `->` are processes waiting for a
/// lock, not holding one. An exclusive holder comes first.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn flock_holders_in(table: &str, major: u64, minor: u64, ino: u64) -> Holders {
    let mut holders: Vec<(bool, i64)> = table
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace().skip(1);
            if fields.next()? != "FLOCK" {
                return None;
            }
            let write = fields.nth(1)? == "WRITE";
            let pid: i64 = fields.next()?.parse().ok()?;
            let mut place = fields.next()?.split(':');
            let matches = u64::from_str_radix(place.next()?, 16).ok()? == major
                && u64::from_str_radix(place.next()?, 16).ok()? == minor
                && place.next()?.parse::<u64>().ok()? == ino;
            matches.then_some((!write, pid))
        })
        .collect();
    holders.sort_by_key(|&(shared, _)| shared);
    Holders {
        shared: holders.first().is_some_and(|&(shared, _)| shared),
        pids: holders.into_iter().map(|(_, pid)| pid).collect(),
    }
}

/// Who holds a file's `flock` lock, by the kernel's word: the pids (0 or
/// less for a holder outside this pid namespace), and whether they hold it
/// shared (readers) rather than exclusively (one writer, listed first).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Holders {
    pub(crate) pids: Vec<i64>,
    pub(crate) shared: bool,
}

#[cfg(test)]
mod tests {
    use super::flock_holders_in;

    const TABLE: &str = "\
1: POSIX  ADVISORY  WRITE 111 fe:00:77 0 EOF
2: FLOCK  ADVISORY  WRITE 222 fe:00:10010633 0 EOF
2: -> FLOCK  ADVISORY  WRITE 333 fe:00:10010633 0 EOF
3: FLOCK  ADVISORY  WRITE 444 00:2a:10010633 0 EOF
4: FLOCK  ADVISORY  WRITE 0 fe:00:55 0 EOF
5: FLOCK  ADVISORY  READ 555 fe:00:66 0 EOF
6: FLOCK  ADVISORY  READ 556 fe:00:66 0 EOF
";

    #[test]
    fn the_flock_holder_of_the_device_and_inode_is_found() {
        assert_eq!(flock_holders_in(TABLE, 0xfe, 0, 10010633).pids, [222]);
        assert_eq!(flock_holders_in(TABLE, 0, 0x2a, 10010633).pids, [444]);
    }

    #[test]
    fn every_shared_holder_is_found() {
        assert_eq!(flock_holders_in(TABLE, 0xfe, 0, 66).pids, [555, 556]);
        assert!(flock_holders_in(TABLE, 0xfe, 0, 66).shared);
        assert!(!flock_holders_in(TABLE, 0xfe, 0, 10010633).shared);
    }

    #[test]
    fn posix_locks_waiters_and_other_files_are_not_holders() {
        assert!(flock_holders_in(TABLE, 0xfe, 0, 77).pids.is_empty());
        assert!(flock_holders_in(TABLE, 0xfe, 0, 1).pids.is_empty());
        assert_eq!(
            flock_holders_in(TABLE, 0xfe, 0, 55).pids,
            [0],
            "pid 0: outside our namespace, but a holder"
        );
        assert!(flock_holders_in("garbage\n\n1:\n", 0xfe, 0, 1)
            .pids
            .is_empty());
    }
}
