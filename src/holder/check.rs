//! Checking what a lock file says against the running processes and the
//! kernel: is it the real holder?
//!
//! A refusal believes the file's content only when cheap checks vouch for
//! it: it names a process on this host that runs, is not a zombie, started
//! before the file was last written, and has not marked a clean release;
//! or it names this process, which holds that very file. Otherwise the
//! kernel's table of locks is asked (`/proc/locks` on Linux), which is
//! costly: it stalls every lock operation on the machine while it is read.

use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::tenure::this_process_holds;
use super::{open_existing, Checked, Holder, Kernel, Named};
use crate::sys::{self, FileFacts, ProcessState};

impl Holder {
    /// Reads the holder named by the lock file at `path` and checks it: whether
    /// the named process runs, and (on Linux, from `/proc/locks`, as
    /// `lslocks` does) which process the kernel says holds the lock, without
    /// taking or disturbing the lock. When the process that took the lock
    /// has exited and others hold it through descriptors they inherited (a
    /// daemon started by `flock(1)`), those are named, from each descriptor's
    /// `/proc/<pid>/fdinfo/<fd>`.
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
    /// assert_eq!(holder.pid(), Some(std::process::id()));
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
    /// content when the cheap checks vouch for it, else the kernel's word.
    /// Where there is no kernel to ask, a writer (`exclusive`) finds out
    /// whether readers hold it by taking a shared lock for an instant.
    pub(crate) fn diagnose(file: &std::fs::File, exclusive: bool) -> Option<Holder> {
        let mut holder = Holder::check(Holder::read_from(file).ok().flatten(), file, false);
        let unknown = holder.as_ref().map_or(true, |h| {
            h.checked.kernel == Kernel::Unavailable && h.pid().is_none()
        });
        if exclusive && unknown && sys::try_lock(file, true).unwrap_or(false) {
            let _ = sys::unlock(file);
            let holder = holder.get_or_insert_with(Holder::empty);
            holder.checked.readers = Some(Box::default());
        }
        holder
    }

    fn check(
        holder: Option<Holder>,
        file: &std::fs::File,
        always_ask_kernel: bool,
    ) -> Option<Holder> {
        let facts = sys::file_facts(file);
        let named = holder.as_ref().and_then(|h| h.check_named(facts.as_ref()));
        let vouched = match named {
            Some(Named::Running | Named::ThisProcess { holds: Some(true) }) => {
                holder.as_ref().is_some_and(|h| !h.released)
            }
            _ => false,
        };
        let mut kernel = Kernel::NotAsked;
        let mut inherited = None;
        let mut readers = None;
        if always_ask_kernel || !vouched {
            kernel = match sys::lock_holders(file) {
                None => Kernel::Unavailable,
                Some(holders) if holders.pids.is_empty() => Kernel::Nobody,
                Some(holders) => {
                    let mut pids: Vec<u32> = holders
                        .pids
                        .iter()
                        .filter_map(|&p| u32::try_from(p).ok().filter(|&p| p > 0))
                        .collect();
                    if holders.shared {
                        pids.sort_unstable(); // readers, in a stable order
                    }
                    let first = pids.first().copied();
                    if holders.shared {
                        readers = Some(Box::new(pids));
                    }
                    match first {
                        Some(pid) => Kernel::Pid(pid),
                        None => Kernel::Unavailable,
                    }
                }
            };
            // flock(1) started a daemon and exited: the table still names it.
            if let (Kernel::Pid(pid), None) = (kernel, &readers) {
                if !matches!(sys::process_state(pid), ProcessState::Running { .. }) {
                    inherited = Some(Box::new(sys::holders_by_descriptor(file)));
                }
            }
        }
        if holder.is_none()
            && matches!(
                kernel,
                Kernel::NotAsked | Kernel::Unavailable | Kernel::Nobody
            )
        {
            return None;
        }
        let mut holder = holder.unwrap_or_else(Holder::empty);
        holder.checked = Checked {
            named,
            kernel,
            inherited,
            readers,
        };
        Some(holder)
    }

