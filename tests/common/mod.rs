//! Helpers for tests that run real processes.
//!
//! A test binary re-runs itself (`current_exe`) with `PIDLOCKFILE_TEST_ROLE`
//! set, so that its ignored `helper_process` test plays a part: hold a lock,
//! try one, and so on. A helper speaks in lines that start with `@@ `.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};

use pidlockfile::{LockError, LockFile, LockOptions};

const ROLE: &str = "PIDLOCKFILE_TEST_ROLE";
const PATH: &str = "PIDLOCKFILE_TEST_PATH";
const TEMPLATE: &str = "PIDLOCKFILE_TEST_TEMPLATE";
const FILE_SIZE_LIMIT: &str = "PIDLOCKFILE_TEST_FILE_SIZE_LIMIT";
const CHDIR: &str = "PIDLOCKFILE_TEST_CHDIR_AFTER_LOCKING";
const ROUNDS: &str = "PIDLOCKFILE_TEST_ROUNDS";
const WAIT: &str = "PIDLOCKFILE_TEST_WAIT_SECS";
const SHARED: &str = "PIDLOCKFILE_TEST_SHARED";
/// Set in a process whose waits must watch the file (see [`watch_if_asked`]).
pub const WATCH: &str = "PIDLOCKFILE_TEST_WATCH";

/// The uid and gid that permission tests run as: the machines run as root.
pub const NOBODY: u32 = 65534;

/// Declares the test that plays helper roles in a re-run copy of this binary.
#[macro_export]
macro_rules! helper_process {
    () => {
        #[test]
        #[ignore = "not a test: the process other tests in this file spawn"]
        fn helper_process() {
            common::play_role();
        }
    };
}

/// Declares the test that runs every other test of this file again with
/// waits that watch the file, as they do where the crate has no signal to
/// end a blocked `flock` with (see [`rerun_watching`]).
#[macro_export]
macro_rules! again_with_waits_that_watch {
    () => {
        #[test]
        #[cfg(target_os = "linux")]
        fn every_test_here_again_with_waits_that_watch_the_file() {
            if common::watching() {
                return; // the rerun itself
            }
            common::rerun_watching("every_test_here_again_with_waits_that_watch_the_file");
        }
    };
}

/// How many times a handler of "the program" (see
/// [`take_every_realtime_signal`]) has run in this process.
#[cfg(target_os = "linux")]
static PROGRAM_SIGNALS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[cfg(target_os = "linux")]
extern "C" fn program_handler(_: libc::c_int) {
    PROGRAM_SIGNALS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

/// Installs a handler of "the program" (it counts its calls, and restarts
/// interrupted calls, as most programs' handlers do) on `signal`.
#[cfg(target_os = "linux")]
pub fn take_signal(signal: libc::c_int) {
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = program_handler as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::sigemptyset(&mut action.sa_mask);
        action.sa_flags = libc::SA_RESTART;
        assert_eq!(libc::sigaction(signal, &action, std::ptr::null_mut()), 0);
    }
}

/// Takes every real-time signal still at its default disposition, as a
/// program that uses them all would: the crate then has none with which to
/// end a wait blocked in `flock`, and waits by watching the file instead.
/// Returns the signals taken.
#[cfg(target_os = "linux")]
pub fn take_every_realtime_signal() -> Vec<libc::c_int> {
    (libc::SIGRTMIN()..=libc::SIGRTMAX())
        .filter(|&signal| realtime_handler(signal) == libc::SIG_DFL)
        .inspect(|&signal| take_signal(signal))
        .collect()
}

/// The handler `signal` has now.
#[cfg(target_os = "linux")]
pub fn realtime_handler(signal: libc::c_int) -> libc::sighandler_t {
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(signal, std::ptr::null(), &mut current), 0);
        current.sa_sigaction
    }
}

/// How many times the program's handlers have run in this process.
#[cfg(target_os = "linux")]
pub fn program_signals() -> usize {
    PROGRAM_SIGNALS.load(std::sync::atomic::Ordering::SeqCst)
}

