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
//! - [`input`]: reading job files with `file:line:column` syntax errors.
//! - [`error`]: [`LauncherError`] and the exit codes (2 bad input, 3 unreachable, 1 internal).

pub mod error;
pub mod input;
pub mod rewrite;
pub mod shell;

pub use error::LauncherError;
