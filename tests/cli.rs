//! The `pidlockfile` command, driven as a user drives it. Built with the
//! `cli` feature (`cargo test --all-features`).
#![cfg(all(unix, feature = "cli"))]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::hostname;
use pidlockfile::{Holder, LockFile};

fn pidlockfile() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pidlockfile"));
    command.env_remove("RUST_LOG");
    command
}

fn output(args: &[&str], path: &Path) -> Output {
    let mut command = pidlockfile();
    command.args(args.iter().take_while(|a| **a != "PATH"));
    command.arg(path);
    command.args(args.iter().skip_while(|a| **a != "PATH").skip(1));
    command.stdin(Stdio::null()).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `pidlockfile run PATH -- sleep 60`, once it holds the lock.
fn running_sleep(path: &Path) -> Child {
    let child = pidlockfile()
        .arg("run")
        .arg(path)
        .args(["--", "sleep", "60"])
        .spawn()
        .unwrap();
    wait_until(|| LockFile::is_locked(path).unwrap());
    child
}

fn wait_until(mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(Instant::now() < deadline, "gave up waiting");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn terminate(mut child: Child) -> std::process::ExitStatus {
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap()
}

#[test]
fn run_is_refused_while_another_run_holds_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let first = running_sleep(&path);

    let second = output(&["run", "PATH", "--", "touch", "ran"], &path);
    assert_eq!(second.status.code(), Some(75), "{second:?}");
    assert_eq!(
        stderr(&second),
        format!(
            "pidlockfile: cannot lock {path:?}: held by pid {} on host {}\n",
            first.id(),
            hostname()
        )
    );
    assert!(!Path::new("ran").exists());

    // SIGTERM goes to the program; `run` then releases and reports its death.
    let status = terminate(first);
    assert_eq!(status.code(), Some(128 + libc::SIGTERM), "{status:?}");
    assert!(!LockFile::is_locked(&path).unwrap());
}

#[test]
fn run_exits_with_the_programs_status() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let exited = output(&["run", "PATH", "--", "sh", "-c", "exit 7"], &path);
    assert_eq!(exited.status.code(), Some(7));
    let killed = output(&["run", "PATH", "--", "sh", "-c", "kill -9 $$"], &path);
    assert_eq!(killed.status.code(), Some(128 + 9));
    let missing = output(&["run", "PATH", "--", "/nonexistent/program"], &path);
    assert_eq!(missing.status.code(), Some(127));
    assert!(stderr(&missing).starts_with("pidlockfile: cannot run \"/nonexistent/program\""));
    assert!(!LockFile::is_locked(&path).unwrap(), "released after each");
}

#[test]
fn the_program_runs_holding_the_lock_but_without_its_descriptor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    // The program lists its descriptors, then prints the lock file ("$0").
    let run = pidlockfile()
        .arg("run")
        .arg(&path)
        .args(["--", "sh", "-c", "ls -l /proc/$$/fd; echo ---; cat \"$0\""])
        .arg(&path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let run_pid = run.id();
    let out = run.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    let (fds, content) = text.split_once("---\n").unwrap();
    assert!(
        !fds.contains(path.to_str().unwrap()),
        "the program inherited the lock: {fds}"
    );
    assert_eq!(
        Holder::parse(content.as_bytes()).unwrap().pid(),
        Some(run_pid)
    );
}

#[test]
fn status_says_free_held_and_stale_and_never_creates_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");

    let free = output(&["status", "PATH"], &path);
    assert_eq!(free.status.code(), Some(0));
    assert_eq!(
        stdout(&free),
        format!("{path:?}: free (the file does not exist)\n")
    );
    assert!(!path.exists());

    let holder = running_sleep(&path);
    let held = output(&["status", "PATH"], &path);
    assert_eq!(held.status.code(), Some(1));
    assert_eq!(
        stdout(&held),
        format!(
            "{path:?}: held by pid {} on host {}\n",
            holder.id(),
            hostname()
        )
    );
    let pid = holder.id();
    terminate(holder);

    let after = output(&["status", "PATH"], &path);
    assert_eq!(after.status.code(), Some(0));
    assert_eq!(
        stdout(&after),
        format!(
            "{path:?}: free (last held by pid {pid} on host {:?})\n",
            hostname()
        )
    );
}

