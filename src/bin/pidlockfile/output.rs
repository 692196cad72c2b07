//! Writing to standard output, where the reader may have gone.

use std::io::{self, Write};
use std::process::ExitCode;

use crate::ERROR;

/// Writes one line to stdout and flushes it. When that fails (a closed pipe:
/// `| head -c0`, a dead log collector), says so in one line on stderr and
/// gives the exit status 2, instead of panicking as `println!` does.
pub fn print_line(line: &str) -> Result<(), ExitCode> {
    let mut out = io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| {
            eprintln!("pidlockfile: cannot write to standard output: {e}");
            ExitCode::from(ERROR)
        })
}
