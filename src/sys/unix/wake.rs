//! Waking a waiter when the lock may have been released.

use std::path::Path;

/// Wakes a waiter when the lock may have been released.
///
/// On Linux an inotify watch reports when a descriptor of the file is closed,
/// which is how nearly every holder releases (by close, by exit, by being
/// killed), so the waiter wakes at once and costs no CPU meanwhile. A holder
/// that unlocks without closing is caught by the waiter's periodic retry.
pub(crate) struct ReleaseWatch {
    /// The thread's inotify descriptor and this wait's watch on it.
    #[cfg(target_os = "linux")]
    watch: Option<(std::os::fd::RawFd, libc::c_int)>,
}

impl ReleaseWatch {
    /// Starts watching `path`; without a watch the waiter just retries.
    pub(crate) fn new(path: &Path) -> ReleaseWatch {
        #[cfg(target_os = "linux")]
        {
            ReleaseWatch {
                watch: inotify::watch(path),
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = path;
            ReleaseWatch {}
        }
    }

    /// Returns when the file was closed somewhere, or after `timeout`.
    pub(crate) fn wait(&mut self, timeout: std::time::Duration) {
        #[cfg(target_os = "linux")]
        if let Some((fd, _)) = self.watch {
            return inotify::wait(fd, timeout);
        }
        std::thread::sleep(timeout);
    }
}

#[cfg(target_os = "linux")]
impl Drop for ReleaseWatch {
    fn drop(&mut self) {
        if let Some((fd, wd)) = self.watch {
            // SAFETY: removes this wait's watch; the kernel frees it later.
            unsafe { libc::inotify_rm_watch(fd, wd) };
        }
    }
}

/// One inotify instance per thread that has waited, kept for its later waits:
/// closing an instance makes the kernel wait for a grace period, milliseconds
/// that would be added to the handoff, while removing a watch costs nothing.
#[cfg(target_os = "linux")]
mod inotify {
    use std::cell::OnceCell;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;
    use std::time::Duration;

    thread_local! {
        static INSTANCE: OnceCell<Option<OwnedFd>> = const { OnceCell::new() };
    }

    /// Watches `path` for closes (and for being removed or renamed, after
    /// which a retry finds out what became of it).
    pub(super) fn watch(path: &Path) -> Option<(RawFd, libc::c_int)> {
        let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
        let fd = INSTANCE.with(|instance| {
            instance
                .get_or_init(|| {
                    // SAFETY: a new descriptor, owned as soon as it exists.
                    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
                    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
                })
                .as_ref()
                .map(AsRawFd::as_raw_fd)
        })?;
        drain(fd); // what earlier waits left behind
        let mask =
            libc::IN_CLOSE | libc::IN_DELETE_SELF | libc::IN_MOVE_SELF | libc::IN_DONT_FOLLOW;
        // SAFETY: a valid descriptor and a NUL-terminated path.
        let wd = unsafe { libc::inotify_add_watch(fd, c_path.as_ptr(), mask) };
        (wd >= 0).then_some((fd, wd))
    }

    pub(super) fn wait(fd: RawFd, timeout: Duration) {
        let mut poll = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = timeout.as_millis().clamp(1, libc::c_int::MAX as u128) as libc::c_int;
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut poll, 1, millis) } > 0 {
            drain(fd);
        }
    }

    fn drain(fd: RawFd) {
        let mut events = [0u8; 4096];
        // SAFETY: reads into `events`; the descriptor is non-blocking.
        while unsafe { libc::read(fd, events.as_mut_ptr().cast(), events.len()) } > 0 {}
    }
}
