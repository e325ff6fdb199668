//! What the workspace's binaries do alike, written once; each part behind a feature so that a
//! binary pays only for what it uses:
//!
//! - feature `service` (supervisor, cgroup-collector, shell-trap, testbed):
//!   [`init_tracing`]: `RUST_LOG` (else the binary's default filter) to stderr, or appended to a
//!   log file kept bounded by rotation ([`LogFile`]); [`shutdown_signal`]: the future that
//!   resolves on the first SIGINT or SIGTERM, and [`exit_on_second_interrupt`] for binaries
//!   whose drain may take a while; [`listen`]: the listening socket, or a [`ListenError`] that
//!   names the address;
//! - feature `http` (supervisor, cgroup-collector): [`http::serve`], an axum router served on a
//!   listener with at most [`http::ConnLimits::max_connections`] connections open (kept below the
//!   open-file limit by [`http::connection_cap`]), every connection that sends no complete
//!   request head within [`http::ConnLimits::header_timeout`] closed, every request body due in
//!   full the same time after its head, and the requests hyper cannot read (too long a target, too
//!   large a head, a malformed one) answered with a JSON body naming the part at fault;
//! - feature `docker`: `docker::ensure_image`, an image made present on a Docker daemon, as a
//!   Mesos agent does before it starts a container;
//! - feature `cli` (launcher, linpack): `cli::run`, a clap command line parsed and run over given
//!   streams, or answered with clap's help, version or usage error and its exit status;
//! - always: [`file::read_at_most`], a file read whole but never past a bound (the launcher's
//!   job files, the collector's metadata files), a directory said to be one.

#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "docker")]
pub mod docker;
pub mod file;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "service")]
mod logfile;
#[cfg(feature = "service")]
mod service;

#[cfg(feature = "service")]
pub use logfile::LogFile;
#[cfg(feature = "service")]
pub use service::{ListenError, exit_on_second_interrupt, init_tracing, listen, shutdown_signal};
