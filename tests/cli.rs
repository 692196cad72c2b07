//! The `pidlockfile` command, driven as a user drives it. Built with the
//! `cli` feature (`cargo test --all-features`).
#![cfg(all(unix, feature = "cli"))]

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::{CommandExt, ExitStatusExt};
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

/// `status`'s verdict: its first line (the second names the file system).
fn first_line(out: &Output) -> String {
    stdout(out).lines().next().unwrap_or_default().to_owned()
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

    // SIGTERM goes to the program; `run` then releases and dies of it too.
    let status = terminate(first);
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
    assert!(!LockFile::is_locked(&path).unwrap());
}

#[test]
fn run_exits_with_the_programs_status() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let exited = output(&["run", "PATH", "--", "sh", "-c", "exit 7"], &path);
    assert_eq!(exited.status.code(), Some(7));
    let killed = output(&["run", "PATH", "--", "sh", "-c", "kill -9 $$"], &path);
    assert_eq!(killed.status.signal(), Some(libc::SIGKILL), "{killed:?}");
    let missing = output(&["run", "PATH", "--", "/nonexistent/program"], &path);
    assert_eq!(missing.status.code(), Some(127));
    assert!(stderr(&missing).starts_with("pidlockfile: cannot run \"/nonexistent/program\""));
    assert!(!LockFile::is_locked(&path).unwrap(), "released after each");
}

