//! `pidlockfile`: run a program under a lock file, hold one, or ask who holds one.
//!
//! Exit status: `run` passes on its program's, or dies of the signal that
//! killed it (128+N where it cannot), 75 (EX_TEMPFAIL) when the lock is held
//! elsewhere, 126 when the program cannot be run and 127 when it is not
//! found; `status` exits 0 when the lock is free and 1 when it is held;
//! `hold` exits 0 once it has released the lock. Any other error prints one
//! line and exits 2.

#[cfg(not(unix))]
compile_error!("the pidlockfile command supports Unix so far (it forwards Unix signals)");

mod file_system;
mod hold;
mod output;
mod run;
mod signals;
mod status;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use pidlockfile::{LockError, LockFile, LockOptions};

/// The exit status when the lock is held elsewhere, as `flock -E` allows and
/// sysexits.h names it: try again later.
pub const HELD: u8 = 75;
/// The exit status of any other error.
pub const ERROR: u8 = 2;

const RUN_HELP: &str = "\
COMMAND inherits the lock's descriptor, so COMMAND never runs on without the
lock: if `run` is killed (SIGKILL, the OOM killer), COMMAND keeps the lock
until it exits.
  default    the lock is released when COMMAND exits: `run` unlocks it for
             every holder of the descriptor, processes COMMAND started
             included. On Linux COMMAND also gets SIGKILL if `run` dies
             first (PR_SET_PDEATHSIG).
  --inherit  COMMAND and everything it starts keep the lock, as with
             flock(1): it lasts until the last of them exits, and the kernel
             releases it then (not marked as a clean release).

Signals: SIGINT and SIGQUIT (the terminal's Ctrl-C and Ctrl-\\ reach the whole
foreground process group, COMMAND included) are not passed on, and do not end
`run` while COMMAND runs, unless COMMAND has left run's process group. SIGTERM,
SIGHUP, SIGUSR1, SIGUSR2, SIGALRM and every other signal that would end `run`
are passed on to COMMAND once (SIGHUP from a terminal hang-up that COMMAND's
process group received itself is not). SIGKILL cannot be caught: see above.

Exit status:
  COMMAND's own; when a signal killed COMMAND, `run` dies of the same signal
  (128+N if it cannot)
  75   the lock is held elsewhere (EX_TEMPFAIL), also after --wait timed out
  126  COMMAND cannot be run
  127  COMMAND was not found
  2    any other error (one line on stderr)";

const STATUS_HELP: &str = "\
Also names the lock file's file system and warns where its locks are known not
to reach other machines (FUSE, NFS with local_lock or nolock, CIFS with nobrl).

Exit status:
  0  the lock is free
  1  the lock is held
  2  error: it cannot be inspected (with --json, an object with an `error`
     field is printed too)";

const HOLD_HELP: &str = "\
Prints one line on stdout once it holds the lock, and one once it has released
it. A signal during --wait ends the wait without taking the lock (`hold` dies
of that signal), unless `hold` started with it ignored (SIGINT for a background
job of a non-interactive shell, SIGHUP under nohup). If stdout cannot be
written, the lock is released.

Exit status:
  0   released after SIGINT, SIGTERM or SIGHUP
  75  the lock is held elsewhere (EX_TEMPFAIL), also after --wait timed out
  2   any other error (one line on stderr)";

#[derive(Parser)]
#[command(
    version,
    about = "Run a program under a lock file, or ask who holds one."
)]
struct Cli {
    /// Log more (-v: waiting and refusals, -vv: debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Take the lock, run COMMAND while holding it, release it when COMMAND
    /// exits, and exit with COMMAND's status (75 if the lock is held elsewhere).
    #[command(after_help = RUN_HELP)]
    Run {
        #[command(flatten)]
        lock: LockArgs,
        /// COMMAND and everything it starts inherit the lock's descriptor, so
        /// the lock is held until the last of them exits (flock(1)'s way).
        #[arg(long)]
        inherit: bool,
        /// The program to run, and its arguments (`--` before it is optional).
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "COMMAND"
        )]
        command: Vec<OsString>,
    },
    /// Say whether the lock file is locked now, and by whom, without taking
    /// the lock or creating the file (exit 0: free, 1: held, 2: error).
    #[command(after_help = STATUS_HELP)]
    Status {
        /// The lock file.
        path: PathBuf,
        /// Print one JSON object, for scripts, also on errors.
        #[arg(long)]
        json: bool,
    },
    /// Take the lock and hold it until SIGINT, SIGTERM or SIGHUP, then release it.
    #[command(after_help = HOLD_HELP)]
    Hold {
        #[command(flatten)]
        lock: LockArgs,
    },
}

