//! `shell-trap`: see the library documentation and `shell-trap --help`.

use clap::Parser;
use shell_trap::cli::Args;
use shell_trap::error::EXIT_SETUP;

fn main() {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_SETUP } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    // Exit without waiting for the runtime: nothing of value is left in it.
    std::process::exit(shell_trap::main_with(args));
}
