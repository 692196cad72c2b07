//! The holder a refusal names is the real one, in every case where the
//! file's content could mislead, and the common refusal stays cheap: stale
//! content is caught, and the kernel names the holder (on Linux) when the
//! cheap checks cannot vouch for the content.
#![cfg(unix)]
#![cfg_attr(not(target_os = "linux"), allow(dead_code, unused_imports))]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use common::{bytes, helper_command, helper_command_as_nobody, hostname, run, Holding, NOBODY};
use pidlockfile::{Holder, LockError, LockFile};

/// The roles this file adds to the helpers in `common`.
#[test]
#[ignore = "not a test: the process other tests in this file spawn"]
fn helper_process() {
    let role = std::env::var("PIDLOCKFILE_TEST_ROLE").unwrap();
    if role == "lock-release-stay" {
        // Takes the lock, releases it cleanly, and keeps running.
        let path = std::env::var_os("PIDLOCKFILE_TEST_PATH").unwrap();
        LockFile::lock(&path).unwrap().close().unwrap();
        println!("\n@@ locked {}", std::process::id());
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        println!("\n@@ released");
        std::process::exit(0);
    }
    common::play_role();
}

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

/// The refusal of `path`, and how many times it read `/proc/locks`.
fn refusal_counting_table_reads(path: &Path) -> (Holder, String, usize) {
    let before = pidlockfile::__lock_table_reads();
    let (holder, message) = refusal(path);
    (holder, message, pidlockfile::__lock_table_reads() - before)
}

/// `flock(1)` from util-linux holding `path` until killed (`args` before
/// the path, such as `--shared`); `None`, said with `common::not_run`, where
/// it is not installed (`.ci/run` installs it).
fn flock_1(path: &Path, args: &[&str], test: &str) -> Option<Child> {
    let spawned = Command::new("flock")
        .args(["--nonblock", "--no-fork"])
        .args(args)
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

fn stop(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `sleep 60` as a process of its own, started now.
fn sleeper(as_nobody: bool) -> Child {
    let mut command = Command::new("sleep");
    command.arg("60");
    if as_nobody {
        command.uid(NOBODY).gid(NOBODY);
    }
    command.spawn().unwrap()
}

/// Writes ` <pid>;<this host>\n` and sets the file's modification time `ago`.
fn write_naming(path: &Path, pid: u32, ago: Duration) {
    std::fs::write(path, format!(" {pid};{}\n", hostname())).unwrap();
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - ago).unwrap();
}

/// The refusal while a raw flock from another process (which writes nothing)
/// holds `path`, whose content names `named`: it must name the raw holder,
/// say the content is stale and why, and change nothing.
#[cfg(target_os = "linux")]
fn assert_raw_holder_named_despite(path: &Path, named: u32, why: &str) {
    let before = bytes(path);
    let raw = Holding::start("hold-raw", path);
    let (holder, message, reads) = refusal_counting_table_reads(path);
    let raw_pid = raw.pid;
    raw.release();
    assert_eq!(holder.pid(), Some(raw_pid), "{message}");
    assert_eq!(holder.kernel_pid(), Some(raw_pid));
    assert_eq!(
        holder.file_pid(),
        Some(named),
        "the file's word stays available"
    );
    assert!(holder.is_stale());
    // Once; again only when a read showed no holder, which happens when
    // other tests' locks come and go meanwhile (the kernel shows its table a
    // page at a time), up to the crate's three reads.
    assert!(
        (1..=3).contains(&reads),
        "the kernel was asked {reads} times"
    );
    assert_eq!(
        message,
        format!(
            "cannot lock {path:?}: held by pid {} on host {} (the file's content \
             names pid {named}, {why}: stale content)",
            raw_pid,
            hostname()
        )
    );
    assert_eq!(bytes(path), before, "the refusal changed nothing");
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
    let Some(flock) = flock_1(&path, &[], test) else {
        return;
    };

    let (holder, message) = refusal(&path);
    // --no-fork: the flock process itself holds the lock, under its own pid.
    let holder_pid = flock.id();
    stop(flock);
    assert_eq!(holder.pid(), Some(holder_pid));
    assert_eq!(holder.file_pid(), Some(dead));
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
fn flock_1_holding_while_the_file_names_the_caller_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    // This process held the lock earlier and was killed before its release
    // mark, or wrote the file without holding it: either way, not the holder.
    let me = std::process::id();
    write_naming(&path, me, Duration::ZERO);
    let test = "flock_1_holding_while_the_file_names_the_caller_is_named";
    let Some(flock) = flock_1(&path, &[], test) else {
        return;
    };
    let (holder, message, reads) = refusal_counting_table_reads(&path);
    let flock_pid = flock.id();
    stop(flock);
    assert_eq!(holder.pid(), Some(flock_pid), "{message}");
    assert_eq!(holder.file_pid(), Some(me));
    assert!(
        (1..=3).contains(&reads),
        "the kernel was asked {reads} times"
    );
    assert_eq!(
        message,
        format!(
            "cannot lock {path:?}: held by pid {flock_pid} on host {} (the file's content \
             names pid {me}, this process, which does not hold the lock: stale content)",
            hostname()
        )
    );
}

#[test]
#[cfg(target_os = "linux")]
fn a_released_holder_still_running_is_not_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let released = Holding::start("lock-release-stay", &path);
    assert!(Holder::read(&path).unwrap().unwrap().released());
    assert_raw_holder_named_despite(&path, released.pid, "which released the lock");
    released.release();
}