#[test]
fn the_program_runs_holding_the_lock_and_its_descriptor() {
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
    // Its descriptor keeps the lock should `run` be killed.
    assert!(
        fds.contains(path.to_str().unwrap()),
        "the program did not inherit the lock's descriptor: {fds}"
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
        first_line(&free),
        format!("{path:?}: free (the file does not exist)")
    );
    assert!(!path.exists());

    let holder = running_sleep(&path);
    let held = output(&["status", "PATH"], &path);
    assert_eq!(held.status.code(), Some(1));
    assert_eq!(
        first_line(&held),
        format!(
            "{path:?}: held by pid {} on host {}",
            holder.id(),
            hostname()
        )
    );
    let pid = holder.id();
    terminate(holder);

    let after = output(&["status", "PATH"], &path);
    assert_eq!(after.status.code(), Some(0));
    // The hostname is shown as in every other message: unquoted, escaped;
    // `run` released cleanly after its program ended.
    assert_eq!(
        first_line(&after),
        format!(
            "{path:?}: free (last held by pid {pid} on host {}; released cleanly)",
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
        first_line(&status),
        format!(
            "{path:?}: held by pid {} on host {} (the file's content names pid {dead_pid}, \
             a process that is not running: stale content)",
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
    assert!(value["file_system"]["type"].is_string(), "{value}");
    assert_eq!(
        value,
        serde_json::json!({
            "path": path.to_str().unwrap(), "exists": false, "locked": false,
            "content": null, "pid": null, "hostname": null, "released": null,
            "holder_pid": null, "alive": null, "kernel_pid": null, "inheritors": null,
            "stale": false, "file_system": value["file_system"], "warning": null,
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
    let cases: [(&[&str], std::path::PathBuf, &str); 3] = [
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

/// Whether `pid` no longer runs: gone, or a zombie no one has reaped yet.
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => true,
    }
}

fn read_line(from: &mut impl BufRead) -> String {
    let mut line = String::new();
    from.read_line(&mut line).unwrap();
    line
}

/// `run PATH -- sh -c 'echo $$; exec sleep 60'`: `run` and its program's pid.
fn run_reporting_its_program(path: &Path, extra: &[&str]) -> (Child, u32) {
    let mut run = pidlockfile()
        .arg("run")
        .args(extra)
        .arg(path)
        .args(["--", "sh", "-c", "echo $$; exec sleep 60"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(run.stdout.take().unwrap());
    let program = read_line(&mut out).trim().parse().unwrap();
    (run, program)
}

#[test]
fn kill_9_of_run_kills_its_program_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let (mut run, program) = run_reporting_its_program(&path, &[]);
    assert!(LockFile::is_locked(&path).unwrap());
    run.kill().unwrap(); // SIGKILL: `run` can do nothing about it
    run.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(1);
    while !gone(program) {
        assert!(
            Instant::now() < deadline,
            "the program (pid {program}) runs on without the lock"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!LockFile::is_locked(&path).unwrap());
}

#[test]
fn kill_9_of_run_at_any_moment_of_its_start_leaves_no_program_running() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    // Each program's command line carries a mark, so that a survivor is found
    // even if it never got to say its pid.
    let mark = format!("pidlockfile-cli-test-{}", std::process::id());
    for round in 0..40u64 {
        let mut run = pidlockfile()
            .arg("run")
            .arg(&path)
            .args(["sleep", "60", &mark])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // From before `run` has started to after its program has.
        std::thread::sleep(Duration::from_micros(round * 500));
        run.kill().unwrap();
        run.wait().unwrap();
    }
    // Survivors, if any: processes whose command line carries the mark.
    let survivors = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| !gone(*pid))
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|line| line.windows(mark.len()).any(|w| w == mark.as_bytes()))
            })
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    while !survivors().is_empty() {
        assert!(
            Instant::now() < deadline,
            "programs run on: {:?}",
            survivors()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn with_inherit_a_double_forked_daemon_holds_the_lock_until_it_exits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let pid_file = dir.path().join("daemon.pid");
    // The program starts a daemon (fork, setsid, fork) and exits at once.
    let out = pidlockfile()
        .args(["run", "--inherit"])
        .arg(&path)
        .args([
            "sh",
            "-c",
            "setsid sh -c 'echo $$ > \"$0\"; exec sleep 60' \"$0\" </dev/null >/dev/null 2>&1 &",
        ])
        .arg(&pid_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    wait_until(|| std::fs::read_to_string(&pid_file).is_ok_and(|s| s.ends_with('\n')));
    let daemon: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    // `run` has exited; the daemon holds the lock: a second `run` is refused.
    assert!(LockFile::is_locked(&path).unwrap());
    let second = output(&["run", "PATH", "true"], &path);
    assert_eq!(second.status.code(), Some(75), "{second:?}");

    unsafe { libc::kill(daemon as i32, libc::SIGKILL) };
    wait_until(|| gone(daemon));
    wait_until(|| !LockFile::is_locked(&path).unwrap());

    // Without --inherit, the same daemon holds nothing.
    let out = pidlockfile()
        .arg("run")
        .arg(&path)
        .args([
            "sh",
            "-c",
            "setsid sh -c 'echo $$ > \"$0\"; exec sleep 60' \"$0\" </dev/null >/dev/null 2>&1 &",
        ])
        .arg(&pid_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(!LockFile::is_locked(&path).unwrap());
    let daemon: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    unsafe { libc::kill(daemon as i32, libc::SIGKILL) };
}

/// A program that counts the signals it gets (SIGINT, SIGTERM, SIGUSR1) as
/// the kernel delivers them (Python's C handler writes one byte per delivery
/// to the wakeup descriptor), prints
/// `ready`, then the counts at each change; once it has got SIGINT or SIGTERM
/// it waits half a second (for a second copy to arrive), writes the counts
/// into `$1` and dies of that signal.
const COUNTER: &str = r#"
import os, select, signal, sys, time
r, w = os.pipe()
os.set_blocking(w, False)
signal.set_wakeup_fd(w)
names = {signal.SIGINT: "INT", signal.SIGTERM: "TERM", signal.SIGUSR1: "USR1"}
counts = {name: 0 for name in names.values()}
for number in names:
    signal.signal(number, lambda *_: None)
print("ready", flush=True)
end = None
while end is None or time.monotonic() < end:
    # Busy until the first signal, so that it is delivered (and so counted)
    # at once rather than left pending, where a second copy would merge.
    left = 0 if end is None else max(0.0, end - time.monotonic())
    if select.select([r], [], [], left)[0]:
        for number in os.read(r, 64):
            counts[names[number]] += 1
        print(counts, flush=True)
        if end is None and (counts["INT"] or counts["TERM"]):
            end = time.monotonic() + 0.5
open(sys.argv[1], "w").write(repr(counts))
ending = signal.SIGINT if counts["INT"] else signal.SIGTERM
signal.signal(ending, signal.SIG_DFL)
os.kill(os.getpid(), ending)
"#;

/// Kills a process that a test waits for if it is still there after 30 s,
/// so that a broken guarantee fails the test instead of hanging it.
struct Watchdog(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Watchdog {
    fn new(pid: u32) -> Watchdog {
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = done.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(30));
            if !flag.load(std::sync::atomic::Ordering::SeqCst) {
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        });
        Watchdog(done)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// `run PATH python3 -c COUNTER COUNTS`, in its own process group, once the
/// program is ready; and its stdout.
fn run_counter(
    path: &Path,
    counts: &Path,
) -> (Child, BufReader<std::process::ChildStdout>, Watchdog) {
    let mut run = pidlockfile()
        .arg("run")
        .arg(path)
        .args(["python3", "-c", COUNTER])
        .arg(counts)
        .process_group(0)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let watchdog = Watchdog::new(run.id());
    let mut out = BufReader::new(run.stdout.take().unwrap());
    assert_eq!(read_line(&mut out), "ready\n");
    (run, out, watchdog)
}

/// `strace -e trace=kill -p PID`, once attached, and its log; `None` (said
/// out loud) without strace, except in CI, which installs it.
fn trace_kills(pid: u32) -> Option<(Child, std::path::PathBuf)> {
    let log = std::env::temp_dir().join(format!("pidlockfile-strace-{pid}"));
    let spawned = Command::new("strace")
        .args(["-q", "-e", "trace=kill", "-o"])
        .arg(&log)
        .args(["-p", &pid.to_string()])
        .stderr(Stdio::null())
        .spawn();
    let child = match spawned {
        Ok(child) => child,
        Err(e) => {
            common::not_run("watching what run sends", &format!("no strace ({e})"));
            return None;
        }
    };
    wait_until(|| {
        std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
            s.lines()
                .any(|l| l.starts_with("TracerPid:") && l.trim_end() != "TracerPid:\t0")
        })
    });
    Some((child, log))
}

#[test]
fn ctrl_c_to_the_process_group_reaches_the_program_once_and_run_dies_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let counts = dir.path().join("counts");
    let (mut run, _out, _watchdog) = run_counter(&path, &counts);
    // The program counts what reaches it, but two copies sent a few
    // microseconds apart merge while the first is pending: what `run` itself
    // sends is watched with strace, from outside the group.
    let strace = trace_kills(run.id());
    // What a terminal does on Ctrl-C: SIGINT to the whole foreground group.
    unsafe { libc::kill(-(run.id() as i32), libc::SIGINT) };
    let status = run.wait().unwrap();
    if let Some((mut strace, log)) = strace {
        strace.wait().unwrap();
        let sent = std::fs::read_to_string(log).unwrap();
        let passed_on = sent
            .lines()
            .any(|l| l.starts_with("kill(") && l.contains("SIGINT"));
        assert!(!passed_on, "run passed SIGINT on: {sent}");
    }
    assert_eq!(
        std::fs::read_to_string(&counts).unwrap(),
        "{'INT': 1, 'TERM': 0, 'USR1': 0}"
    );
    // As its parent (a shell) sees it: killed by SIGINT, so a loop stops.
    assert_eq!(status.signal(), Some(libc::SIGINT), "{status:?}");
    assert!(!LockFile::is_locked(&path).unwrap());
}

#[test]
fn signals_sent_to_run_alone_reach_the_program_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let counts = dir.path().join("counts");
    let (mut run, mut out, _watchdog) = run_counter(&path, &counts);
    let pid = run.id() as i32;
    // SIGUSR1 would end `run`: it is passed on, and both go on.
    unsafe { libc::kill(pid, libc::SIGUSR1) };
    assert_eq!(read_line(&mut out), "{'INT': 0, 'TERM': 0, 'USR1': 1}\n");
    // SIGINT to `run` alone is not passed on (it stands for the terminal's
    // Ctrl-C, which the program gets itself), and does not end `run`.
    unsafe { libc::kill(pid, libc::SIGINT) };
    std::thread::sleep(Duration::from_millis(200));
    assert!(run.try_wait().unwrap().is_none(), "SIGINT ended run");
    // SIGTERM to `run` alone (kill PID) is passed on, once.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = run.wait().unwrap();
    assert_eq!(
        std::fs::read_to_string(&counts).unwrap(),
        "{'INT': 0, 'TERM': 1, 'USR1': 1}"
    );
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
    assert!(!LockFile::is_locked(&path).unwrap());
}

#[test]
fn hold_wait_ends_on_sigint_or_sigterm_without_taking_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let holder = running_sleep(&path);
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let mut waiter = pidlockfile()
            .args(["hold", "--wait", "20"])
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // One line when the wait begins, naming the holder.
        let mut err = BufReader::new(waiter.stderr.take().unwrap());
        assert_eq!(
            read_line(&mut err),
            format!(
                "pidlockfile: waiting up to 20s for {path:?}: held by pid {} on host {}\n",
                holder.id(),
                hostname()
            )
        );
        let sent = Instant::now();
        unsafe { libc::kill(waiter.id() as i32, signal) };
        let status = waiter.wait().unwrap();
        assert!(sent.elapsed() < Duration::from_secs(5), "went on waiting");
        assert_eq!(status.signal(), Some(signal), "{status:?}");
        let mut said = String::new();
        std::io::Read::read_to_string(&mut waiter.stdout.take().unwrap(), &mut said).unwrap();
        assert_eq!(said, "", "it took the lock");
        assert_eq!(
            Holder::read(&path).unwrap().unwrap().pid(),
            Some(holder.id()),
            "the lock file was rewritten"
        );
    }
    terminate(holder);
}

/// A pipe whose reading end is already closed, as stdout.
fn closed_pipe() -> Stdio {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    unsafe { libc::close(fds[0]) };
    Stdio::from(unsafe { std::os::fd::OwnedFd::from_raw_fd(fds[1]) })
}

#[test]
fn a_closed_stdout_is_one_line_and_exit_2_and_hold_then_holds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    for args in [&["status"][..], &["status", "--json"], &["hold"]] {
        let child = pidlockfile()
            .args(args)
            .arg(&path)
            .stdout(closed_pipe())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let _watchdog = Watchdog::new(child.id());
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert_eq!(
            stderr(&out),
            "pidlockfile: cannot write to standard output: Broken pipe (os error 32)\n",
            "{args:?}"
        );
        // `hold` could not say it holds the lock, so it did not keep it.
        assert!(!LockFile::is_locked(&path).unwrap(), "{args:?}");
    }
}

/// With stderr a closed pipe too, the exit status is still the documented
/// one: 75 for a lock held elsewhere, 2 for an error (`eprintln!` would
/// panic there and exit 101).
#[test]
fn a_closed_stderr_changes_no_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let held = LockFile::lock(&path).unwrap();
    let cases: [(&[&str], &Path, i32); 3] = [
        (&["run", "--wait", "0.05"], &path, 75),
        (&["hold"], &path, 75),
        (&["status"], &dir.path().join("missing/LOCK"), 2),
    ];
    for (args, path, code) in cases {
        let mut command = pidlockfile();
        command.args(args).arg(path);
        if args[0] == "run" {
            command.args(["--", "true"]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(closed_pipe())
            .spawn()
            .unwrap();
        let _watchdog = Watchdog::new(child.id());
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {out:?}");
    }
    drop(held);
}

#[test]
fn status_json_prints_one_object_also_on_errors() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let link = dir.path().join("link");
    std::os::unix::fs::symlink("LOCK", &link).unwrap();
    let cases = [
        (dir.path().to_owned(), "not a regular file"),
        (fifo, "not a regular file"),
        (link, "symbolic link"),
        (dir.path().join("missing/LOCK"), "does not exist"),
    ];
    for (path, says) in cases {
        let out = output(&["status", "--json", "PATH"], &path);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let error = value["error"].as_str().unwrap();
        assert!(
            error.starts_with(&format!("cannot inspect {path:?}: ")) && error.contains(says),
            "{error}"
        );
        assert_eq!(value["path"], path.to_str().unwrap());
        assert_eq!(stderr(&out), format!("pidlockfile: {error}\n"));
    }
}

#[test]
fn status_json_gives_a_path_that_is_not_utf8_as_its_bytes() {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let dir = tempfile::tempdir().unwrap();
    let mut name = b"lock-\xff\xfe".to_vec();
    name.extend_from_slice(b"\\x.lock");
    let path = dir.path().join(std::ffi::OsString::from_vec(name));
    let lock = LockFile::lock(&path).unwrap();
    let out = output(&["status", "--json", "PATH"], &path);
    lock.close().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let bytes: Vec<u8> = value["path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_u64().unwrap() as u8)
        .collect();
    assert_eq!(bytes, path.as_os_str().as_bytes());
}

#[test]
fn status_of_a_path_in_a_missing_directory_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir");
    let path = missing.join("x.lock");
    let out = output(&["status", "PATH"], &path);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(stdout(&out), "");
    assert_eq!(
        stderr(&out),
        format!("pidlockfile: cannot inspect {path:?}: the directory {missing:?} does not exist\n")
    );
    // A regular file where the directory should be.
    std::fs::write(&missing, "").unwrap();
    let out = output(&["status", "PATH"], &path);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        stderr(&out).contains("is not a directory"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn run_takes_the_command_without_a_double_dash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let out = output(&["run", "PATH", "sh", "-c", "exit 3"], &path);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    // What follows COMMAND is COMMAND's, even when it looks like an option.
    let out = output(&["run", "PATH", "echo", "--wait", "5", "--", "-v"], &path);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), "--wait 5 -- -v\n");
    let out = output(&["run", "PATH", "--", "echo", "--wait"], &path);
    assert_eq!(stdout(&out), "--wait\n");
}

