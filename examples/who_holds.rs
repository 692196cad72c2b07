//! An operator's view of a lock file: who holds it, whether that process
//! runs, whether the file's content is stale, what the kernel says, who
//! inherited the lock, which readers hold it, and whether the last holder
//! released it cleanly, as [`Holder::inspect`] and [`LockFile::is_locked`]
//! tell it. Asking takes no lock and disturbs no holder.
//!
//! ```text
//! cargo run --example who_holds [LOCK_PATH]
//! ```
//!
//! Given a path, it prints what it finds there. Without one, it sets up each
//! case with real processes (children of this program) in a temporary
//! directory and prints one block per case:
//!
//! 1. a child holds the lock through this crate;
//! 2. the file names a dead pid while a raw `flock` holder, which writes
//!    nothing, holds the lock (Unix);
//! 3. the raw locker started a "daemon" that inherited its descriptor, and
//!    exited, as `flock(1)` starting a daemon does (Unix);
//! 4. a writer held it and released it; three readers hold it shared;
//! 5. free after a clean release;
//! 6. free after its holder was killed.
//!
//! The kernel's word and inherited holders come from `/proc` on Linux;
//! elsewhere those lines say that they cannot be known.

use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};

use pidlockfile::{Holder, LockFile, LockOptions};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let first = args.next();
    let result = match first.as_deref().and_then(|a| a.to_str()) {
        Some(role) if role.starts_with("--") => {
            let path = args.next().map(PathBuf::from);
            child(role, path.as_deref())
        }
        _ => match first {
            Some(path) => report(Path::new(&path)),
            None => demonstrate(),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("who_holds: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints what an operator wants to know about the lock file at `path`.
fn report(path: &Path) -> io::Result<()> {
    let locked = LockFile::is_locked(path).map_err(io::Error::other)?;
    println!("  lock file:            {}", path.display());
    println!("  locked now:           {}", yes_no(locked));
    let Some(holder) = Holder::inspect(path)? else {
        println!("  holder:               nobody (no file, or an empty one nobody locks)");
        return Ok(());
    };
    println!("  holder:               {holder}");
    println!("  the holder's pid:     {}", pid_or(holder.pid(), "none"));
    println!("  the file says:        {:?}", holder.content());
    let alive = match holder.is_alive() {
        Some(true) => "running",
        Some(false) => "not running",
        None => "cannot be checked here",
    };
    match holder.file_pid() {
        Some(pid) => println!("  the file's pid:       {pid}, {alive}"),
        None => println!("  the file's pid:       none"),
    }
    let stale = match (holder.is_stale(), holder.file_pid()) {
        (false, _) => "no",
        (true, Some(_)) => "yes: the file's pid does not hold the lock",
        (true, None) => "yes: the file does not name the holder",
    };
    println!("  stale content:        {stale}");
    let kernel = match (holder.kernel_pid(), locked) {
        (Some(_), _) if holder.holds_shared() => "readers hold it (a shared lock)".to_owned(),
        (Some(pid), _) => format!("pid {pid} took the lock"),
        (None, false) => "nobody holds it".to_owned(),
        (None, true) => "no pid (no table of locks here)".to_owned(),
    };
    println!("  the kernel says:      {kernel}");
    println!("  inherited by:         {}", pids(holder.inheritors()));
    let readers = match (holder.holds_shared(), holder.readers()) {
        (false, _) => "none".to_owned(),
        (true, []) => "readers hold it (which ones cannot be seen here)".to_owned(),
        (true, readers) => pids(readers),
    };
    println!("  readers:              {readers}");
    let released = match (holder.released(), locked) {
        (true, _) => "yes: a clean release",
        (false, true) => "no: the lock is held",
        (false, false) => "no: killed or crashed (or a tool that marks no release)",
    };
    println!("  last holder released: {released}");
    Ok(())
}

/// Sets up each case with children of this program and reports on it.
fn demonstrate() -> io::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = |name: &str| dir.path().join(name);

    println!("== 1. a child holds the lock through this crate");
    let held = path("held.lock");
    let holder = Helper::start("--hold", &held)?;
    println!("  (child pid {} holds it)", holder.pid());
    report(&held)?;
    holder.finish()?;

    #[cfg(unix)]
    {
        println!("\n== 2. stale content: the file names a dead pid; a raw flock holder holds it");
        let stale = path("stale.lock");
        let mut killed = Helper::start("--hold", &stale)?;
        let dead = killed.pid();
        killed.child.kill()?;
        killed.child.wait()?;
        let raw = Helper::start("--raw", &stale)?;
        println!(
            "  (child pid {dead} took the lock and was killed; then child pid {} took \
             a raw flock, which writes nothing)",
            raw.pid()
        );
        report(&stale)?;
        raw.finish()?;

        println!("\n== 3. inherited: the locker started a daemon and exited");
        let inherited = path("inherited.lock");
        let mut locker = Helper::start("--raw-daemon", &inherited)?;
        let daemon = locker.ready.clone();
        // The daemon's standard input is the locker's: its end is the
        // daemon's cue to exit, so keep it open (`wait` would close it).
        let daemon_input = locker.child.stdin.take();
        let status = locker.child.wait()?;
        println!(
            "  (child pid {} took a raw flock, started daemon pid {daemon} with the \
             descriptor, and exited: {status})",
            locker.pid()
        );
        report(&inherited)?;
        drop(daemon_input);
        wait_until_free(&inherited)?;
    }
    #[cfg(not(unix))]
    println!("\n== 2., 3. (raw flock holders: Unix only)");

    println!("\n== 4. readers: a writer held it and closed; three readers hold it shared");
    let shared = path("shared.lock");
    let writer = Helper::start("--hold", &shared)?;
    let writer_pid = writer.pid();
    writer.finish()?;
    let mut readers = Vec::new();
    for _ in 0..3 {
        readers.push(Helper::start("--read", &shared)?);
    }
    let reader_pids: Vec<u32> = readers.iter().map(Helper::pid).collect();
    println!(
        "  (writer pid {writer_pid} held it and closed it; readers: pids {})",
        pids(&reader_pids)
    );
    report(&shared)?;
    for reader in readers {
        reader.finish()?;
    }

    println!("\n== 5. free after a clean release");
    let released = path("released.lock");
    let holder = Helper::start("--hold", &released)?;
    let pid = holder.pid();
    holder.finish()?;
    println!("  (child pid {pid} held it, closed it and exited)");
    report(&released)?;

    println!("\n== 6. free after a kill");
    let killed = path("killed.lock");
    let mut holder = Helper::start("--hold", &killed)?;
    holder.child.kill()?; // SIGKILL on Unix: no release
    let status = holder.child.wait()?;
    println!(
        "  (child pid {} held it and was killed: {status})",
        holder.pid()
    );
    report(&killed)?;
    Ok(())
}

/// A child of this program in a role, started and ready.
struct Helper {
    child: Child,
    /// What followed `ready` in its first line (the daemon's pid, from
    /// the Unix-only `--raw-daemon`).
    #[cfg_attr(not(unix), allow(dead_code))]
    ready: String,
}

impl Helper {
    /// Starts `current_exe ROLE PATH`, and returns once it says `ready`.
    fn start(role: &str, path: &Path) -> io::Result<Helper> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg(role)
            .arg(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
        match line.trim_end().strip_prefix("ready") {
            Some(rest) => Ok(Helper {
                child,
                ready: rest.trim().to_owned(),
            }),
            None => Err(io::Error::other(format!("{role} did not start: {line:?}"))),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Closes its standard input, its cue to release and exit, and waits.
    fn finish(mut self) -> io::Result<()> {
        drop(self.child.stdin.take());
        let status = self.child.wait()?;
        match status.success() {
            true => Ok(()),
            false => Err(io::Error::other(format!("a child failed: {status}"))),
        }
    }
}

/// A child's part: take a lock (or not), say `ready`, and keep it until
/// the standard input ends.
fn child(role: &str, path: Option<&Path>) -> io::Result<()> {
    let path = || path.ok_or_else(|| io::Error::other(format!("{role} takes a path")));
    let lock = match role {
        "--hold" => LockFile::lock(path()?).map_err(io::Error::other)?,
        "--read" => LockOptions::new()
            .shared(true)
            .lock(path()?)
            .map_err(io::Error::other)?,
        #[cfg(unix)]
        "--raw" => {
            let _file = raw::lock(path()?)?;
            println!("ready");
            return wait_for_end_of_input();
        }
        #[cfg(unix)]
        "--raw-daemon" => return raw::lock_and_start_daemon(path()?),
        "--daemon" => return wait_for_end_of_input(),
        _ => return Err(io::Error::other(format!("unknown role {role}"))),
    };
    println!("ready");
    wait_for_end_of_input()?;
    lock.close().map_err(io::Error::other)
}

fn wait_for_end_of_input() -> io::Result<()> {
    io::stdin().read_to_end(&mut Vec::new()).map(drop)
}

/// Locks held the way `flock(1)` holds them: `flock(2)` through `fs2`, and
/// nothing written.
#[cfg(unix)]
mod raw {
    use std::fs::{File, OpenOptions};
    use std::io;
    use std::os::unix::io::AsRawFd;
    use std::path::Path;
    use std::process::{Command, Stdio};

    use fs2::FileExt;

    pub fn lock(path: &Path) -> io::Result<File> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        file.try_lock_exclusive()?;
        Ok(file)
    }

    /// Locks, starts a daemon that inherits the descriptor (and so the
    /// lock), says `ready <daemon's pid>` and exits.
    pub fn lock_and_start_daemon(path: &Path) -> io::Result<()> {
        let file = lock(path)?;
        // SAFETY: fcntl on a descriptor this function owns; clearing
        // FD_CLOEXEC lets the daemon inherit it, as flock(1) lets its command.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFD, 0) } == -1 {
            return Err(io::Error::last_os_error());
        }
        // Its standard input is ours, a pipe from the demonstration: its end
        // is the daemon's cue to exit.
        let daemon = Command::new(std::env::current_exe()?)
            .arg("--daemon")
            .stdout(Stdio::null())
            .spawn()?;
        println!("ready {}", daemon.id());
        Ok(())
    }
}

/// Waits (a few seconds at most) until nobody holds the lock at `path`.
#[cfg(unix)]
fn wait_until_free(path: &Path) -> io::Result<()> {
    use std::time::{Duration, Instant};

    let deadline = Instant::now() + Duration::from_secs(5);
    while LockFile::is_locked(path).map_err(io::Error::other)? {
        if Instant::now() > deadline {
            return Err(io::Error::other("the daemon still holds the lock"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn pid_or(pid: Option<u32>, none: &str) -> String {
    pid.map_or_else(|| none.to_owned(), |pid| pid.to_string())
}

fn pids(pids: &[u32]) -> String {
    match pids {
        [] => "none".to_owned(),
        pids => pids
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    }
}