/// Where [`WATCH`] is set, takes every real-time signal (once per process)
/// before the test or role waits, so that its waits watch the file.
pub fn watch_if_asked() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    if std::env::var_os(WATCH).is_some() {
        // Elsewhere waits watch the file (or retry) anyway.
        #[cfg(target_os = "linux")]
        ONCE.call_once(|| drop(take_every_realtime_signal()));
    }
}

/// Whether this process's waits watch the file (see [`watch_if_asked`]).
pub fn watching() -> bool {
    std::env::var_os(WATCH).is_some()
}

/// Runs the other tests of this test binary again, in a process where every
/// wait watches the file ([`WATCH`]), and fails with their output if any
/// fails. `me` is the calling test, skipped.
pub fn rerun_watching(me: &str) {
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--skip", me, "--skip", "helper_process"])
        .env(WATCH, "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the tests failed when waits watch the file:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(said.contains("test result: ok."), "{said}");
}

/// Runs the role named in the environment and exits with its status.
pub fn play_role() {
    watch_if_asked();
    let role = std::env::var(ROLE).expect("helper_process runs only when a test spawns it");
    let path = PathBuf::from(std::env::var_os(PATH).expect("the lock path"));
    if let Ok(limit) = std::env::var(FILE_SIZE_LIMIT) {
        // Writes past `limit` bytes now fail with EFBIG: a real write error from the kernel.
        let limit = libc::rlimit {
            rlim_cur: limit.parse().unwrap(),
            rlim_max: libc::RLIM_INFINITY,
        };
        unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
        }
    }
    if role == "stress-worker" {
        stress_worker(&path);
    }
    if role == "marker-worker" || role == "marker-worker-no-wait" {
        marker_worker(&path, role == "marker-worker", 1);
    }
    if role == "marker-worker-threads" {
        marker_worker(&path, true, 3);
    }
    if role == "replacer" {
        replacer(&path);
    }
    if role == "lock-as-session-leader" {
        // A new session has no controlling terminal: opening a terminal
        // without O_NOCTTY would make it ours.
        assert!(unsafe { libc::setsid() } > 0);
        match LockFile::lock(&path) {
            Ok(_) => say("locked"),
            Err(e) => say(&format!("error {e}")),
        }
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        let tty_nr = after_name.split(' ').nth(4).unwrap();
        say(&format!("tty_nr {tty_nr}"));
        std::process::exit(0)
    }
    if role == "is-alive" {
        let holder = pidlockfile::Holder::read(&path).unwrap().unwrap();
        say(&format!("is-alive {:?}", holder.is_alive()));
        std::process::exit(0)
    }
    if role == "hold-raw" {
        // A holder that writes nothing, like flock(1) or a bare fs2 lock.
        let file = std::fs::File::open(&path).expect("the lock file exists");
        fs2::FileExt::try_lock_exclusive(&file).expect("the raw lock");
        say(&format!("locked {}", std::process::id()));
        wait_for_eof();
        say("released");
        std::process::exit(0)
    }
    let mut options = LockOptions::new();
    if let Ok(template) = std::env::var(TEMPLATE) {
        options.content_template(&template);
    }
    if let Ok(secs) = std::env::var(WAIT) {
        options.wait(std::time::Duration::from_secs(secs.parse().unwrap()));
    }
    options.shared(std::env::var_os(SHARED).is_some());
    let lock = match options.lock(&path) {
        Ok(lock) => lock,
        Err(LockError::Locked { holder, .. }) => {
            let pid = holder.and_then(|h| h.pid());
            say(&format!(
                "refused {}",
                pid.map_or("-".into(), |p| p.to_string())
            ));
            std::process::exit(2)
        }
        Err(e) => {
            say(&format!("error {e}"));
            say(&format!("kind {:?}", std::io::Error::from(e).kind()));
            std::process::exit(1)
        }
    };
    if let Some(dir) = std::env::var_os(CHDIR) {
        // The lock stays on the file it opened, whatever the working directory.
        std::env::set_current_dir(dir).unwrap();
    }
    match role.as_str() {
        "try" => say("locked"),
        "hold" => {
            say(&format!("locked {}", std::process::id()));
            wait_for_eof();
        }
        "hold-then-fork-child-drops" => {
            // The child drops its copy of the LockFile and exits; the parent
            // says so once it has reaped the child, still holding the lock.
            let child = unsafe { libc::fork() };
            if child == 0 {
                drop(lock);
                unsafe { libc::_exit(0) };
            }
            let mut status = 0;
            assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
            assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
            say(&format!(
                "locked {} child {child} dropped",
                std::process::id()
            ));
            wait_for_eof();
            lock.close().expect("release");
            say("released");
            std::process::exit(0)
        }
        "hold-then-fork" | "hold-then-fork-then-drop" => {
            // The child inherits the locked descriptor and outlives our release.
            let child = unsafe { libc::fork() };
            if child == 0 {
                unsafe {
                    libc::sleep(60);
                    libc::_exit(0);
                }
            }
            say(&format!("locked {} forked {child}", std::process::id()));
            wait_for_eof();
        }
        other => panic!("unknown role {other}"),
    }
    if role.ends_with("-then-drop") {
        drop(lock);
    } else {
        lock.close().expect("release");
    }
    say("released");
    std::process::exit(0)
}

