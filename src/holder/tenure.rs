//! A lock's tenure, as the holder keeps it: what the file said before this
//! lock replaced it ([`LockFile::previous`](crate::LockFile::previous)), the
//! clean-release mark written when it ends, and the process-wide list of
//! the lock files this process holds (so that content naming this process
//! is believed only when this process really holds that file).
//!
//! Nothing here allocates on the lock path: the previous content is kept in
//! an inline buffer and parsed only when asked for, and the list of held
//! files is a fixed array behind a mutex, one per process (a forked child
//! holds none of its parent's locks, and must not find the list locked by a
//! thread it does not have).

use std::fs::File;

use once_cell::race::OnceBox;

use super::{read_head, Holder, MAX_HOLDER_BYTES};
use crate::per_process::PerProcess;
use crate::sys;

/// The second line a holder writes when it releases the lock cleanly,
/// followed by its pid: `released 4242`. The first line stays as it was,
/// so zc.lockfile's readers still read ` <pid>;<hostname>`.
pub(crate) const RELEASED: &[u8] = b"released ";

/// What a [`LockFile`](crate::LockFile) keeps about its tenure.
pub(crate) struct Tenure {
    /// Where the release mark goes: right after the holder's line; `None`
    /// for a shared lock, which wrote nothing and marks nothing.
    content_len: Option<usize>,
    /// This lock's slot in [`HELD`], if there was a free one.
    slot: Option<usize>,
    previous: Previous,
}

impl Tenure {
    /// Reads what the file says before `pid`, which has just locked it,
    /// replaces it: call this after the lock is taken and before the
    /// content is written.
    pub(crate) fn read_previous(file: &File) -> Previous {
        let mut previous = Previous {
            inline: [0; INLINE],
            len: 0,
            spilled: None,
            parsed: OnceBox::new(),
        };
        // One pread into the inline buffer: a short read is the whole file.
        match sys::read_at(file, &mut previous.inline, 0) {
            Ok(len) if len < INLINE => previous.len = len as u16,
            Ok(_) => {
                let mut head = vec![0; MAX_HOLDER_BYTES];
                if let Ok(len) = read_head(file, &mut head, 2) {
                    head.truncate(len);
                    previous.spilled = Some(head.into_boxed_slice());
                }
            }
            // Unreadable: the previous holder is not known (as for a new file).
            Err(_) => {}
        }
        previous
    }

    /// Starts the tenure of the lock on `file`, which this process took and,
    /// for an exclusive lock, wrote `content_len` bytes into. Only an
    /// exclusive lock is listed as held: only its holder's content names
    /// this process.
    pub(crate) fn begin(file: &File, content_len: Option<usize>, previous: Previous) -> Tenure {
        Tenure {
            content_len,
            slot: content_len.and_then(|_| held_files::add(file)),
            previous,
        }
    }

    /// Ends the tenure, in the process that took the lock (the caller checks)
    /// and before the lock is released: forgets the file and, given the
    /// locker's pid, writes the clean-release mark after the holder's line. A forked
    /// child, which only closes its copy of the descriptor, does neither; a
    /// lock handed on to inheritors is not released cleanly. A failed write
    /// leaves the file without the mark, which reads as a holder that did
    /// not release cleanly.
    pub(crate) fn end(&mut self, file: &File, released_by: Option<u32>) {
        let Some(content_len) = self.content_len.take() else {
            return; // shared, or ended already
        };
        if let Some(pid) = released_by {
            // This process's mark, made at its first release and kept (a
            // forked child makes its own).
            static MARK: PerProcess<(u32, [u8; 24], usize)> = PerProcess::new();
            let (marked, mark, len) = *MARK.get(|| {
                let mut mark = [0u8; 24];
                let len = mark_line(&mut mark, pid);
                (pid, mark, len)
            });
            let mut ours = mark;
            let len = match marked == pid {
                true => len,
                false => mark_line(&mut ours, pid),
            };
            let _ = sys::write_at(file, &ours[..len], content_len as u64);
        }
        held_files::remove(self.slot.take());
    }

    /// What the file said about the previous holder.
    pub(crate) fn previous(&self) -> Option<&Holder> {
        self.previous.get()
    }
}

/// `released <pid>\n` in `buf`; returns its length.
fn mark_line(buf: &mut [u8; 24], pid: u32) -> usize {
    const WORD: &[u8] = b"released ";
    let mut digits = [0; 10];
    let digits = crate::template::decimal(pid, &mut digits);
    buf[..WORD.len()].copy_from_slice(WORD);
    buf[WORD.len()..WORD.len() + digits.len()].copy_from_slice(digits);
    buf[WORD.len() + digits.len()] = b'\n';
    WORD.len() + digits.len() + 1
}

