//! The platform layer on Unix: one file per concern.

mod flock;
mod fork;
mod lock_table;
mod open;
mod process;
mod timed_lock;
mod wake;

use once_cell::race::OnceBox;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

pub(crate) use flock::{is_locked, try_lock, unlock};
pub(crate) use fork::forks;
pub(crate) use lock_table::{
    descriptor_is, file_facts, holders_by_descriptor, is_locked_by_table, lock_holders,
    lock_table_reads, FileFacts,
};
pub(crate) use open::{
    is_at_path, locked_file_is_at_path, open_for_locking, open_for_reading, FileId,
};
pub(crate) use process::{process_state, ProcessState};
pub(crate) use timed_lock::{blocking_lately, timed_lock};
#[cfg(feature = "tokio")]
pub(crate) use wake::AsyncReleaseWatch;
pub(crate) use wake::ReleaseWatch;

/// Sets the file's length, the first step of writing the content.
pub(crate) fn set_len(file: &File, len: u64) -> io::Result<()> {
    let len = off_t(len)?;
    // SAFETY: a descriptor `file` keeps open.
    retry_interrupted(|| unsafe { libc::ftruncate(file.as_raw_fd(), len) }).map(drop)
}

/// Writes at `offset`, leaving the file position alone: one `pwrite`, as
/// std's `write_at` makes it, without its layers on the path every lock
/// takes.
pub(crate) fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<usize> {
    let offset = off_t(offset)?;
    // SAFETY: `buf` is valid for reads of its length; a descriptor `file`
    // keeps open.
    let n = unsafe { libc::pwrite(file.as_raw_fd(), buf.as_ptr().cast(), buf.len(), offset) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// Reads at `offset`, leaving the file position alone: one `pread`.
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let offset = off_t(offset)?;
    // SAFETY: `buf` is valid for writes of its length; a descriptor `file`
    // keeps open.
    let n = unsafe { libc::pread(file.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), offset) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// An offset or length as the system's `off_t`.
fn off_t(n: u64) -> io::Result<libc::off_t> {
    libc::off_t::try_from(n)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset or length too large"))
}

/// The result of `call`, a system call that returns -1 and sets `errno` on
/// failure, made again while a signal interrupts it.
fn retry_interrupted(mut call: impl FnMut() -> libc::c_int) -> io::Result<libc::c_int> {
    loop {
        match call() {
            -1 => match io::Error::last_os_error() {
                e if e.kind() == io::ErrorKind::Interrupted => {}
                e => return Err(e),
            },
            rc => return Ok(rc),
        }
    }
}

/// flock(2) never keeps a holder's bytes from being read.
pub(crate) fn is_locked_elsewhere(_: &io::Error) -> bool {
    false
}

/// This machine's hostname, looked up once per process (without a lock: a
/// child forked while another thread looks it up looks it up itself).
pub(crate) fn hostname() -> &'static str {
    static HOSTNAME: OnceBox<String> = OnceBox::new();
    HOSTNAME.get_or_init(|| {
        let mut buf = [0u8; 256];
        // SAFETY: the pointer and length describe `buf`, which outlives the call.
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        if rc != 0 {
            return Box::default();
        }
        let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        Box::new(String::from_utf8_lossy(&buf[..len]).into_owned())
    })
}
