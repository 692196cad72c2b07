//! Showing untrusted bytes (lock file content, file names) in messages and logs.

use std::fmt;

/// Displays bytes as text with control characters, bidirectional-text
/// controls and invalid UTF-8 escaped, so that a lock file's content can
/// never forge a log line, garble a terminal or reorder what is shown.
pub(crate) struct Escaped<'a>(pub(crate) &'a [u8]);

/// At most this many bytes of a lock file's line are shown in a message; the
/// [`Holder`](crate::Holder) keeps the whole line.
pub(crate) const SHOWN_BYTES: usize = 160;

/// Like [`Escaped`], but shows at most [`SHOWN_BYTES`] bytes, then says how
/// long the whole was: a 4 KiB first line is not repeated in every message.
pub(crate) struct Shortened<'a>(pub(crate) &'a [u8]);

impl fmt::Display for Shortened<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0;
        if bytes.len() <= SHOWN_BYTES {
            return Escaped(bytes).fmt(f);
        }
        // Cut where a character starts, so that the cut shows no broken character.
        let mut cut = SHOWN_BYTES;
        while cut > 0 && (bytes[cut] & 0b1100_0000) == 0b1000_0000 {
            cut -= 1;
        }
        write!(f, "{}… ({} bytes)", Escaped(&bytes[..cut]), bytes.len())
    }
}

/// Whether `c` must be shown escaped: a control character, a backslash (so
/// that an escape in the input cannot pass for one of ours), or a
/// bidirectional-text control, which can make a line read differently from
/// what it holds (CVE-2021-42574, "Trojan Source").
fn needs_escape(c: char) -> bool {
    c.is_control()
        || c == '\\'
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while !rest.is_empty() {
            let (valid, invalid) = match std::str::from_utf8(rest) {
                Ok(text) => (text, &[][..]),
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    let bad = e.error_len().unwrap_or(after.len());
                    // `valid_up_to` marks a valid prefix, so this never falls back.
                    (
                        std::str::from_utf8(valid).unwrap_or_default(),
                        &after[..bad],
                    )
                }
            };
            for c in valid.chars() {
                if needs_escape(c) {
                    write!(f, "{}", c.escape_default())?;
                } else {
                    write!(f, "{c}")?;
                }
            }
            for byte in invalid {
                write!(f, "\\x{byte:02x}")?;
            }
            rest = &rest[valid.len() + invalid.len()..];
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{Escaped, Shortened, SHOWN_BYTES};

    fn show(bytes: &[u8]) -> String {
        Escaped(bytes).to_string()
    }

    #[test]
    fn plain_text_is_shown_as_is() {
        assert_eq!(show("4242;db1 héllo".as_bytes()), "4242;db1 héllo");
    }

    #[test]
    fn control_characters_and_backslashes_are_escaped() {
        assert_eq!(show(b"a\nb\rc\x1b[31m\\"), "a\\nb\\rc\\u{1b}[31m\\\\");
    }

    #[test]
    fn invalid_utf8_is_shown_as_hex_bytes() {
        assert_eq!(show(b"ab\xff\xfecd\xe2\x82"), "ab\\xff\\xfecd\\xe2\\x82");
    }

    #[test]
    fn bidirectional_text_controls_are_escaped() {
        // "4242;db1" followed by a right-to-left override that would make
        // what follows read backwards.
        let shown = show("4242;db1\u{202E}1bd;7171".as_bytes());
        assert_eq!(shown, "4242;db1\\u{202e}1bd;7171");
        for c in ('\u{202A}'..='\u{202E}').chain('\u{2066}'..='\u{2069}') {
            assert_eq!(
                show(c.to_string().as_bytes()),
                c.escape_default().to_string()
            );
        }
        assert_eq!(show("\u{200E}\u{200F}".as_bytes()), "\\u{200e}\\u{200f}");
        // Other format characters that do not reorder text are shown as they are.
        assert_eq!(show("a\u{200D}b".as_bytes()), "a\u{200D}b");
    }

    #[test]
    fn a_long_line_is_shortened_and_says_how_long_it_was() {
        assert_eq!(Shortened(b"4242;db1").to_string(), "4242;db1");
        let long = "é".repeat(2048); // 4 KiB of two-byte characters
        let shown = Shortened(long.as_bytes()).to_string();
        assert!(shown.ends_with("… (4096 bytes)"), "{shown}");
        let kept = shown.trim_end_matches("… (4096 bytes)");
        assert!(
            kept.len() <= SHOWN_BYTES && kept.chars().all(|c| c == 'é'),
            "{shown}"
        );
    }
}
