//! The platform primitive on Windows: `LockFileEx` on the file's first byte.
//!
//! Windows locks are mandatory: a locked range cannot be read through other
//! handles. Locking the whole file, as `fs2` and `std::fs::File::lock` do,
//! would hide the holder's pid from everyone else; so, like zc.lockfile, only
//! byte 0 is locked (`LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY` on
//! `[0, 1)`), the content starts with a space there, and others read the
//! holder from offset 1. The file is opened to be shared for reading and
//! writing, so that other processes may open it to read it and to lock it,
//! but not for deleting: while any process has it open, the lock file cannot
//! be deleted, renamed or replaced, so the path always names the file that
//! is locked (on Unix this is checked after locking instead).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::windows::fs::{FileExt, OpenOptionsExt};
use std::os::windows::io::AsRawHandle;
use std::path::Path;
use std::sync::OnceLock;

use crate::rules;
use windows_sys::Win32::Foundation::{
    CloseHandle, ERROR_ACCESS_DENIED, ERROR_LOCK_VIOLATION, HANDLE, STILL_ACTIVE,
};
use windows_sys::Win32::Storage::FileSystem::{
    GetFileInformationByHandle, LockFileEx, UnlockFile, BY_HANDLE_FILE_INFORMATION,
    FILE_FLAG_BACKUP_SEMANTICS, FILE_FLAG_OPEN_REPARSE_POINT, FILE_SHARE_DELETE, FILE_SHARE_READ,
    FILE_SHARE_WRITE, LOCKFILE_EXCLUSIVE_LOCK, LOCKFILE_FAIL_IMMEDIATELY,
};
use windows_sys::Win32::System::SystemInformation::{ComputerNameDnsHostname, GetComputerNameExW};
use windows_sys::Win32::System::Threading::{
    GetExitCodeProcess, OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION,
};

/// Shared for reading and writing, not for deleting: see the module's docs.
const SHARE: u32 = FILE_SHARE_READ | FILE_SHARE_WRITE;

/// The identity of a file: its volume and its index on the volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileId {
    volume: u32,
    index: u64,
}

/// Opens or creates the lock file for locking and writing, without
/// truncating it, and checks that it is a file this crate may write into:
/// a regular file (a symbolic link is opened as itself, and refused) with
/// one name, no larger than any lock file. `mode` is a Unix notion, ignored
/// here; a `shared` lock, which writes nothing, falls back to opening for
/// reading a file it may not write.
pub(crate) fn open_for_locking(
    path: &Path,
    _mode: Option<u32>,
    shared: bool,
) -> io::Result<(File, FileId)> {
    let opened = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .share_mode(SHARE)
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
        .open(path);
    let file = match opened {
        Err(e) if shared && e.kind() == io::ErrorKind::PermissionDenied => open_for_reading(path)?,
        other => other?,
    };
    ensure_regular(&file)?;
    let info = file_information(&file)?;
    rules::one_link(info.nNumberOfLinks.into())?;
    rules::lock_file_size((u64::from(info.nFileSizeHigh) << 32) | u64::from(info.nFileSizeLow))?;
    Ok((file, file_id(&info)))
}

/// Whether `path` still names the file `id`.
pub(crate) fn is_at_path(id: FileId, path: &Path) -> io::Result<bool> {
    let file = match OpenOptions::new()
        .access_mode(0)
        .share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE)
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT | FILE_FLAG_BACKUP_SEMANTICS)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    Ok(file_id(&file_information(&file)?) == id)
}

/// Whether the path named the file just locked: always, since a file that
/// is open without `FILE_SHARE_DELETE` cannot be deleted or renamed.
pub(crate) fn locked_file_is_at_path(_: FileId, _: &Path) -> io::Result<bool> {
    Ok(true)
}

/// Windows has no fork: a process's state is always its own.
pub(crate) fn forks() -> u64 {
    0
}

/// No wait blocks in the kernel here (see `timed_lock`).
pub(crate) fn blocking_lately() -> bool {
    false
}

