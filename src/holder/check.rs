//! Checking what a lock file says against the running processes and the
//! kernel: is it the real holder?

use std::io;
use std::path::Path;

use super::{open_existing, Checked, Holder};
use crate::sys;

impl Holder {
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

    pub(super) fn is_on_this_host(&self) -> bool {
        match self.hostname().and_then(|h| h.split_whitespace().next()) {
            Some(name) => name == sys::hostname(),
            None => true,
        }
    }
}