#[test]
#[cfg(target_os = "linux")]
fn the_caller_that_released_is_not_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    LockFile::lock(&path).unwrap().close().unwrap();
    assert_raw_holder_named_despite(&path, std::process::id(), "which released the lock");
}

#[test]
#[cfg(target_os = "linux")]
fn a_reused_pid_started_after_the_file_was_written_is_not_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let mut sleeper = sleeper(false);
    // The file was written an hour ago; the process with that pid started now.
    write_naming(&path, sleeper.id(), Duration::from_secs(3600));
    assert_raw_holder_named_despite(
        &path,
        sleeper.id(),
        "a process that started after the file was written: its pid was reused",
    );
    // Written after the process started, the same content is believed.
    write_naming(&path, sleeper.id(), Duration::ZERO);
    let raw = Holding::start("hold-raw", &path);
    let (holder, _, reads) = refusal_counting_table_reads(&path);
    raw.release();
    assert_eq!((holder.pid(), reads), (Some(sleeper.id()), 0));
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
}

#[test]
#[cfg(target_os = "linux")]
fn a_zombie_is_not_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let mut zombie = Command::new("true").spawn().unwrap();
    // Not reaped yet: `kill(pid, 0)` still succeeds on it.
    let stat = format!("/proc/{}/stat", zombie.id());
    while !std::fs::read_to_string(&stat).unwrap().contains(") Z ") {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(unsafe { libc::kill(zombie.id() as i32, 0) }, 0);
    write_naming(&path, zombie.id(), Duration::from_secs(1));
    assert_raw_holder_named_despite(&path, zombie.id(), "a zombie: a process that has exited");
    zombie.wait().unwrap();
}

#[test]
#[cfg(target_os = "linux")]
fn another_users_process_gets_the_same_checks() {
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("LOCK");
    std::fs::write(&path, "").unwrap();
    let test = "another_users_process_gets_the_same_checks";
    let Some(command) = helper_command_as_nobody("lock-release-stay", &path, scratch.path(), test)
    else {
        return;
    };
    std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY)).unwrap();
    // nobody's process took the lock, released it, and still runs.
    let released = Holding::start_with(command);
    assert_raw_holder_named_despite(&path, released.pid, "which released the lock");
    released.release();

    // nobody's process started after the file was written.
    let mut sleeper = sleeper(true);
    write_naming(&path, sleeper.id(), Duration::from_secs(3600));
    assert_raw_holder_named_despite(
        &path,
        sleeper.id(),
        "a process that started after the file was written: its pid was reused",
    );
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
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

#[test]
#[cfg(target_os = "linux")]
fn a_holder_that_wrote_nothing_is_named_by_the_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    std::fs::write(&path, "").unwrap();
    let raw = Holding::start("hold-raw", &path);

    let (holder, message) = refusal(&path);
    assert_eq!(holder.pid(), Some(raw.pid));
    assert_eq!(holder.file_pid(), None);
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

    let (holder, message, reads) = refusal_counting_table_reads(&path);
    assert_eq!(reads, 0, "the common refusal does not read /proc/locks");
    assert_eq!(holder.pid(), Some(holding.pid));
    assert_eq!(holder.is_alive(), Some(true));
    assert_eq!(holder.kernel_pid(), None);
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
fn this_process_holding_is_named_as_such_without_asking_the_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let _held = LockFile::lock(&path).unwrap();
    let (holder, message, reads) = refusal_counting_table_reads(&path);
    assert_eq!(reads, 0, "this process knows what it holds");
    assert_eq!(holder.pid(), Some(std::process::id()));
    assert_eq!(
        message,
        format!(
            "cannot lock {path:?}: held by this process, pid {} on host {}",
            std::process::id(),
            hostname()
        )
    );
}

