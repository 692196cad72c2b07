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

/// Runs the role named in the environment and exits with its status.
pub fn play_role() {
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

/// Makes a helper change its working directory to `dir` once it holds the lock.
pub fn chdir_after_locking(command: &mut Command, dir: &Path) {
    command.env(CHDIR, dir);
}

/// Makes a stress worker run `rounds` rounds.
pub fn rounds(command: &mut Command, rounds: usize) {
    command.env(ROUNDS, rounds.to_string());
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "\n@@ {line}").unwrap();
    out.flush().unwrap();
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
    // A copied helper can be briefly "busy": another test thread forking at the
    // moment of the copy hands its child the copy's write descriptor.
    let mut tries = 0;
    let output = loop {
        match command.output() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            result => break result.unwrap(),
        }
    };
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
        let mut child = command.spawn().unwrap();
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
