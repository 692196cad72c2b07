//! How a holder is shown in messages and logs.

use std::fmt;

use super::Holder;
use crate::escape::Escaped;
use crate::sys;

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