    /// What this host says about the process the file names: `None` when it
    /// names no pid, or another host's.
    fn check_named(&self, facts: Option<&FileFacts>) -> Option<Named> {
        let pid = self.pid?;
        if !self.is_on_this_host() {
            return None;
        }
        if pid == std::process::id() {
            let holds = facts.and_then(this_process_holds);
            return Some(Named::ThisProcess { holds });
        }
        Some(match sys::process_state(pid) {
            ProcessState::NotRunning => Named::NotRunning,
            ProcessState::Zombie => Named::Zombie,
            ProcessState::Running { started } => {
                let written = facts.and_then(|f| f.modified);
                match (started, written) {
                    (Some(started), Some(written)) if started_after(started, written) => {
                        Named::StartedAfter
                    }
                    (Some(_), Some(_)) => Named::Running,
                    _ => Named::RunningSinceUnknown,
                }
            }
        })
    }

    /// Whether the process the file names is running now: `Some(true)` or
    /// `Some(false)` when the file names a pid and either no hostname or this
    /// host's (its first word, so `db1 (nightly)` is `db1`); `None` when it
    /// names no pid, or another host, where a pid means nothing here. A
    /// zombie (exited, not yet reaped) is not running; a process of another
    /// user is. As found when the holder was checked, else asked now.
    pub fn is_alive(&self) -> Option<bool> {
        let named = match self.checked.named {
            Some(named) => named,
            None => {
                let pid = self.pid?;
                if !self.is_on_this_host() {
                    return None;
                }
                match sys::process_state(pid) {
                    ProcessState::Running { .. } => Named::Running,
                    _ => Named::NotRunning,
                }
            }
        };
        Some(!matches!(named, Named::NotRunning | Named::Zombie))
    }

    /// The pid that the kernel named as holding the lock when this holder was
    /// checked (by a refusal, a timeout or [`Holder::inspect`]), on Linux. A
    /// refusal asks the kernel only when the cheap checks cannot vouch for
    /// the file's content. When that process has exited and others hold the
    /// lock through descriptors they inherited, [`pid`](Holder::pid) names
    /// them and this still names the process that took the lock.
    pub fn kernel_pid(&self) -> Option<u32> {
        match self.checked.kernel {
            Kernel::Pid(pid) => Some(pid),
            _ => None,
        }
    }

