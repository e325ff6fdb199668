//! A clap command line parsed for a binary whose `run` writes to given streams and returns its
//! exit status (so that tests drive it without a process).

use std::ffi::OsString;
use std::io::Write;

/// The exit status of a command line clap refuses (clap's own `Error::exit` uses it too).
pub const EXIT_USAGE: u8 = 2;

/// Parses `args` (the program name first) into `C`, as `C::parse()` would, but writes to `out`
/// and `err` and returns instead of exiting: `--help` and `--version` are written to `out` and
/// give `Err(0)`; a usage error is written to `err` (styled) and gives `Err(`[`EXIT_USAGE`]`)`.
///
/// # Errors
/// The exit status to end with when there is nothing to run.
pub fn parse<C, I, T>(args: I, out: &mut dyn Write, err: &mut dyn Write) -> Result<C, u8>
where
    C: clap::Parser,
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    C::try_parse_from(args).map_err(|e| {
        let rendered = e.render();
        if e.use_stderr() {
            let _ = write!(err, "{}", rendered.ansi());
            EXIT_USAGE
        } else {
            let _ = write!(out, "{rendered}");
            0
        }
    })
}
