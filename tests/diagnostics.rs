//! The holder a refusal names is the real one: stale content is caught, and
//! a holder that wrote nothing is named by the kernel (on Linux).
#![cfg(unix)]
#![cfg_attr(not(target_os = "linux"), allow(dead_code, unused_imports))]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::{bytes, helper_command_as_nobody, hostname, run, Holding};
use pidlockfile::{Holder, LockError, LockFile};

helper_process!();

/// A pid that no process has: a child that has exited and been reaped.
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    child.wait().unwrap();
    child.id()
}

fn refusal(path: &Path) -> (Holder, String) {
    match LockFile::lock(path) {
        Err(err @ LockError::Locked { .. }) => {
            let message = err.to_string();
            (err.holder().cloned().expect("a holder is named"), message)
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// `flock(1)` from util-linux holding `path` until killed; `None`, said with
/// `common::not_run`, where it is not installed (`.ci/run` installs it).
fn flock_1(path: &Path, test: &str) -> Option<Child> {
    let spawned = Command::new("flock")
        .args(["--nonblock", "--no-fork"])
        .arg(path)
        .args(["sh", "-c", "echo locked; exec sleep 60"])
        .stdout(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            common::not_run(test, &format!("no flock(1) ({e}); install util-linux"));
            return None;
        }
    };
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "locked\n");
    Some(child)
}

#[test]
#[cfg(target_os = "linux")]
fn stale_content_under_flock_1_names_the_real_holder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let dead = dead_pid();
    let stale = format!(" {dead};{}\n", hostname());
    std::fs::write(&path, &stale).unwrap();
    let test = "stale_content_under_flock_1_names_the_real_holder";
    let Some(mut flock) = flock_1(&path, test) else {
        return;
    };

    let (holder, message) = refusal(&path);
    // --no-fork: the flock process itself holds the lock, under its own pid.
    let holder_pid = flock.id();
    flock.kill().unwrap();
    flock.wait().unwrap();
    assert_eq!(
        holder.pid(),
        Some(dead),
        "the file's own content stays available"
    );
    assert_eq!(holder.is_alive(), Some(false));
    assert_eq!(holder.kernel_pid(), Some(holder_pid));
    assert!(holder.is_stale());
    assert_eq!(
        message,
        format!(
            "cannot lock {path:?}: held by pid {holder_pid} on host {} (the file's content \
             names pid {dead}, a process that is not running: stale content)",
            hostname()
        )
    );
    assert_eq!(
        bytes(&path),
        stale.as_bytes(),
        "the refusal changed nothing"
    );
}

#[test]
#[cfg(target_os = "linux")]
fn stale_content_under_a_raw_flock_names_the_real_holder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let dead = dead_pid();
    std::fs::write(&path, format!(" {dead};{}\n", hostname())).unwrap();
    let raw = Holding::start("hold-raw", &path);

    let (holder, message) = refusal(&path);
    assert_eq!(holder.kernel_pid(), Some(raw.pid));
    assert_eq!(holder.pid(), Some(dead));
    assert!(
        message.contains(&format!("held by pid {} on host", raw.pid)),
        "{message}"
    );
    assert!(message.contains("stale content"), "{message}");
    assert!(
        !message.contains(&format!("held by pid {dead}")),
        "{message}"
    );
    raw.release();
}

#[test]
#[cfg(target_os = "linux")]
fn a_holder_that_wrote_nothing_is_named_by_the_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    std::fs::write(&path, "").unwrap();
    let raw = Holding::start("hold-raw", &path);

    let (holder, message) = refusal(&path);
    assert_eq!(holder.pid(), None);
    assert_eq!(holder.content(), "");
    assert_eq!(holder.kernel_pid(), Some(raw.pid));
    assert_eq!(
        message,
        format!(
            "cannot lock {path:?}: held by a process that wrote no holder (kernel says pid {})",
            raw.pid
        )
    );
    raw.release();
}

#[test]
fn a_holder_on_another_host_is_not_judged_alive_or_dead() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    std::fs::write(&path, " 4242;db7.elsewhere.example\n").unwrap();
    let raw = Holding::start("hold-raw", &path);

    let (holder, message) = refusal(&path);
    assert_eq!(holder.is_alive(), None);
    assert!(!holder.is_stale());
    assert!(
        message.starts_with(&format!(
            "cannot lock {path:?}: held by pid 4242 on host db7.elsewhere.example (another host"
        )),
        "{message}"
    );
    if cfg!(target_os = "linux") {
        assert!(
            message.ends_with(&format!(
                "this host's kernel says pid {} holds the lock)",
                raw.pid
            )),
            "{message}"
        );
    }
    raw.release();
}

#[test]
fn content_naming_a_running_holder_is_believed_without_asking_the_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let holding = Holding::start("hold", &path);

    let (holder, message) = refusal(&path);
    assert_eq!(holder.pid(), Some(holding.pid));
    assert_eq!(holder.is_alive(), Some(true));
    assert_eq!(
        holder.kernel_pid(),
        None,
        "the cheap path does not read /proc/locks"
    );
    assert!(!holder.is_stale());
    assert_eq!(
        message,
        format!(
            "cannot lock {path:?}: held by pid {} on host {}",
            holding.pid,
            hostname()
        )
    );
    holding.release();
}

#[test]
#[cfg(target_os = "linux")]
fn inspect_asks_the_kernel_even_when_the_content_names_a_running_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    // This test process is running, but it is not the one holding the lock.
    std::fs::write(&path, format!(" {};{}\n", std::process::id(), hostname())).unwrap();
    let raw = Holding::start("hold-raw", &path);

    let holder = Holder::inspect(&path).unwrap().unwrap();
    assert_eq!(holder.kernel_pid(), Some(raw.pid));
    assert_eq!(holder.is_alive(), Some(true));
    assert!(holder.is_stale());
    assert!(
        holder.to_string().ends_with(&format!(
            "(the file's content names pid {}, which does not hold the lock: stale content)",
            std::process::id()
        )),
        "{holder}"
    );
    raw.release();
}

#[test]
fn inspect_of_a_free_lock_with_dead_content_says_it_is_stale() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    assert_eq!(Holder::inspect(&path).unwrap(), None, "no file, no holder");
    let dead = dead_pid();
    std::fs::write(&path, format!(" {dead}\n")).unwrap();

    let holder = Holder::inspect(&path).unwrap().unwrap();
    assert_eq!(holder.kernel_pid(), None);
    assert_eq!(holder.is_alive(), Some(false));
    assert!(holder.is_stale());
    assert_eq!(
        holder.to_string(),
        format!("holder unknown (the file's content names pid {dead}, a process that is not running: stale content)")
    );
}

#[test]
fn a_process_of_another_user_counts_as_running() {
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("LOCK");
    std::fs::write(&path, " 1\n").unwrap(); // init: root's, alive, and not ours to signal
    let test = "a_process_of_another_user_counts_as_running";
    let Some(command) = helper_command_as_nobody("is-alive", &path, scratch.path(), test) else {
        return;
    };
    let said = run(command);
    assert_eq!(said.line("is-alive"), "Some(true)", "{said:?}");
}
