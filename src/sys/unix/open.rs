//! Opening a lock file so that it can be neither a link into another file
//! nor a FIFO that blocks, and explaining the refusals.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

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

pub(super) fn not_regular(kind: std::fs::FileType) -> io::Error {
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
