//! Run once: the first instance holds the lock; a second one, started by the
//! first, is refused and told who holds it.
//!
//! ```text
//! cargo run --example single_instance [LOCK_PATH]
//! ```
//!
//! The log record the refusal writes is shown through `env_logger`
//! (`RUST_LOG` may change the level; the default shows errors).

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use pidlockfile::{LockError, LockFile};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("error")).init();
    let mut args = std::env::args_os().skip(1);
    let first = args.next();
    if first.as_deref() == Some("--second".as_ref()) {
        let path = PathBuf::from(args.next().expect("--second takes the lock path"));
        return second_instance(path);
    }
    let path = first
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("pidlockfile-single-instance.lock"));
    first_instance(path)
}

fn first_instance(path: PathBuf) -> ExitCode {
    let lock = match LockFile::lock(&path) {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("first instance: {e}");
            return ExitCode::FAILURE;
        }
    };
    let content = std::fs::read_to_string(&path).unwrap_or_default();
    println!(
        "first instance (pid {}): holding {}",
        std::process::id(),
        path.display()
    );
    println!("first instance: the lock file reads {content:?}");

    println!("first instance: starting a second instance...");
    let status = Command::new(std::env::current_exe().expect("own path"))
        .arg("--second")
        .arg(&path)
        .status()
        .expect("the second instance starts");
    println!("first instance: the second one exited with {status}");

    match lock.close() {
        Ok(()) => {
            println!(
                "first instance: released; {} is left behind",
                path.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("first instance: {e}");
            ExitCode::FAILURE
        }
    }
}

fn second_instance(path: PathBuf) -> ExitCode {
    match LockFile::lock(&path) {
        Ok(_lock) => {
            println!("second instance (pid {}): got the lock", std::process::id());
            ExitCode::SUCCESS
        }
        Err(e @ LockError::Locked { .. }) => {
            println!("second instance (pid {}): refused: {e}", std::process::id());
            ExitCode::from(75) // EX_TEMPFAIL: try again later
        }
        Err(e) => {
            eprintln!("second instance: {e}");
            ExitCode::FAILURE
        }
    }
}
