//! `pidlockfile status`: whether a lock file is locked, and by whom.

use std::path::Path;
use std::process::ExitCode;

use pidlockfile::{Holder, LockError, LockFile};

use crate::ERROR;

pub fn status(path: &Path, json: bool) -> ExitCode {
    let exists = path.symlink_metadata().is_ok();
    let locked = match LockFile::is_locked(path) {
        Ok(locked) => locked,
        Err(e) => return error(&e),
    };
    let holder = match Holder::inspect(path) {
        Ok(holder) => holder,
        Err(e) => {
            return error(&LockError::Io {
                path: path.to_owned(),
                source: e,
            })
        }
    };
    if json {
        println!("{}", to_json(path, exists, locked, holder.as_ref()));
    } else {
        println!("{}", describe(path, exists, locked, holder.as_ref()));
    }
    ExitCode::from(u8::from(locked))
}

fn error(error: &LockError) -> ExitCode {
    eprintln!("pidlockfile: {error}");
    ExitCode::from(ERROR)
}

fn describe(path: &Path, exists: bool, locked: bool, holder: Option<&Holder>) -> String {
    match (exists, locked, holder) {
        (false, _, _) => format!("{path:?}: free (the file does not exist)"),
        (true, true, Some(holder)) if holder.pid().is_some() => {
            format!("{path:?}: held by {holder}")
        }
        (true, true, Some(holder)) => format!("{path:?}: held, {holder}"),
        (true, true, None) => {
            format!("{path:?}: held, holder unknown (the lock file names nobody)")
        }
        (true, false, Some(holder)) => match (holder.file_pid(), holder.hostname()) {
            (Some(pid), Some(host)) => {
                format!("{path:?}: free (last held by pid {pid} on host {host:?})")
            }
            (Some(pid), None) => format!("{path:?}: free (last held by pid {pid})"),
            (None, _) => format!("{path:?}: free (the file says {:?})", holder.content()),
        },
        (true, false, None) => format!("{path:?}: free"),
    }
}

/// One object with stable field names: `path`, `exists`, `locked`, then what
/// the file says (`content`, `pid`, `hostname`, `released`) and what was found
/// (`holder_pid`: the pid that holds the lock as far as checked; `alive`,
/// `kernel_pid`, `inheritors`, `stale`), `null` where unknown.
fn to_json(path: &Path, exists: bool, locked: bool, holder: Option<&Holder>) -> serde_json::Value {
    serde_json::json!({
        "path": path.to_string_lossy(),
        "exists": exists,
        "locked": locked,
        "content": holder.map(Holder::content),
        "pid": holder.and_then(Holder::file_pid),
        "hostname": holder.and_then(Holder::hostname),
        "released": holder.map(Holder::released),
        "holder_pid": holder.and_then(Holder::pid),
        "inheritors": holder.map(Holder::inheritors),
        "alive": holder.and_then(Holder::is_alive),
        "kernel_pid": holder.and_then(Holder::kernel_pid),
        "stale": holder.is_some_and(Holder::is_stale),
    })
}