#[test]
#[cfg(target_os = "linux")]
fn inspect_asks_the_kernel_even_when_the_content_names_a_running_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let mut sleeper = sleeper(false);
    // A running process that started before the file was written, but does
    // not hold the lock (a tool that writes no release mark, say).
    write_naming(&path, sleeper.id(), Duration::ZERO);
    let raw = Holding::start("hold-raw", &path);

    let holder = Holder::inspect(&path).unwrap().unwrap();
    assert_eq!(holder.kernel_pid(), Some(raw.pid));
    assert_eq!(holder.pid(), Some(raw.pid));
    assert_eq!(holder.is_alive(), Some(true));
    assert!(holder.is_stale());
    assert!(
        holder.to_string().ends_with(&format!(
            "(the file's content names pid {}, which does not hold the lock: stale content)",
            sleeper.id()
        )),
        "{holder}"
    );
    raw.release();
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
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
    assert_eq!(holder.pid(), None);
    assert_eq!(holder.is_alive(), Some(false));
    assert!(holder.is_stale());
    assert_eq!(
        holder.to_string(),
        format!("holder unknown (the file's content names pid {dead}, a process that is not running: stale content)")
    );
}

#[test]
#[cfg(target_os = "linux")]
fn an_inherited_lock_names_the_processes_that_hold_it_now() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    std::fs::write(&path, "").unwrap();
    // flock(1) locks, runs a shell that starts a daemon and exits; flock
    // exits too. The daemon holds the lock through the inherited descriptor,
    // and the kernel's table still names flock's pid.
    let spawned = Command::new("flock")
        .arg("--nonblock")
        .arg(&path)
        .args(["sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"])
        .output();
    let out = match spawned {
        Ok(out) => out,
        Err(e) => {
            common::not_run(
                "an_inherited_lock_names_the_processes_that_hold_it_now",
                &format!("no flock(1) ({e})"),
            );
            return;
        }
    };
    let daemon: u32 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let kill_daemon = || unsafe { libc::kill(daemon as i32, libc::SIGKILL) };

    let holder = Holder::inspect(&path).unwrap().unwrap();
    let locker = holder.kernel_pid().expect("the kernel names the locker");
    assert_ne!(locker, daemon);
    assert_eq!(holder.pid(), Some(daemon), "{holder}");
    assert_eq!(holder.inheritors(), [daemon]);
    assert_eq!(
        holder.to_string(),
        format!(
            "pid {daemon} on host {} (inherited the lock from pid {locker}, which has exited; \
             the file names no holder)",
            hostname()
        )
    );
    // The refusal, having asked the kernel and found its pid dead, says the same.
    let (refused, message) = refusal(&path);
    assert_eq!(refused.pid(), Some(daemon), "{message}");
    kill_daemon();
}

