//! What a lock file says about the process that holds it.

use std::fmt;
use std::io;
use std::path::Path;

use crate::escape::Escaped;
use crate::sys;

/// The most bytes of a lock file that are ever read: whatever the file's
/// size, reading the holder costs one bounded read.
pub(crate) const MAX_HOLDER_BYTES: usize = 4096;

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
/// assert_eq!(holder.to_string(), "pid 4242 on host db1");
///
/// assert_eq!(Holder::parse(b"4242\n").unwrap().pid(), Some(4242));
/// assert_eq!(Holder::parse(b"  \n"), None);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    raw: Box<[u8]>,
    content: String,
    pid: Option<u32>,
    hostname: Option<String>,
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
        let file = match sys::open_for_reading(path.as_ref()) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        Self::read_from(&file)
    }

    /// Reads the holder from a lock file that is already open.
    pub(crate) fn read_from(file: &std::fs::File) -> io::Result<Option<Holder>> {
        let mut head = [0; MAX_HOLDER_BYTES];
        let len = sys::read_head(file, &mut head)?;
        Ok(Holder::parse(&head[..len]))
    }

    /// Parses the bytes at the start of a lock file; `None` when they name
    /// nobody. Never panics; only the first line, and at most 4 KiB, is kept.
    pub fn parse(bytes: &[u8]) -> Option<Holder> {
        let bytes = &bytes[..bytes.len().min(MAX_HOLDER_BYTES)];
        let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
        let line = line.trim_ascii();
        if line.is_empty() {
            return None;
        }
        let (first, rest) = match line.iter().position(|&b| b == b';' || b == b'/') {
            Some(at) => (&line[..at], &line[at + 1..]),
            None => (line, &[][..]),
        };
        Some(Holder {
            raw: line.into(),
            content: String::from_utf8_lossy(line).into_owned(),
            pid: parse_pid(first.trim_ascii()),
            hostname: std::str::from_utf8(rest.trim_ascii())
                .ok()
                .filter(|name| !name.is_empty())
                .map(str::to_owned),
        })
    }

    /// The pid the file names, if its first field is one.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The hostname the file names, if it has a second field.
    pub fn hostname(&self) -> Option<&str> {
        self.hostname.as_deref()
    }

    /// The holder's line as written, without surrounding white space; bytes
    /// that are not UTF-8 are replaced by U+FFFD.
    pub fn content(&self) -> &str {
        &self.content
    }
}

/// A pid is what `kill(2)` would take as one process: 1 to `i32::MAX`.
fn parse_pid(field: &[u8]) -> Option<u32> {
    if field.is_empty() || field.len() > 10 || !field.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let pid = field
        .iter()
        .fold(0u64, |n, &digit| n * 10 + u64::from(digit - b'0'));
    (1..=i32::MAX as u64).contains(&pid).then_some(pid as u32)
}

/// Says who the holder is, with untrusted bytes escaped:
/// `pid 4242 on host db1`, `pid 4242`, or
/// `an unknown holder (the lock file says "…")`.
impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.pid, &self.hostname) {
            (Some(pid), Some(host)) => write!(f, "pid {pid} on host {}", Escaped(host.as_bytes())),
            (Some(pid), None) => write!(f, "pid {pid}"),
            (None, _) => write!(
                f,
                "an unknown holder (the lock file names no pid; it says \"{}\")",
                Escaped(&self.raw)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(bytes: &[u8]) -> Option<(Option<u32>, Option<String>, String)> {
        Holder::parse(bytes).map(|h| {
            (
                h.pid(),
                h.hostname().map(str::to_owned),
                h.content().to_owned(),
            )
        })
    }

    #[test]
    fn zc_lockfile_formats_read_as_pid_and_hostname() {
        let expect =
            |content: &str| Some((Some(123), Some("myhost".to_owned()), content.to_owned()));
        assert_eq!(fields(b" 123;myhost\n"), expect("123;myhost"));
        assert_eq!(fields(b" 123/myhost\n"), expect("123/myhost"));
        assert_eq!(fields(b"123;myhost"), expect("123;myhost"));
        assert_eq!(fields(b" 123;myhost\r\n"), expect("123;myhost"));
        assert_eq!(fields(b" 123 ; myhost \n"), expect("123 ; myhost"));
    }

    #[test]
    fn plain_pid_files_read_as_a_pid() {
        assert_eq!(fields(b"4242\n"), Some((Some(4242), None, "4242".into())));
        assert_eq!(fields(b" 4242 \n"), Some((Some(4242), None, "4242".into())));
    }

    #[test]
    fn nothing_but_white_space_names_nobody() {
        for bytes in [&b""[..], b"\n", b"   ", b" \t\r\n", b"\n4242\n"] {
            assert_eq!(Holder::parse(bytes), None, "{bytes:?}");
        }
    }

    #[test]
    fn only_the_first_line_counts() {
        assert_eq!(fields(b" 1;a\n 2;b\n").unwrap().0, Some(1));
    }

    #[test]
    fn numbers_that_are_no_pid_give_no_pid() {
        for bytes in [
            &b"-5;h"[..],
            b"0;h",
            b"12abc;h",
            b"abc12;h",
            b"4294967296;h",
            b"2147483648;h",
            b"99999999999999999999;h",
            b"+7;h",
            b"1 2;h",
        ] {
            let holder = Holder::parse(bytes).unwrap();
            assert_eq!(holder.pid(), None, "{bytes:?}");
            assert_eq!(holder.hostname(), Some("h"), "{bytes:?}");
        }
        assert_eq!(
            Holder::parse(b"2147483647").unwrap().pid(),
            Some(i32::MAX as u32)
        );
    }

    #[test]
    fn content_is_bounded_whatever_the_input() {
        let long = vec![b'7'; 10 * MAX_HOLDER_BYTES];
        let holder = Holder::parse(&long).unwrap();
        assert_eq!(holder.content().len(), MAX_HOLDER_BYTES);
        assert_eq!(holder.pid(), None);
    }

    #[test]
    fn display_escapes_what_the_file_says() {
        let garbage = Holder::parse(b"\x1b[2J\xff;h\x07st").unwrap();
        assert_eq!(
            garbage.to_string(),
            "an unknown holder (the lock file names no pid; it says \"\\u{1b}[2J\\xff;h\\u{7}st\")"
        );
        assert_eq!(garbage.hostname(), Some("h\x07st"));
        assert_eq!(
            Holder::parse(b"7;h\x07st").unwrap().to_string(),
            "pid 7 on host h\\u{7}st"
        );
        assert_eq!(Holder::parse(b"7;\xff").unwrap().hostname(), None);
    }
}
