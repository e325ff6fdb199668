//! A clap command line parsed for a binary whose `run` writes to given streams and returns its
//! exit status (so that tests drive it without a process).

use std::ffi::OsString;
use std::io::Write;

/// The exit status of a command line clap refuses (clap's own `Error::exit` uses it too).
pub const EXIT_USAGE: u8 = 2;

/// Parses `args` (the program name first) into `C`, as `C::parse()` would, and runs `command`
/// with it; but writes to `out` and `err` and returns the exit status instead of exiting:
/// `--help` and `--version` are written to `out` and give 0, a usage error is written to `err`
/// (styled) and gives [`EXIT_USAGE`]; otherwise `command`'s own status.
pub fn run<C, I, T>(
    args: I,
    out: &mut dyn Write,
    err: &mut dyn Write,
    command: impl FnOnce(C, &mut dyn Write, &mut dyn Write) -> u8,
) -> u8
where
    C: clap::Parser,
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    match C::try_parse_from(args) {
        Ok(parsed) => command(parsed, out, err),
        Err(e) if e.use_stderr() => {
            let _ = write!(err, "{}", e.render().ansi());
            EXIT_USAGE
        }
        Err(e) => {
            let _ = write!(out, "{}", e.render());
            0
        }
    }
}
