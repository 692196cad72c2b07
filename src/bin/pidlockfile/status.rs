//! `pidlockfile status`: whether a lock file is locked, and by whom.

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::ExitCode;

use pidlockfile::{Holder, LockError, LockFile};

use crate::file_system::FileSystem;
use crate::output::print_line;
use crate::ERROR;

pub fn status(path: &Path, json: bool) -> ExitCode {
    let found = match inspect(path) {
        Ok(found) => found,
        Err(message) => {
            crate::output::complain(format_args!("pidlockfile: {message}"));
            if json {
                let object = serde_json::json!({ "path": path_json(path), "error": message });
                if let Err(code) = print_line(&object.to_string()) {
                    return code;
                }
            }
            return ExitCode::from(ERROR);
        }
    };
    let file_system = FileSystem::of(path);
    let warning = file_system.as_ref().and_then(FileSystem::warning);
    let printed = if json {
        print_line(&to_json(path, &found, file_system.as_ref(), warning.as_deref()).to_string())
    } else {
        if let Some(warning) = &warning {
            crate::output::complain(format_args!(
                "pidlockfile: warning: {path:?} is on {warning}"
            ));
        }
        print_line(&describe(path, &found)).and_then(|()| match &file_system {
            Some(fs) => print_line(&format!(
                "file system: {}, mounted on {:?}",
                fs.kind, fs.mount_point
            )),
            None => Ok(()),
        })
    };
    match printed {
        Ok(()) => ExitCode::from(u8::from(found.locked)),
        Err(code) => code,
    }
}

/// What `status` found.
struct Found {
    exists: bool,
    locked: bool,
    /// What the file says, checked against the processes and the kernel.
    holder: Option<Holder>,
    /// What the file says, unchecked: the last holder, when the lock is free.
    said: Option<Holder>,
}

/// Looks at the lock file without locking it or creating it; on failure, the
/// message to print (after `pidlockfile: `).
fn inspect(path: &Path) -> Result<Found, String> {
    let cannot = |e: &dyn std::fmt::Display| format!("cannot inspect {path:?}: {e}");
    let exists = match path.symlink_metadata() {
        Ok(_) => true,
        Err(e)
            if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) =>
        {
            // A typo in the directory is an error, not a free lock.
            let dir = match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir,
                _ => Path::new("."),
            };
            match dir.metadata() {
                Ok(meta) if meta.is_dir() => false,
                Ok(_) => return Err(cannot(&format!("{dir:?} is not a directory"))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(cannot(&format!("the directory {dir:?} does not exist")))
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
                    return Err(cannot(&format!("{dir:?} is not a directory")))
                }
                Err(e) => return Err(cannot(&format!("cannot read the directory {dir:?}: {e}"))),
            }
        }
        Err(e) => return Err(cannot(&e)),
    };
    let locked = match LockFile::is_locked(path) {
        Ok(locked) => locked,
        Err(LockError::Io { source, .. }) => return Err(cannot(&source)),
        Err(e) => return Err(cannot(&e)),
    };
    let holder = Holder::inspect(path).map_err(|e| format!("cannot read {path:?}: {e}"))?;
    let said = match locked {
        true => None,
        false => Holder::read(path).map_err(|e| format!("cannot read {path:?}: {e}"))?,
    };
    Ok(Found {
        exists,
        locked,
        holder,
        said,
    })
}

fn describe(path: &Path, found: &Found) -> String {
    match (found.exists, found.locked, &found.holder) {
        (false, _, _) => format!("{path:?}: free (the file does not exist)"),
        (true, true, Some(holder)) if holder.pid().is_some() => {
            format!("{path:?}: held by {holder}")
        }
        (true, true, Some(holder)) => format!("{path:?}: held, {holder}"),
        (true, true, None) => {
            format!("{path:?}: held, holder unknown (the lock file names nobody)")
        }
        // The file's own word, shown as every message of the crate shows a
        // holder (`pid 4242 on host db1`).
        (true, false, _) => match &found.said {
            Some(said) if said.pid().is_some() => {
                let how = match said.released() {
                    true => "released cleanly",
                    false => {
                        "not released cleanly: killed, crashed, or a tool that marks no release"
                    }
                };
                format!("{path:?}: free (last held by {said}; {how})")
            }
            Some(said) => format!(
                "{path:?}: free (the file says \"{}\")",
                escaped(said.content())
            ),
            None => format!("{path:?}: free"),
        },
    }
}

/// Escapes control characters and backslashes, as the crate's messages do.
fn escaped(text: &str) -> String {
    text.chars()
        .map(|c| match c.is_control() || c == '\\' {
            true => c.escape_default().to_string(),
            false => c.to_string(),
        })
        .collect()
}

/// A path in JSON: a string when it is UTF-8; otherwise an array of its
/// bytes, exact, never a lossy string.
fn path_json(path: &Path) -> serde_json::Value {
    match path.to_str() {
        Some(text) => text.into(),
        None => path.as_os_str().as_bytes().into(),
    }
}

/// One object with stable field names: `path`, `exists`, `locked`, then what
/// the file says (`content`, `pid`, `hostname`, `released`), what was found
/// (`holder_pid`: the pid that holds the lock as far as checked; `alive`,
/// `kernel_pid`, `inheritors`, `stale`), `null` where unknown, and the file
/// system (`file_system`: `type`, `mount_point`; `warning`).
fn to_json(
    path: &Path,
    found: &Found,
    file_system: Option<&FileSystem>,
    warning: Option<&str>,
) -> serde_json::Value {
    let holder = found.holder.as_ref();
    serde_json::json!({
        "path": path_json(path),
        "exists": found.exists,
        "locked": found.locked,
        "content": holder.map(Holder::content),
        "pid": holder.and_then(Holder::file_pid),
        "hostname": holder.and_then(Holder::hostname),
        "released": holder.map(Holder::released),
        "holder_pid": holder.and_then(Holder::pid),
        "inheritors": holder.map(Holder::inheritors),
        "alive": holder.and_then(Holder::is_alive),
        "kernel_pid": holder.and_then(Holder::kernel_pid),
        "stale": holder.is_some_and(Holder::is_stale),
        "file_system": file_system.map(|fs| serde_json::json!({
            "type": fs.kind,
            "mount_point": path_json(&fs.mount_point),
        })),
        "warning": warning,
    })
}
