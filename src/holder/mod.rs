//! What a lock file says about the process that holds it: the type and
//! how it is read; parsing, checking and display each have a file.

mod check;
mod display;
mod parse;
mod tenure;

use std::io;
use std::path::Path;

use crate::sys;

pub(crate) use display::Held;
pub(crate) use tenure::{this_process_holds_any, Tenure};

/// The most bytes of a lock file that are ever read: whatever the file's
/// size, reading the holder costs one bounded read.
pub(crate) const MAX_HOLDER_BYTES: usize = 4096;

/// The most bytes a lock file this crate writes can hold: the holder's line
/// (at most [`MAX_HOLDER_BYTES`], as the content template is bounded) and
/// room for what follows it. A larger file is no lock file, and taking a
/// lock refuses to overwrite it.
pub(crate) const MAX_FILE_BYTES: u64 = 2 * MAX_HOLDER_BYTES as u64;

/// Who holds a lock: what the lock file says (the line its holder wrote, and
/// the pid and hostname read from it) and, when it was checked, what was
/// found (whether that process runs and really holds the lock, and the
/// kernel's word).
///
/// [`pid`](Holder::pid) is the pid of the process that holds the lock as far
/// as it was checked; [`file_pid`](Holder::file_pid) is the file's own word.
/// A holder from [`Holder::read`] or [`Holder::parse`] is not checked: it has
/// only the file's word, and both are the same.
///
/// The content is the file's first line without surrounding white space, so
/// zc.lockfile's format (` 4242;db1\n`) and a plain pid file (`4242\n`) both
/// read as they should. It is split at the first `;` or `/`: the first field is
/// the pid when it is a decimal number from 1 to 2³¹−1 (anything else, such as
/// `-5`, `0`, `12abc` or a number too large for a pid, gives no pid), and
/// the rest, when it is non-empty UTF-8, is the hostname.
///
/// ```
/// use pidlockfile::Holder;
///
/// let holder = Holder::parse(b" 4242;db1\n").unwrap();
/// assert_eq!(holder.file_pid(), Some(4242));
/// assert_eq!(holder.pid(), Some(4242)); // not checked: the file's word
/// assert_eq!(holder.hostname(), Some("db1"));
/// assert!(!holder.released());
/// assert!(Holder::parse(b" 4242;db1\nreleased 4242\n").unwrap().released());
///
/// let plain_pid_file = Holder::parse(b"4242\n").unwrap();
/// assert_eq!(plain_pid_file.pid(), Some(4242));
/// assert_eq!(plain_pid_file.to_string(), "pid 4242");
/// assert_eq!(Holder::parse(b"  \n"), None);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    /// The line as read when it is not UTF-8 (so that it can be shown
    /// escaped byte by byte), its first `raw_len` bytes; then the line with
    /// such bytes replaced by U+FFFD. One allocation holds everything.
    text: Box<[u8]>,
    /// 0 when the line is UTF-8 and `text` is the line itself.
    raw_len: u16,
    pid: Option<u32>,
    /// Where the hostname lies in the line's bytes (at most 4 KiB, so
    /// `u16` offsets: a refusal's error stays small).
    hostname: Option<(u16, u16)>,
    /// The file's second line is the clean-release mark of the process the
    /// first line names.
    released: bool,
    /// What was found when the holder was checked: set by a refusal, a
    /// timeout and [`Holder::inspect`]; `Holder::read` leaves it unchecked.
    checked: Checked,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Checked {
    /// What was found about the process the file names; `None` when it was
    /// not checked (unchecked, no pid, or another host's).
    named: Option<Named>,
    kernel: Kernel,
    /// Set when the process the kernel names has exited: the processes
    /// holding the lock through descriptors they inherited (`inspect`, or a
    /// refusal that asked the kernel). Boxed, so that this rare case costs
    /// a `Holder` (and every `LockError`) 8 bytes rather than 24.
    #[allow(clippy::box_collection)]
    inherited: Option<Box<Vec<u32>>>,
    /// Set when readers hold the lock (a shared lock): their pids, by the
    /// kernel's word; empty where only a probe could tell that readers hold
    /// it. Boxed for the same reason.
    #[allow(clippy::box_collection)]
    readers: Option<Box<Vec<u32>>>,
}

/// What this host says about the process a lock file names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Named {
    /// It runs, and started before the file was last written.
    Running,
    /// It runs, but when it started cannot be known here (no `/proc`, or
    /// `/proc` hides it): not enough to vouch where the kernel can be asked.
    RunningSinceUnknown,
    /// It is the process asking; `holds`: whether it holds this very file
    /// through a `LockFile` (`None`: cannot tell).
    ThisProcess {
        holds: Option<bool>,
    },
    NotRunning,
    /// It has exited and not been reaped: it holds no file.
    Zombie,
    /// A process with that pid runs, but it started after the file was
    /// written: the pid was reused, and it cannot have written the file.
    StartedAfter,
}

