//! The launcher: reads a Chronos job or Marathon app file with a `qos` block, tags it with a UUID,
//! rewrites it for its framework (Chronos: report each iteration; Marathon: run under
//! `shell-trap`), registers it with the supervisor first and then submits it, rolling back on
//! failure. Subcommands let the user validate, list, watch and cancel jobs.
//!
//! This crate is filled in by the launcher work; the QoS validation it will use lives in
//! `qos_core::spec` already.
