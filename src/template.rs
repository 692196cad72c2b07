//! The content template: what a holder writes into the lock file.

use once_cell::race::OnceBox;
use std::fmt;

use crate::holder::MAX_HOLDER_BYTES;
use crate::per_process::PerProcess;

/// The template used when none is given: the holder's pid and hostname.
const DEFAULT_TEMPLATE: &str = "{pid};{hostname}";

/// A parsed content template, such as `{pid};{hostname}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Pid,
    Hostname,
}

impl Template {
    /// The default template, parsed once: taking a lock with the defaults
    /// allocates nothing for it.
    pub(crate) fn default_ref() -> &'static Template {
        // Not a `OnceLock`, which a fork during its first use could leave
        // the child waiting on for good.
        static DEFAULT: OnceBox<Template> = OnceBox::new();
        DEFAULT.get_or_init(|| {
            Box::new(Template::parse(DEFAULT_TEMPLATE).expect("the default template is valid"))
        })
    }

    /// Parses `source`, in which `{pid}` and `{hostname}` are placeholders
    /// and `{{`, `}}` stand for literal braces.
    pub(crate) fn parse(source: &str) -> Result<Template, TemplateError> {
        let error = |reason| TemplateError {
            template: source.to_owned(),
            reason,
        };
        if source.contains(['\n', '\r']) {
            return Err(error(TemplateErrorReason::LineBreak));
        }
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = source;
        while let Some(at) = rest.find(['{', '}']) {
            text.push_str(&rest[..at]);
            let tail = &rest[at..];
            if tail.starts_with("{{") || tail.starts_with("}}") {
                text.push_str(&tail[..1]);
                rest = &tail[2..];
                continue;
            }
            if tail.starts_with('}') {
                return Err(error(TemplateErrorReason::UnmatchedClose));
            }
            let Some(end) = tail.find('}') else {
                return Err(error(TemplateErrorReason::Unclosed));
            };
            let part = match &tail[1..end] {
                "pid" => Part::Pid,
                "hostname" => Part::Hostname,
                other => {
                    return Err(error(TemplateErrorReason::UnknownPlaceholder(
                        other.to_owned(),
                    )))
                }
            };
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            parts.push(part);
            rest = &tail[end + 1..];
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        let template = Template { parts };
        if template.longest_line() > MAX_HOLDER_BYTES {
            return Err(error(TemplateErrorReason::TooLong));
        }
        Ok(template)
    }

    /// The longest line this template can render: with a pid of 10 digits
    /// and a hostname of 255 bytes, the most `gethostname(2)` gives.
    fn longest_line(&self) -> usize {
        let rendered: usize = self
            .parts
            .iter()
            .map(|part| match part {
                Part::Text(text) => text.len(),
                Part::Pid => 10,
                Part::Hostname => 255,
            })
            .sum();
        rendered + 2 // the leading space and the newline
    }

    /// Whether rendering needs the hostname (so that it is looked up only then).
    pub(crate) fn uses_hostname(&self) -> bool {
        self.parts.contains(&Part::Hostname)
    }

    /// The lock file's content: ` <rendered template>\n`, zc.lockfile's
    /// format, which tools that skip one byte and read a line understand.
    pub(crate) fn render_line(&self, pid: u32, hostname: &str) -> Vec<u8> {
        let mut line = Vec::with_capacity(24 + hostname.len());
        line.push(b' ');
        self.render_into(&mut line, pid, hostname);
        line.push(b'\n');
        line
    }

    /// Calls `f` with the content [`render_line`](Template::render_line)
    /// gives: the default template's, rendered at this process's first lock
    /// and kept; any other, rendered on the stack when its longest line fits.
    /// Taking a lock then allocates nothing for it.
    pub(crate) fn with_line<R>(&self, pid: u32, hostname: &str, f: impl FnOnce(&[u8]) -> R) -> R {
        const INLINE: usize = 512;
        if std::ptr::eq(self, Template::default_ref()) {
            // The default line, rendered at this process's first lock (a
            // forked child renders its own) and kept.
            static DEFAULT_LINE: PerProcess<(u32, String, Vec<u8>)> = PerProcess::new();
            let (rendered_pid, rendered_host, line) =
                DEFAULT_LINE.get(|| (pid, hostname.to_owned(), self.render_line(pid, hostname)));
            if *rendered_pid == pid && rendered_host == hostname {
                return f(line);
            }
        }
        // `longest_line` allows a hostname of 255 bytes.
        if self.longest_line() > INLINE || hostname.len() > 255 {
            return f(&self.render_line(pid, hostname));
        }
        let mut line = [0u8; INLINE];
        let mut len = 0;
        let mut put = |bytes: &[u8]| {
            line[len..len + bytes.len()].copy_from_slice(bytes);
            len += bytes.len();
        };
        put(b" ");
        let mut digits = [0; 10];
        for part in &self.parts {
            match part {
                Part::Text(text) => put(text.as_bytes()),
                Part::Pid => put(decimal(pid, &mut digits)),
                Part::Hostname => put(hostname.as_bytes()),
            }
        }
        put(b"\n");
        f(&line[..len])
    }

    /// Appends the rendered template to `out`.
    fn render_into(&self, out: &mut Vec<u8>, pid: u32, hostname: &str) {
        let mut digits = [0; 10];
        for part in &self.parts {
            match part {
                Part::Text(text) => out.extend_from_slice(text.as_bytes()),
                Part::Pid => out.extend_from_slice(decimal(pid, &mut digits)),
                Part::Hostname => out.extend_from_slice(hostname.as_bytes()),
            }
        }
    }
}

