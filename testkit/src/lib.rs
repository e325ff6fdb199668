//! The one home for test fakes: recording fakes of every external-system trait, emulator
//! handles, cgroup-tree fixtures. Used only as a dev-dependency.
//!
//! - [`FakeMarathon`] and [`FakeChronos`]: in-memory implementations of
//!   [`frameworks::MarathonApi`] and [`frameworks::ChronosApi`] that record every call and can be
//!   told to fail (a queued error, a deployment lock, an outage).
//! - [`http`]: the same fakes served over real HTTP on `127.0.0.1:0` with the REST routes the
//!   real clients call (Marathon `/v2/apps`, Chronos 2.x `/scheduler/*`), for end-to-end tests
//!   of binaries.
//! - [`wire`]: recording HTTP servers for tests of clients: a scripted one, flaky, hanging and
//!   dead addresses.
//! - [`bins`]: other packages' binaries built from this tree, for end-to-end tests.
//! - [`sandbox`]: the task sandboxes a testbed leaves, read back; [`CatchUnwind`]: a scenario's
//!   panic caught so that what it started can be stopped first.
//! - [`flood`]: hostile HTTP clients: connections that never finish a request head, a
//!   keep-alive connection left idle, and whether the server closed them.
//! - [`procs`]: which processes of the host show a secret in their arguments.
//! - [`services`]: the project's services started as real processes (their ready line read).
//! - [`cgroups`]: cgroup fixture trees, and real cgroups removed when a test ends.
//! - [`child`]: a child process in its own process group, its output read line by line.
//! - [`names`]: names and job UUIDs no other test uses; [`wait`]: a condition polled, bounded;
//!   [`docker`]: the `docker` command line.
//! - [`assert_contains`]: a text holds each of several parts.
//! - [`skip_unless_required`]: the one skip-or-fail rule of tests that need something of the
//!   machine (`QOS_REQUIRE_*`); [`cgroups_or_skip`], [`root_or_skip`], [`docker_or_skip`] on it.

pub mod bins;
pub mod cgroups;
pub mod child;
mod chronos;
pub mod docker;
pub mod flood;
pub mod http;
mod marathon;
pub mod names;
pub mod procs;
mod recorder;
pub mod sandbox;
pub mod services;
pub mod tmpfs;
pub mod wait;
pub mod wire;

pub use chronos::{ChronosCall, FakeChronos};
pub use marathon::{FakeMarathon, MarathonCall};

use frameworks::FrameworkError;

/// A 503 from `url`, as the real clients report it.
#[must_use]
pub fn server_error(method: &str, url: &str) -> FrameworkError {
    FrameworkError::Server {
        method: method.to_owned(),
        url: url.to_owned(),
        status: 503,
        body: "service unavailable (injected)".to_owned(),
    }
}

/// A transport failure, as the real clients report it.
#[must_use]
pub fn unreachable(method: &str, url: &str) -> FrameworkError {
    FrameworkError::Unreachable {
        method: method.to_owned(),
        url: url.to_owned(),
        reason: "connection refused (injected)".to_owned(),
    }
}

fn not_found(method: &str, url: &str, message: String) -> FrameworkError {
    FrameworkError::NotFound {
        method: method.to_owned(),
        url: url.to_owned(),
        message,
    }
}

/// Locks `m`, whether or not a test thread that held it panicked (a failed assertion must not
/// hide behind a poisoned lock).
pub fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A future's panic as an `Err`, so that what a test started (a testbed, child processes) can be
/// stopped before the panic goes on: `CatchUnwind(Box::pin(scenario)).await`, clean up, then
/// `std::panic::resume_unwind` the error.
pub struct CatchUnwind<F>(pub std::pin::Pin<Box<F>>);

impl<F: std::future::Future> std::future::Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Ok(v)),
            Err(p) => std::task::Poll::Ready(Err(p)),
        }
    }
}

/// Whether this test runs as root (real cgroups, mounts).
#[must_use]
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Asserts that `text` (a program's output, a message) holds every one of `parts`, naming the
/// first missing one and showing `text`.
#[track_caller]
pub fn assert_contains(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "no {part:?} in:\n{text}");
    }
}

/// Whether a test that needs enforced CPU limits (real cgroups, so root) may go on: `true` when
/// `enforced`; otherwise a notice naming `what` and why (`note`), and `false` — or a failure when
/// `QOS_REQUIRE_CGROUPS=1` (the project's test command sets it, so nothing is skipped there).
#[must_use]
pub fn cgroups_or_skip(enforced: bool, note: Option<&str>, what: &str) -> bool {
    if enforced {
        return true;
    }
    skip_unless_required(
        &["QOS_REQUIRE_CGROUPS"],
        &format!(
            "CPU limits not enforced ({}); it needs root",
            note.unwrap_or("?")
        ),
        what,
    )
}

/// Whether a test that needs root for something else (mounting a small tmpfs, …) may go on:
/// `true` when `available` is `Ok`; otherwise a notice naming `what` and why, and `false` — or a
/// failure when `QOS_REQUIRE_ROOT=1` or `QOS_REQUIRE_CGROUPS=1` (the project's test command
/// sets the latter when it runs as root).
#[must_use]
pub fn root_or_skip(available: Result<(), String>, what: &str) -> bool {
    match available {
        Ok(()) => true,
        Err(why) => skip_unless_required(
            &["QOS_REQUIRE_ROOT", "QOS_REQUIRE_CGROUPS"],
            &format!("{why}; it needs root"),
            what,
        ),
    }
}

/// Whether a test that needs a Docker daemon may go on: `true` when one answers at
/// `DOCKER_HOST` (`docker version`); otherwise a notice naming `test`, and `false` — or a
/// failure when `QOS_REQUIRE_DOCKER=1`.
#[must_use]
pub fn docker_or_skip(test: &str) -> bool {
    let host = docker::host();
    let answers = std::process::Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .env("DOCKER_HOST", &host)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    answers
        || skip_unless_required(
            &["QOS_REQUIRE_DOCKER"],
            &format!(
                "no Docker daemon answers at DOCKER_HOST={host} (start one with \
                 `eval \"$(bash scripts/docker-daemon start)\"`)"
            ),
            test,
        )
}

/// The one skip-or-fail rule of tests that need something of the machine: a notice
/// (`SKIPPED what: why`) and `false`, or a failure when one of `flags` (`QOS_REQUIRE_*`) is set
/// to 1 — the project's test command sets them, so nothing is skipped there.
#[must_use]
pub fn skip_unless_required(flags: &[&str], why: &str, what: &str) -> bool {
    for flag in flags {
        assert!(
            std::env::var(flag).as_deref() != Ok("1"),
            "{what}: {why} and {flag}=1"
        );
    }
    eprintln!("SKIPPED {what}: {why}");
    false
}