/// A stress worker: `ROUNDS` times, lock, check that the lock file names
/// this process, increment the counter file beside it, release. Says how many
/// rounds saw a foreign holder while holding the lock.
fn stress_worker(path: &Path) -> ! {
    let rounds: usize = std::env::var(ROUNDS).unwrap().parse().unwrap();
    let counter = path.with_file_name("counter");
    let me = std::process::id();
    let mut foreign = 0;
    for _ in 0..rounds {
        let lock = LockOptions::new()
            .wait(std::time::Duration::from_secs(600))
            .lock(path)
            .unwrap();
        let holder = pidlockfile::Holder::read(path).unwrap();
        if holder.as_ref().and_then(|h| h.pid()) != Some(me) {
            foreign += 1;
        }
        let n: u64 = std::fs::read_to_string(&counter)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        std::fs::write(&counter, (n + 1).to_string()).unwrap();
        lock.close().unwrap();
    }
    say(&format!("done {rounds} foreign {foreign}"));
    std::process::exit(0)
}

/// A worker that proves mutual exclusion with a marker outside the lock
/// file: `ROUNDS` times in all, its `threads` take the lock (waiting, or
/// retrying refusals), create `occupied` beside it with `O_EXCL`, hold it a
/// moment, remove it and release. A marker that already exists means two
/// holders at once.
fn marker_worker(path: &Path, wait: bool, threads: usize) -> ! {
    let rounds: usize = std::env::var(ROUNDS).unwrap().parse().unwrap();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let overlaps = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    marker_rounds(path, wait, || {
                        next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < rounds
                    })
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap())
            .sum::<usize>()
    });
    say(&format!("done {rounds} overlaps {overlaps}"));
    std::process::exit(0)
}

/// One thread's rounds of [`marker_worker`], while `another` says so; the
/// overlaps it saw.
fn marker_rounds(path: &Path, wait: bool, another: impl Fn() -> bool) -> usize {
    let marker = path.with_file_name("occupied");
    let mut overlaps = 0;
    while another() {
        let lock = loop {
            let mut options = LockOptions::new();
            if wait {
                options.wait(std::time::Duration::from_secs(600));
            }
            match options.lock(path) {
                Ok(lock) => break lock,
                Err(LockError::Locked { .. }) => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        };
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&marker)
        {
            Ok(_) => {
                std::thread::sleep(std::time::Duration::from_micros(200));
                std::fs::remove_file(&marker).unwrap();
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => overlaps += 1,
            Err(e) => panic!("{e}"),
        }
        drop(lock);
    }
    overlaps
}

/// What a careless operator or a tmp cleaner does to a lock file, between
/// tenures, until stdin closes: takes the lock, then deletes the file, moves
/// it away, or replaces it by renaming a new file over it, and releases.
/// Waiters that had opened the old file then get its lock.
fn replacer(path: &Path) -> ! {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        wait_for_eof();
        let _ = tx.send(());
    });
    let moved = path.with_extension("old");
    let fresh = path.with_extension("new");
    let mut replaced = 0usize;
    while rx.try_recv().is_err() {
        let lock = match LockOptions::new()
            .wait(std::time::Duration::from_secs(600))
            .lock(path)
        {
            Ok(lock) => lock,
            Err(e) => panic!("{e}"),
        };
        match replaced % 3 {
            0 => std::fs::remove_file(path).unwrap(),
            1 => std::fs::rename(path, &moved).unwrap(),
            _ => {
                std::fs::write(&fresh, "").unwrap();
                std::fs::rename(&fresh, path).unwrap();
            }
        }
        replaced += 1;
        drop(lock);
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    say(&format!("replaced {replaced}"));
    std::process::exit(0)
}

