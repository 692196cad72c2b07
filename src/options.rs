//! How to take a lock: the builder, in the style of `std::fs::OpenOptions`.

use std::path::Path;
use std::time::Duration;

use crate::error::LockError;
use crate::lock::LockFile;
use crate::template::{Template, TemplateError};

/// Options for taking a lock, for when [`LockFile::lock`]'s defaults do not fit.
///
/// ```
/// use pidlockfile::{Holder, LockOptions};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("app.lock");
/// let lock = LockOptions::new()
///     .content_template("{pid}/{hostname} (nightly backup)")
///     .lock(&path)?;
///
/// let holder = Holder::read(&path)?.unwrap();
/// assert_eq!(holder.pid(), Some(std::process::id()));
/// assert!(holder.content().ends_with(" (nightly backup)"));
/// lock.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct LockOptions {
    /// `None`: the default template, shared and parsed once.
    template: Option<Result<Template, TemplateError>>,
    wait: Option<Duration>,
}

impl LockOptions {
    /// The defaults: the content template `{pid};{hostname}`, and no waiting.
    pub fn new() -> LockOptions {
        LockOptions {
            template: None,
            wait: None,
        }
    }

    /// Waits up to `limit` for a lock held elsewhere, instead of failing at
    /// once. While it waits, one record is logged at `INFO` (target
    /// `pidlockfile`): `Blocking waiting for file lock on <path>; held by …`.
    ///
    /// On Linux the waiter sleeps until a descriptor of the file is closed,
    /// which is how holders nearly always release (by closing, exiting or being
    /// killed), and then retries at once; a holder that unlocks but keeps the
    /// file open is noticed by a retry at least every 50 ms. Elsewhere it
    /// retries on that schedule.
    ///
    /// The threads of a process that wait for one file take turns: one
    /// watches and retries, the others sleep until it takes the lock or
    /// leaves, each with its own limit, so that a release wakes one thread per
    /// process, not all of them; and a thread that starts waiting while others
    /// of its process wait queues behind them. A process keeps at most 4
    /// inotify instances (one per file waited for at the same time, kept for
    /// later waits); beyond that, or when the user's
    /// `fs.inotify.max_user_instances` is used up, a waiter retries on the
    /// schedule instead.
    ///
    /// When `limit` passes, [`lock`](LockOptions::lock) returns
    /// [`LockError::TimedOut`]; the waiter then holds nothing and has closed
    /// its descriptor. A zero `limit` tries once, as without `wait`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use pidlockfile::{LockError, LockFile, LockOptions};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("LOCK");
    /// let held = LockFile::lock(&path)?;
    /// let err = LockOptions::new().wait(Duration::from_millis(20)).lock(&path).unwrap_err();
    /// assert!(matches!(err, LockError::TimedOut { .. }));
    ///
    /// let releaser = std::thread::spawn(move || {
    ///     std::thread::sleep(Duration::from_millis(20));
    ///     drop(held);
    /// });
    /// let lock = LockOptions::new().wait(Duration::from_secs(10)).lock(&path)?;
    /// # releaser.join().unwrap();
    /// # drop(lock);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait(&mut self, limit: Duration) -> &mut LockOptions {
        self.wait = Some(limit);
        self
    }

    /// Sets what the holder writes into the lock file, as zc.lockfile's
    /// `content_template` does: `{pid}` and `{hostname}` are replaced by the
    /// holder's, `{{` and `}}` stand for braces. The file then holds a space,
    /// the rendered template and a newline.
    ///
    /// A template that cannot be used (an unknown placeholder such as `{host}`,
    /// an unbalanced brace, a line break) makes [`lock`](LockOptions::lock)
    /// return [`LockError::Template`] before the file is touched.
    ///
    /// A template without `{pid}` leaves the holder's pid out of the file, so a
    /// refusal cannot name the holder's pid.
    pub fn content_template(&mut self, template: &str) -> &mut LockOptions {
        self.template = Some(Template::parse(template));
        self
    }

    /// Opens or creates the lock file at `path`, takes its exclusive lock
    /// without blocking, and writes the holder's content into it.
    ///
    /// # Errors
    /// - [`LockError::Locked`] when another lock holds the file, with the holder
    ///   read from it (checked against the kernel when the file does not name a
    ///   running process on this host); one record is logged at `ERROR` level
    ///   (target `pidlockfile`): `Error locking file <path>; pid=<pid or
    ///   UNKNOWN>`, followed by what was found when the file's content is not the
    ///   whole story. The file is left as it was.
    /// - [`LockError::TimedOut`] instead, after [`wait`](LockOptions::wait).
    /// - [`LockError::Template`] when the content template cannot be used.
    /// - [`LockError::Io`] when the file cannot be opened, locked or written:
    ///   for example its directory is missing, it is a directory, a symbolic
    ///   link, a FIFO or a device, permission is denied, or the disk is full.
    ///   No lock is left held.
    pub fn lock(&self, path: impl AsRef<Path>) -> Result<LockFile, LockError> {
        let path = path.as_ref();
        match &self.template {
            None => LockFile::acquire(path, Template::default_ref(), self.wait),
            Some(Ok(template)) => LockFile::acquire(path, template, self.wait),
            Some(Err(e)) => Err(LockError::Template {
                path: path.to_owned(),
                source: e.clone(),
            }),
        }
    }
}

impl Default for LockOptions {
    fn default() -> LockOptions {
        LockOptions::new()
    }
}
