//! The lock primitive: flock(2) through `fs2`.

use std::fs::File;
use std::io;

/// Takes the exclusive (or shared) lock without blocking: `Ok(false)` when
/// another open file description holds a lock that excludes it.
pub(crate) fn try_lock(file: &File, shared: bool) -> io::Result<bool> {
    let taken = match shared {
        false => fs2::FileExt::try_lock_exclusive(file),
        true => fs2::FileExt::try_lock_shared(file),
    };
    match taken {
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