/// A wait that blocks in the kernel needs a way to end it at the limit;
/// waiters here retry on their schedule instead.
pub(crate) fn timed_lock(
    _: &File,
    _: FileId,
    _: bool,
    _: std::time::Instant,
) -> Option<io::Result<bool>> {
    None
}

fn file_information(file: &File) -> io::Result<BY_HANDLE_FILE_INFORMATION> {
    // SAFETY: fills `info` for an open handle.
    unsafe {
        let mut info = std::mem::zeroed();
        match GetFileInformationByHandle(handle(file), &mut info) {
            0 => Err(io::Error::last_os_error()),
            _ => Ok(info),
        }
    }
}

fn file_id(info: &BY_HANDLE_FILE_INFORMATION) -> FileId {
    FileId {
        volume: info.dwVolumeSerialNumber,
        index: (u64::from(info.nFileIndexHigh) << 32) | u64::from(info.nFileIndexLow),
    }
}

/// Opens an existing lock file to read its holder, with the same refusals.
pub(crate) fn open_for_reading(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .share_mode(SHARE)
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
        .open(path)?;
    ensure_regular(&file)?;
    Ok(file)
}

fn ensure_regular(file: &File) -> io::Result<()> {
    let kind = file.metadata()?.file_type();
    let what = if kind.is_file() {
        return Ok(());
    } else if kind.is_symlink() {
        "the path is a symbolic link; a lock file is never opened through one, \
         lest the holder's content be written into the file it points to"
    } else if kind.is_dir() {
        "the path is a directory, not a regular file"
    } else {
        "the path is not a regular file"
    };
    Err(io::Error::new(io::ErrorKind::InvalidInput, what))
}

fn handle(file: &File) -> HANDLE {
    file.as_raw_handle() as HANDLE
}

/// Locks byte 0 without blocking; `Ok(false)` when another handle holds it.
fn lock_first_byte(file: &File, flags: u32) -> io::Result<bool> {
    // SAFETY: a zeroed OVERLAPPED names offset 0; the handle is open.
    let locked = unsafe {
        let mut overlapped = std::mem::zeroed();
        LockFileEx(
            handle(file),
            flags | LOCKFILE_FAIL_IMMEDIATELY,
            0,
            1,
            0,
            &mut overlapped,
        )
    };
    if locked != 0 {
        return Ok(true);
    }
    let error = io::Error::last_os_error();
    match error.raw_os_error() {
        Some(code) if code == ERROR_LOCK_VIOLATION as i32 => Ok(false),
        _ => Err(error),
    }
}

/// Takes the exclusive (or shared) lock without blocking: `Ok(false)` when
/// another handle holds a lock that excludes it (`ERROR_LOCK_VIOLATION`).
pub(crate) fn try_lock(file: &File, shared: bool) -> io::Result<bool> {
    lock_first_byte(file, if shared { 0 } else { LOCKFILE_EXCLUSIVE_LOCK })
}

/// Whether an exclusive lock holds the file now, asked with a shared lock
/// dropped at once.
pub(crate) fn is_locked(file: &File) -> io::Result<bool> {
    match lock_first_byte(file, 0)? {
        true => unlock(file).map(|()| false),
        false => Ok(true),
    }
}

/// Releases the lock on byte 0.
pub(crate) fn unlock(file: &File) -> io::Result<()> {
    // SAFETY: unlocks the range this handle locked.
    match unsafe { UnlockFile(handle(file), 0, 0, 1, 0) } {
        0 => Err(io::Error::last_os_error()),
        _ => Ok(()),
    }
}

/// Sets the file's length, the first step of writing the content.
pub(crate) fn set_len(file: &File, len: u64) -> io::Result<()> {
    file.set_len(len)
}

/// Writes at `offset`, through the handle that holds byte 0.
pub(crate) fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<usize> {
    file.seek_write(buf, offset)
}

/// Reads at `offset` (moving the file position, which nothing here uses).
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    file.seek_read(buf, offset)
}

