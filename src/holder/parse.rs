//! Parsing a lock file's first line into a pid and a hostname.

use std::ops::Range;

use super::tenure::RELEASED;
use super::{Checked, Holder, MAX_HOLDER_BYTES};

impl Holder {
    /// A holder whose file says nothing, for when only the kernel names one.
    pub(super) fn empty() -> Holder {
        Holder {
            text: Box::default(),
            raw_len: 0,
            pid: None,
            hostname: None,
            released: false,
            checked: Checked::default(),
        }
    }

    /// Parses the bytes at the start of a lock file; `None` when they name
    /// nobody. Never panics; only the first line, and at most 4 KiB, is kept,
    /// and a second line is read only for the clean-release mark
    /// ([`Holder::released`]).
    pub fn parse(bytes: &[u8]) -> Option<Holder> {
        let bytes = &bytes[..bytes.len().min(MAX_HOLDER_BYTES)];
        let mut lines = bytes.split(|&b| b == b'\n');
        let line = lines.next().unwrap_or_default();
        let second = lines.next().filter(|_| lines.next().is_some());
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
        let (text, raw_len) = match std::str::from_utf8(line) {
            Ok(_) => (Box::from(line), 0),
            Err(_) => {
                let mut text = line.to_vec();
                text.extend_from_slice(String::from_utf8_lossy(line).as_bytes());
                (text.into_boxed_slice(), line.len() as u16)
            }
        };
        let pid = parse_pid(first.trim_ascii());
        Some(Holder {
            text,
            raw_len,
            pid,
            hostname,
            released: second.is_some_and(|line| is_release_mark(line, pid)),
            checked: Checked::default(),
        })
    }
}

/// Whether `line` (a whole line, its newline read) is the release mark of
/// the holder whose pid is `pid`: `released <pid>`, the pid of the first
/// line when it names one.
fn is_release_mark(line: &[u8], pid: Option<u32>) -> bool {
    let Some(marked) = line.trim_ascii_end().strip_prefix(RELEASED) else {
        return false;
    };
    match (parse_pid(marked), pid) {
        (Some(marked), Some(pid)) => marked == pid,
        (Some(_), None) => true,
        (None, _) => false,
    }
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
    fn the_release_mark_is_read_from_a_whole_second_line_naming_the_same_pid() {
        let released = |bytes: &[u8]| Holder::parse(bytes).unwrap().released();
        assert!(released(b" 1;a\nreleased 1\n"));
        assert!(released(b" a\nreleased 1\n"), "a line without a pid");
        assert!(!released(b" 1;a\n"));
        assert!(!released(b" 1;a\nreleased 2\n"), "another holder's mark");
        assert!(!released(b" 1;a\nreleased 1"), "a torn mark");
        assert!(!released(b" 1;a\nreleased\n"));
        assert!(!released(b" 1;a\nreleased 1x\n"));
        assert!(!released(b" 1;a\n released 1\n"));
        assert_eq!(
            Holder::parse(b" 1;a\nreleased 1\n").unwrap().content(),
            "1;a"
        );
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
            assert_eq!(holder.file_pid(), None, "{bytes:?}");
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
    #[cfg_attr(miri, ignore = "asks gethostname(2), a system call Miri does not run")]
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
            // Miri interprets every step: a few cases there, and no
            // regression file (it runs without the file system).
            #![proptest_config(if cfg!(miri) {
                ProptestConfig { cases: 8, failure_persistence: None, ..ProptestConfig::default() }
            } else {
                ProptestConfig::with_cases(2000)
            })]

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
                // Under Miri, short inputs (content_is_bounded_whatever_the_input
                // covers a long one there).
                bytes in proptest::collection::vec(
                    any::<u8>(),
                    0..if cfg!(miri) { 64 } else { 3 * MAX_HOLDER_BYTES },
                ),
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
