//! `supervisor`: see `supervisor --help` and the library docs ([`supervisor::cli`]).
//!
//! Exit codes: 0 stopped on a signal (or `--dump-state` printed), 1 runtime failure, 2 invalid
//! flags, settings or credentials, 3 the listen address cannot be bound.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match supervisor::cli::main_with(supervisor::Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("supervisor: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
