//! Opening a lock file so that it can be neither a link into another file
//! nor a FIFO that blocks, and explaining the refusals.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::retry_interrupted;
use crate::rules;

// 64-bit inode numbers and sizes on 32-bit glibc too, as std's calls.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
use libc::{fstat, fstatat, stat as StatBuf};
#[cfg(all(target_os = "linux", target_env = "gnu"))]
use libc::{fstat64 as fstat, fstatat64 as fstatat, stat64 as StatBuf};

/// Mode of a lock file this crate creates (before the umask): its owner
/// locks it, everyone may read who holds it.
const CREATE_MODE: u32 = 0o644;

/// The identity of a file: what the path must still name once it is locked
/// (its device and inode), and where it was found.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FileId {
    dev: u64,
    ino: u64,
    /// The unique id of the mount the file was opened through, never reused
    /// while the system runs (Linux 6.8 and later; 0 where not known). Not
    /// part of the identity: one file can be reached through several mounts.
    mount: u64,
}

impl PartialEq for FileId {
    fn eq(&self, other: &FileId) -> bool {
        (self.dev, self.ino) == (other.dev, other.ino)
    }
}

impl Eq for FileId {}

impl FileId {
    /// The unique id of the mount the file was opened through, if known.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn mount(self) -> Option<u64> {
        (self.mount != 0).then_some(self.mount)
    }
}

/// Opens or creates the lock file for locking and writing, without
/// truncating it (a failed attempt must leave the holder's content intact),
/// and checks from the open descriptor, before anything is locked or
/// written, that it is a file this crate may write into.
///
/// `O_NOFOLLOW` refuses a symbolic link, so that an attacker's link in a shared
/// directory cannot aim our write at a victim file; `O_NONBLOCK` keeps a FIFO
/// from blocking the open; `O_NOCTTY` keeps a terminal from becoming ours;
/// and `O_CLOEXEC`, so that no program we run inherits the lock.
///
/// With `mode`, a file this call creates gets exactly those permission bits
/// (`fchmod` after an exclusive create, so the umask does not reduce them);
/// an existing file keeps its own. A `shared` lock, which writes nothing,
/// falls back to opening for reading a file it may not write.
pub(crate) fn open_for_locking(
    path: &Path,
    mode: Option<u32>,
    shared: bool,
) -> io::Result<(File, FileId)> {
    let file = match mode {
        None => open(path, Create::IfMissing(CREATE_MODE)),
        Some(mode) => create_with_mode(path, mode),
    };
    let file = match file {
        Err(e) if shared && e.kind() == io::ErrorKind::PermissionDenied => open_for_reading(path),
        other => other.map_err(|e| explain_open_error(path, e)),
    }?;
    let stat = Stat::of(&file)?;
    check_writable_lock_file(path, &stat)?;
    Ok((file, stat.id))
}

enum Create {
    No,
    IfMissing(u32),
    New(u32),
}

fn open(path: &Path, create: Create) -> io::Result<File> {
    let (flags, mode) = match create {
        Create::No => (0, 0),
        Create::IfMissing(mode) => (libc::O_CREAT, mode),
        Create::New(mode) => (libc::O_CREAT | libc::O_EXCL, mode),
    };
    open_c(path, libc::O_RDWR | flags, mode)
}

/// `open(2)` of `path` with `flags`, [`OPEN_FLAGS`] and close-on-exec, and
/// `mode` for a file it creates: what `std::fs::OpenOptions` makes, without
/// its layers on the path every lock takes.
fn open_c(path: &Path, flags: libc::c_int, mode: u32) -> io::Result<File> {
    let flags = flags | OPEN_FLAGS | libc::O_CLOEXEC;
    // SAFETY: a NUL-terminated path.
    let fd = with_c_path(path, |path| {
        retry_interrupted(|| unsafe { libc::open(path.as_ptr(), flags, mode as libc::c_uint) })
    })?;
    // SAFETY: a descriptor just opened, owned by nothing else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Runs `f` on `path` as a C string, built on the stack where it fits, as
/// std does; but std's search for an inner NUL costs about 130
/// instructions on a 35-byte path, and the C library's `memchr` about 20,
/// on a path every lock takes twice (`callgrind`).
fn with_c_path<R>(path: &Path, f: impl FnOnce(&CStr) -> io::Result<R>) -> io::Result<R> {
    const ON_STACK: usize = 384;
    let bytes = path.as_os_str().as_bytes();
    let inner_nul = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "file name contained an unexpected NUL byte",
        )
    };
    if bytes.len() >= ON_STACK {
        return f(&CString::new(bytes).map_err(|_| inner_nul())?);
    }
    let mut buf = [MaybeUninit::<u8>::uninit(); ON_STACK];
    // Bounds-checked: the bytes and their NUL, never past the buffer.
    let c_path = &mut buf[..=bytes.len()];
    c_path[bytes.len()].write(0);
    // SAFETY: `c_path` holds the bytes and the NUL just written; `memchr`
    // reads only the bytes; the C string is made of what was written.
    let path = unsafe {
        let at = c_path.as_mut_ptr().cast::<u8>();
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), at, bytes.len());
        if !libc::memchr(at.cast(), 0, bytes.len()).is_null() {
            return Err(inner_nul());
        }
        CStr::from_bytes_with_nul_unchecked(std::slice::from_raw_parts(at, bytes.len() + 1))
    };
    f(path)
}

