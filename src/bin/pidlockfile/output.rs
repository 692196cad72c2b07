//! Writing to standard output and standard error, where the reader may have
//! gone.

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
            complain(format_args!(
                "pidlockfile: cannot write to standard output: {e}"
            ));
            ExitCode::from(ERROR)
        })
}

/// Writes one line to stderr. A stderr that cannot be written (a closed
/// pipe) loses the line but changes nothing else, where `eprintln!` would
/// panic and turn the documented exit status into 101.
pub fn complain(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}
