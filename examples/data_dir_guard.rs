//! A toy store that guards its data directory with a `LOCK` file, as a
//! database does: one writer at a time, and after a crash the next one
//! learns from [`LockFile::previous`] that the last shutdown was not clean
//! and recovers.
//!
//! ```text
//! cargo run --example data_dir_guard [DATA_DIR]
//! ```
//!
//! The store keeps committed entries in `DATA/store` and appends each new
//! one to `DATA/journal` first; a clean close applies the journal to the
//! store and empties it. The example runs the store five times, each in a
//! child process started from this program, in a temporary directory unless
//! one is given:
//!
//! 1. a first run on a fresh directory: no previous holder; a clean close;
//! 2. a second run: the previous holder released the lock cleanly;
//! 3. a writer holds the store, and a second writer is refused and told who
//!    holds it;
//! 4. the holding writer is killed (`SIGKILL` on Unix, `TerminateProcess`
//!    on Windows): it never closes, and its entry stays in the journal;
//! 5. the next run learns that the last shutdown was not clean and replays
//!    the journal before it starts.

use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};

use pidlockfile::{Holder, LockError, LockFile};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let first = args.next();
    match first.as_deref().and_then(|a| a.to_str()) {
        // A child: `--writer DIR KEY VALUE` or `--hold DIR KEY VALUE`.
        Some(role @ ("--writer" | "--hold")) => {
            let mut arg = || args.next().expect("--writer/--hold DIR KEY VALUE");
            let dir = PathBuf::from(arg());
            let key = arg().into_string().expect("a UTF-8 key");
            let value = arg().into_string().expect("a UTF-8 value");
            match child(role == "--hold", &dir, &key, &value) {
                Ok(code) => code,
                Err(e) => {
                    println!("{}: {e}", who());
                    ExitCode::FAILURE
                }
            }
        }
        _ => {
            let temp;
            let dir = match first {
                Some(dir) => PathBuf::from(dir),
                None => {
                    temp = tempfile::tempdir().expect("a temporary directory");
                    temp.path().join("data")
                }
            };
            match demonstrate(&dir) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("main: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The demonstration: the store's runs, each a child process.
fn demonstrate(dir: &Path) -> io::Result<()> {
    println!("main: the store's data directory is {}", dir.display());

    println!("\n== 1. first run");
    run_writer(dir, "apples", "3")?;

    println!("\n== 2. second run");
    run_writer(dir, "pears", "5")?;

    println!("\n== 3. a writer holds the store; a second writer tries");
    let mut holder = start_holder(dir, "plums", "7")?;
    run_writer(dir, "figs", "1")?;

    println!("\n== 4. the holding writer is killed");
    holder.kill()?; // SIGKILL on Unix: no destructor, no close
    let status = holder.wait()?;
    println!(
        "main: killed pid {} ({status}); its entry is still in the journal",
        holder.id()
    );

    println!("\n== 5. the next run");
    run_writer(dir, "figs", "1")?;

    println!("\nmain: the store now holds:");
    for line in fs::read_to_string(dir.join("store"))?.lines() {
        println!("main:   {line}");
    }
    Ok(())
}

/// Runs one writer to its end, its output shown as it comes.
fn run_writer(dir: &Path, key: &str, value: &str) -> io::Result<()> {
    let status = Command::new(std::env::current_exe()?)
        .arg("--writer")
        .args([dir.as_os_str(), key.as_ref(), value.as_ref()])
        .status()?;
    match status.code() {
        Some(0) | Some(EX_TEMPFAIL) => Ok(()),
        _ => Err(io::Error::other(format!("the writer failed: {status}"))),
    }
}

/// Starts a writer that keeps the store open, and returns once it holds it.
fn start_holder(dir: &Path, key: &str, value: &str) -> io::Result<Child> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg("--hold")
        .args([dir.as_os_str(), key.as_ref(), value.as_ref()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    for line in lines.by_ref() {
        let line = line?;
        println!("{line}");
        if line.ends_with(HOLDING) {
            return Ok(child);
        }
    }
    Err(io::Error::other("the holding writer exited early"))
}

/// What a holding writer prints once it holds the store.
const HOLDING: &str = "keeps the store open";

/// The exit code of a writer refused because another one holds the store.
const EX_TEMPFAIL: i32 = 75;

/// A writer: opens the store, records one entry, and closes the store
/// (`hold`: keeps it open until its standard input ends, or it is killed).
fn child(hold: bool, dir: &Path, key: &str, value: &str) -> io::Result<ExitCode> {
    let mut store = match Store::open(dir) {
        Ok(store) => store,
        Err(OpenError::Lock(e @ LockError::Locked { .. })) => {
            println!("{}: refused: {e}", who());
            let pid = e.holder().and_then(|h| h.pid());
            match pid {
                Some(pid) => println!("{}: the store is in use by pid {pid}; try later", who()),
                None => println!("{}: the store is in use; try later", who()),
            }
            return Ok(ExitCode::from(EX_TEMPFAIL as u8));
        }
        Err(OpenError::Lock(e)) => return Err(io::Error::other(e)),
        Err(OpenError::Io(e)) => return Err(e),
    };
    store.put(key, value)?;
    if hold {
        println!("{}: {HOLDING}", who());
        // Until the parent closes our standard input, or kills us.
        let _ = io::stdin().read_to_end(&mut Vec::new());
    }
    store.close()?;
    Ok(ExitCode::SUCCESS)
}

/// The toy store: `store` (committed entries), `journal` (entries not yet
/// applied), and the `LOCK` that makes this process their only writer.
struct Store {
    dir: PathBuf,
    lock: LockFile,
}

enum OpenError {
    Lock(LockError),
    Io(io::Error),
}

impl From<io::Error> for OpenError {
    fn from(e: io::Error) -> Self {
        OpenError::Io(e)
    }
}

impl Store {
    /// Opens the data directory (creating it), takes `DATA/LOCK`, and
    /// recovers when the previous writer did not shut down cleanly.
    fn open(dir: &Path) -> Result<Store, OpenError> {
        fs::create_dir_all(dir)?;
        let lock = LockFile::lock(dir.join("LOCK")).map_err(OpenError::Lock)?;
        let store = Store {
            dir: dir.to_owned(),
            lock,
        };
        let journal = store.journal()?;
        match store.lock.previous() {
            None => println!(
                "{}: opened; a fresh data directory, no previous holder",
                who()
            ),
            Some(previous) if previous.released() => {
                println!(
                    "{}: opened; previous holder ({}) released the lock: clean shutdown, no recovery",
                    who(),
                    describe(previous)
                );
                if !journal.is_empty() {
                    // A clean close leaves an empty journal; say so if not.
                    println!("{}: (yet the journal is not empty)", who());
                }
            }
            Some(previous) => {
                println!(
                    "{}: opened; previous holder ({}) did not release the lock: \
                     it crashed or was killed, running recovery",
                    who(),
                    describe(previous)
                );
                println!(
                    "{}: recovery: replaying {} journal entr{}",
                    who(),
                    journal.len(),
                    if journal.len() == 1 { "y" } else { "ies" }
                );
                for entry in &journal {
                    println!("{}: recovery:   {entry}", who());
                }
                store.apply_journal(&journal)?;
                println!("{}: recovery: done", who());
            }
        }
        Ok(store)
    }

    /// Records an entry in the journal, not yet in the store.
    fn put(&mut self, key: &str, value: &str) -> io::Result<()> {
        let mut journal = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("journal"))?;
        writeln!(journal, "{key}={value}")?;
        journal.sync_data()?;
        println!("{}: journaled {key}={value}", who());
        Ok(())
    }

    /// Applies the journal to the store and releases the lock: the next
    /// writer finds the clean-release mark and an empty journal.
    fn close(self) -> io::Result<()> {
        let journal = self.journal()?;
        self.apply_journal(&journal)?;
        self.lock.close().map_err(io::Error::other)?;
        println!("{}: closed cleanly (the journal applied)", who());
        Ok(())
    }

    /// The journal's entries, in order.
    fn journal(&self) -> io::Result<Vec<String>> {
        match fs::read_to_string(self.dir.join("journal")) {
            Ok(text) => Ok(text.lines().map(str::to_owned).collect()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Appends `entries` to the store, then empties the journal.
    fn apply_journal(&self, entries: &[String]) -> io::Result<()> {
        let mut store = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("store"))?;
        for entry in entries {
            writeln!(store, "{entry}")?;
        }
        store.sync_data()?;
        fs::write(self.dir.join("journal"), "")
    }
}

/// How a writer names itself in its output.
fn who() -> String {
    format!("writer (pid {})", std::process::id())
}

/// `pid 4242 on host db1`, as the lock file names its last holder.
fn describe(previous: &Holder) -> String {
    match (previous.file_pid(), previous.hostname()) {
        (Some(pid), Some(host)) => format!("pid {pid} on host {host}"),
        (Some(pid), None) => format!("pid {pid}"),
        _ => format!("{:?}", previous.content()),
    }
}
