//! The platform primitive on Unix: flock(2) through `fs2`, on a file opened
//! so that it can be neither a link into another file nor a FIFO that blocks.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::sync::OnceLock;

/// Mode of a lock file this crate creates (before the umask): its owner
/// locks it, everyone may read who holds it.
const CREATE_MODE: u32 = 0o644;

/// Opens or creates the lock file for locking and writing, without
/// truncating it: a failed attempt must leave the holder's content intact.
///
/// `O_NOFOLLOW` refuses a symbolic link, so that an attacker's link in a shared
/// directory cannot aim our write at a victim file; `O_NONBLOCK` keeps a FIFO
/// from blocking the open; std adds `O_CLOEXEC`, so no child inherits the lock.
/// Whether it is a regular file is checked by [`set_len`] before anything
/// is written, at no extra cost.
pub(crate) fn open_for_locking(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(CREATE_MODE)
        .custom_flags(OPEN_FLAGS)
        .open(path)
        .map_err(|e| explain_open_error(path, e))
}

/// Opens an existing lock file to read its holder, with the same refusals.
pub(crate) fn open_for_reading(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(OPEN_FLAGS)
        .open(path)
        .map_err(|e| explain_open_error(path, e))?;
    let kind = file.metadata()?.file_type();
    match kind.is_file() {
        true => Ok(file),
        false => Err(not_regular(kind)),
    }
}

const OPEN_FLAGS: i32 = libc::O_NOFOLLOW | libc::O_NONBLOCK;

/// Takes the exclusive lock without blocking: `Ok(false)` when another open
/// file description holds it.
pub(crate) fn try_lock(file: &File) -> io::Result<bool> {
    match fs2::FileExt::try_lock_exclusive(file) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == fs2::lock_contended_error().raw_os_error() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether an exclusive lock holds the file now, asked by taking a shared
/// lock without blocking and dropping it at once: a holder is not disturbed.
pub(crate) fn is_locked(file: &File) -> io::Result<bool> {
    match fs2::FileExt::try_lock_shared(file) {
        Ok(()) => fs2::FileExt::unlock(file).map(|()| false),
        Err(e) if e.raw_os_error() == fs2::lock_contended_error().raw_os_error() => Ok(true),
        Err(e) => Err(e),
    }
}

/// Releases the lock explicitly, so that a forked child that inherited the
/// descriptor does not keep it held after we close ours.
pub(crate) fn unlock(file: &File) -> io::Result<()> {
    // Named in full: std's inherent `File::unlock` would shadow the trait's.
    fs2::FileExt::unlock(file)
}

/// Sets the file's length, the first step of writing the content.
/// `ftruncate(2)` refuses anything but a regular file (`EINVAL`), so a FIFO
/// or a device is refused here, before a byte is written, without an
/// `fstat` on the way; the `fstat` comes only to explain the refusal.
pub(crate) fn set_len(file: &File, len: u64) -> io::Result<()> {
    file.set_len(len).map_err(|e| match file.metadata() {
        Ok(meta) if !meta.file_type().is_file() => not_regular(meta.file_type()),
        _ => e,
    })
}

/// Writes at `offset`, leaving the file position alone.
pub(crate) fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<usize> {
    file.write_at(buf, offset)
}

/// Reads at `offset`, leaving the file position alone.
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    file.read_at(buf, offset)
}

/// flock(2) never keeps a holder's bytes from being read.
pub(crate) fn is_locked_elsewhere(_: &io::Error) -> bool {
    false
}

/// This machine's hostname, looked up once per process.
pub(crate) fn hostname() -> &'static str {
    static HOSTNAME: OnceLock<String> = OnceLock::new();
    HOSTNAME.get_or_init(|| {
        let mut buf = [0u8; 256];
        // SAFETY: the pointer and length describe `buf`, which outlives the call.
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        if rc != 0 {
            return String::new();
        }
        let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..len]).into_owned()
    })
}

/// Replaces the kernel's words for opening a link or a socket ("Too many
/// levels of symbolic links", "No such device or address") with what happened.
fn explain_open_error(path: &Path, error: io::Error) -> io::Error {
    let puzzling = [libc::ELOOP, libc::EMLINK, libc::ENXIO, libc::EOPNOTSUPP];
    if !puzzling.contains(&error.raw_os_error().unwrap_or(0)) {
        return error;
    }
    match path.symlink_metadata() {
        Ok(meta) if !meta.file_type().is_file() && !meta.file_type().is_dir() => {
            not_regular(meta.file_type())
        }
        _ => error,
    }
}