    /// The pid of the process that holds the lock, as far as it was checked:
    /// the kernel's word when the kernel was asked (a process that inherited
    /// the lock when the kernel's has exited; `None` when the kernel says
    /// nobody holds it); the file's word when the checks vouched for it, or
    /// when nothing better can be known (another host, no table of locks);
    /// `None` when the file's word was found wrong and nothing replaces it.
    /// For a holder that was not checked ([`Holder::read`]), the file's word.
    ///
    /// ```
    /// use pidlockfile::{LockFile, LockError};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("LOCK");
    /// let _held = LockFile::lock(&path)?;
    /// let err = LockFile::lock(&path).unwrap_err();
    /// assert_eq!(err.holder().unwrap().pid(), Some(std::process::id()));
    /// assert!(err.to_string().contains("held by this process"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pid(&self) -> Option<u32> {
        let checked = &self.checked;
        if let Some(readers) = &checked.readers {
            return readers.first().copied();
        }
        match checked.kernel {
            Kernel::Pid(pid) => return Some(self.inheritors().first().copied().unwrap_or(pid)),
            Kernel::Nobody => return None,
            Kernel::NotAsked | Kernel::Unavailable => {}
        }
        match checked.named {
            _ if self.released && checked.kernel != Kernel::NotAsked => None,
            None => self.pid,
            Some(
                Named::Running
                | Named::RunningSinceUnknown
                | Named::ThisProcess {
                    holds: Some(true) | None,
                },
            ) => self.pid,
            Some(_) => None,
        }
    }

    /// The processes that hold the lock shared (readers), by the kernel's
    /// word (Linux), when readers hold it; empty when an exclusive holder
    /// does, or nobody was asked. [`pid`](Holder::pid) is then the first of
    /// them, and [`holds_shared`](Holder::holds_shared) says so.
    pub fn readers(&self) -> &[u32] {
        self.checked.readers.as_deref().map_or(&[], |pids| pids)
    }

    /// Whether the lock was found held shared, by readers
    /// ([`LockOptions::shared`](crate::LockOptions::shared)): on Linux from
    /// the kernel's table, which also names them
    /// ([`readers`](Holder::readers)); elsewhere, when a writer is refused,
    /// from a shared lock taken for an instant.
    pub fn holds_shared(&self) -> bool {
        self.checked.readers.is_some()
    }

    /// The processes that hold the lock through descriptors they inherited
    /// from the process that took it, which has exited (as when `flock(1)`
    /// starts a daemon): found by [`Holder::inspect`], or by a refusal whose
    /// kernel pid had exited; empty otherwise.
    pub fn inheritors(&self) -> &[u32] {
        self.checked.inherited.as_deref().map_or(&[], |pids| pids)
    }

    /// Whether the file's content was found not to name the lock's holder:
    /// the kernel named another process, or the named process was not
    /// running, was a zombie, had started after the file was written (its pid
    /// was reused), or had released the lock. Content naming another host
    /// is never judged stale: its pid means nothing here.
    pub fn is_stale(&self) -> bool {
        if !self.is_on_this_host() {
            return false;
        }
        match self.checked.kernel {
            Kernel::Pid(_) => self.pid != self.pid(),
            // A free lock: content naming a holder that released it is not stale.
            Kernel::Nobody => !self.released && self.named_is_wrong(),
            Kernel::NotAsked => self.named_is_wrong(),
            // Asked because the checks did not vouch, and no table to ask.
            Kernel::Unavailable => self.named_is_wrong() || self.released,
        }
    }

    /// The checks found that the process the file names does not hold it.
    pub(super) fn named_is_wrong(&self) -> bool {
        matches!(
            self.checked.named,
            Some(
                Named::NotRunning
                    | Named::Zombie
                    | Named::StartedAfter
                    | Named::ThisProcess { holds: Some(false) }
            )
        )
    }

    pub(super) fn is_on_this_host(&self) -> bool {
        match self.hostname().and_then(|h| h.split_whitespace().next()) {
            Some(name) => name == sys::hostname(),
            None => true,
        }
    }
}

/// Whether a process that `started` (from the process table) cannot have
/// written a file last modified at `written`: it started after it.
///
/// A real holder starts, then writes. Both times are truncated (the start
/// to the clock tick, at most 10 ms; the modification time to the kernel's
/// coarse clock, one jiffy, also at most 10 ms), and the start time is
/// turned into wall-clock time with the boot time as the clock says now,
/// which NTP may have slewed since the file was written (at most 500 parts
/// per million). The margin covers all of that, so a real holder is never
/// called an impostor unless the clock was stepped; a process that started
/// within it after the write is believed (a pid reused that fast is all
/// but impossible: pids are handed out in turn, up to `pid_max`).
fn started_after(started: SystemTime, written: SystemTime) -> bool {
    const TRUNCATION: Duration = Duration::from_millis(50);
    let age = SystemTime::now()
        .duration_since(written)
        .unwrap_or_default();
    started
        .duration_since(written)
        .is_ok_and(|after| after > TRUNCATION + age / 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(
        miri,
        ignore = "reads the real-time clock, which Miri's isolation hides"
    )]
    fn a_start_within_the_margin_after_the_write_is_not_an_impostor() {
        let written = SystemTime::now() - Duration::from_secs(10);
        assert!(!started_after(written - Duration::from_secs(1), written));
        assert!(!started_after(written + Duration::from_millis(40), written));
        assert!(started_after(written + Duration::from_millis(100), written));
        // An hour-old file: NTP may have slewed the boot time by 1.8 s since.
        let old = SystemTime::now() - Duration::from_secs(3600);
        assert!(!started_after(old + Duration::from_millis(3000), old));
        assert!(started_after(old + Duration::from_millis(4000), old));
    }
}
