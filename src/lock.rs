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
use crate::wait;

/// An exclusive lock on a lock file, held until this value is closed or dropped.
///
/// While it is held the file reads ` <pid>;<hostname>\n` (or the rendered
/// [content template](LockOptions::content_template)). Releasing it unlocks
/// the file and closes it, and leaves the file and its content on disk.
///
/// A child forked while the lock is held shares its descriptor: the lock
/// stays held until the process that took it releases it (which unlocks for
/// every copy) or until the last copy is closed. A child's release, by
/// [`close`](LockFile::close) or drop, only closes the child's copy.
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
    /// The file the lock is on, which the path named when it was taken.
    id: sys::FileId,
    /// The process that took the lock: only it unlocks, so that a child
    /// forked while it was held releases nothing when it drops its copy.
    locker: u32,
    shared: bool,
    released: bool,
    tenure: Tenure,
    /// The place of the wait that took the lock, kept while other threads
    /// of this process wait behind it: the next of them is woken at the
    /// release (see `wait`).
    queue: Option<wait::Place>,
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
        options: &LockOptions,
    ) -> Result<LockFile, LockError> {
        let io = |e| LockError::io(path, e);
        let how = How::from(options);
        let wait = options.wait.filter(|limit| !limit.is_zero());
        let open = || sys::open_for_locking(path, how.mode, how.shared).map_err(io);
        let (attempt, begin) = match wait {
            Some(_) if wait::others_waiting() => {
                let (file, id) = open()?;
                (Attempt::Held(file, id), Begin::Queued)
            }
            Some(_) if sys::blocking_lately() && wait::expect_held() && !announcing() => {
                let (file, id) = open()?;
                (Attempt::Held(file, id), Begin::Blocking)
            }
            _ => (
                lock_at_path(path, &how, wait.is_some()).map_err(io)?,
                Begin::Tried,
            ),
        };
        let (file, id, queue) = match attempt {
            Attempt::Locked(file, id) => {
                if wait.is_some() {
                    wait::note_found_held(false);
                }
                (file, id, None)
            }
            Attempt::Held(file, id) => match wait {
                Some(limit) => {
                    let start = Instant::now();
                    let waited = wait_for_lock(path, &how, file, id, start, limit, begin);
                    // A wait that began blocking and had the lock at once
                    // found it free.
                    wait::note_found_held(
                        begin == Begin::Tried
                            || waited.is_err()
                            || wait::blocked_for(start.elapsed()),
                    );
                    waited?
                }
                None => return Err(refusal(path, &how, &file, None)),
            },
        };
        LockFile::finish(path, template, options.shared, file, id, queue)
    }

    /// Makes a lock just taken on `file` (which `path` names) a `LockFile`:
    /// reads the previous holder's content, writes this one's (unless
    /// `shared`) and begins the tenure, keeping the `queue` place of the
    /// wait that took it, if any. The blocking and the async wait both end
    /// here. On error the lock is released (and then the place).
    pub(crate) fn finish(
        path: &Path,
        template: &Template,
        shared: bool,
        file: File,
        id: sys::FileId,
        queue: Option<wait::Place>,
    ) -> Result<LockFile, LockError> {
        let previous = Tenure::read_previous(&file);
        let locker = std::process::id();
        let mut written = None;
        if !shared {
            // Rendered only once the lock is held: a refusal builds nothing.
            let hostname = if template.uses_hostname() {
                sys::hostname()
            } else {
                ""
            };
            let content_written = template.with_line(locker, hostname, |content| {
                write_content(&file, content).map(|()| content.len())
            });
            match content_written {
                Ok(len) => written = Some(len),
                Err(e) => {
                    let _ = sys::unlock(&file);
                    return Err(LockError::io(path, e));
                }
            }
        }
        Ok(LockFile {
            path: path.to_owned(),
            tenure: Tenure::begin(&file, written, previous),
            file,
            id,
            locker,
            shared,
            released: false,
            queue,
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
    /// refused, naming the caller, and a shared (reader) holder is not seen,
    /// since readers do not keep out a shared lock.
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

    /// Whether this is a shared (reader) lock: see [`LockOptions::shared`].
    pub fn is_shared(&self) -> bool {
        self.shared
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
    /// are parsed only when asked for (two allocations: the parsed holder and
    /// its line).
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
        self.release().map_err(|e| {
            let e = io::Error::new(e.kind(), format!("releasing the lock failed: {e}"));
            LockError::io(&self.path, e)
        })
    }

    /// Whether the path still names the file this lock is on. It does unless
    /// someone deleted, moved or replaced the lock file while the lock was
    /// held; then the next process to lock the path takes another file's
    /// lock, and two processes each believe they hold the lock. A lock file
    /// must never be deleted (see "The file and its content" in the crate's
    /// documentation); a holder that cannot rule it out can ask here, for
    /// example before each step that must not run twice.
    ///
    /// ```
    /// use pidlockfile::LockFile;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("LOCK");
    /// let lock = LockFile::lock(&path)?;
    /// assert!(lock.is_at_path()?);
    /// // What a tmp cleaner does; on Windows it fails while the file is open.
    /// if std::fs::remove_file(&path).is_ok() {
    ///     assert!(!lock.is_at_path()?);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// The I/O error from `lstat(2)` of the path, other than its absence
    /// (for example, permission to search its directory was taken away).
    pub fn is_at_path(&self) -> io::Result<bool> {
        sys::is_at_path(self.id, &self.path)
    }

    /// Unlocks in the process that took the lock, and then wakes the next
    /// of its threads waiting for it, if any; a child forked while it was
    /// held only closes its copy of the descriptor.
    fn release(&mut self) -> io::Result<()> {
        self.released = true;
        if std::process::id() != self.locker {
            return Ok(());
        }
        self.tenure.end(&self.file, Some(self.locker));
        let unlocked = sys::unlock(&self.file);
        drop(self.queue.take());
        unlocked
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        if !self.released {
            let _ = self.release();
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

/// Replaces the file's content with `content`: the bytes first, then the
/// length. A process reading the file meanwhile sees the old content, or the
/// new line (followed, for a moment, by the old tail), never the old line
/// alone with the release mark cut off, which would vouch for a holder that
/// has released the lock. When the first write fails with nothing written
/// (the disk is full), nothing has changed; when it fails part way, the file
/// is emptied, since a torn line could name a pid that never held the lock.
/// No fsync: the content is diagnostic, and the lock lives in the kernel.
fn write_content(file: &File, content: &[u8]) -> io::Result<()> {
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
                if written > 0 {
                    let _ = file.set_len(0);
                }
                return Err(e);
            }
        }
    }
    sys::set_len(file, content.len() as u64).inspect_err(|_| {
        let _ = file.set_len(0);
    })
}

/// How to take the lock, from the options.
pub(crate) struct How {
    pub(crate) shared: bool,
    mode: Option<u32>,
    log_refusal: Option<log::Level>,
}

impl From<&LockOptions> for How {
    fn from(options: &LockOptions) -> How {
        How {
            shared: options.shared,
            mode: options.mode,
            log_refusal: options.log_refusal,
        }
    }
}

/// What one attempt found: the lock taken on the file the path names, or
/// that file held elsewhere.
pub(crate) enum Attempt {
    Locked(File, sys::FileId),
    Held(File, sys::FileId),
}

/// Opens the file at `path` and tries its lock once. A lock taken on a file
/// that the path no longer names (it was deleted, moved away or replaced
/// between the open and the lock) is worth nothing: whoever opens the path
/// next locks another file. Such a descriptor is dropped, which releases
/// its lock, and the attempt starts again from the open; so does a refusal
/// by such a file, whose holder is not the path's, unless the caller is
/// `waiting`: a wait checks the path again before it ends.
pub(crate) fn lock_at_path(path: &Path, how: &How, waiting: bool) -> io::Result<Attempt> {
    const ATTEMPTS: usize = 1000;
    for _ in 0..ATTEMPTS {
        let (file, id) = sys::open_for_locking(path, how.mode, how.shared)?;
        let locked = sys::try_lock(&file, how.shared)?;
        if waiting && !locked {
            return Ok(Attempt::Held(file, id));
        }
        if let Some(attempt) = at_path(path, file, id, locked)? {
            return Ok(attempt);
        }
    }
    Err(io::Error::other(format!(
        "the path named another file after each of {ATTEMPTS} attempts to lock it: \
         something keeps deleting or replacing the lock file"
    )))
}

/// The attempt on `file` (its lock taken when `locked`) while `path` still
/// names it; `None` when the path names another file now. Then, or when the
/// path cannot be asked, a lock taken on `file` is released explicitly, in
/// case a forked child shares the descriptor, and the descriptor is dropped.
fn at_path(path: &Path, file: File, id: sys::FileId, locked: bool) -> io::Result<Option<Attempt>> {
    match sys::locked_file_is_at_path(id, path) {
        Ok(true) if locked => Ok(Some(Attempt::Locked(file, id))),
        Ok(true) => Ok(Some(Attempt::Held(file, id))),
        other => {
            if locked {
                let _ = sys::unlock(&file);
            }
            other.map(|_| None)
        }
    }
}

/// A waiter's retry of the file it waits on: the lock, when it is free (or
/// already `taken`, by a wait in the kernel) and the path still names the
/// file. When the path names another file now (it was deleted, moved or
/// replaced), `replaced` runs, the descriptor is dropped (releasing a lock
/// taken on it), and the attempt starts again from the open, on the new
/// file.
pub(crate) fn retry(
    path: &Path,
    how: &How,
    file: File,
    id: sys::FileId,
    taken: bool,
    replaced: impl FnOnce(),
) -> io::Result<Attempt> {
    let locked = taken || sys::try_lock(&file, how.shared)?;
    if let Some(attempt) = at_path(path, file, id, locked)? {
        return Ok(attempt);
    }
    replaced();
    lock_at_path(path, how, true)
}

/// How a wait begins.
#[derive(Clone, Copy, PartialEq)]
enum Begin {
    /// The lock was just tried and found held.
    Tried,
    /// Behind the threads of this process that wait already (see
    /// [`wait`]): not tried, so as not to take the lock from under the one
    /// woken for it.
    Queued,
    /// Not tried: this thread's waits have lately found the lock held and
    /// waits of this process have blocked in the kernel lately (the timer
    /// thread runs), so this one blocks at once, and the blocked `flock` is
    /// its try (it takes a free lock at once). A waiter that expects to find
    /// the lock held saves the try that would fail; after a few that found
    /// it free, waits begin with a try again ([`wait::expect_held`]).
    Blocking,
}

/// Whether a wait that begins is announced (`log` at `Info`, naming the
/// holder): then it tries first, since the record says that it found the
/// lock held.
fn announcing() -> bool {
    log::log_enabled!(target: "pidlockfile", log::Level::Info)
}

/// Retries until the lock is taken or `limit` passes, sleeping between tries
/// in the kernel's queue for the lock or until the file is closed somewhere
/// (see [`wait::Place::sleep`]). The threads of this process waiting
/// for one file take turns at watching and retrying (see [`wait`]); a lone
/// waiter blocks in the kernel's queue at once, without a turn. A retry
/// that finds the path naming another file (the one waited on was deleted or
/// replaced) starts again from the open and waits on the new file. On
/// timeout the waiter holds nothing and has closed its descriptor.
fn wait_for_lock(
    path: &Path,
    how: &How,
    mut file: File,
    mut id: sys::FileId,
    start: Instant,
    limit: Duration,
    begin: Begin,
) -> Result<(File, sys::FileId, Option<wait::Place>), LockError> {
    let deadline = wait::deadline(start, limit);
    let io = |e| LockError::io(path, e);
    // A wait that begins blocking, while no other thread of this process
    // waits and the process holds no exclusive lock (no thread of it is about to
    // release one and wait again), blocks in the kernel's queue at once
    // without a place in a queue (see [`wait::Alone`]), until the lock is
    // taken or the path's first check is due; it goes on as any other wait
    // if it did not take the lock, or cannot block in the kernel.
    let mut alone = None;
    let mut ever_tried = begin == Begin::Tried;
    if begin == Begin::Blocking && !crate::holder::this_process_holds_any() {
        alone = Some(wait::Alone::new());
        let until = wait::kernel_wait_until(start, deadline);
        if let Some(taken) = sys::timed_lock(&file, id, how.shared, until) {
            ever_tried = true;
            let taken = taken.map_err(io)?;
            wait::note_lone_take(taken);
            match retry(path, how, file, id, taken, || {}).map_err(io)? {
                Attempt::Locked(file, id) => return Ok((file, id, None)),
                Attempt::Held(held, held_id) => (file, id) = (held, held_id),
            }
        }
    }
    // A wait that begins blocking is not announced (it was chosen because
    // nothing announces waits).
    let mut announced = begin == Begin::Blocking;
    let mut place = wait::Place::join(id, how.shared);
    // A lone waiter leaves its count once it has its place.
    drop(alone);
    // A first watcher sleeps before it retries when the attempt that found
    // the lock held was just made, or when it blocks in the kernel at once
    // (a wait never ends without a try: where it cannot block, its first
    // sleep makes the watch and returns at once, and it tries then).
    let mut just_tried = begin != Begin::Queued && place.is_watcher();
    // The last sleep took the lock, in the kernel.
    let mut taken = false;
    loop {
        if !announced && !place.is_watcher() {
            announced = announce(path, how, &file);
        }
        match place.watch_turn(deadline) {
            wait::Turn::Retry if std::mem::take(&mut just_tried) => {}
            wait::Turn::Retry => {
                let mut replaced = false;
                let on_replaced = || {
                    place.replaced();
                    replaced = true;
                };
                let taken = std::mem::take(&mut taken);
                ever_tried = true;
                match retry(path, how, file, id, taken, on_replaced).map_err(io)? {
                    Attempt::Locked(file, id) => return Ok((file, id, place.keep_while_held())),
                    Attempt::Held(held, held_id) => (file, id) = (held, held_id),
                }
                if replaced {
                    place = wait::Place::join(id, how.shared);
                }
            }
            wait::Turn::Sleep => {}
            wait::Turn::OutOfTime => {
                // Out of time behind the watcher: the last try it would make,
                // on the file the path names now (so that a refusal names
                // that file's holder).
                ever_tried = true;
                match retry(path, how, file, id, false, || {}).map_err(io)? {
                    Attempt::Locked(file, id) => return Ok((file, id, place.keep_while_held())),
                    Attempt::Held(held, held_id) => (file, id) = (held, held_id),
                }
            }
        }
        let now = Instant::now();
        if now >= deadline {
            let waited = now.saturating_duration_since(start);
            if !std::mem::replace(&mut ever_tried, true) {
                // A wait never ends without a try (a tiny limit, or a watch
                // handed over at the deadline).
                match retry(path, how, file, id, false, || {}).map_err(io)? {
                    Attempt::Locked(file, id) => return Ok((file, id, place.keep_while_held())),
                    Attempt::Held(held, _) => file = held,
                }
            }
            drop(place);
            return Err(refusal(path, how, &file, Some(waited)));
        }
        if place.is_watcher() {
            if !announced {
                announced = announce(path, how, &file);
            }
            taken = place.sleep(&file, path, now, deadline).map_err(io)?;
        }
    }
}

/// The one record a waiter logs, naming the holder it waits for.
pub(crate) fn announce(path: &Path, how: &How, file: &File) -> bool {
    if announcing() {
        let holder = Holder::diagnose(file, !how.shared);
        log::info!(
            target: "pidlockfile",
            "Blocking waiting for file lock on {}; held{}",
            Escaped(path.as_os_str().as_encoded_bytes()),
            Held(holder.as_ref()),
        );
    }
    true
}

/// The error for a lock held elsewhere (after `waited`, if it waited), naming
/// the holder, and its one log record at the level the options give.
pub(crate) fn refusal(path: &Path, how: &How, file: &File, waited: Option<Duration>) -> LockError {
    let holder = Holder::diagnose(file, !how.shared);
    let level = how.log_refusal;
    if let Some(level) = level.filter(|&level| log::log_enabled!(target: "pidlockfile", level)) {
        let pid = holder.as_ref().and_then(Holder::pid);
        let pid: &dyn fmt::Display = match &pid {
            Some(pid) => pid,
            None => &"UNKNOWN",
        };
        log::log!(
            target: "pidlockfile",
            level,
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

impl LockFile {
    /// Closes this process's descriptor without unlocking, so that processes
    /// that inherited it keep the lock; no clean-release mark is written.
    ///
    /// This is how a program hands its lock to a child that inherited the
    /// descriptor (as `flock(1)` does): the lock then lasts until the last
    /// process holding a copy of the descriptor closes it or exits, and the
    /// kernel releases it then. Without such a process, the lock is released
    /// at once, as if by `Drop`, except that the release is not marked clean.
    pub fn detach(mut self) {
        self.released = true;
        if std::process::id() == self.locker {
            self.tenure.end(&self.file, None);
        }
    }
}

/// The lock's descriptor, for handing the lock to a child process (clear its
/// close-on-exec flag in the child, then [`LockFile::detach`] in the parent).
#[cfg(unix)]
impl std::os::fd::AsFd for LockFile {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.file)
    }
}

/// The lock's descriptor, as for [`AsFd`](std::os::fd::AsFd).
#[cfg(unix)]
impl std::os::fd::AsRawFd for LockFile {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.file)
    }
}
