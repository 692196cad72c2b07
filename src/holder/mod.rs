//! What a lock file says about the process that holds it: the type and
//! how it is read; parsing, checking and display each have a file.

mod check;
mod display;
mod parse;

use std::io;
use std::path::Path;

use crate::sys;

pub(crate) use display::Held;

/// The most bytes of a lock file that are ever read: whatever the file's
/// size, reading the holder costs one bounded read.
pub(crate) const MAX_HOLDER_BYTES: usize = 4096;

/// The most bytes a lock file this crate writes can hold: the holder's line
/// (at most [`MAX_HOLDER_BYTES`], as the content template is bounded) and
/// room for what follows it. A larger file is no lock file, and taking a
/// lock refuses to overwrite it.
pub(crate) const MAX_FILE_BYTES: u64 = 2 * MAX_HOLDER_BYTES as u64;

/// What a lock file says about its holder: the content its holder wrote,
/// and the pid and hostname read from it.
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
/// assert_eq!(holder.pid(), Some(4242));
/// assert_eq!(holder.hostname(), Some("db1"));
///
/// let plain_pid_file = Holder::parse(b"4242\n").unwrap();
/// assert_eq!(plain_pid_file.pid(), Some(4242));
/// assert_eq!(plain_pid_file.to_string(), "pid 4242");
/// assert_eq!(Holder::parse(b"  \n"), None);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    /// The line, with bytes that are not UTF-8 replaced by U+FFFD.
    content: Box<str>,
    /// The line as read, kept only when it is not UTF-8 (so it can be shown
    /// escaped byte by byte); usually one allocation holds everything.
    raw: Option<Box<[u8]>>,
    pid: Option<u32>,
    /// Where the hostname lies in the line's bytes (at most 4 KiB, so
    /// `u16` offsets: a refusal's error stays small).
    hostname: Option<(u16, u16)>,
    /// What was found when the holder was checked: set by a refusal, a
    /// timeout and [`Holder::inspect`]; `Holder::read` leaves it unchecked.
    checked: Checked,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Checked {
    /// Whether the file's pid was running then ([`Holder::is_alive`]).
    alive: Option<bool>,
    /// The pid the kernel named as holding the lock.
    kernel_pid: Option<u32>,
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
        let len = read_head(file, &mut head)?;
        Ok(Holder::parse(&head[..len]))
    }

    /// The pid the file names, if its first field is one.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The hostname the file names, if it has a second field.
    pub fn hostname(&self) -> Option<&str> {
        let (start, end) = self.hostname?;
        std::str::from_utf8(&self.bytes()[usize::from(start)..usize::from(end)]).ok()
    }

    /// The line's bytes as read.
    pub(super) fn bytes(&self) -> &[u8] {
        self.raw.as_deref().unwrap_or(self.content.as_bytes())
    }

    /// The holder's line as written, without surrounding white space; bytes
    /// that are not UTF-8 are replaced by U+FFFD.
    pub fn content(&self) -> &str {
        &self.content
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
/// length. It stops at the first newline, the end of the holder's line: one
/// read, nearly always. Where another handle's lock makes byte 0 unreadable
/// (Windows), it reads from offset 1, past the format's leading space.
fn read_head(file: &std::fs::File, buf: &mut [u8]) -> io::Result<usize> {
    let mut start = 0;
    let mut len = 0;
    while len < buf.len() {
        match sys::read_at(file, &mut buf[len..], (start + len) as u64) {
            Ok(0) => break,
            Ok(n) if buf[len..len + n].contains(&b'\n') => return Ok(len + n),
            Ok(n) => len += n,
            Err(e) if start == 0 && len == 0 && sys::is_locked_elsewhere(&e) => start = 1,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(len)
}
