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
pub(crate) fn open_for_locking(path: &Path) -> io::Result<File> {
    open_regular(
        path,
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(CREATE_MODE),
    )
}

/// Opens an existing lock file to read its holder, with the same refusals.
pub(crate) fn open_for_reading(path: &Path) -> io::Result<File> {
    open_regular(path, OpenOptions::new().read(true))
}

fn open_regular(path: &Path, options: &mut OpenOptions) -> io::Result<File> {
    let file = options
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| explain_open_error(path, e))?;
    ensure_regular(&file)?;
    Ok(file)
}

/// Takes the exclusive lock without blocking: `Ok(false)` when another open
/// file description holds it.
pub(crate) fn try_lock(file: &File) -> io::Result<bool> {
    match fs2::FileExt::try_lock_exclusive(file) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == fs2::lock_contended_error().raw_os_error() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Releases the lock explicitly, so that a forked child that inherited the
/// descriptor does not keep it held after we close ours.
pub(crate) fn unlock(file: &File) -> io::Result<()> {
    // Named in full: std's inherent `File::unlock` would shadow the trait's.
    fs2::FileExt::unlock(file)
}

/// Replaces the file's content: write first, then cut any longer old tail,
/// so that a reader sees the old holder or the new one, never nothing.
/// No fsync: the content is diagnostic, and the lock lives in the kernel.
///
/// When the write fails (the disk is full), the old content is kept if none
/// of it was overwritten; a torn line, which could name a pid that never held
/// the lock, is cleared instead.
pub(crate) fn write_content(file: &File, content: &[u8]) -> io::Result<()> {
    let mut written = 0;
    while written < content.len() {
        let result = match file.write_at(&content[written..], written as u64) {
            Ok(0) => Err(io::ErrorKind::WriteZero.into()),
            other => other,
        };
        match result {
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                if written > 0 {
                    let _ = file.set_len(0);
                }
                return Err(e);
            }
        }
    }
    file.set_len(content.len() as u64)
}

/// Reads the start of the file into `buf` (never more), returning the length.
pub(crate) fn read_head(file: &File, buf: &mut [u8]) -> io::Result<usize> {
    let mut len = 0;
    while len < buf.len() {
        match file.read_at(&mut buf[len..], len as u64) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(len)
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

fn ensure_regular(file: &File) -> io::Result<()> {
    let kind = file.metadata()?.file_type();
    if kind.is_file() {
        Ok(())
    } else {
        Err(not_regular(kind))
    }
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
