//! What a lock file says about the process that holds it.

use std::fmt;
use std::io;
use std::ops::Range;
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

    /// Reads the holder named by the lock file at `path` and checks it: whether
    /// the named process is running, and (on Linux, from `/proc/locks`, as
    /// `lslocks` does) which process the kernel says holds the lock, without
    /// taking or disturbing the lock.
    ///
    /// Returns `Ok(None)` when the file does not exist, or names nobody and
    /// the kernel names no holder either.
    ///
    /// ```
    /// use pidlockfile::{Holder, LockFile};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("LOCK");
    /// let lock = LockFile::lock(&path)?;
    /// let holder = Holder::inspect(&path)?.unwrap();
    /// assert_eq!(holder.is_alive(), Some(true));
    /// assert!(!holder.is_stale());
    /// # #[cfg(target_os = "linux")]
    /// assert_eq!(holder.kernel_pid(), Some(std::process::id()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`Holder::read`].
    pub fn inspect(path: impl AsRef<Path>) -> io::Result<Option<Holder>> {
        let Some(file) = open_existing(path.as_ref())? else {
            return Ok(None);
        };
        Ok(Holder::check(Holder::read_from(&file)?, &file, true))
    }

    /// Reads the holder from a lock file that is already open.
    pub(crate) fn read_from(file: &std::fs::File) -> io::Result<Option<Holder>> {
        let mut head = [0; MAX_HOLDER_BYTES];
        let len = read_head(file, &mut head)?;
        Ok(Holder::parse(&head[..len]))
    }

    /// Who holds the lock on `file`, which another lock holds: the file's
    /// content, checked against the kernel when it does not name a process
    /// running on this host (which costs reading `/proc/locks`).
    pub(crate) fn diagnose(file: &std::fs::File) -> Option<Holder> {
        Holder::check(Holder::read_from(file).ok().flatten(), file, false)
    }

    fn check(
        holder: Option<Holder>,
        file: &std::fs::File,
        always_ask_kernel: bool,
    ) -> Option<Holder> {
        let alive = holder.as_ref().and_then(Holder::is_alive);
        let kernel_pid = if always_ask_kernel || alive != Some(true) {
            sys::kernel_holder(file)
        } else {
            None
        };
        if holder.is_none() && kernel_pid.is_none() {
            return None;
        }
        let mut holder = holder.unwrap_or_else(Holder::empty);
        holder.checked = Checked { alive, kernel_pid };
        Some(holder)
    }

    /// A holder whose file says nothing, for when only the kernel names one.
    fn empty() -> Holder {
        Holder {
            raw: None,
            content: Box::default(),
            pid: None,
            hostname: None,
            checked: Checked::default(),
        }
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
        let (first, hostname) = match line.iter().position(|&b| b == b';' || b == b'/') {
            Some(at) => (&line[..at], trimmed(line, at + 1..line.len())),
            None => (line, None),
        };
        let hostname = hostname
            .filter(|at| std::str::from_utf8(&line[at.clone()]).is_ok())
            .map(|at| (at.start as u16, at.end as u16));
        let (content, raw) = match std::str::from_utf8(line) {
            Ok(text) => (Box::from(text), None),
            Err(_) => (String::from_utf8_lossy(line).into(), Some(Box::from(line))),
        };
        Some(Holder {
            content,
            raw,
            pid: parse_pid(first.trim_ascii()),
            hostname,
            checked: Checked::default(),
        })
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
    fn bytes(&self) -> &[u8] {
        self.raw.as_deref().unwrap_or(self.content.as_bytes())
    }

    /// The holder's line as written, without surrounding white space; bytes
    /// that are not UTF-8 are replaced by U+FFFD.
    pub fn content(&self) -> &str {
        &self.content
    }

    /// Whether the process the file names is running now: `Some(true)` or
    /// `Some(false)` when the file names a pid and either no hostname or this
    /// host's (its first word, so `db1 (nightly)` is `db1`); `None` when it
    /// names no pid, or another host, where a pid means nothing here.
    /// `kill(pid, 0)` decides, and a process of another user counts as running.
    pub fn is_alive(&self) -> Option<bool> {
        let pid = self.pid?;
        if !self.is_on_this_host() {
            return None;
        }
        Some(sys::process_exists(pid))
    }

    /// The pid that the kernel named as holding the lock when this holder was
    /// checked (by a refusal, a timeout or [`Holder::inspect`]), on Linux. It
    /// is the real holder even when the file's content is stale; a refusal
    /// asks the kernel only when the content does not name a running process
    /// on this host.
    pub fn kernel_pid(&self) -> Option<u32> {
        self.checked.kernel_pid
    }

    /// Whether the file's content was found not to name the lock's holder:
    /// the kernel named another process, or the named process was not
    /// running. Content naming another host is never judged stale: its pid
    /// means nothing here.
    pub fn is_stale(&self) -> bool {
        if !self.is_on_this_host() {
            return false;
        }
        match self.checked.kernel_pid {
            Some(kernel_pid) => self.pid != Some(kernel_pid),
            None => self.checked.alive == Some(false),
        }
    }

    /// The pid of the process that holds the lock, as best known: the
    /// kernel's word, else the file's unless that process was found dead.
    pub(crate) fn holder_pid(&self) -> Option<u32> {
        match (self.checked.kernel_pid, self.checked.alive) {
            (Some(pid), _) => Some(pid),
            (None, Some(false)) => None,
            (None, _) => self.pid,
        }
    }

    fn is_on_this_host(&self) -> bool {
        match self.hostname().and_then(|h| h.split_whitespace().next()) {
            Some(name) => name == sys::hostname(),
            None => true,
        }
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

/// The part of `line[within]` without white space at either end, if any is left.
fn trimmed(line: &[u8], within: Range<usize>) -> Option<Range<usize>> {
    let field = &line[within.clone()];
    let start = within.start + field.iter().position(|b| !b.is_ascii_whitespace())?;
    let end = within.start + field.iter().rposition(|b| !b.is_ascii_whitespace())? + 1;
    Some(start..end)
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

/// Says who holds the lock: `pid 4242 on host db1`; `pid 4242 on host db1
/// (the file's content names pid 17, a process that is not running: stale
/// content)`; `a process that wrote no holder (kernel says pid 4242)`; or
/// `holder unknown (…)`. Bytes from the file are escaped.
impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = |f: &mut fmt::Formatter<'_>| match self.hostname() {
            Some(host) => write!(f, " on host {}", Escaped(host.as_bytes())),
            None => Ok(()),
        };
        let dead = self.checked.alive == Some(false);
        match (self.pid, self.checked.kernel_pid) {
            (Some(pid), Some(kernel)) if pid == kernel => {
                write!(f, "pid {pid}")?;
                host(f)
            }
            (Some(pid), Some(kernel)) if !self.is_on_this_host() => {
                write!(f, "pid {pid}")?;
                host(f)?;
                write!(
                    f,
                    " (another host; this host's kernel says pid {kernel} holds the lock)"
                )
            }
            (Some(pid), Some(kernel)) => {
                let here = Escaped(sys::hostname().as_bytes());
                write!(
                    f,
                    "pid {kernel} on host {here} (the file's content names pid {pid}, "
                )?;
                match dead {
                    true => write!(f, "a process that is not running: stale content)"),
                    false => write!(f, "which does not hold the lock: stale content)"),
                }
            }
            (None, Some(kernel)) => {
                write!(
                    f,
                    "a process that wrote no holder (kernel says pid {kernel}"
                )?;
                match self.content.is_empty() {
                    true => write!(f, ")"),
                    false => write!(f, "; the file says \"{}\")", Escaped(self.bytes())),
                }
            }
            (Some(pid), None) if dead => {
                write!(f, "holder unknown (the file's content names pid {pid}")?;
                host(f)?;
                write!(f, ", a process that is not running: stale content)")
            }
            (Some(pid), None) => {
                write!(f, "pid {pid}")?;
                host(f)?;
                match self.is_on_this_host() {
                    true => Ok(()),
                    false => write!(f, " (another host: whether it runs cannot be checked here)"),
                }
            }
            (None, None) => write!(
                f,
                "holder unknown (the lock file names no pid; it says \"{}\")",
                Escaped(self.bytes())
            ),
        }
    }
}