/// `n` in decimal, written at the end of `buf`: what `format!("{n}")` gives,
/// without the formatting machinery on the path every lock takes.
pub(crate) fn decimal(mut n: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

/// A content template that cannot be used, and why.
///
/// Returned inside [`LockError::Template`](crate::LockError::Template) by
/// [`LockOptions::lock`](crate::LockOptions::lock) before the lock file is touched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    template: String,
    reason: TemplateErrorReason,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum TemplateErrorReason {
    UnknownPlaceholder(String),
    Unclosed,
    UnmatchedClose,
    LineBreak,
    TooLong,
}

impl TemplateError {
    /// The template as it was given.
    pub fn template(&self) -> &str {
        &self.template
    }
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad content template {:?}: ", self.template)?;
        match &self.reason {
            TemplateErrorReason::UnknownPlaceholder(name) => write!(
                f,
                "unknown placeholder {{{name}}}; the placeholders are {{pid}} and {{hostname}}, \
                 and {{{{ and }}}} stand for braces"
            ),
            TemplateErrorReason::Unclosed => {
                write!(f, "a '{{' is not closed; write {{{{ for a literal brace")
            }
            TemplateErrorReason::UnmatchedClose => {
                write!(f, "a '}}' has no '{{'; write }}}} for a literal brace")
            }
            TemplateErrorReason::LineBreak => write!(
                f,
                "it contains a line break, but the holder is one line of the lock file"
            ),
            TemplateErrorReason::TooLong => write!(
                f,
                "its line could exceed {MAX_HOLDER_BYTES} bytes (counting 10 for {{pid}} \
                 and 255 for {{hostname}}), the most a lock file's holder line holds"
            ),
        }
    }
}

impl std::error::Error for TemplateError {}

#[cfg(test)]
mod tests {
    #[test]
    fn with_line_renders_what_render_line_does() {
        let long = "x".repeat(600);
        for template in [
            "{pid};{hostname}",
            "{pid}",
            "host {hostname} pid {pid}!",
            &long,
        ] {
            let template = Template::parse(template).unwrap();
            for hostname in ["", "db1", &"h".repeat(255)] {
                let heap = template.render_line(4242, hostname);
                template.with_line(4242, hostname, |line| assert_eq!(line, heap));
            }
        }
    }

    #[test]
    fn the_default_line_kept_is_the_line_for_that_pid_and_hostname() {
        let default = Template::default_ref();
        for (pid, hostname) in [(4242, "db1"), (4242, ""), (7, "db1"), (4242, "db1")] {
            let heap = default.render_line(pid, hostname);
            default.with_line(pid, hostname, |line| assert_eq!(line, heap));
        }
    }

    #[test]
    fn decimal_is_what_format_gives() {
        for n in [0, 7, 10, 99, 4242, 65535, 4_194_304, 999_999_999, u32::MAX] {
            assert_eq!(super::decimal(n, &mut [0; 10]), n.to_string().as_bytes());
        }
    }

    use super::*;

    fn render(source: &str) -> String {
        let mut out = Vec::new();
        Template::parse(source)
            .unwrap()
            .render_into(&mut out, 4242, "db1");
        String::from_utf8(out).unwrap()
    }

    fn reject(source: &str) -> String {
        Template::parse(source).unwrap_err().to_string()
    }

    #[test]
    fn default_template_renders_pid_and_hostname() {
        assert_eq!(render(DEFAULT_TEMPLATE), "4242;db1");
        assert_eq!(
            Template::default_ref(),
            &Template::parse(DEFAULT_TEMPLATE).unwrap()
        );
    }

    #[test]
    fn placeholders_text_and_escaped_braces_render_in_order() {
        assert_eq!(render("pid={pid} host={hostname}"), "pid=4242 host=db1");
        assert_eq!(render("{{{pid}}}"), "{4242}");
        assert_eq!(render("{{pid}}"), "{pid}");
        assert_eq!(render("{hostname}/{pid}"), "db1/4242");
        assert_eq!(render(""), "");
    }

    #[test]
    fn only_templates_naming_the_hostname_use_it() {
        assert!(Template::parse("{pid}/{hostname}").unwrap().uses_hostname());
        assert!(!Template::parse("{pid} {{hostname}}")
            .unwrap()
            .uses_hostname());
    }

    #[test]
    fn unknown_placeholder_is_named() {
        let message = reject("{pid};{host}");
        assert!(message.contains("\"{pid};{host}\""), "{message}");
        assert!(message.contains("unknown placeholder {host}"), "{message}");
        assert!(reject("{}").contains("unknown placeholder {}"));
        assert!(reject("{PID}").contains("unknown placeholder {PID}"));
    }

    #[test]
    fn unbalanced_braces_are_refused() {
        assert!(reject("{pid").contains("not closed"));
        assert!(reject("pid}").contains("has no '{'"));
        assert!(reject("{pid}}").contains("has no '{'"));
    }

    #[test]
    fn templates_whose_line_could_exceed_the_bound_are_refused() {
        let longest = "x".repeat(MAX_HOLDER_BYTES - 2 - 10 - 255);
        assert!(Template::parse(&format!("{longest}{{pid}}{{hostname}}")).is_ok());
        let message = reject(&format!("{longest}x{{pid}}{{hostname}}"));
        assert!(message.contains("could exceed 4096 bytes"), "{message}");
        assert!(reject(&"{hostname}".repeat(17)).contains("could exceed"));
    }

    #[test]
    fn line_breaks_are_refused() {
        assert!(reject("{pid}\n{hostname}").contains("line break"));
        assert!(reject("{pid}\r").contains("line break"));
    }
}