/// Opens the file, or creates it with exactly `mode`: the common case, an
/// existing file, costs the one `open` it always costs.
fn create_with_mode(path: &Path, mode: u32) -> io::Result<File> {
    const ATTEMPTS: usize = 100;
    for _ in 0..ATTEMPTS {
        match open(path, Create::No) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            other => return other,
        }
        match open(path, Create::New(mode & 0o7777)) {
            Ok(file) => {
                file.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777))?;
                return Ok(file);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(
        "the lock file kept appearing and disappearing while it was created",
    ))
}

/// Whether `path` still names the file `id`: it was not deleted, moved away
/// or replaced since it was opened. One `lstat`, as `fstatat` of the path
/// without following a link: a full stat, which lets an NFS client
/// revalidate by its attribute cache's rules, as `lstat` does (a `statx`
/// for the inode alone may skip that).
pub(crate) fn is_at_path(id: FileId, path: &Path) -> io::Result<bool> {
    let found = with_c_path(path, |path| {
        let mut stat = MaybeUninit::<StatBuf>::uninit();
        // SAFETY: fstatat fills `stat` for the NUL-terminated path when it
        // returns 0.
        match unsafe {
            fstatat(
                libc::AT_FDCWD,
                path.as_ptr(),
                stat.as_mut_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        } {
            0 => Ok(unsafe { stat.assume_init() }),
            _ => Err(io::Error::last_os_error()),
        }
    });
    #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
    match found {
        Ok(stat) => Ok(stat.st_dev as u64 == id.dev && stat.st_ino as u64 == id.ino),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether the path still names the file just locked: the check that
/// [`is_at_path`] makes, needed here since a file's name can change while
/// it is open.
pub(crate) fn locked_file_is_at_path(id: FileId, path: &Path) -> io::Result<bool> {
    is_at_path(id, path)
}

/// Opens an existing lock file to read its holder, with the same refusals
/// of links and of what is not a regular file.
pub(crate) fn open_for_reading(path: &Path) -> io::Result<File> {
    let file = open_c(path, libc::O_RDONLY, 0).map_err(|e| explain_open_error(path, e))?;
    let mode = Stat::of(&file)?.mode;
    match mode & libc::S_IFMT == libc::S_IFREG {
        true => Ok(file),
        false => Err(not_regular(mode)),
    }
}

/// The refusals that keep taking a lock from damaging anything: the file
/// must be a regular file with one name, no larger than any lock file, and,
/// in a directory anyone may write to, our own.
fn check_writable_lock_file(path: &Path, stat: &Stat) -> io::Result<()> {
    if stat.mode & libc::S_IFMT != libc::S_IFREG {
        return Err(not_regular(stat.mode));
    }
    rules::one_link(stat.nlink)?;
    rules::lock_file_size(stat.size)?;
    // SAFETY: geteuid cannot fail.
    if stat.uid != unsafe { libc::geteuid() } {
        if let Some(sticky) = in_world_writable_dir(path) {
            let kind = if sticky {
                "sticky directory such as /tmp"
            } else {
                "directory"
            };
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "the file is owned by {}, in a world-writable {kind}, where its \
                     owner may forge its content or delete and recreate it while the \
                     lock is held; a lock file shared between users belongs in a \
                     directory that is not world-writable",
                    user_name(stat.uid)
                ),
            ));
        }
    }
    Ok(())
}

/// Whether the directory holding `path` is world-writable, and if so
/// whether it is sticky, as /tmp is (any user may create files there, and
/// only their owner may delete them; without the sticky bit anyone may).
/// Asked only about files that another user owns.
fn in_world_writable_dir(path: &Path) -> Option<bool> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mode = mode_t(dir.metadata().ok()?.mode());
    (mode & libc::S_IWOTH != 0).then_some(mode & libc::S_ISVTX != 0)
}

/// `user "name" (uid N)`, or `uid N` when the user has no name.
fn user_name(uid: libc::uid_t) -> String {
    let mut buf = [0 as libc::c_char; 1024];
    let mut pwd = std::mem::MaybeUninit::<libc::passwd>::uninit();
    let mut found = std::ptr::null_mut();
    // SAFETY: every pointer describes a live buffer of the stated size.
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            pwd.as_mut_ptr(),
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() {
        return format!("uid {uid}");
    }
    // SAFETY: getpwuid_r filled `pwd`, whose name points into `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr((*found).pw_name) };
    format!("user {:?} (uid {uid})", name.to_string_lossy())
}

/// std's `u32` mode as the platform's `mode_t` (`u16` on macOS): the
/// permission and type bits fit either.
#[allow(clippy::unnecessary_cast)]
fn mode_t(mode: u32) -> libc::mode_t {
    mode as libc::mode_t
}

