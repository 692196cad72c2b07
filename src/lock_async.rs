//! Taking a lock in an async program: the wait sleeps on the tokio runtime,
//! never on a thread, and ends when its future is dropped.
//!
//! The attempts are the blocking path's (`lock_at_path`, the check that the
//! path still names the locked file, `LockFile::finish`), all non-blocking
//! system calls; only the sleep between them differs: an
//! [`AsyncReleaseWatch`] instead of a thread's turn among its process's
//! waiters (see `crate::wait`).

use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::LockError;
use crate::lock::{announce, lock_at_path, refusal, retry, Attempt, How, LockFile};
use crate::options::LockOptions;
use crate::sys::{self, AsyncReleaseWatch};
use crate::template::Template;
use crate::wait;

/// `LockOptions::lock_async`: one attempt, then (with `wait`) retries until
/// the lock is taken or the limit passes.
pub(crate) async fn acquire(
    path: &Path,
    template: &Template,
    options: &LockOptions,
) -> Result<LockFile, LockError> {
    let how = How::from(options);
    let (file, id) = match lock_at_path(path, &how, false).map_err(|e| LockError::io(path, e))? {
        Attempt::Locked(file, id) => (file, id),
        Attempt::Held(file, id) => match options.wait.filter(|limit| !limit.is_zero()) {
            Some(limit) => wait_for_lock(path, &how, file, id, limit).await?,
            None => return Err(refusal(path, &how, &file, None)),
        },
    };
    LockFile::finish(path, template, how.shared, file, id, None)
}

/// Retries until the lock is taken or `limit` passes, sleeping on the watch
/// between tries: until the file is closed somewhere, or the next retry on
/// the blocking wait's schedule. A retry that finds the path naming another
/// file starts again from the open and watches the new file. Everything it
/// holds (the descriptor, the watch) is dropped with the future.
// The watch is dropped early, to give its inotify instance back before the
// next is borrowed; only Linux's has anything to drop.
#[cfg_attr(not(target_os = "linux"), allow(clippy::drop_non_drop))]
async fn wait_for_lock(
    path: &Path,
    how: &How,
    mut file: File,
    mut id: sys::FileId,
    limit: Duration,
) -> Result<(File, sys::FileId), LockError> {
    let start = Instant::now();
    let deadline = wait::deadline(start, limit);
    let io = |e| LockError::io(path, e);
    announce(path, how, &file);
    // Made before the next try, so that a release in between is not missed.
    let mut watch = Some(AsyncReleaseWatch::new(&file, path));
    let mut nap = wait::FIRST_NAP;
    loop {
        let mut replaced = false;
        // The old watch goes first, to give its instance back to the pool.
        let on_replaced = || {
            drop(watch.take());
            replaced = true;
        };
        match retry(path, how, file, id, false, on_replaced).map_err(io)? {
            Attempt::Locked(file, id) => return Ok((file, id)),
            Attempt::Held(held, held_id) => (file, id) = (held, held_id),
        }
        if replaced {
            watch = Some(AsyncReleaseWatch::new(&file, path));
            nap = wait::FIRST_NAP;
            continue;
        }
        let waited = start.elapsed();
        if waited >= limit {
            drop(watch);
            return Err(refusal(path, how, &file, Some(waited)));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        // Always there: only a replacement takes it, and puts a new one.
        if let Some(watch) = &mut watch {
            watch.wait(nap.min(left)).await;
        }
        nap = (nap * 2).min(wait::LONGEST_NAP);
    }
}
