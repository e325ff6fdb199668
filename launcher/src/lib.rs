//! The launcher: reads a Chronos job or Marathon app file with a `qos` block, tags it with a UUID,
//! rewrites it for its framework (Chronos: report each iteration; Marathon: run under
//! `shell-trap`), registers it with the supervisor first and then submits it, rolling back on
//! failure. Subcommands let the user validate, list, watch and cancel jobs.
//!
//! # Layout
//! - [`rewrite`]: the pure, golden-tested rewrite (no I/O): validation, UUIDs, the Chronos report
//!   wrapper and schedule, the Marathon shell-trap command; the contracts with the supervisor and
//!   shell-trap are documented in [`rewrite::chronos`] and [`rewrite::marathon`].
//! - [`shell`]: single-quote shell quoting and strict character sets.
//! - [`input`]: reading job files: `file:line:column` for a syntax error, text that is not UTF-8
//!   or a key given twice (named as a field); a byte-order mark skipped; empty files,
//!   directories and files over 4 MiB refused as such.
//! - [`error`]: [`LauncherError`] and the exit codes (2 bad input, 3 unreachable, 1 internal).
//! - [`submit`]: register first, then submit, roll back on failure.
//! - [`view`]: reading the supervisor's job objects; `list` and `status` output.
//! - [`watch`]: live progress bars.
//! - [`cli`]: the clap command line (declarations only).
//! - `commands`: [`run`] (parse, then do) and what each command does once parsed (submit, list,
//!   status, watch, cancel); `main` is one line.

pub mod cli;
mod commands;
pub mod error;
pub mod input;
pub mod rewrite;
pub mod shell;
pub mod submit;
pub mod view;
pub mod watch;

pub use commands::{main_entry, run};
pub use error::LauncherError;
