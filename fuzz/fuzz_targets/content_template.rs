//! Any content template, through the public API: `lock()` accepts exactly the
//! templates a simple reference reading of the syntax and of the line's bound
//! accepts, writes exactly ` <rendered>\n` for them, and for the others
//! returns a template error that names the template on one line and creates
//! nothing.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pidlockfile::{LockError, LockOptions};

struct Paths {
    /// Locked and rewritten by every valid template.
    lock: PathBuf,
    /// Never created: only bad templates are tried on it.
    untouched: PathBuf,
    hostname: String,
}

fn paths() -> &'static Paths {
    static PATHS: OnceLock<Paths> = OnceLock::new();
    PATHS.get_or_init(|| {
        let dir = std::env::temp_dir();
        let pid = std::process::id();
        let lock = dir.join(format!("pidlockfile-fuzz-template-{pid}.lock"));
        let untouched = dir.join(format!("pidlockfile-fuzz-template-{pid}.absent"));
        // The hostname the crate writes, as the crate writes it.
        let held = LockOptions::new()
            .content_template("{hostname}")
            .lock(&lock)
            .expect("a lock in the temporary directory");
        let line = std::fs::read_to_string(&lock).unwrap();
        held.close().unwrap();
        let hostname = line[1..line.len() - 1].to_owned();
        Paths {
            lock,
            untouched,
            hostname,
        }
    })
}

/// The most a holder line holds, newline included.
const MAX_LINE: usize = 4096;

/// The template syntax read directly: `{pid}`, `{hostname}`, `{{` and `}}`;
/// any other brace, a line break, or a line that could exceed [`MAX_LINE`]
/// (counting 10 bytes for a pid and 255 for a hostname, the most each can
/// be) makes the template invalid (`None`).
fn render(template: &str, pid: u32, hostname: &str) -> Option<String> {
    if template.contains(['\n', '\r']) {
        return None;
    }
    let mut out = String::new();
    let mut longest = 2; // the leading space and the newline
    let mut rest = template;
    while let Some(c) = rest.chars().next() {
        let (piece, most, len) = if rest.starts_with("{{") {
            ("{".to_owned(), 1, 2)
        } else if rest.starts_with("}}") {
            ("}".to_owned(), 1, 2)
        } else if rest.starts_with("{pid}") {
            (pid.to_string(), 10, 5)
        } else if rest.starts_with("{hostname}") {
            (hostname.to_owned(), 255, 10)
        } else if c == '{' || c == '}' {
            return None;
        } else {
            (c.to_string(), c.len_utf8(), c.len_utf8())
        };
        out.push_str(&piece);
        longest += most;
        rest = &rest[len..];
    }
    (longest <= MAX_LINE).then_some(out)
}

fuzz_target!(|bytes: &[u8]| {
    let Ok(template) = std::str::from_utf8(bytes) else {
        return;
    };
    let paths = paths();
    let expected = render(template, std::process::id(), &paths.hostname);
    let mut options = LockOptions::new();
    options.content_template(template);
    match expected {
        Some(rendered) => {
            let lock = options
                .lock(&paths.lock)
                .unwrap_or_else(|e| panic!("{template:?} is valid: {e}"));
            let content = std::fs::read(&paths.lock).unwrap();
            assert_eq!(content, format!(" {rendered}\n").as_bytes(), "{template:?}");
            lock.close().unwrap();
        }
        None => {
            let err = options
                .lock(&paths.untouched)
                .expect_err("an invalid template is refused");
            assert!(matches!(err, LockError::Template { .. }), "{err:?}");
            let message = err.to_string();
            assert!(
                message.contains(&format!("{template:?}")),
                "{message} does not name {template:?}"
            );
            assert!(!message.contains(['\n', '\r']), "{message:?}");
            assert!(!paths.untouched.exists(), "a bad template created the file");
        }
    }
});