#[derive(Args)]
struct LockArgs {
    /// Wait up to SECS seconds for a lock held elsewhere (a decimal number;
    /// `inf` waits for as long as it takes).
    #[arg(long, value_name = "SECS", value_parser = parse_seconds, allow_hyphen_values = true)]
    wait: Option<Duration>,
    /// What to write into the lock file: {pid}, {hostname}; {{ and }} for braces.
    #[arg(long, value_name = "TEMPLATE")]
    content: Option<String>,
    /// Take a shared (reader) lock: any number of readers hold it together,
    /// and they exclude an exclusive holder. A reader writes nothing.
    #[arg(long)]
    shared: bool,
    /// Create a missing lock file with exactly these permission bits, in
    /// octal (e.g. 666 for a lock that every user may take), whatever the
    /// umask; an existing file keeps its mode.
    #[arg(long, value_name = "OCTAL", value_parser = parse_mode)]
    mode: Option<u32>,
    /// The lock file.
    path: PathBuf,
}

impl LockArgs {
    fn options(&self) -> LockOptions {
        let mut options = LockOptions::new();
        if let Some(template) = &self.content {
            options.content_template(template);
        }
        if let Some(mode) = self.mode {
            options.mode(mode);
        }
        options.shared(self.shared);
        options
    }

    /// Takes the lock. When it is held elsewhere and `--wait` was given, says
    /// so on stderr in one line, naming the holder, then waits.
    fn lock(&self) -> Result<LockFile, LockError> {
        let mut options = self.options();
        let Some(limit) = self.wait.filter(|limit| !limit.is_zero()) else {
            return options.lock(&self.path);
        };
        // The first try is quiet: its refusal is not the outcome, the wait's is.
        let first = options.clone().log_refusal(None).lock(&self.path);
        let held = match first {
            Err(e @ LockError::Locked { .. }) => e.to_string(),
            other => return other,
        };
        let prefix = format!("cannot lock {:?}: ", self.path);
        let held = held.strip_prefix(&prefix).unwrap_or(&held);
        let how_long = match limit {
            Duration::MAX => "as long as it takes".to_owned(),
            limit => format!("up to {}s", limit.as_secs_f64()),
        };
        output::complain(format_args!(
            "pidlockfile: waiting {how_long} for {:?}: {held}",
            self.path
        ));
        // The whole limit: the quiet first try took microseconds, and the
        // timeout's message then reports the limit the user gave.
        options.wait(limit);
        options.lock(&self.path)
    }
}

/// Permission bits in octal, as chmod(1) takes them: `666`, `0o660`, `0640`.
fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    u32::from_str_radix(digits, 8)
        .ok()
        .filter(|&mode| mode <= 0o7777)
        .ok_or_else(|| format!("{text:?} is not a file mode in octal (0 to 7777, such as 666)"))
}

/// Seconds as a decimal number (`0.5`, `30`, `1e3`), or `inf` (also
/// `infinity`, or any number too large for a `Duration`) to wait forever.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds (or inf)"))?;
    if secs.is_nan() {
        return Err(format!("{text:?} is not a number of seconds (or inf)"));
    }
    if secs < 0.0 {
        return Err(format!(
            "{text:?} is negative: give the seconds to wait, 0 not to wait, or inf to wait forever"
        ));
    }
    Ok(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { ERROR } else { 0 });
        }
    };
    let level = match cli.verbose {
        0 => "off",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
    match cli.command {
        Command::Run {
            lock,
            inherit,
            command,
        } => run::run(&lock, inherit, &command),
        Command::Status { path, json } => status::status(&path, json),
        Command::Hold { lock } => hold::hold(&lock),
    }
}

/// Prints a lock error as one line and gives its exit status.
pub fn fail(error: &LockError) -> ExitCode {
    output::complain(format_args!("pidlockfile: {error}"));
    match error {
        LockError::Locked { .. } | LockError::TimedOut { .. } => ExitCode::from(HELD),
        _ => ExitCode::from(ERROR),
    }
}
