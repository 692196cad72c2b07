//! How a holder is shown in messages and logs.

use std::fmt;

use super::{Holder, Kernel, Named};
use crate::escape::Shortened;
use crate::sys;

/// Says who holds the lock, and how that is known:
///
/// - `pid 4242 on host db1`: the file's content, vouched for by the checks or
///   by the kernel;
/// - `this process, pid 4242 on host db1`: the caller itself holds it;
/// - `pid 5150 on host db1 (the file's content names pid 4242, a process
///   that is not running: stale content)`, and the same for a zombie, a
///   process that started after the file was written (a reused pid), a
///   holder that released the lock, or one that does not hold it;
/// - `a process that wrote no holder (kernel says pid 5150)`;
/// - `pid 5151 on host db1 (inherited the lock from pid 5150, which has
///   exited; …)`;
/// - `pid 4242 on host db7 (another host: whether it runs cannot be checked
///   here)`;
/// - `3 readers: pids 4242, 4243, 4250 on host db1 (the file names the last
///   exclusive holder, pid 17)`: a shared lock;
/// - `holder unknown (…)`.
///
/// Bytes from the file are escaped, and a long line is shortened (the
/// `Holder` keeps it whole).
impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let checked = &self.checked;
        if let (Some(pid), false) = (self.pid, self.is_on_this_host()) {
            write!(f, "pid {pid}")?;
            self.fmt_file_host(f)?;
            return match checked.kernel {
                Kernel::Pid(kernel) => write!(
                    f,
                    " (another host; this host's kernel says pid {kernel} holds the lock)"
                ),
                _ => write!(f, " (another host: whether it runs cannot be checked here)"),
            };
        }
        if let Some(readers) = &checked.readers {
            return self.fmt_readers(f, readers);
        }
        let Some(holder) = self.pid() else {
            return match self.pid {
                Some(pid) => {
                    write!(f, "holder unknown (the file's content names pid {pid}")?;
                    self.fmt_file_host(f)?;
                    write!(f, ", {}", self.why_not())?;
                    match self.released && checked.kernel == Kernel::Nobody {
                        true => write!(f, ")"),
                        false => write!(f, ": stale content)"),
                    }
                }
                None => write!(
                    f,
                    "holder unknown (the lock file names no pid; it says \"{}\")",
                    Shortened(self.bytes())
                ),
            };
        };
        let kernel = self.kernel_pid();
        let inheritors = checked.inherited.as_deref().map_or(&[][..], |v| &v[..]);
        if self.pid.is_none() && checked.inherited.is_none() {
            write!(
                f,
                "a process that wrote no holder (kernel says pid {holder}"
            )?;
            return match self.content().is_empty() {
                true => write!(f, ")"),
                false => write!(f, "; the file says \"{}\")", Shortened(self.bytes())),
            };
        }
        if holder == std::process::id() {
            write!(f, "this process, ")?;
        }
        match inheritors {
            [_, _, ..] => {
                write!(f, "pids ")?;
                for (i, pid) in inheritors.iter().enumerate() {
                    write!(f, "{}{pid}", if i == 0 { "" } else { ", " })?;
                }
            }
            _ => write!(f, "pid {holder}")?,
        }
        if Some(holder) == self.pid && inheritors.is_empty() {
            self.fmt_file_host(f)?;
        } else {
            write!(f, " on host {}", Shortened(sys::hostname().as_bytes()))?;
        }
        let mut notes = Notes::new(f);
        if let (true, Some(kernel)) = (checked.inherited.is_some(), kernel) {
            match inheritors.is_empty() {
                false => notes.add(format_args!(
                    "inherited the lock from pid {kernel}, which has exited"
                ))?,
                true => notes.add(format_args!(
                    "it took the lock and has exited; the processes that inherited \
                     its descriptor cannot be seen from here"
                ))?,
            }
        }
        match self.pid {
            Some(pid) if pid != holder || !inheritors.is_empty() => notes.add(format_args!(
                "the file's content names pid {pid}, {}: stale content",
                self.why_not()
            ))?,
            Some(_) => {}
            None if self.content().is_empty() => {
                notes.add(format_args!("the file names no holder"))?
            }
            None => notes.add(format_args!(
                "the file names no pid; it says \"{}\"",
                Shortened(self.bytes())
            ))?,
        }
        notes.end()
    }
}

impl Holder {
    /// `3 readers: pids 4242, 4243, 4250 on host db1`, with what the file
    /// says; or `readers (…)` where they cannot be named.
    fn fmt_readers(&self, f: &mut fmt::Formatter<'_>, readers: &[u32]) -> fmt::Result {
        match readers {
            [] => write!(
                f,
                "readers (a shared lock; which processes cannot be seen here"
            )?,
            [pid] => write!(f, "1 reader: pid {pid}")?,
            pids => {
                write!(f, "{} readers: pids ", pids.len())?;
                for (i, pid) in pids.iter().enumerate() {
                    write!(f, "{}{pid}", if i == 0 { "" } else { ", " })?;
                }
            }
        }
        if !readers.is_empty() {
            write!(f, " on host {}", Shortened(sys::hostname().as_bytes()))?;
        }
        let mut notes = match readers.is_empty() {
            true => Notes { f, any: true },
            false => Notes::new(f),
        };
        if let Some(pid) = self.pid {
            notes.add(format_args!(
                "the file names the last exclusive holder, pid {pid}"
            ))?;
        }
        notes.end()
    }

    /// ` on host db1`, when the file names a host.
    fn fmt_file_host(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.hostname() {
            Some(host) => write!(f, " on host {}", Shortened(host.as_bytes())),
            None => Ok(()),
        }
    }

    /// Why the process the file names does not hold the lock.
    fn why_not(&self) -> &'static str {
        if self.released {
            return "which released the lock";
        }
        match self.checked.named {
            Some(Named::NotRunning) => "a process that is not running",
            Some(Named::Zombie) => "a zombie: a process that has exited",
            Some(Named::StartedAfter) => {
                "a process that started after the file was written: its pid was reused"
            }
            Some(Named::ThisProcess { .. }) => "this process, which does not hold the lock",
            Some(Named::Running | Named::RunningSinceUnknown) | None => {
                "which does not hold the lock"
            }
        }
    }
}

/// A parenthesis of notes separated by `; `, written only if there is one.
struct Notes<'a, 'b> {
    f: &'a mut fmt::Formatter<'b>,
    any: bool,
}

impl<'a, 'b> Notes<'a, 'b> {
    fn new(f: &'a mut fmt::Formatter<'b>) -> Self {
        Notes { f, any: false }
    }

    fn add(&mut self, note: fmt::Arguments<'_>) -> fmt::Result {
        let open = if self.any { "; " } else { " (" };
        self.any = true;
        write!(self.f, "{open}{note}")
    }

    fn end(self) -> fmt::Result {
        match self.any {
            true => write!(self.f, ")"),
            false => Ok(()),
        }
    }
}

/// What follows "held" in messages: ` by pid 4242 on host db1`, or
/// `, holder unknown (…)`, also when nothing at all is known.
pub(crate) struct Held<'a>(pub(crate) Option<&'a Holder>);

impl fmt::Display for Held<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(holder) if holder.pid().is_some() || holder.holds_shared() => {
                write!(f, " by {holder}")
            }
            Some(holder) => write!(f, ", {holder}"),
            None => write!(f, ", holder unknown (the lock file names nobody)"),
        }
    }
}
