//! The kernel's table of locks: who holds a lock, by the kernel's word.

use std::fs::File;

/// The pid that the kernel says holds a `flock` lock on this file, where the
/// kernel says (Linux: `/proc/locks`, as `lslocks` reads it). `None` when
/// nobody holds it, or the kernel cannot be asked.
pub(crate) fn kernel_holder(file: &File) -> Option<u32> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = file.metadata().ok()?;
        let table = std::fs::read_to_string("/proc/locks").ok()?;
        let (major, minor) = (libc::major(meta.dev()), libc::minor(meta.dev()));
        flock_holder_in(&table, major.into(), minor.into(), meta.ino())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        None
    }
}

/// Finds the holder of a `FLOCK` lock on device `major:minor`, inode `ino`,
/// in the text of `/proc/locks`:
/// `1: FLOCK  ADVISORY  WRITE 4242 fe:00:10010633 0 EOF` (the device in hex).
/// Lines with `->` are processes waiting for a lock, not holding one.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn flock_holder_in(table: &str, major: u64, minor: u64, ino: u64) -> Option<u32> {
    table.lines().find_map(|line| {
        let mut fields = line.split_whitespace().skip(1);
        if fields.next()? != "FLOCK" {
            return None;
        }
        let pid: i64 = fields.nth(2)?.parse().ok()?;
        let mut place = fields.next()?.split(':');
        let matches = u64::from_str_radix(place.next()?, 16).ok()? == major
            && u64::from_str_radix(place.next()?, 16).ok()? == minor
            && place.next()?.parse::<u64>().ok()? == ino;
        // A pid outside our pid namespace shows as 0 or less: not a name we can use.
        (matches && pid > 0)
            .then(|| u32::try_from(pid).ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::flock_holder_in;

    const TABLE: &str = "\
1: POSIX  ADVISORY  WRITE 111 fe:00:77 0 EOF
2: FLOCK  ADVISORY  WRITE 222 fe:00:10010633 0 EOF
2: -> FLOCK  ADVISORY  WRITE 333 fe:00:10010633 0 EOF
3: FLOCK  ADVISORY  WRITE 444 00:2a:10010633 0 EOF
4: FLOCK  ADVISORY  WRITE 0 fe:00:55 0 EOF
";

    #[test]
    fn the_flock_holder_of_the_device_and_inode_is_found() {
        assert_eq!(flock_holder_in(TABLE, 0xfe, 0, 10010633), Some(222));
        assert_eq!(flock_holder_in(TABLE, 0, 0x2a, 10010633), Some(444));
    }

    #[test]
    fn posix_locks_waiters_and_other_files_are_not_holders() {
        assert_eq!(flock_holder_in(TABLE, 0xfe, 0, 77), None);
        assert_eq!(flock_holder_in(TABLE, 0xfe, 0, 1), None);
        assert_eq!(
            flock_holder_in(TABLE, 0xfe, 0, 55),
            None,
            "pid 0: outside our namespace"
        );
        assert_eq!(flock_holder_in("garbage\n\n1:\n", 0xfe, 0, 1), None);
    }
}