fn not_regular(kind: std::fs::FileType) -> io::Error {
    let message = if kind.is_symlink() {
        "the path is a symbolic link; a lock file is never opened through one, \
         lest the holder's content be written into the file it points to"
    } else if kind.is_dir() {
        "the path is a directory, not a regular file"
    } else if kind.is_fifo() {
        "the path is a FIFO, not a regular file"
    } else if kind.is_socket() {
        "the path is a socket, not a regular file"
    } else if kind.is_block_device() {
        "the path is a block device, not a regular file"
    } else if kind.is_char_device() {
        "the path is a character device, not a regular file"
    } else {
        "the path is not a regular file"
    };
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// Whether a process with this pid exists: `kill(pid, 0)`, where `EPERM`
/// (it exists, but is another user's) counts as alive.
pub(crate) fn process_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false; // 0 and -1 address groups of processes, not one
    }
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

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

/// Wakes a waiter when the lock may have been released.
///
/// On Linux an inotify watch reports when a descriptor of the file is closed,
/// which is how nearly every holder releases (by close, by exit, by being
/// killed), so the waiter wakes at once and costs no CPU meanwhile. A holder
/// that unlocks without closing is caught by the waiter's periodic retry.
pub(crate) struct ReleaseWatch {
    /// The thread's inotify descriptor and this wait's watch on it.
    #[cfg(target_os = "linux")]
    watch: Option<(std::os::fd::RawFd, libc::c_int)>,
}

impl ReleaseWatch {
    /// Starts watching `path`; without a watch the waiter just retries.
    pub(crate) fn new(path: &Path) -> ReleaseWatch {
        #[cfg(target_os = "linux")]
        {
            ReleaseWatch {
                watch: inotify::watch(path),
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = path;
            ReleaseWatch {}
        }
    }

    /// Returns when the file was closed somewhere, or after `timeout`.
    pub(crate) fn wait(&mut self, timeout: std::time::Duration) {
        #[cfg(target_os = "linux")]
        if let Some((fd, _)) = self.watch {
            return inotify::wait(fd, timeout);
        }
        std::thread::sleep(timeout);
    }
}

#[cfg(target_os = "linux")]
impl Drop for ReleaseWatch {
    fn drop(&mut self) {
        if let Some((fd, wd)) = self.watch {
            // SAFETY: removes this wait's watch; the kernel frees it later.
            unsafe { libc::inotify_rm_watch(fd, wd) };
        }
    }
}

/// One inotify instance per thread that has waited, kept for its later waits:
/// closing an instance makes the kernel wait for a grace period, milliseconds
/// that would be added to the handoff, while removing a watch costs nothing.
#[cfg(target_os = "linux")]
mod inotify {
    use std::cell::OnceCell;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;
    use std::time::Duration;

    thread_local! {
        static INSTANCE: OnceCell<Option<OwnedFd>> = const { OnceCell::new() };
    }

    /// Watches `path` for closes (and for being removed or renamed, after
    /// which a retry finds out what became of it).
    pub(super) fn watch(path: &Path) -> Option<(RawFd, libc::c_int)> {
        let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
        let fd = INSTANCE.with(|instance| {
            instance
                .get_or_init(|| {
                    // SAFETY: a new descriptor, owned as soon as it exists.
                    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
                    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
                })
                .as_ref()
                .map(AsRawFd::as_raw_fd)
        })?;
        drain(fd); // what earlier waits left behind
        let mask =
            libc::IN_CLOSE | libc::IN_DELETE_SELF | libc::IN_MOVE_SELF | libc::IN_DONT_FOLLOW;
        // SAFETY: a valid descriptor and a NUL-terminated path.
        let wd = unsafe { libc::inotify_add_watch(fd, c_path.as_ptr(), mask) };
        (wd >= 0).then_some((fd, wd))
    }

    pub(super) fn wait(fd: RawFd, timeout: Duration) {
        let mut poll = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = timeout.as_millis().clamp(1, libc::c_int::MAX as u128) as libc::c_int;
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut poll, 1, millis) } > 0 {
            drain(fd);
        }
    }

    fn drain(fd: RawFd) {
        let mut events = [0u8; 4096];
        // SAFETY: reads into `events`; the descriptor is non-blocking.
        while unsafe { libc::read(fd, events.as_mut_ptr().cast(), events.len()) } > 0 {}
    }
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