/// Makes a helper take a shared (reader) lock.
pub fn shared(command: &mut Command) {
    command.env(SHARED, "1");
}

/// Makes a helper wait up to `secs` for the lock instead of failing at once.
pub fn wait_secs(command: &mut Command, secs: u64) {
    command.env(WAIT, secs.to_string());
}

/// Makes a helper change its working directory to `dir` once it holds the lock.
pub fn chdir_after_locking(command: &mut Command, dir: &Path) {
    command.env(CHDIR, dir);
}

/// Makes a stress worker run `rounds` rounds.
pub fn rounds(command: &mut Command, rounds: usize) {
    command.env(ROUNDS, rounds.to_string());
}

/// Says `line` to the test that started this helper; a helper whose test
/// has stopped listening (it has what it needed) exits quietly.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let said = writeln!(out, "\n@@ {line}").and_then(|()| out.flush());
    match said {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => other.unwrap(),
    }
}

/// The variable that tells a copy of the test binary which scenario it runs
/// alone (see [`run_alone`]).
const SCENARIO: &str = "PIDLOCKFILE_TEST_SCENARIO";

/// Runs `scenario`, an ignored test of this binary, alone in a fresh copy of
/// the binary: with signal dispositions and threads of its own, so that no
/// other test's thread is in the middle of anything meanwhile. `configure`
/// adds to the command (an environment variable, a signal mask). Fails with
/// the scenario's output unless it passed within a minute (one that hangs
/// is killed).
pub fn run_alone(scenario: &str, configure: impl FnOnce(&mut Command)) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", scenario, "--ignored", "--nocapture"])
        .env(SCENARIO, scenario)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    configure(&mut command);
    let child = command.spawn().unwrap();
    // The output is read while the scenario runs (a full pipe would stall
    // it); a watchdog kills a scenario that runs for more than a minute.
    let (done, watched) = std::sync::mpsc::channel::<()>();
    let pid = child.id() as libc::pid_t;
    let watchdog = std::thread::spawn(move || {
        if watched
            .recv_timeout(std::time::Duration::from_secs(60))
            .is_err()
        {
            // SAFETY: a signal to our child, which after a minute has most
            // likely not been reaped (a reaped one is told here at once).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    let output = child.wait_with_output().unwrap();
    let _ = done.send(());
    watchdog.join().unwrap();
    assert!(
        output.status.success(),
        "{scenario} failed ({:?}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("1 passed"));
}

/// The exit code of forked `child`, once it has exited; fails (killing it)
/// if it is still running after `limit`, or died of a signal. `what` names
/// the child in the failure.
pub fn exit_code_within(child: libc::pid_t, limit: std::time::Duration, what: &str) -> i32 {
    assert!(child > 0, "{what}: fork failed");
    let start = std::time::Instant::now();
    let mut status = 0;
    // SAFETY: waits for (or kills) our own child.
    while unsafe { libc::waitpid(child, &mut status, libc::WNOHANG) } == 0 {
        if start.elapsed() > limit {
            unsafe { libc::kill(child, libc::SIGKILL) };
            unsafe { libc::waitpid(child, &mut status, 0) };
            panic!("{what} hung for {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert!(libc::WIFEXITED(status), "{what}: {status:#x}");
    libc::WEXITSTATUS(status)
}

/// Whether this process is the one [`run_alone`] started for `scenario`:
/// a scenario returns at once unless it is.
pub fn alone(scenario: &str) -> bool {
    std::env::var(SCENARIO).is_ok_and(|s| s == scenario)
}

fn wait_for_eof() {
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

/// A command that runs this test binary as helper `role` on `path`.
pub fn helper_command(role: &str, path: &Path) -> Command {
    helper_command_from(&std::env::current_exe().unwrap(), role, path)
}

fn helper_command_from(exe: &Path, role: &str, path: &Path) -> Command {
    let mut command = Command::new(exe);
    command
        .args([
            "--exact",
            "helper_process",
            "--ignored",
            "--nocapture",
            "--quiet",
        ])
        .env(ROLE, role)
        .env(PATH, path)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    command
}

/// Makes the helper's writes past `bytes` fail, through `RLIMIT_FSIZE`.
pub fn limit_file_size(command: &mut Command, bytes: u64) {
    command.env(FILE_SIZE_LIMIT, bytes.to_string());
}

/// The variable that makes a test that cannot run here fail instead of
/// passing without running (`.ci/run` sets it).
pub const REQUIRE_ALL: &str = "PIDLOCKFILE_REQUIRE_ALL";

/// Says that `test` did not run on this machine, and why: one `NOT RUN:` line
/// on the real stderr, which `cargo test` shows (it captures `eprintln!` of
/// passing tests, not the stream itself). Where [`REQUIRE_ALL`] is set it
/// panics instead, so that in CI a test that cannot run fails. The caller
/// returns from the test after this.
pub fn not_run(test: &str, why: &str) {
    assert!(
        std::env::var_os(REQUIRE_ALL).is_none(),
        "NOT RUN: {test}: {why} ({REQUIRE_ALL} is set: every test must run)"
    );
    // A pass that ran nothing must not look like the others.
    let _ = writeln!(std::io::stderr(), "NOT RUN: {test}: {why}");
}

/// Like [`helper_command`], but as user and group `nobody`; `None`, said with
/// [`not_run`], where this process is not root and so cannot drop privileges (CI
/// and the test machines run as root). The binary is copied where `nobody`
/// can run it, whatever the permissions of the build directory.
pub fn helper_command_as_nobody(
    role: &str,
    path: &Path,
    scratch: &Path,
    test: &str,
) -> Option<Command> {
    if unsafe { libc::geteuid() } != 0 {
        not_run(test, "needs root to drop privileges to nobody");
        return None;
    }
    let exe = scratch.join("helper-as-nobody");
    if !exe.exists() {
        std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
        std::fs::set_permissions(scratch, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut command = helper_command_from(&exe, role, path);
    // std drops the supplementary groups too when root sets a uid.
    command.uid(NOBODY).gid(NOBODY);
    Some(command)
}

/// What a helper that ran to its end said, and how it exited.
#[derive(Debug)]
pub struct Said {
    pub lines: Vec<String>,
    pub status: ExitStatus,
}

impl Said {
    /// The rest of the line that starts with `prefix`.
    pub fn line(&self, prefix: &str) -> &str {
        self.lines
            .iter()
            .find_map(|line| line.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no line {prefix:?} in {self:?}"))
            .trim()
    }
}

/// Runs `command` to its end and collects its `@@ ` lines.
pub fn run(mut command: Command) -> Said {
    command.stdin(Stdio::null());
    let output = retrying_busy(|| command.output());
    let stdout = String::from_utf8_lossy(&output.stdout);
    Said {
        lines: stdout
            .lines()
            .filter_map(|line| line.strip_prefix("@@ "))
            .map(str::to_owned)
            .collect(),
        status: output.status,
    }
}

/// Runs or spawns a helper, retrying while its binary is "busy": another
/// test thread forking at the moment a helper was copied (for `nobody`)
/// hands its child the copy's write descriptor for a moment.
fn retrying_busy<T>(mut start: impl FnMut() -> std::io::Result<T>) -> T {
    let mut tries = 0;
    loop {
        match start() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            result => return result.unwrap(),
        }
    }
}

/// Tries to lock `path` from another process.
pub fn try_lock_elsewhere(path: &Path) -> Said {
    run(helper_command("try", path))
}

/// A helper process that holds a lock until told to release it or killed.
pub struct Holding {
    pub child: Child,
    pub pid: u32,
    pub first_line: String,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Holding {
    /// Starts a helper playing `role` (`hold`, `hold-raw`, `hold-then-fork`
    /// or `hold-then-fork-then-drop`) and waits
    /// until it holds the lock.
    pub fn start(role: &str, path: &Path) -> Holding {
        Holding::start_with(helper_command(role, path))
    }

    pub fn start_with(mut command: Command) -> Holding {
        let mut child = retrying_busy(|| command.spawn());
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let first_line = next_said(&mut stdout);
        assert!(
            first_line.starts_with("locked "),
            "helper said {first_line:?}"
        );
        Holding {
            pid: child.id(),
            child,
            first_line,
            stdin,
            stdout,
        }
    }

    /// Tells the helper to release the lock and waits for it to exit.
    pub fn release(mut self) -> ExitStatus {
        drop(self.stdin.take());
        assert_eq!(next_said(&mut self.stdout), "released");
        self.child.wait().unwrap()
    }

    /// Kills the helper with SIGKILL and reaps it.
    pub fn kill(mut self) -> ExitStatus {
        self.child.kill().unwrap();
        self.child.wait().unwrap()
    }
}

fn next_said(stdout: &mut BufReader<ChildStdout>) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "the helper exited early"
        );
        if let Some(said) = line.strip_prefix("@@ ") {
            return said.trim_end().to_owned();
        }
    }
}

/// The bytes of a file, to prove that something left it as it was.
pub fn bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// This machine's hostname as `hostname(1)` would print it.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    assert_eq!(
        unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) },
        0
    );
    let len = buf.iter().position(|&b| b == 0).unwrap();
    String::from_utf8(buf[..len].to_vec()).unwrap()
}

/// Keeps a lock file at hand for the whole test.
pub fn lock_here(path: &Path) -> LockFile {
    LockFile::lock(path).unwrap()
}

/// The lock at `path`, taken by a wait of this thread (with `options`)
/// while threads of this process wait behind it, so that this thread keeps
/// its place in the process's queue until it releases the lock, and wakes
/// the next of them then. Each of `behind` runs in a thread that starts
/// 100 ms after this one began waiting (it waits for the lock itself, and
/// returns what it saw); the lock is taken 300 ms in, when another thread
/// releases it.
pub fn held_with_threads_behind<T: Send + 'static>(
    path: &Path,
    options: &LockOptions,
    behind: Vec<Box<dyn FnOnce() -> T + Send>>,
) -> (LockFile, Vec<std::thread::JoinHandle<T>>) {
    let first = LockFile::lock(path).unwrap();
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(first);
    });
    let behind = behind
        .into_iter()
        .map(|wait| {
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(100));
                wait()
            })
        })
        .collect();
    let lock = options.lock(path).unwrap();
    releaser.join().unwrap();
    (lock, behind)
}

