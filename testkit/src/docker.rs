//! The `docker` command line against `DOCKER_HOST`, for tests that set up or look at
//! containers the way a user would (the code under test speaks to the daemon's API).
//! [`crate::docker_or_skip`] says whether a daemon answers.

use std::process::Command;

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

/// Runs `docker ARGS…` (panics when the command cannot be started).
#[must_use]
pub fn run(args: &[&str]) -> Ran {
    let out = Command::new("docker")
        .args(args)
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
