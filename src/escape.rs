//! Showing untrusted bytes (lock file content, file names) in messages and logs.

use std::fmt;

/// Displays bytes as text with control characters and invalid UTF-8 escaped,
/// so that a lock file's content can never forge a log line or garble a terminal.
pub(crate) struct Escaped<'a>(pub(crate) &'a [u8]);

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
                if c.is_control() || c == '\\' {
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
    use super::Escaped;

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
}