/// What follows "held" in messages: ` by pid 4242 on host db1`, or
/// `, holder unknown (…)`, also when nothing at all is known.
pub(crate) struct Held<'a>(pub(crate) Option<&'a Holder>);

impl fmt::Display for Held<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(holder) if holder.holder_pid().is_some() => write!(f, " by {holder}"),
            Some(holder) => write!(f, ", {holder}"),
            None => write!(f, ", holder unknown (the lock file names nobody)"),
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
            "holder unknown (the lock file names no pid; it says \"\\u{1b}[2J\\xff;h\\u{7}st\")"
        );
        assert_eq!(garbage.hostname(), Some("h\x07st"));
        assert_eq!(
            Holder::parse(b"7;h\x07st").unwrap().to_string(),
            "pid 7 on host h\\u{7}st (another host: whether it runs cannot be checked here)"
        );
        assert_eq!(Holder::parse(b"7;\xff").unwrap().hostname(), None);
    }

    mod properties {
        use super::*;
        use crate::template::Template;
        use proptest::prelude::*;

        /// A hostname as it can survive a line: no line break, nothing that
        /// reads as white space at either end (which parsing trims).
        fn hostname() -> impl Strategy<Value = String> {
            "[^\n\r]{1,64}".prop_filter("no surrounding white space", |h| {
                h.trim_matches(|c: char| c.is_ascii_whitespace()) == h
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn the_default_template_parses_back_to_its_pid_and_hostname(
                pid in 1..=i32::MAX as u32,
                hostname in hostname(),
            ) {
                let line = Template::default_ref().render_line(pid, &hostname);
                let holder = Holder::parse(&line).unwrap();
                prop_assert_eq!(holder.pid(), Some(pid));
                prop_assert_eq!(holder.hostname(), Some(hostname.as_str()));
                prop_assert_eq!(holder.content(), format!("{pid};{hostname}"));
            }

            #[test]
            fn any_bytes_parse_without_panic_into_a_bounded_escaped_holder(
                bytes in proptest::collection::vec(any::<u8>(), 0..3 * MAX_HOLDER_BYTES),
            ) {
                if let Some(holder) = Holder::parse(&bytes) {
                    prop_assert!(holder.content().len() <= 3 * MAX_HOLDER_BYTES);
                    prop_assert!(!holder.content().contains('\n'));
                    if let Some(pid) = holder.pid() {
                        prop_assert!((1..=i32::MAX as u32).contains(&pid));
                    }
                    let shown = holder.to_string();
                    prop_assert!(!shown.chars().any(char::is_control), "{:?}", shown);
                }
            }
        }
    }
}