/// What the kernel was asked, and said.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Kernel {
    /// The cheap checks vouched for the file's content, or nobody checked.
    #[default]
    NotAsked,
    /// There is no table of lock holders to ask (not Linux, no `/proc`), or
    /// it names the holder only as outside this pid namespace.
    Unavailable,
    /// Nobody holds the lock.
    Nobody,
    /// The process with this pid holds it (the first exclusive or shared
    /// holder the table lists).
    Pid(u32),
}

impl Holder {
    /// Reads the holder named by the lock file at `path`, without locking it.
    ///
    /// Returns `Ok(None)` when the file does not exist or names nobody (it is
    /// empty or white space). At most 4 KiB are read, whatever the file's size.
    ///
    /// # Errors
    /// The I/O error from opening or reading the file. As with
    /// [`LockFile::lock`](crate::LockFile::lock), a path that is a symbolic link
    /// or not a regular file (a FIFO, a socket, a device) is refused rather
    /// than opened through, and reading never blocks.
    pub fn read(path: impl AsRef<Path>) -> io::Result<Option<Holder>> {
        match open_existing(path.as_ref())? {
            Some(file) => Self::read_from(&file),
            None => Ok(None),
        }
    }

    /// Reads the holder from a lock file that is already open.
    pub(crate) fn read_from(file: &std::fs::File) -> io::Result<Option<Holder>> {
        let mut head = [0; MAX_HOLDER_BYTES];
        let len = read_head(file, &mut head, 2)?;
        Ok(Holder::parse(&head[..len]))
    }

    /// The pid the file names, if its first field is one: the file's own
    /// word, whoever holds the lock now.
    pub fn file_pid(&self) -> Option<u32> {
        self.pid
    }

    /// Whether the process the file names released the lock cleanly: its
    /// `close` or `Drop` ran in the process that took the lock, and marked
    /// the file (a second line, `released <pid>`, after the holder's line).
    /// `false` when the holder was killed, crashed or lost power, when it
    /// still holds the lock, and when the content was written by a tool
    /// that does not mark releases (zc.lockfile, `flock(1)`).
    ///
    /// ```
    /// use pidlockfile::{Holder, LockFile};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("LOCK");
    /// let lock = LockFile::lock(&path)?;
    /// assert!(!Holder::read(&path)?.unwrap().released());
    /// lock.close()?;
    /// assert!(Holder::read(&path)?.unwrap().released());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn released(&self) -> bool {
        self.released
    }

    /// The hostname the file names, if it has a second field.
    pub fn hostname(&self) -> Option<&str> {
        let (start, end) = self.hostname?;
        std::str::from_utf8(&self.bytes()[usize::from(start)..usize::from(end)]).ok()
    }

    /// The line's bytes as read.
    pub(super) fn bytes(&self) -> &[u8] {
        match self.raw_len {
            0 => &self.text,
            len => &self.text[..usize::from(len)],
        }
    }

    /// The holder's line as written, without surrounding white space; bytes
    /// that are not UTF-8 are replaced by U+FFFD.
    pub fn content(&self) -> &str {
        // Always UTF-8 past `raw_len`, as parsing made it.
        std::str::from_utf8(&self.text[usize::from(self.raw_len)..]).unwrap_or_default()
    }
}

/// Opens an existing lock file to read it; `None` when there is none.
pub(crate) fn open_existing(path: &Path) -> io::Result<Option<std::fs::File>> {
    match sys::open_for_reading(path) {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads the start of the file into `buf` (never more), returning the
/// length. It stops once it has `lines` newlines (the holder's line, and
/// the release mark): one read, nearly always. Where another handle's lock
/// makes byte 0 unreadable (Windows), it reads from offset 1, past the
/// format's leading space.
fn read_head(file: &std::fs::File, buf: &mut [u8], lines: usize) -> io::Result<usize> {
    let mut start = 0;
    let mut len = 0;
    while len < buf.len() {
        match sys::read_at(file, &mut buf[len..], (start + len) as u64) {
            Ok(0) => break,
            Ok(n) if buf[..len + n].iter().filter(|&&b| b == b'\n').count() >= lines => {
                return Ok(len + n)
            }
            Ok(n) => len += n,
            Err(e) if start == 0 && len == 0 && sys::is_locked_elsewhere(&e) => start = 1,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(len)
}
