//! The lock itself: a guard that holds a lock file's exclusive lock.

use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::LockError;
use crate::escape::Escaped;
use crate::holder::{open_existing, Held, Holder, Tenure};
use crate::options::LockOptions;
use crate::sys;
use crate::template::Template;

/// An exclusive lock on a lock file, held until this value is closed or dropped.
///
/// While it is held the file reads ` <pid>;<hostname>\n` (or the rendered
/// [content template](LockOptions::content_template)). Releasing it unlocks
/// the file and closes it, and leaves the file and its content on disk.
///
/// ```
/// use pidlockfile::LockFile;
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("LOCK");
///
/// let lock = LockFile::lock(&path)?;
/// assert!(LockFile::lock(&path).is_err()); // even from the same process
/// lock.close()?;
///
/// assert!(path.exists()); // left behind on purpose
/// let again = LockFile::lock(&path)?;
/// # drop(again);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "the lock is released as soon as the LockFile is dropped"]
pub struct LockFile {
    path: PathBuf,
    file: File,
    released: bool,
    tenure: Tenure,
}

impl LockFile {
    /// Locks the file at `path` with the default [`LockOptions`]: opens or
    /// creates it, takes its exclusive lock without blocking, and writes
    /// ` <pid>;<hostname>\n` into it.
    ///
    /// # Errors
    /// As [`LockOptions::lock`]: [`LockError::Locked`] naming the holder when
    /// another lock holds the file, [`LockError::Io`] naming the path and the
    /// cause when the file cannot be opened, locked or written.
    pub fn lock(path: impl AsRef<Path>) -> Result<LockFile, LockError> {
        LockOptions::new().lock(path)
    }

    pub(crate) fn acquire(
        path: &Path,
        template: &Template,
        wait: Option<Duration>,
    ) -> Result<LockFile, LockError> {
        let file = sys::open_for_locking(path).map_err(|e| LockError::io(path, e))?;
        if !sys::try_lock(&file).map_err(|e| LockError::io(path, e))? {
            match wait {
                Some(limit) if !limit.is_zero() => wait_for_lock(path, &file, limit)?,
                _ => return Err(refusal(path, &file, None)),
            }
        }
        let previous = Tenure::read_previous(&file);
        // Rendered only once the lock is held: a refusal builds nothing.
        let hostname = if template.uses_hostname() {
            sys::hostname()
        } else {
            ""
        };
        let pid = std::process::id();
        let content = template.render_line(pid, hostname);
        if let Err(e) = write_content(&file, &content) {
            let _ = sys::unlock(&file);
            return Err(LockError::io(path, e));
        }
        Ok(LockFile {
            path: path.to_owned(),
            tenure: Tenure::begin(&file, pid, content.len(), previous),
            file,
            released: false,
        })
    }

    /// Whether a lock holds the lock file at `path` now, without creating the
    /// file or disturbing its holder: `Ok(false)` when the file does not
    /// exist. A shared `flock` (`flock -s`) counts as holding it, since it
    /// makes [`lock`](LockFile::lock) fail. For who holds it, see
    /// [`Holder::inspect`].
    ///
    /// On Linux the kernel's table of locks (`/proc/locks`) answers, and no
    /// lock is taken: a monitoring loop never makes anyone's `lock()` fail.
    /// Reading the table costs tens of microseconds to milliseconds (it grows
    /// with every lock on the system) and holds up lock operations on the
    /// machine meanwhile, so this is an operator's call, not one for a hot
    /// loop. Elsewhere, or where `/proc` cannot be read, it asks by taking a
    /// shared lock for an instant: a `lock()` racing with that instant is
    /// refused, naming the caller.
    ///
    /// ```
    /// use pidlockfile::LockFile;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("LOCK");
    /// assert!(!LockFile::is_locked(&path)?);
    /// let lock = LockFile::lock(&path)?;
    /// assert!(LockFile::is_locked(&path)?);
    /// lock.close()?;
    /// assert!(!LockFile::is_locked(&path)?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`LockError::Io`] when the file cannot be opened for reading (it is a
    /// symbolic link, not a regular file, or permission is denied) or asked.
    pub fn is_locked(path: impl AsRef<Path>) -> Result<bool, LockError> {
        let path = path.as_ref();
        match open_existing(path).map_err(|e| LockError::io(path, e))? {
            Some(file) => match sys::is_locked_by_table(&file) {
                Some(locked) => Ok(locked),
                None => sys::is_locked(&file).map_err(|e| LockError::io(path, e)),
            },
            None => Ok(false),
        }
    }