#[test]
fn status_names_the_real_holder_behind_a_killed_holders_stale_content() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let mut dead = running_sleep(&path);
    let dead_pid = dead.id();
    dead.kill().unwrap(); // SIGKILL: `run` dies holding; the file keeps its pid
    dead.wait().unwrap();
    assert_eq!(Holder::read(&path).unwrap().unwrap().pid(), Some(dead_pid));

    // Another process takes the lock without writing anything.
    let mut raw = Command::new("python3")
        .args(["-c", "import fcntl,sys; f=open(sys.argv[1]); fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); sys.stdin.read()"])
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(raw.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "locked\n");

    let status = output(&["status", "PATH"], &path);
    let json = output(&["status", "--json", "PATH"], &path);
    drop(raw.stdin.take());
    raw.wait().unwrap();

    assert_eq!(status.status.code(), Some(1));
    assert_eq!(
        stdout(&status),
        format!(
            "{path:?}: held by pid {} on host {} (the file's content names pid {dead_pid}, \
             a process that is not running: stale content)\n",
            raw.id(),
            hostname()
        )
    );
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["locked"], true);
    assert_eq!(value["pid"], dead_pid);
    assert_eq!(value["alive"], false);
    assert_eq!(value["kernel_pid"], raw.id());
    assert_eq!(value["holder_pid"], raw.id());
    assert_eq!(value["stale"], true);
    assert_eq!(value["exists"], true);
    assert_eq!(value["path"], path.to_str().unwrap());
}

#[test]
fn status_json_of_a_free_missing_file_is_one_object() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let out = output(&["status", "--json", "PATH"], &path);
    assert_eq!(out.status.code(), Some(0));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        value,
        serde_json::json!({
            "path": path.to_str().unwrap(), "exists": false, "locked": false,
            "content": null, "pid": null, "hostname": null, "released": null,
            "holder_pid": null, "alive": null, "kernel_pid": null, "inheritors": null,
            "stale": false,
        })
    );
}

#[test]
fn hold_holds_until_sigterm_then_releases() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let holder = pidlockfile()
        .arg("hold")
        .arg(&path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(|| LockFile::is_locked(&path).unwrap());
    assert_eq!(
        Holder::read(&path).unwrap().unwrap().pid(),
        Some(holder.id())
    );
    let status = terminate(holder);
    assert!(status.success(), "{status:?}");
    assert!(!LockFile::is_locked(&path).unwrap());
}

#[test]
fn run_waits_for_the_holder_with_wait() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let holder = running_sleep(&path);
    let timed_out = output(&["run", "--wait", "0.2", "PATH", "--", "true"], &path);
    assert_eq!(timed_out.status.code(), Some(75));
    assert!(
        stderr(&timed_out).contains(": timed out after 0.2"),
        "{}",
        stderr(&timed_out)
    );

    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        terminate(holder)
    });
    let waiter = pidlockfile()
        .args(["run", "--wait", "30", "--content", "{pid} (nightly)"])
        .arg(&path)
        .args(["--", "sh", "-c", "cat \"$0\""])
        .arg(&path)
        .output()
        .unwrap();
    releaser.join().unwrap();
    assert!(waiter.status.success(), "{waiter:?}");
    assert!(
        stdout(&waiter).ends_with(" (nightly)\n"),
        "{}",
        stdout(&waiter)
    );
}

#[test]
fn errors_print_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], std::path::PathBuf, &str); 4] = [
        (
            &["run", "PATH", "--", "true"],
            dir.path().join("missing/LOCK"),
            "No such file or directory",
        ),
        (
            &["run", "PATH", "--", "true"],
            dir.path().to_owned(),
            "is a directory",
        ),
        (
            &["run", "--content", "{host}", "PATH", "--", "true"],
            dir.path().join("LOCK"),
            "unknown placeholder {host}",
        ),
        (&["status", "PATH"], dir.path().to_owned(), "is a directory"),
    ];
    for (args, path, says) in cases {
        let out = output(args, &path);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let text = stderr(&out);
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.starts_with(&format!("pidlockfile: cannot lock {path:?}: ")),
            "{text}"
        );
        assert!(text.to_lowercase().contains(&says.to_lowercase()), "{text}");
        assert!(!text.contains("panicked"), "{text}");
    }
    assert!(
        !dir.path().join("LOCK").exists(),
        "a bad template created the file"
    );
    let usage = pidlockfile().arg("status").output().unwrap();
    assert_eq!(usage.status.code(), Some(2));
    assert!(stderr(&usage).contains("<PATH>"), "{}", stderr(&usage));
}
