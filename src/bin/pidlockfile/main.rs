//! `pidlockfile`: run a program under a lock file, hold one, or ask who holds one.
//!
//! Exit status: `run` passes on its program's (128+N when a signal N killed
//! it), 75 (EX_TEMPFAIL) when the lock is held elsewhere, 126 when the program
//! cannot be run and 127 when it is not found; `status` exits 0 when the lock
//! is free and 1 when it is held; `hold` exits 0 once it has released the
//! lock. Any other error prints one line and exits 2.

#[cfg(not(unix))]
compile_error!("the pidlockfile command supports Unix so far (it forwards Unix signals)");

mod hold;
mod run;
mod signals;
mod status;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use pidlockfile::{LockError, LockOptions};

/// The exit status when the lock is held elsewhere, as `flock -E` allows and
/// sysexits.h names it: try again later.
pub const HELD: u8 = 75;
/// The exit status of any other error.
pub const ERROR: u8 = 2;

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
    Run {
        #[command(flatten)]
        lock: LockArgs,
        /// The program to run, and its arguments.
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<OsString>,
    },
    /// Say whether the lock file is locked now, and by whom, without taking
    /// the lock or creating the file (exit 0: free, 1: held, 2: error).
    Status {
        /// The lock file.
        path: PathBuf,
        /// Print one JSON object, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Take the lock and hold it until SIGINT or SIGTERM, then release it.
    Hold {
        #[command(flatten)]
        lock: LockArgs,
    },
}

#[derive(Args)]
struct LockArgs {
    /// Wait up to SECS seconds for a lock held elsewhere.
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    wait: Option<Duration>,
    /// What to write into the lock file: {pid}, {hostname}; {{ and }} for braces.
    #[arg(long, value_name = "TEMPLATE")]
    content: Option<String>,
    /// The lock file.
    path: PathBuf,
}

impl LockArgs {
    fn options(&self) -> LockOptions {
        let mut options = LockOptions::new();
        if let Some(template) = &self.content {
            options.content_template(template);
        }
        if let Some(wait) = self.wait {
            options.wait(wait);
        }
        options
    }
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| format!("{text:?} is not a number of seconds"))
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
        Command::Run { lock, command } => run::run(&lock.path, &lock.options(), &command),
        Command::Status { path, json } => status::status(&path, json),
        Command::Hold { lock } => hold::hold(&lock.path, &lock.options()),
    }
}

/// Prints a lock error as one line and gives its exit status.
pub fn fail(error: &LockError) -> ExitCode {
    eprintln!("pidlockfile: {error}");
    match error {
        LockError::Locked { .. } | LockError::TimedOut { .. } => ExitCode::from(HELD),
        _ => ExitCode::from(ERROR),
    }
}
