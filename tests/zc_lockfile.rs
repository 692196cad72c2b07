//! Interoperation with Python's zc.lockfile, the format's origin: each
//! excludes the other, and each reads the other's holder.
//!
//! Needs `python3` with `zc.lockfile` (`.ci/run` installs it). Elsewhere the
//! tests say that they did not run (`common::not_run`), or fail where
//! `PIDLOCKFILE_REQUIRE_ALL` is set.
#![cfg(unix)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use pidlockfile::{LockError, LockFile};

fn zc_lockfile_available(test: &str) -> bool {
    let found = Command::new("python3")
        .args(["-c", "import zc.lockfile"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        common::not_run(
            test,
            "python3 cannot import zc.lockfile (pip install zc.lockfile)",
        );
    }
    found
}

fn python(script: &str, path: &Path) -> Command {
    let mut command = Command::new("python3");
    command.args(["-c", script]).arg(path);
    command
}

#[test]
fn zc_lockfile_is_refused_while_we_hold_and_reads_our_pid() {
    if !zc_lockfile_available("zc_lockfile_is_refused_while_we_hold_and_reads_our_pid") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let _lock = LockFile::lock(&path).unwrap();
    let script = r#"
import sys, zc.lockfile
try:
    zc.lockfile.LockFile(sys.argv[1])
    print("locked")
except zc.lockfile.LockError:
    with open(sys.argv[1]) as f:
        f.seek(1)  # how zc.lockfile's users read the holder
        print("refused", f.readline().strip())
"#;
    let out = python(script, &path).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let expected = format!("refused {};{}\n", std::process::id(), hostname());
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
}

#[test]
fn we_are_refused_while_zc_lockfile_holds_and_name_its_pid() {
    if !zc_lockfile_available("we_are_refused_while_zc_lockfile_holds_and_name_its_pid") {
        return;
    }
    for template in ["{pid}", "{pid};{hostname}", "{pid}/{hostname}"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("LOCK");
        let script = format!(
            "import sys, zc.lockfile\n\
             lock = zc.lockfile.LockFile(sys.argv[1], content_template='{template}')\n\
             print('locked', flush=True)\n\
             sys.stdin.read()\n\
             lock.close()\n"
        );
        let mut holder = python(&script, &path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(holder.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "locked\n");

        let err = LockFile::lock(&path).unwrap_err();
        let Some(named) = (match &err {
            LockError::Locked { holder, .. } => holder.clone(),
            other => panic!("expected a refusal, got {other:?}"),
        }) else {
            panic!("no holder named: {err}")
        };
        assert_eq!(named.pid(), Some(holder.id()), "{template}");
        if template.contains("hostname") {
            assert_eq!(named.hostname(), Some(hostname().as_str()), "{template}");
        }
        drop(holder.stdin.take());
        assert!(holder.wait().unwrap().success());
        drop(LockFile::lock(&path).expect("free once zc.lockfile closed it"));
    }
}

#[test]
fn zc_lockfile_reads_and_replaces_a_file_with_our_release_mark() {
    let test = "zc_lockfile_reads_and_replaces_a_file_with_our_release_mark";
    if !zc_lockfile_available(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    LockFile::lock(&path).unwrap().close().unwrap();
    assert!(pidlockfile::Holder::read(&path)
        .unwrap()
        .unwrap()
        .released());
    // zc.lockfile's readers read the first line; its locker replaces the file.
    let script = r#"
import sys, zc.lockfile
with open(sys.argv[1]) as f:
    f.seek(1)
    print("first line", f.readline().strip())
lock = zc.lockfile.LockFile(sys.argv[1], content_template='{pid};{hostname}')
lock.close()
"#;
    let out = python(script, &path).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let expected = format!("first line {};{}\n", std::process::id(), hostname());
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    let lock = LockFile::lock(&path).unwrap();
    let previous = lock.previous().unwrap();
    assert_ne!(
        previous.file_pid(),
        Some(std::process::id()),
        "zc.lockfile's content"
    );
    assert!(!previous.released(), "zc.lockfile marks no release");
}

fn hostname() -> String {
    let out = Command::new("python3")
        .args(["-c", "import socket; print(socket.gethostname())"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}