#[test]
fn wait_accepts_inf_and_refuses_negatives_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    for (wait, says) in [
        ("-1", "\"-1\" is negative"),
        ("-0.5", "\"-0.5\" is negative"),
        ("abc", "\"abc\" is not a number of seconds (or inf)"),
        ("nan", "\"nan\" is not a number of seconds (or inf)"),
    ] {
        let out = output(&["run", "--wait", wait, "PATH", "true"], &path);
        assert_eq!(out.status.code(), Some(2), "{wait}: {out:?}");
        assert!(stderr(&out).contains(says), "{wait}: {}", stderr(&out));
    }
    let holder = running_sleep(&path);
    let holder_pid = holder.id();
    let waiting = |wait: &str| {
        let mut waiter = pidlockfile()
            .args(["run", "--wait", wait])
            .arg(&path)
            .args(["true"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(waiter.stderr.take().unwrap());
        assert_eq!(
            read_line(&mut err),
            format!(
                "pidlockfile: waiting as long as it takes for {path:?}: held by pid {holder_pid} \
                 on host {}\n",
                hostname()
            )
        );
        waiter
    };
    let mut forever = waiting("inf");
    unsafe { libc::kill(forever.id() as i32, libc::SIGTERM) };
    assert_eq!(forever.wait().unwrap().signal(), Some(libc::SIGTERM));

    let mut long = waiting("1e300");
    terminate(holder);
    let status = long.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn help_lists_exit_codes_and_whether_the_program_inherits_the_lock() {
    let help = |command: &str| {
        let out = pidlockfile().args([command, "--help"]).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        stdout(&out)
    };
    let run = help("run");
    for says in [
        "Exit status",
        "75",
        "126",
        "127",
        "--inherit",
        "COMMAND inherits the lock's descriptor",
        "SIGINT",
    ] {
        assert!(run.contains(says), "run --help lacks {says:?}:\n{run}");
    }
    let status = help("status");
    for says in [
        "Exit status",
        "0  the lock is free",
        "1  the lock is held",
        "2  error",
    ] {
        assert!(
            status.contains(says),
            "status --help lacks {says:?}:\n{status}"
        );
    }
    let hold = help("hold");
    for says in ["Exit status", "75", "SIGTERM"] {
        assert!(hold.contains(says), "hold --help lacks {says:?}:\n{hold}");
    }
}

#[test]
fn status_says_held_while_a_shared_holder_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    std::fs::write(&path, "").unwrap();
    let mut reader = Command::new("flock")
        .arg("-s")
        .arg(&path)
        .args(["sh", "-c", "echo locked; exec sleep 60"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(reader.stdout.take().unwrap());
    assert_eq!(read_line(&mut out), "locked\n");
    let status = output(&["status", "PATH"], &path);
    reader.kill().unwrap();
    reader.wait().unwrap();
    assert_eq!(status.status.code(), Some(1), "{status:?}");
    assert!(
        first_line(&status).starts_with(&format!("{path:?}: held")),
        "{status:?}"
    );
}

/// A file system mounted for a test (the machines run as root), unmounted
/// when dropped.
struct Mounted {
    dir: tempfile::TempDir,
    _backing: Option<tempfile::TempDir>,
}

impl Mounted {
    /// Runs `program args... DIR`, the mount command, on a new directory.
    fn with(
        program: &str,
        args: &[&std::ffi::OsStr],
        backing: Option<tempfile::TempDir>,
    ) -> Option<Mounted> {
        let dir = tempfile::tempdir().unwrap();
        let result = Command::new(program).args(args).arg(dir.path()).output();
        let why = match result {
            Ok(out) if out.status.success() => {
                return Some(Mounted {
                    dir,
                    _backing: backing,
                })
            }
            Ok(out) => stderr(&out),
            Err(e) => e.to_string(),
        };
        // Said out loud; CI, which installs what these need, fails instead.
        common::not_run(&format!("a test on a {program} mount"), &why);
        None
    }

    fn tmpfs() -> Option<Mounted> {
        Mounted::with(
            "mount",
            &["-t".as_ref(), "tmpfs".as_ref(), "pidlockfile-test".as_ref()],
            None,
        )
    }

    fn ext4() -> Option<Mounted> {
        let backing = tempfile::tempdir().unwrap();
        let image = backing.path().join("ext4.img");
        std::fs::File::create(&image)
            .unwrap()
            .set_len(8 << 20)
            .unwrap();
        let made = Command::new("mkfs.ext4")
            .args(["-q", "-F"])
            .arg(&image)
            .output();
        if !made.as_ref().is_ok_and(|out| out.status.success()) {
            common::not_run("a test on ext4", &format!("mkfs.ext4: {made:?}"));
            return None;
        }
        Mounted::with(
            "mount",
            &["-o".as_ref(), "loop".as_ref(), image.as_os_str()],
            Some(backing),
        )
    }

    /// bindfs, a FUSE file system that leaves locks to the kernel: local.
    fn fuse() -> Option<Mounted> {
        let backing = tempfile::tempdir().unwrap();
        let source = backing.path().to_owned();
        Mounted::with("bindfs", &[source.as_os_str()], Some(backing))
    }

    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("LOCK")
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// `status` and `status --json` of a lock held on `mounted`: the file
/// system's type and mount point, and the warning, if any.
fn status_on(mounted: &Mounted) -> (Output, serde_json::Value) {
    let path = mounted.path();
    let holder = running_sleep(&path);
    let text = output(&["status", "PATH"], &path);
    let json = output(&["status", "--json", "PATH"], &path);
    terminate(holder);
    assert_eq!(text.status.code(), Some(1), "{text:?}");
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["locked"], true);
    (text, value)
}

#[test]
fn status_names_the_file_system_tmpfs_and_ext4_without_a_warning() {
    for (kind, mounted) in [("tmpfs", Mounted::tmpfs()), ("ext4", Mounted::ext4())] {
        let Some(mounted) = mounted else { continue };
        let (text, value) = status_on(&mounted);
        let mount_point = mounted.dir.path().to_str().unwrap();
        assert_eq!(
            stdout(&text).lines().nth(1).unwrap(),
            format!("file system: {kind}, mounted on {mount_point:?}")
        );
        assert_eq!(stderr(&text), "", "no warning on {kind}");
        assert_eq!(
            value["file_system"],
            serde_json::json!({ "type": kind, "mount_point": mount_point })
        );
        assert_eq!(value["warning"], serde_json::Value::Null);
    }
}

#[test]
fn status_warns_that_a_fuse_file_systems_locks_may_stay_on_this_machine() {
    let Some(mounted) = Mounted::fuse() else {
        return;
    };
    let (text, value) = status_on(&mounted);
    let path = mounted.path();
    let warning = "a FUSE file system (fuse): its locks are this machine's own unless the \
                   file system implements locking (sshfs and most others do not)";
    assert_eq!(
        stderr(&text),
        format!("pidlockfile: warning: {path:?} is on {warning}\n")
    );
    assert_eq!(value["file_system"]["type"], "fuse");
    assert_eq!(value["warning"], warning);
}

#[test]
fn shared_runs_run_together_and_keep_an_exclusive_run_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    LockFile::lock(&path).unwrap().close().unwrap();
    let before = std::fs::read(&path).unwrap();
    let reader = || {
        pidlockfile()
            .args(["run", "--shared"])
            .arg(&path)
            .args(["sleep", "60"])
            .spawn()
            .unwrap()
    };
    let first = reader();
    wait_until(|| LockFile::is_locked(&path).unwrap());
    let second = reader();
    // The second reader is running too: a shared `run` of `true` gets in,
    // an exclusive one is refused.
    let third = output(&["run", "--shared", "PATH", "true"], &path);
    assert_eq!(third.status.code(), Some(0), "{third:?}");
    let writer = output(&["run", "PATH", "true"], &path);
    assert_eq!(writer.status.code(), Some(75), "{writer:?}");
    assert!(stderr(&writer).contains("held"), "{writer:?}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "readers write nothing"
    );
    for child in [first, second] {
        assert_eq!(terminate(child).signal(), Some(libc::SIGTERM));
    }
    let writer = output(&["run", "PATH", "true"], &path);
    assert_eq!(writer.status.code(), Some(0), "{writer:?}");
}

#[test]
fn mode_gives_a_new_lock_file_exactly_those_bits_and_bad_modes_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let ran = output(&["run", "--mode", "666", "PATH", "true"], &path);
    assert_eq!(ran.status.code(), Some(0), "{ran:?}");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o666);
    for bad in ["999", "rw", "17777", "0o8"] {
        let out = output(&["run", "--mode", bad, "PATH", "true"], &path);
        assert_eq!(out.status.code(), Some(2), "{bad}: {out:?}");
        assert!(
            stderr(&out).contains("is not a file mode in octal"),
            "{bad}: {out:?}"
        );
    }
}

