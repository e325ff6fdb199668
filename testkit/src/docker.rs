//! The `docker` command line against `DOCKER_HOST`, for tests that set up or look at
//! containers the way a user would (the code under test speaks to the daemon's API).
//! [`crate::docker_or_skip`] says whether a daemon answers; [`host`] is the daemon the tests
//! speak to (and hand to the code under test).

use std::process::Command;

/// Docker's own default daemon, as the project's binaries default to it.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// The daemon tests use: `DOCKER_HOST` when set and not empty, else [`DEFAULT_HOST`] (the
/// project's test command exports `DOCKER_HOST` of its private daemon).
#[must_use]
pub fn host() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| DEFAULT_HOST.to_owned())
}

/// What `docker ARGS…` did.
#[derive(Debug, Clone)]
pub struct Ran {
    /// Whether it exited 0.
    pub ok: bool,
    /// Its stdout, trimmed.
    pub stdout: String,
    /// Its stderr, trimmed.
    pub stderr: String,
}

/// Runs `docker ARGS…` against [`host`] (panics when the command cannot be started).
#[must_use]
pub fn run(args: &[&str]) -> Ran {
    let out = Command::new("docker")
        .args(args)
        .env("DOCKER_HOST", host())
        .output()
        .unwrap_or_else(|e| panic!("docker {args:?}: {e}"));
    Ran {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    }
}

/// `docker ARGS…`'s stdout, trimmed; panics with its stderr when it fails.
pub fn ok(args: &[&str]) -> String {
    let ran = run(args);
    assert!(ran.ok, "docker {args:?} failed: {}", ran.stderr);
    ran.stdout
}
