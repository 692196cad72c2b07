//! A lock file that says who holds it.
//!
//! `pidlockfile` takes an exclusive, non-blocking lock on a persistent file and
//! writes the holder's pid and hostname into it, as Python's `zc.lockfile` does;
//! when another process holds the lock, the error (and one `log` record) names
//! that holder.
//!
//! # Run once
//!
//! ```
//! use pidlockfile::{LockError, LockFile};
//!
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("app.lock");
//! let _lock = match LockFile::lock(&path) {
//!     Ok(lock) => lock,
//!     Err(LockError::Locked { holder, .. }) => {
//!         let pid = holder.and_then(|h| h.pid());
//!         eprintln!("already running (pid {pid:?})");
//!         return Ok(());
//!     }
//!     Err(e) => return Err(e.into()),
//! };
//! // ... the work that must not run twice; the lock is released on drop ...
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`LockOptions`] sets what the holder writes (zc.lockfile's
//! `content_template`) and how long to [wait](LockOptions::wait) for a held
//! lock (with the feature `tokio`, `LockOptions::lock_async` waits without
//! blocking a thread); [`Holder::read`] reads a lock file's holder without locking it, and
//! [`Holder::inspect`] also checks it against the running processes and the
//! kernel.
//!
//! # The holder named is the real one
//!
//! A refusal names the process that holds the lock, and
//! [`Holder::pid`] gives it. The file's content is believed only when cheap
//! checks vouch for it: it names a process on this host that runs, is not a
//! zombie, started before the file was last written, and has not marked a
//! clean release; or it names this process, which holds that very file.
//! Otherwise the kernel is asked (`/proc/locks` on Linux), and the message
//! says why the content is stale: `held by pid 5150 on host db1 (the file's
//! content names pid 4242, a process that is not running: stale content)`.
//! The file's own word stays available as [`Holder::file_pid`]. See the
//! README for every message, what each check costs, and what stays
//! unknowable (another host; another pid namespace without
//! [`Holder::inspect`]).
//!
//! A clean release (`close` or `Drop` in the process that took the lock)
//! is marked in the file, so the next holder learns from
//! [`LockFile::previous`] and [`Holder::released`] whether the last one shut
//! down cleanly or crashed.
//!
//! # The file and its content
//!
//! While the lock is held the file holds one space, the rendered template
//! (by default `{pid};{hostname}`) and a newline: ` 4242;db1\n`. The content is
//! written only once the lock is held, so a failed attempt never changes the
//! file, and it replaces the previous holder's content whole. A clean release
//! adds a second line, `released 4242`, before unlocking.
//!
//! Releasing the lock leaves the file on disk. Deleting it would let two
//! processes hold "the" lock at once: one still holds the lock on the deleted
//! file, while another creates a new file at the same path and locks that.
//! The content left behind names the last holder; a free lock is one whose
//! lock can be taken, whatever its file says.
//!
//! **A lock file must never be deleted, moved or replaced**, by the program
//! or by anyone else. Taking the lock checks that the path still names the
//! file it locked and starts again when it does not, but nothing can stop an
//! operator or a tmp cleaner from deleting the file while it is held;
//! [`LockFile::is_at_path`] tells the holder. Keep lock files out of `/tmp`
//! and `/var/tmp`, whose cleaners delete old files (the README says where
//! they belong).
//!
//! Taking a lock refuses, before anything is locked or written, a file that
//! this crate could damage: anything but a regular file, a file larger than
//! any lock file (8 KiB: a data file locked the way `fs2` users lock it), a
//! file with more than one hard link, and a file that another user owns in
//! a world-writable sticky directory such as `/tmp`.
//!
//! ## Hard links
//!
//! A lock file with a second name (a hard link made by `cp -al`, `ln`, or a
//! hard-link snapshot such as `rsync --link-dest` takes of a data directory)
//! is refused: writing the holder would change the file under its other name
//! too. Exclude the lock file from such snapshots; if a snapshot already
//! shares it, delete the snapshot's copy, which gives the live lock file back
//! its one link.
//!
//! # How it locks
//!
//! On Unix the lock is `flock(2)` (through `fs2`), taken with `LOCK_EX | LOCK_NB`
//! on the file's open file description. Hence:
//! - Two [`LockFile`]s exclude each other even within one process.
//! - The kernel releases the lock when the holder dies, even by `SIGKILL`.
//! - Release unlocks explicitly before closing, so a child forked while the
//!   lock was held does not keep it; a child's own release only closes its
//!   copy, so it does not take the lock from the parent. Descriptors are
//!   close-on-exec, so a program the holder runs never inherits it (unless
//!   handed it on purpose: [`LockFile::detach`]).
//! - `flock` locks and POSIX `fcntl` record locks (`lockf`, Python's
//!   `fcntl.lockf`, SQLite, the `fasteners` package) do not see each other on
//!   Linux: use one kind for one file. `flock(1)`, `zc.lockfile` and
//!   `portalocker` use `flock`, as this crate does.
//! - A symbolic link at the lock path is refused rather than followed, and so
//!   is anything that is not a regular file; opening never blocks.
//!
//! On Windows the lock is `LockFileEx` on the file's first byte only:
//! Windows locks are mandatory, and locking the whole file would hide the
//! holder's pid from everyone else. Others read the holder from offset 1.
//! The file is opened without `FILE_SHARE_DELETE`, so that while anyone has
//! it open it cannot be deleted, moved or replaced at all.
//! Only Linux can name a holder that wrote nothing (`/proc/locks`), and only
//! Linux wakes a waiter at the holder's release; elsewhere a waiter retries.
#![deny(missing_docs, missing_debug_implementations)]

#[cfg(not(any(unix, windows)))]
compile_error!("pidlockfile supports Unix and Windows");

#[cfg(doctest)]
mod doctests;
mod error;
mod escape;
mod holder;
mod lock;
#[cfg(feature = "tokio")]
mod lock_async;
mod options;
mod per_process;
mod rules;
/// The platform layer, chosen here once: flock(2) on Unix, `LockFileEx` on Windows.
#[cfg_attr(unix, path = "sys/unix/mod.rs")]
#[cfg_attr(windows, path = "sys/windows.rs")]
mod sys;
mod template;
mod wait;

pub use error::LockError;
pub use holder::Holder;
pub use lock::LockFile;
pub use options::LockOptions;
pub use template::TemplateError;

/// How many times this thread has read the kernel's table of locks
/// (`/proc/locks`): for tests that prove the common refusal never does.
#[doc(hidden)]
pub fn __lock_table_reads() -> usize {
    sys::lock_table_reads()
}

/// How many waits of this thread began alone, waiting in the kernel's queue
/// without a place in the process's queue: for tests that prove when they
/// do.
#[doc(hidden)]
pub fn __lone_waits() -> usize {
    wait::lone_counts().0
}

/// How many times a lone waiter's sleep in the kernel's queue returned with
/// the lock in this thread, before the path's check: for tests that prove
/// they exercise that path.
#[doc(hidden)]
pub fn __lone_takes() -> usize {
    wait::lone_counts().1
}