/// Most lock files hold a line of a few dozen bytes: kept inline, they cost
/// no allocation; a longer one is kept on the heap.
const INLINE: usize = 96;

/// The previous content, kept as read and parsed when first asked for.
pub(crate) struct Previous {
    inline: [u8; INLINE],
    len: u16,
    spilled: Option<Box<[u8]>>,
    /// Parsed once, without a lock (a child forked mid-parse parses again).
    parsed: OnceBox<Option<Holder>>,
}

impl Previous {
    fn get(&self) -> Option<&Holder> {
        self.parsed
            .get_or_init(|| {
                let bytes = match &self.spilled {
                    Some(bytes) => bytes,
                    None => &self.inline[..usize::from(self.len)],
                };
                Box::new(Holder::parse(bytes))
            })
            .as_ref()
    }
}

/// Whether this process holds a lock on the file `facts` describes, through
/// a [`LockFile`](crate::LockFile): `None` when it cannot tell (more lock
/// files are held than the list has room for).
pub(crate) fn this_process_holds(facts: &sys::FileFacts) -> Option<bool> {
    held_files::holds(facts)
}

/// Whether this process holds any exclusive lock through a
/// [`LockFile`](crate::LockFile): a few loads, no lock.
pub(crate) fn this_process_holds_any() -> bool {
    held_files::any()
}

/// The lock files this process holds: a fixed array of descriptors, and a
/// count of those that found no room; made afresh in a forked child (see
/// [`PerProcess`](crate::per_process::PerProcess)), which holds none.
#[cfg(unix)]
mod held_files {
    use super::*;
    use std::os::fd::{AsRawFd, RawFd};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Mutex, PoisonError};

    use crate::per_process::PerProcess;

    const SLOTS: usize = 64;

    struct HeldFiles {
        fds: [RawFd; SLOTS],
        /// Locks held without a slot: while there are any, "this process
        /// does not hold that file" cannot be said.
        unlisted: usize,
    }

    struct Held {
        files: Mutex<HeldFiles>,
        /// How many are held, listed or not; changed with `files` locked.
        count: AtomicUsize,
    }

    static HELD: PerProcess<Held> = PerProcess::new();

    fn this_process() -> &'static Held {
        HELD.get(|| Held {
            files: Mutex::new(HeldFiles {
                fds: [-1; SLOTS],
                unlisted: 0,
            }),
            count: AtomicUsize::new(0),
        })
    }

    fn held(this_process: &'static Held) -> std::sync::MutexGuard<'static, HeldFiles> {
        this_process
            .files
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn any() -> bool {
        this_process().count.load(Ordering::Relaxed) > 0
    }

    pub(super) fn add(file: &File) -> Option<usize> {
        let this_process = this_process();
        let mut held = held(this_process);
        this_process.count.fetch_add(1, Ordering::Relaxed);
        match held.fds.iter().position(|&fd| fd < 0) {
            Some(slot) => {
                held.fds[slot] = file.as_raw_fd();
                Some(slot)
            }
            None => {
                held.unlisted += 1;
                None
            }
        }
    }

    pub(super) fn remove(slot: Option<usize>) {
        let this_process = this_process();
        let mut held = held(this_process);
        // Changed with the list locked: a load and a store.
        let count = &this_process.count;
        let held_before = count.load(Ordering::Relaxed);
        debug_assert!(held_before > 0, "a tenure ended that never began");
        count.store(held_before.saturating_sub(1), Ordering::Relaxed);
        match slot {
            Some(slot) => held.fds[slot] = -1,
            None => held.unlisted = held.unlisted.saturating_sub(1),
        }
    }

    pub(super) fn holds(facts: &sys::FileFacts) -> Option<bool> {
        // Held while the descriptors are looked at: a slot's descriptor is
        // closed only after its slot is emptied, under this lock.
        let held = held(this_process());
        let found = held
            .fds
            .iter()
            .any(|&fd| fd >= 0 && sys::descriptor_is(fd, facts));
        match (found, held.unlisted) {
            (true, _) => Some(true),
            (false, 0) => Some(false),
            (false, _) => None,
        }
    }
}

/// Windows names no holder but the file's content, so nothing is listed.
#[cfg(windows)]
mod held_files {
    use super::*;

    pub(super) fn add(_: &File) -> Option<usize> {
        None
    }

    pub(super) fn remove(_: Option<usize>) {}

    pub(super) fn any() -> bool {
        false
    }

    pub(super) fn holds(_: &sys::FileFacts) -> Option<bool> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_names_the_pid_on_its_own_line() {
        let mut buf = [0u8; 24];
        let len = mark_line(&mut buf, u32::MAX);
        assert_eq!(&buf[..len], b"released 4294967295\n");
    }
}