#[test]
fn kill_9_of_run_whose_program_changed_its_uid_leaves_the_lock_with_the_program() {
    // Linux clears the death signal when the program changes its uid, as a
    // daemon dropping privileges or `setpriv` does: the program then outlives
    // `run`, and must keep the lock through the descriptor it inherited.
    if unsafe { libc::geteuid() } != 0 {
        common::not_run(
            "kill_9_of_run_whose_program_changed_its_uid_leaves_the_lock_with_the_program",
            "needs root to change uid",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let mut run = pidlockfile()
        .arg("run")
        .arg(&path)
        .args([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sleep",
            "60",
        ])
        .spawn()
        .unwrap();
    wait_until(|| LockFile::is_locked(&path).unwrap());
    // Wait for the uid change (the exec of sleep as nobody).
    let program = {
        let mut found = None;
        wait_until(|| {
            found = std::fs::read_dir("/proc")
                .unwrap()
                .flatten()
                .find_map(|entry| {
                    let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
                    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                    let ppid: u32 = stat[stat.rfind(')')? + 2..]
                        .split(' ')
                        .nth(1)?
                        .parse()
                        .ok()?;
                    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
                    (ppid == run.id() && comm.trim() == "sleep").then_some(pid)
                });
            found.is_some()
        });
        found.unwrap()
    };
    run.kill().unwrap();
    run.wait().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let alive = unsafe { libc::kill(program as i32, 0) } == 0;
    let second = output(&["run", "PATH", "true"], &path);
    unsafe { libc::kill(program as i32, libc::SIGKILL) };
    assert!(
        alive,
        "the uid change was expected to clear the death signal"
    );
    assert_eq!(
        second.status.code(),
        Some(75),
        "the program runs on unlocked: {second:?}"
    );
}
