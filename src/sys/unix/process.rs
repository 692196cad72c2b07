//! What this host says about a process.

use std::io;

/// Whether a process with this pid exists: `kill(pid, 0)`, where `EPERM`
/// (it exists, but is another user's) counts as alive.
pub(crate) fn process_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false; // 0 and -1 address groups of processes, not one
    }
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}
