//! Waking a waiter when the lock may have been released.

use std::fs::File;
use std::path::Path;
use std::time::Duration;

/// Wakes a waiter when the lock may have been released.
///
/// On Linux an inotify watch reports when a descriptor of the file is closed,
/// which is how nearly every holder releases (by close, by exit, by being
/// killed), so the waiter wakes at once and costs no CPU meanwhile. A holder
/// that unlocks without closing is caught by the waiter's periodic retry, and
/// so is every release when no inotify instance can be had.
///
/// One watch serves all the threads of a process that wait for one file
/// (`crate::wait` lets one of them at a time sleep on it).
pub(crate) struct ReleaseWatch {
    #[cfg(target_os = "linux")]
    watch: Option<inotify::Watch>,
}

impl ReleaseWatch {
    /// Starts watching the open `file`, which `path` named; without a watch
    /// the waiter just retries.
    pub(crate) fn new(file: &File, path: &Path) -> ReleaseWatch {
        #[cfg(target_os = "linux")]
        {
            ReleaseWatch {
                watch: inotify::Watch::new(file, path),
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (file, path);
            ReleaseWatch {}
        }
    }

    /// Whether closes are queued on the watch until a wait reads them, so
    /// that a close while no thread waited on it still ends the next wait.
    pub(crate) fn keeps_events(&self) -> bool {
        #[cfg(target_os = "linux")]
        return self.watch.is_some();
        #[cfg(not(target_os = "linux"))]
        false
    }

    /// Returns when the file was closed somewhere, or after `timeout`. One
    /// thread at a time may wait on a watch.
    pub(crate) fn wait(&self, timeout: Duration) {
        #[cfg(target_os = "linux")]
        if let Some(watch) = &self.watch {
            return watch.wait(timeout);
        }
        std::thread::sleep(timeout);
    }
}

/// A [`ReleaseWatch`] for one async waiter: its sleep is a future on the
/// tokio runtime, and dropping it (with the waiter's future) removes the
/// watch and gives the inotify instance back to the pool at once.
///
/// On Linux the instance is registered with the runtime's reactor
/// (`AsyncFd`) for as long as the watch lives; elsewhere, or without an
/// instance, the waiter naps on the runtime's timer.
#[cfg(feature = "tokio")]
pub(crate) struct AsyncReleaseWatch {
    #[cfg(target_os = "linux")]
    watch: Option<inotify::AsyncWatch>,
}

#[cfg(feature = "tokio")]
impl AsyncReleaseWatch {
    /// Starts watching the open `file`, which `path` named.
    pub(crate) fn new(file: &File, path: &Path) -> AsyncReleaseWatch {
        #[cfg(target_os = "linux")]
        {
            AsyncReleaseWatch {
                watch: inotify::AsyncWatch::new(file, path),
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (file, path);
            AsyncReleaseWatch {}
        }
    }

    /// Completes when the file was closed somewhere, or after `timeout`.
    pub(crate) async fn wait(&mut self, timeout: Duration) {
        #[cfg(target_os = "linux")]
        if let Some(watch) = &mut self.watch {
            return watch.wait(timeout).await;
        }
        tokio::time::sleep(timeout).await;
    }
}

/// A process keeps at most this many inotify instances, whatever the number
/// of threads that wait: each serves one watched file at a time.
#[cfg(target_os = "linux")]
pub(crate) const MAX_INOTIFY_INSTANCES: usize = 4;

/// The inotify instances are pooled: a watch borrows one and gives it back
/// when the last waiter for its file leaves. Instances are kept open once
/// made, because closing one makes the kernel wait for a grace period
/// (milliseconds that would be added to a handoff), while removing a watch
/// costs nothing. At most [`MAX_INOTIFY_INSTANCES`] exist in a process, so
/// that waiting never exhausts the user's `fs.inotify.max_user_instances`
/// (128 by default, shared by all of the user's programs); when the pool is
/// empty and full, or the kernel refuses an instance, a waiter retries on its
/// schedule instead.
#[cfg(target_os = "linux")]
mod inotify {
    use std::fs::File;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;
    use std::sync::Mutex;
    use std::time::Duration;

    use super::MAX_INOTIFY_INSTANCES;
    use crate::per_process::PerProcess;

    struct Pool {
        idle: Vec<OwnedFd>,
        made: usize,
    }

    /// One pool per process: a forked child starts an empty one. An
    /// inherited instance is still the parent's, whose waiters would read
    /// the child's events and the child theirs, and the parent's pool may
    /// have been locked at the fork by a thread the child does not have. So
    /// the child leaves the parent's pool alone, with its copies of the idle
    /// instances (a few descriptors) open.
    static POOL: PerProcess<Mutex<Pool>> = PerProcess::new();

    fn pool() -> std::sync::MutexGuard<'static, Pool> {
        POOL.get(|| {
            Mutex::new(Pool {
                idle: Vec::new(),
                made: 0,
            })
        })
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A watch for closes of one file, on an instance borrowed from the pool.
    pub(super) struct Watch {
        instance: Option<OwnedFd>,
        wd: libc::c_int,
    }