/// A helper whose lines are read by a thread, so that a test can ask
/// whether it has said something yet without blocking on it.
pub struct Listening {
    pub child: Child,
    pub pid: u32,
    stdin: Option<ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Listening {
    pub fn start(mut command: Command) -> Listening {
        let mut child = command.spawn().unwrap();
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                if let Some(said) = line.strip_prefix("@@ ") {
                    if tx.send(said.to_owned()).is_err() {
                        break;
                    }
                }
            }
        });
        Listening {
            pid: child.id(),
            child,
            stdin,
            lines,
        }
    }

    /// The next line it says within `limit`, if any.
    pub fn said_within(&self, limit: std::time::Duration) -> Option<String> {
        self.lines.recv_timeout(limit).ok()
    }

    /// Closes its stdin: a holder then releases, a replacer stops.
    pub fn hang_up(&mut self) {
        drop(self.stdin.take());
    }

    /// Closes its stdin (a holder then releases) and waits for its exit.
    pub fn finish(mut self) -> ExitStatus {
        drop(self.stdin.take());
        self.child.wait().unwrap()
    }
}

/// Waits until process `pid` has the file that `path` names open: a
/// waiter has opened the lock file and is waiting on it.
pub fn wait_until_open_in(pid: u32, path: &Path) {
    use std::os::unix::fs::MetadataExt;
    let want = std::fs::metadata(path).unwrap().ino();
    let fds = PathBuf::from(format!("/proc/{pid}/fd"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let open = std::fs::read_dir(&fds)
            .into_iter()
            .flatten()
            .flatten()
            .any(|fd| std::fs::metadata(fd.path()).is_ok_and(|meta| meta.ino() == want));
        if open {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "process {pid} never opened {path:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