/// What the checks of an open lock file read from its descriptor, and its
/// identity.
struct Stat {
    mode: libc::mode_t,
    nlink: u64,
    size: u64,
    uid: libc::uid_t,
    id: FileId,
}

impl Stat {
    /// One `statx` on Linux, which costs what `fstat` costs and also names
    /// the mount (so that a waiter asks only once per mount whether its file
    /// system keeps `flock` locks itself: see `timed_lock`); `fstat` where
    /// `statx` is missing or filtered out, and elsewhere.
    fn of(file: &File) -> io::Result<Stat> {
        #[cfg(target_os = "linux")]
        match Stat::statx(file) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {}
            other => return other,
        }
        let mut stat = std::mem::MaybeUninit::<StatBuf>::uninit();
        // SAFETY: fstat fills `stat` when it returns 0.
        let stat = match unsafe { fstat(file.as_raw_fd(), stat.as_mut_ptr()) } {
            0 => unsafe { stat.assume_init() },
            _ => return Err(io::Error::last_os_error()),
        };
        #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
        Ok(Stat {
            mode: stat.st_mode,
            nlink: stat.st_nlink as u64,
            size: stat.st_size as u64,
            uid: stat.st_uid,
            id: FileId {
                dev: stat.st_dev as u64,
                ino: stat.st_ino as u64,
                mount: 0,
            },
        })
    }

    #[cfg(target_os = "linux")]
    fn statx(file: &File) -> io::Result<Stat> {
        /// The mount's id that is never reused (Linux 6.8), which the
        /// kernel reports only when asked, and says so in `stx_mask`.
        const STATX_MNT_ID_UNIQUE: u32 = 0x4000;
        let mask = libc::STATX_TYPE
            | libc::STATX_MODE
            | libc::STATX_NLINK
            | libc::STATX_UID
            | libc::STATX_INO
            | libc::STATX_SIZE
            | STATX_MNT_ID_UNIQUE;
        let mut stat = std::mem::MaybeUninit::<libc::statx>::uninit();
        // The system call itself (std calls the C library's wrapper where it
        // exists, else the system call): the wrapper needs glibc 2.28, and
        // Rust's targets go back to 2.17. A descriptor, not a path, so a
        // shim that rewrites paths has nothing to rewrite here.
        // SAFETY: statx fills `stat` for the descriptor (an empty path with
        // AT_EMPTY_PATH) when it returns 0.
        let stat = match unsafe {
            libc::syscall(
                libc::SYS_statx,
                file.as_raw_fd(),
                c"".as_ptr(),
                libc::AT_EMPTY_PATH | libc::AT_STATX_SYNC_AS_STAT,
                mask,
                stat.as_mut_ptr(),
            )
        } {
            0 => unsafe { stat.assume_init() },
            _ => return Err(io::Error::last_os_error()),
        };
        Ok(Stat {
            mode: stat.stx_mode.into(),
            nlink: stat.stx_nlink.into(),
            size: stat.stx_size,
            uid: stat.stx_uid,
            id: FileId {
                dev: libc::makedev(stat.stx_dev_major, stat.stx_dev_minor),
                ino: stat.stx_ino,
                mount: match stat.stx_mask & STATX_MNT_ID_UNIQUE {
                    0 => 0,
                    _ => stat.stx_mnt_id,
                },
            },
        })
    }
}

const OPEN_FLAGS: i32 = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | LARGE_FILE;

/// Where 32-bit Linux does not imply it, so that a file past 2 GiB opens
/// (and is refused as too large, not as `EOVERFLOW`), as std's `open64`.
#[cfg(any(target_os = "linux", target_os = "android"))]
const LARGE_FILE: i32 = libc::O_LARGEFILE;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const LARGE_FILE: i32 = 0;

/// Replaces the kernel's words for opening a link or a socket ("Too many
/// levels of symbolic links", "No such device or address") with what happened.
fn explain_open_error(path: &Path, error: io::Error) -> io::Error {
    let puzzling = [libc::ELOOP, libc::EMLINK, libc::ENXIO, libc::EOPNOTSUPP];
    if !puzzling.contains(&error.raw_os_error().unwrap_or(0)) {
        return error;
    }
    match path.symlink_metadata() {
        Ok(meta) if !meta.file_type().is_file() && !meta.file_type().is_dir() => {
            not_regular(mode_t(meta.mode()))
        }
        _ => error,
    }
}

/// The refusal of anything but a regular file, saying what it is.
fn not_regular(mode: libc::mode_t) -> io::Error {
    let message = match mode & libc::S_IFMT {
        libc::S_IFLNK => {
            "the path is a symbolic link; a lock file is never opened through one, \
             lest the holder's content be written into the file it points to"
        }
        libc::S_IFDIR => "the path is a directory, not a regular file",
        libc::S_IFIFO => "the path is a FIFO, not a regular file",
        libc::S_IFSOCK => "the path is a socket, not a regular file",
        libc::S_IFBLK => "the path is a block device, not a regular file",
        libc::S_IFCHR => "the path is a character device, not a regular file",
        _ => "the path is not a regular file",
    };
    io::Error::new(io::ErrorKind::InvalidInput, message)
}