    impl Watch {
        /// Watches the inode `file` is open on, through `/proc/self/fd`, so
        /// that the watch is on the very file waited for even if the path has
        /// been replaced meanwhile; without `/proc`, watches `path`.
        pub(super) fn new(file: &File, path: &Path) -> Option<Watch> {
            let instance = borrow()?;
            let fd = instance.as_raw_fd();
            drain(fd); // what earlier watches left behind
                       // Closes end tenures; a change of the link count (the file was
                       // deleted, or replaced by a rename) or a move means the path may
                       // name another file now. Writing the content changes no attribute
                       // inotify reports as one.
            let mask = libc::IN_CLOSE | libc::IN_ATTRIB | libc::IN_DELETE_SELF | libc::IN_MOVE_SELF;
            let proc_path = format!("/proc/self/fd/{}\0", file.as_raw_fd());
            // SAFETY: a valid descriptor and a NUL-terminated path.
            let mut wd = unsafe { libc::inotify_add_watch(fd, proc_path.as_ptr().cast(), mask) };
            if wd < 0 {
                if let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) {
                    let mask = mask | libc::IN_DONT_FOLLOW;
                    // SAFETY: as above.
                    wd = unsafe { libc::inotify_add_watch(fd, c_path.as_ptr(), mask) };
                }
            }
            if wd < 0 {
                give_back(instance);
                return None;
            }
            Some(Watch {
                instance: Some(instance),
                wd,
            })
        }

        /// The instance and the watch's descriptor, for an [`AsyncWatch`]
        /// to own.
        #[cfg(feature = "tokio")]
        fn into_parts(mut self) -> (OwnedFd, libc::c_int) {
            let instance = self.instance.take().expect("a watch has its instance");
            (instance, self.wd)
        }

        pub(super) fn wait(&self, timeout: Duration) {
            let fd = self.instance.as_ref().map_or(-1, AsRawFd::as_raw_fd);
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
    }

    impl Drop for Watch {
        fn drop(&mut self) {
            if let Some(instance) = self.instance.take() {
                // SAFETY: removes this watch; the kernel frees it later.
                unsafe { libc::inotify_rm_watch(instance.as_raw_fd(), self.wd) };
                give_back(instance);
            }
        }
    }

    /// A [`Watch`] whose instance is registered with the tokio runtime, so
    /// that a task, not a thread, sleeps on it.
    #[cfg(feature = "tokio")]
    pub(super) struct AsyncWatch {
        /// Registered by descriptor number: the instance itself stays ours,
        /// for the pool, even if the runtime refuses it.
        registered: Option<tokio::io::unix::AsyncFd<RawFd>>,
        instance: Option<OwnedFd>,
        wd: libc::c_int,
    }

    #[cfg(feature = "tokio")]
    impl AsyncWatch {
        /// As [`Watch::new`]; `None` also when the runtime cannot register
        /// the instance (the waiter then naps).
        pub(super) fn new(file: &File, path: &Path) -> Option<AsyncWatch> {
            let (instance, wd) = Watch::new(file, path)?.into_parts();
            // Owned first, so that even a panic below (a runtime without
            // I/O) removes the watch and gives the instance back.
            let mut watch = AsyncWatch {
                registered: None,
                instance: Some(instance),
                wd,
            };
            let fd = watch.instance.as_ref().map_or(-1, AsRawFd::as_raw_fd);
            // The descriptor stays open, owned by `instance`, until after the
            // registration is dropped (see `Drop`): the I/O safety that tokio
            // 1.53.3's `register_with_interest` asks for. That function is
            // not in tokio 1.38 to 1.53.2, which this crate accepts.
            #[allow(deprecated)]
            let registered =
                tokio::io::unix::AsyncFd::with_interest(fd, tokio::io::Interest::READABLE);
            watch.registered = registered.ok();
            // Dropped, it removes the watch and gives the instance back.
            watch.registered.is_some().then_some(watch)
        }

        /// Completes when the file was closed somewhere, or after `timeout`.
        pub(super) async fn wait(&mut self, timeout: Duration) {
            let Some(registered) = &self.registered else {
                return tokio::time::sleep(timeout).await;
            };
            match tokio::time::timeout(timeout, registered.readable()).await {
                Ok(Ok(mut ready)) => {
                    drain(*registered.get_ref());
                    // Events queued after the drain raise readiness again.
                    ready.clear_ready();
                }
                Ok(Err(_)) => tokio::time::sleep(timeout).await,
                Err(_) => {}
            }
        }
    }

    #[cfg(feature = "tokio")]
    impl Drop for AsyncWatch {
        fn drop(&mut self) {
            // Out of the reactor first, then the watch off the instance.
            drop(self.registered.take());
            if let Some(instance) = self.instance.take() {
                // SAFETY: removes this watch; the kernel frees it later.
                unsafe { libc::inotify_rm_watch(instance.as_raw_fd(), self.wd) };
                give_back(instance);
            }
        }
    }

    /// An idle instance, or a new one while fewer than the bound exist.
    fn borrow() -> Option<OwnedFd> {
        let mut pool = pool();
        if let Some(instance) = pool.idle.pop() {
            return Some(instance);
        }
        if pool.made >= MAX_INOTIFY_INSTANCES {
            return None;
        }
        // SAFETY: a new descriptor, owned as soon as it exists.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
        if fd < 0 {
            return None;
        }
        pool.made += 1;
        Some(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    fn give_back(instance: OwnedFd) {
        pool().idle.push(instance);
    }

    /// Reads the queued events, which say nothing a retry would not: one
    /// `read` when they fit in the buffer with room to spare (a read returns
    /// every whole event that fits), more only when it may have filled.
    fn drain(fd: RawFd) {
        let mut events = [0u8; 4096];
        loop {
            // SAFETY: reads into `events`; the descriptor is non-blocking.
            let n = unsafe { libc::read(fd, events.as_mut_ptr().cast(), events.len()) };
            if n < 0 || (n as usize) < events.len() / 2 {
                return;
            }
        }
    }
}
