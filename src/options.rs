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
    pub(crate) wait: Option<Duration>,
    pub(crate) shared: bool,
    pub(crate) mode: Option<u32>,
    pub(crate) log_refusal: Option<log::Level>,
}

impl LockOptions {
    /// The defaults: an exclusive lock, the content template
    /// `{pid};{hostname}`, no waiting, a new file created with mode `0o644`
    /// less the umask, and a refusal logged at `ERROR`.
    ///
    /// Like [`std::fs::OpenOptions`], the setters borrow the options, so a
    /// chain that ends in a setter cannot be kept in a `let`
    /// (`let o = LockOptions::new().wait(..);` borrows a temporary that is
    /// dropped at once). Keep the options first, then set them:
    ///
    /// ```
    /// use std::time::Duration;
    /// use pidlockfile::LockOptions;
    ///
    /// let mut options = LockOptions::new();
    /// options.wait(Duration::from_secs(5)).log_refusal(None);
    /// # let dir = tempfile::tempdir()?;
    /// let lock = options.lock(dir.path().join("LOCK"))?;
    /// # drop(lock);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new() -> LockOptions {
        LockOptions {
            template: None,
            wait: None,
            shared: false,
            mode: None,
            log_refusal: Some(log::Level::Error),
        }
    }

    /// Takes a shared (reader) lock instead of an exclusive one: any number
    /// of processes hold it together, and it excludes an exclusive holder,
    /// as `flock(LOCK_SH)`, `std::fs::File::lock_shared` and fasteners'
    /// reader lock do. A shared holder writes nothing into the file (several
    /// readers cannot all sign one line) and leaves its bytes as they were;
    /// it may hold a lock file that it can only read.
    ///
    /// A lock is neither upgradeable nor reentrant. Each [`LockFile`] has a
    /// descriptor of its own, so an exclusive lock asked for by a process
    /// that holds a shared one is refused like anyone's (the refusal names
    /// this process); release the shared lock first, knowing that another
    /// process may take the lock in between (`flock(2)` itself converts a
    /// lock non-atomically, by releasing it first). A second shared lock in
    /// the same process is simply another reader. Waiting works as for an
    /// exclusive lock. On Windows it is `LockFileEx` without
    /// `LOCKFILE_EXCLUSIVE_LOCK` on the same byte.
    ///
    /// ```
    /// use pidlockfile::{LockError, LockOptions};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("LOCK");
    /// let mut reader = LockOptions::new();
    /// reader.shared(true);
    /// let first = reader.lock(&path)?;
    /// let second = reader.lock(&path)?; // readers share
    /// let writer = LockOptions::new().lock(&path);
    /// assert!(matches!(writer, Err(LockError::Locked { .. })));
    /// # drop((first, second));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shared(&mut self, shared: bool) -> &mut LockOptions {
        self.shared = shared;
        self
    }

    /// The Unix permission bits of a lock file this call creates, applied
    /// exactly as given (not reduced by the umask, as Python filelock's
    /// `mode` does), for a lock that several users share: `0o666` lets any
    /// user take it. An existing file keeps its mode. Ignored on Windows.
    ///
    /// A lock file shared between users belongs in a directory that they
    /// may all write to and that is not world-writable and sticky (there a
    /// file owned by another user is refused: see the crate's docs).
    pub fn mode(&mut self, mode: u32) -> &mut LockOptions {
        self.mode = Some(mode);
        self
    }

    /// The level of the one record a refusal logs (target `pidlockfile`),
    /// or `None` for no record at all: a single-instance cron job is refused
    /// by design every time. The default is `ERROR`, as zc.lockfile logged
    /// it. The record of a [wait](LockOptions::wait) (`INFO`) is not
    /// affected.
    pub fn log_refusal(&mut self, level: Option<log::Level>) -> &mut LockOptions {
        self.log_refusal = level;
        self
    }

    /// Waits up to `limit` for a lock held elsewhere, instead of failing at
    /// once. While it waits, one record is logged at `INFO` (target
    /// `pidlockfile`): `Blocking waiting for file lock on <path>; held by …`.
    ///
    /// On Linux the waiter sleeps in `flock(2)` itself, in the kernel's
    /// queue for the lock, and takes the lock there the moment it is
    /// released, as a blocking `flock` does. To end that sleep at `limit`
    /// (and every 50 ms, to check that the path still names the file), a
    /// thread of the crate, running only while waits block, sends the
    /// waiting thread a real-time signal through that thread's own timer:
    /// the first time a wait blocks, the crate takes the highest-numbered
    /// one that is at its default disposition and not blocked in the
    /// waiting thread, and gives it a handler that does nothing. It never
    /// replaces a handler of the program, never changes a thread's signal
    /// mask, and leaves no signal pending. Where that cannot be done (the
    /// program has taken every real-time signal, blocks the crate's in the
    /// waiting thread, or has taken it over since; a file system that may
    /// hand lock requests to a server, such as FUSE or NFS), the waiter
    /// sleeps until a descriptor of the file is closed (an inotify watch),
    /// which is how holders nearly always release, and retries at least
    /// every 50 ms. Elsewhere it retries on that schedule. The README's
    /// "Waiting" section says more.
    ///
    /// The threads of a process that wait for one file take turns: one
    /// waits in the kernel (or watches), the others sleep until it takes
    /// the lock or leaves, each with its own limit; and a thread that starts
    /// waiting while others of its process wait queues behind them (a
    /// thread that began waiting while no other thread of its process
    /// waited or held an exclusive lock, and blocked at once, waits in the kernel
    /// without a turn for its first 50 ms, and the first to queue meanwhile
    /// waits there beside it). A
    /// process keeps at most 4 inotify instances (one per file watched at
    /// the same time, kept for later waits); beyond that, or when the user's
    /// `fs.inotify.max_user_instances` is used up, a watching waiter retries
    /// on the schedule instead.
    ///
    /// When `limit` passes, [`lock`](LockOptions::lock) returns
    /// [`LockError::TimedOut`]; the waiter then holds nothing and has closed
    /// its descriptor. A zero `limit` tries once, as without `wait`;
    /// `Duration::MAX` waits for as long as it takes.
    ///
    /// Waiting for a lock that this same process holds (through another
    /// [`LockFile`]) waits until `limit` passes, since a lock is not
    /// reentrant; the error then says the lock is held by this process.
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
        LockFile::acquire(path, self.template(path)?, self)
    }

    /// Takes the lock as [`lock`](LockOptions::lock) does, with every option,
    /// but waits without blocking a thread: the returned future sleeps on the
    /// tokio runtime while the lock is held elsewhere (feature `tokio`).
    ///
    /// On Linux it sleeps on an inotify descriptor registered with the
    /// runtime (through `tokio::io::unix::AsyncFd`) and retries as soon as a
    /// descriptor of the file is closed, and on the same schedule as
    /// [`wait`](LockOptions::wait) (at least every 50 ms); elsewhere it
    /// retries on that schedule with `tokio::time::sleep`. The attempts are
    /// non-blocking system calls, made on the task itself. It needs a runtime
    /// with time enabled, and on Linux I/O (`Builder::enable_all`).
    ///
    /// Dropping the future (a `tokio::time::timeout` or `select!` that gives
    /// up, an aborted task) cancels the wait at once and leaves nothing
    /// behind: the lock file's descriptor is closed, no thread was started,
    /// and the inotify watch is removed. Each pending wait watches on its own
    /// (an async wait does not queue with this process's waiting threads);
    /// beyond the process's 4 inotify instances a wait retries on the
    /// schedule instead. Without [`wait`](LockOptions::wait), or with a zero
    /// limit, it tries once and refuses at once, like `lock`.
    ///
    /// ```
    /// # #[cfg(feature = "tokio")]
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// use std::time::Duration;
    /// use pidlockfile::{LockFile, LockOptions};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("LOCK");
    /// let held = LockFile::lock(&path)?;
    /// tokio::spawn(async move {
    ///     tokio::time::sleep(Duration::from_millis(20)).await;
    ///     drop(held); // the release wakes the waiting task
    /// });
    /// let mut options = LockOptions::new();
    /// options.wait(Duration::from_secs(10));
    /// let lock = options.lock_async(&path).await?;
    /// # drop(lock);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`lock`](LockOptions::lock), with the same log records.
    ///
    /// # Panics
    /// When it has to wait outside a tokio runtime, or on one without time
    /// (or, on Linux, I/O) enabled, as tokio's own types do; the wait then
    /// leaves nothing behind either.
    #[cfg(feature = "tokio")]
    pub fn lock_async(
        &self,
        path: impl AsRef<Path>,
    ) -> impl std::future::Future<Output = Result<LockFile, LockError>> + Send + '_ {
        let path = path.as_ref().to_owned();
        async move {
            let template = self.template(&path)?;
            crate::lock_async::acquire(&path, template, self).await
        }
    }

    /// The template to write, or the error for one that cannot be used.
    fn template(&self, path: &Path) -> Result<&Template, LockError> {
        match &self.template {
            None => Ok(Template::default_ref()),
            Some(Ok(template)) => Ok(template),
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