    /// The lock file's path, as it was given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the file said about the previous holder, read just before this
    /// lock replaced it; `None` for a new or empty file. For a database
    /// taking its data directory's lock: [`Holder::released`] says whether
    /// the previous holder released the lock cleanly (its `close` or `Drop`
    /// ran in the process that took the lock), or was killed, crashed or lost
    /// power, or was a tool that does not mark releases: then recover.
    ///
    /// ```
    /// use pidlockfile::LockFile;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("LOCK");
    /// let first = LockFile::lock(&path)?;
    /// assert!(first.previous().is_none()); // a new file
    /// first.close()?;
    ///
    /// let second = LockFile::lock(&path)?;
    /// let previous = second.previous().unwrap();
    /// assert_eq!(previous.file_pid(), Some(std::process::id()));
    /// assert!(previous.released()); // a clean shutdown: no recovery needed
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// The bytes are read on every lock (one `pread`) and kept inline; they
    /// are parsed, and a short line costs an allocation, only when asked for.
    pub fn previous(&self) -> Option<&Holder> {
        self.tenure.previous()
    }

    /// Releases the lock, leaving the file on disk, and reports whether the
    /// unlock succeeded; dropping the `LockFile` does the same silently.
    ///
    /// # Errors
    /// [`LockError::Io`] when the system refuses to unlock; the descriptor is
    /// closed all the same, which releases the lock unless a forked child
    /// still has a copy of it.
    pub fn close(mut self) -> Result<(), LockError> {
        self.released = true;
        self.tenure.end(&self.file);
        sys::unlock(&self.file).map_err(|e| {
            let e = io::Error::new(e.kind(), format!("releasing the lock failed: {e}"));
            LockError::io(&self.path, e)
        })
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        if !self.released {
            self.tenure.end(&self.file);
            let _ = sys::unlock(&self.file);
        }
    }
}

impl fmt::Debug for LockFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockFile")
            .field("path", &self.path)
            .field("file", &self.file)
            .finish()
    }
}

/// Replaces the file's content with `content`: the length first (which
/// on Unix also refuses anything but a regular file, before a byte is
/// written), then the bytes. When that first step fails nothing has
/// changed; when the write then fails (the disk is full), the file is
/// emptied, since a torn line could name a pid that never held the lock.
/// No fsync: the content is diagnostic, and the lock lives in the kernel.
fn write_content(file: &File, content: &[u8]) -> io::Result<()> {
    sys::set_len(file, content.len() as u64)?;
    let mut written = 0;
    while written < content.len() {
        let result = match sys::write_at(file, &content[written..], written as u64) {
            Ok(0) => Err(io::ErrorKind::WriteZero.into()),
            other => other,
        };
        match result {
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                let _ = file.set_len(0);
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Retries until the lock is taken or `limit` passes, sleeping between tries
/// until the file is closed somewhere. On timeout the caller drops `file`,
/// so the waiter is left holding nothing.
fn wait_for_lock(path: &Path, file: &File, limit: Duration) -> Result<(), LockError> {
    const LONGEST_NAP: Duration = Duration::from_millis(50);
    let start = Instant::now();
    // Watch first, then try again: a release between the first try and the
    // watch would otherwise go unnoticed until the next retry.
    let mut watch = sys::ReleaseWatch::new(path);
    if log::log_enabled!(target: "pidlockfile", log::Level::Info) {
        let holder = Holder::diagnose(file);
        log::info!(
            target: "pidlockfile",
            "Blocking waiting for file lock on {}; held{}",
            Escaped(path.as_os_str().as_encoded_bytes()),
            Held(holder.as_ref()),
        );
    }
    let mut nap = Duration::from_millis(1);
    loop {
        if sys::try_lock(file).map_err(|e| LockError::io(path, e))? {
            return Ok(());
        }
        let waited = start.elapsed();
        let Some(left) = limit.checked_sub(waited).filter(|left| !left.is_zero()) else {
            return Err(refusal(path, file, Some(waited)));
        };
        watch.wait(nap.min(left));
        nap = (nap * 2).min(LONGEST_NAP);
    }
}

/// The error for a lock held elsewhere (after `waited`, if it waited), naming
/// the holder, and its one log record.
fn refusal(path: &Path, file: &File, waited: Option<Duration>) -> LockError {
    let holder = Holder::diagnose(file);
    if log::log_enabled!(target: "pidlockfile", log::Level::Error) {
        let pid = holder.as_ref().and_then(Holder::pid);
        let pid: &dyn fmt::Display = match &pid {
            Some(pid) => pid,
            None => &"UNKNOWN",
        };
        log::error!(
            target: "pidlockfile",
            "Error locking file {}; pid={pid}; held{}",
            Escaped(path.as_os_str().as_encoded_bytes()),
            Held(holder.as_ref()),
        );
    }
    let path = path.to_owned();
    match waited {
        None => LockError::Locked { path, holder },
        Some(waited) => LockError::TimedOut {
            path,
            waited,
            holder,
        },
    }
}
