//! What a file must be for this crate to write a holder into it: one name,
//! and no larger than any lock file. Each platform checks it from the open
//! file, before locking; the refusals are worded here, once.

use std::io;

use crate::holder::MAX_FILE_BYTES;

/// Refuses a file with more than one hard link, whose other names the
/// holder's line would change too.
pub(crate) fn one_link(links: u64) -> io::Result<()> {
    if links <= 1 {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "the file has {links} hard links, so writing the holder would change the \
             file under its other names too; a lock file has one name (see \
             \"Hard links\" in the crate's documentation)"
        ),
    ))
}

/// Refuses a file larger than any lock file: a data file at the lock path.
pub(crate) fn lock_file_size(size: u64) -> io::Result<()> {
    if size <= MAX_FILE_BYTES {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "the file holds {size} bytes, more than any lock file ({MAX_FILE_BYTES} at \
             most): it does not look like a lock file, and is left untouched"
        ),
    ))
}