/// Whether a read failed because another handle holds the lock on byte 0,
/// which then cannot be read; the holder is read from offset 1 instead.
pub(crate) fn is_locked_elsewhere(error: &io::Error) -> bool {
    error.raw_os_error() == Some(ERROR_LOCK_VIOLATION as i32)
}

/// This machine's DNS host name, looked up once per process.
pub(crate) fn hostname() -> &'static str {
    static HOSTNAME: OnceLock<String> = OnceLock::new();
    HOSTNAME.get_or_init(|| {
        let mut buf = [0u16; 256];
        let mut len = buf.len() as u32;
        // SAFETY: the buffer and its length in UTF-16 units.
        let ok = unsafe { GetComputerNameExW(ComputerNameDnsHostname, buf.as_mut_ptr(), &mut len) };
        match ok {
            0 => String::new(),
            _ => String::from_utf16_lossy(&buf[..len as usize]),
        }
    })
}

/// What the process table says about a pid: Windows gives no start time
/// here, and a process that has exited is not running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProcessState {
    NotRunning,
    #[allow(dead_code)] // Unix only: Windows has no zombies
    Zombie,
    Running {
        started: Option<std::time::SystemTime>,
    },
}

pub(crate) fn process_state(pid: u32) -> ProcessState {
    match process_exists(pid) {
        true => ProcessState::Running { started: None },
        false => ProcessState::NotRunning,
    }
}

/// Whether a process with this pid runs: it can be opened and has not
/// exited, or opening it is denied (it exists, but is not ours to query).
fn process_exists(pid: u32) -> bool {
    // SAFETY: the handle, when there is one, is closed below.
    unsafe {
        let process = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid);
        if process.is_null() {
            return io::Error::last_os_error().raw_os_error() == Some(ERROR_ACCESS_DENIED as i32);
        }
        let mut code = 0;
        let running = GetExitCodeProcess(process, &mut code) != 0 && code == STILL_ACTIVE as u32;
        CloseHandle(process);
        running
    }
}

/// What is known of an open lock file; Windows checks nothing with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileFacts {
    pub(crate) modified: Option<std::time::SystemTime>,
}

/// Nothing is asked on Windows: content naming a running process is believed.
pub(crate) fn file_facts(_: &File) -> Option<FileFacts> {
    None
}

/// Windows has no table of lock holders to ask.
pub(crate) fn lock_holders(_: &File) -> Option<Holders> {
    None
}

/// Windows has no table of lock holders to ask; the probe answers.
/// Who holds a lock by the kernel's word, where there is one to ask (not here).
pub(crate) struct Holders {
    pub(crate) pids: Vec<i64>,
    pub(crate) shared: bool,
}

pub(crate) fn is_locked_by_table(_: &File) -> Option<bool> {
    None
}

/// Windows shows no process's locks.
pub(crate) fn holders_by_descriptor(_: &File) -> Vec<u32> {
    Vec::new()
}

/// The table of locks is never read on Windows.
pub(crate) fn lock_table_reads() -> usize {
    0
}

/// A waiter retries on its schedule: Windows reports no close of a file
/// that a waiter could sleep on cheaply.
pub(crate) struct ReleaseWatch;

impl ReleaseWatch {
    pub(crate) fn new(_: &File, _: &Path) -> ReleaseWatch {
        ReleaseWatch
    }

    pub(crate) fn keeps_events(&self) -> bool {
        false
    }

    pub(crate) fn wait(&self, timeout: std::time::Duration) {
        std::thread::sleep(timeout);
    }
}

/// An async waiter naps on the runtime's timer, on the same schedule.
#[cfg(feature = "tokio")]
pub(crate) struct AsyncReleaseWatch;

#[cfg(feature = "tokio")]
impl AsyncReleaseWatch {
    pub(crate) fn new(_: &File, _: &Path) -> AsyncReleaseWatch {
        AsyncReleaseWatch
    }

    pub(crate) async fn wait(&mut self, timeout: std::time::Duration) {
        tokio::time::sleep(timeout).await;
    }
}