#[test]
#[cfg(target_os = "linux")]
fn is_locked_never_makes_a_lock_fail_and_counts_a_shared_holder() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    LockFile::lock(&path).unwrap().close().unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let asked = Arc::new(AtomicUsize::new(0));
    let monitor = {
        let (done, asked, path) = (done.clone(), asked.clone(), path.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                LockFile::is_locked(&path).unwrap();
                asked.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let mut refused = 0;
    let cycles = 3000;
    for _ in 0..cycles {
        match LockFile::lock(&path) {
            Ok(lock) => lock.close().unwrap(),
            Err(LockError::Locked { .. }) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    done.store(true, Ordering::Relaxed);
    monitor.join().unwrap();
    let asked = asked.load(Ordering::Relaxed);
    eprintln!("{cycles} lock cycles, {asked} is_locked calls, {refused} refusals");
    assert!(asked > 100, "the monitor ran alongside: {asked} calls");
    assert_eq!(refused, 0);

    let test = "is_locked_never_makes_a_lock_fail_and_counts_a_shared_holder";
    let Some(shared) = flock_1(&path, &["--shared"], test) else {
        return;
    };
    assert!(
        LockFile::is_locked(&path).unwrap(),
        "a shared holder holds it"
    );
    let (holder, _) = refusal(&path);
    assert_eq!(holder.pid(), Some(shared.id()));
    stop(shared);
    assert!(!LockFile::is_locked(&path).unwrap());
}

/// The same checks on each kind of file system a lock file lives on, mounted
/// for the test (the machines run as root): on btrfs `stat` reports an
/// anonymous device that `/proc/locks` does not use, and subvolumes reuse
/// inode numbers.
#[cfg(target_os = "linux")]
mod file_systems {
    use super::*;

    /// A mount made for a test, unmounted (lazily) when dropped.
    struct Mount {
        dir: tempfile::TempDir,
        points: Vec<std::path::PathBuf>,
    }

    impl Drop for Mount {
        fn drop(&mut self) {
            for point in self.points.iter().rev() {
                let _ = Command::new("umount").arg("-l").arg(point).status();
            }
        }
    }

    fn sh(script: &str, dir: &Path) -> Result<(), String> {
        let out = Command::new("sh")
            .args(["-ec", script])
            .current_dir(dir)
            .output()
            .map_err(|e| e.to_string())?;
        match out.status.success() {
            true => Ok(()),
            false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
        }
    }

    /// Mounts `kind` at `<dir>/fs`; `None`, said with `common::not_run`, where
    /// this machine cannot (not root, no tools); CI installs the tools and
    /// makes that a failure.
    fn mount(kind: &str, test: &str) -> Option<Mount> {
        let dir = tempfile::tempdir().unwrap();
        let script = match kind {
            "tmpfs" => "mkdir fs; mount -t tmpfs -o size=1m pidlockfile-test fs",
            "ext4" => "truncate -s 8M img; mkfs.ext4 -q img; mkdir fs; mount -o loop img fs",
            "btrfs" => {
                "truncate -s 128M img; mkfs.btrfs -q img; mkdir fs; mount -o loop img fs; \
                 btrfs -q subvolume create fs/sub; btrfs -q subvolume create fs/sub2"
            }
            "overlay" => {
                "mkdir lower upper work fs; \
                 mount -t overlay overlay -o lowerdir=lower,upperdir=upper,workdir=work fs"
            }
            _ => unreachable!(),
        };
        match sh(script, dir.path()) {
            Ok(()) => Some(Mount {
                points: vec![dir.path().join("fs")],
                dir,
            }),
            Err(why) => {
                let _ = Command::new("umount")
                    .arg("-l")
                    .arg(dir.path().join("fs"))
                    .status();
                common::not_run(test, &format!("cannot mount {kind}: {why}"));
                None
            }
        }
    }

    /// On a file system of `kind`: stale content under a raw holder names the
    /// raw holder; `is_locked` and `inspect` see it; free again after.
    fn the_kernel_names_the_holder_on(kind: &str, test: &str) -> Option<Mount> {
        let mount = mount(kind, test)?;
        let path = mount.dir.path().join("fs/LOCK");
        write_naming(&path, dead_pid(), Duration::ZERO);
        let raw = Holding::start("hold-raw", &path);
        let (holder, message) = refusal(&path);
        assert_eq!(holder.pid(), Some(raw.pid), "{kind}: {message}");
        assert!(LockFile::is_locked(&path).unwrap(), "{kind}");
        assert_eq!(
            Holder::inspect(&path).unwrap().unwrap().kernel_pid(),
            Some(raw.pid)
        );
        raw.release();
        assert!(!LockFile::is_locked(&path).unwrap(), "{kind}");
        Some(mount)
    }

    #[test]
    fn on_tmpfs() {
        the_kernel_names_the_holder_on("tmpfs", "file_systems::on_tmpfs");
    }

    #[test]
    fn on_ext4() {
        the_kernel_names_the_holder_on("ext4", "file_systems::on_ext4");
    }

    #[test]
    fn on_overlayfs() {
        the_kernel_names_the_holder_on("overlay", "file_systems::on_overlayfs");
    }

    #[test]
    fn on_btrfs_and_its_subvolumes_which_reuse_inode_numbers() {
        let test = "file_systems::on_btrfs_and_its_subvolumes_which_reuse_inode_numbers";
        let Some(mount) = the_kernel_names_the_holder_on("btrfs", test) else {
            return;
        };
        // The first file of each subvolume is inode 257, and /proc/locks
        // shows both on the same device: one held, the other free.
        let top = mount.dir.path().join("fs/sub2/first");
        let sub = mount.dir.path().join("fs/sub/first");
        for path in [&top, &sub] {
            std::fs::write(path, "").unwrap();
        }
        use std::os::unix::fs::MetadataExt;
        let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
        assert_eq!(ino(&top), ino(&sub), "the case this test is for");
        let raw = Holding::start("hold-raw", &sub);
        assert!(LockFile::is_locked(&sub).unwrap());
        assert!(
            !LockFile::is_locked(&top).unwrap(),
            "the other subvolume's file is free"
        );
        let top_holder = Holding::start("hold-raw", &top);
        assert_eq!(refusal(&sub).0.pid(), Some(raw.pid));
        assert_eq!(refusal(&top).0.pid(), Some(top_holder.pid));
        raw.release();
        top_holder.release();
    }
}

#[test]
fn a_refusal_does_not_read_the_lock_table_when_content_is_vouched_for_by_another_process() {
    // The helper's own refusal, from another process, under a LockFile holder.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let _held = LockFile::lock(&path).unwrap();
    let said = run(helper_command("try", &path));
    assert_eq!(said.line("refused"), std::process::id().to_string());
}
