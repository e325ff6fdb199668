//! The signals shell-trap handles: SIGTERM and SIGINT stop the job (checkpoint first); SIGHUP,
//! SIGQUIT, SIGUSR1 and SIGUSR2 are forwarded to the job. Handlers are installed before anything
//! starts, so a signal that arrives while the job is being prepared is not lost (thesis bug 23:
//! a SIGTERM before the container started broke every later restart).

use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};
use tokio::time::Instant;

/// Two SIGTERMs this close together count as one request: an orchestrator that signals both a
/// wrapper shell and the process group delivers two at once.
pub const DUPLICATE_WINDOW: Duration = Duration::from_millis(500);

/// What a received signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// SIGTERM or SIGINT: checkpoint and stop (a second one: stop at once).
    Stop(Signal),
    /// Pass it on to the job.
    Forward(Signal),
}

/// The installed handlers.
#[derive(Debug)]
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    quit: tokio::signal::unix::Signal,
    usr1: tokio::signal::unix::Signal,
    usr2: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers (needs a Tokio runtime).
    ///
    /// # Errors
    /// When a handler cannot be installed.
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
            quit: signal(SignalKind::quit())?,
            usr1: signal(SignalKind::user_defined1())?,
            usr2: signal(SignalKind::user_defined2())?,
        })
    }

    /// The next signal (cancel-safe).
    pub async fn recv(&mut self) -> Event {
        tokio::select! {
            _ = self.term.recv() => Event::Stop(Signal::SIGTERM),
            _ = self.int.recv() => Event::Stop(Signal::SIGINT),
            _ = self.hup.recv() => Event::Forward(Signal::SIGHUP),
            _ = self.quit.recv() => Event::Forward(Signal::SIGQUIT),
            _ = self.usr1.recv() => Event::Forward(Signal::SIGUSR1),
            _ = self.usr2.recv() => Event::Forward(Signal::SIGUSR2),
        }
    }

    /// The next stop request that is not a duplicate of the one at `first` (a SIGTERM within
    /// [`DUPLICATE_WINDOW`] of it); forwarded signals are handed to `forward`.
    pub async fn second_stop(
        &mut self,
        first: (Signal, Instant),
        mut forward: impl FnMut(Signal),
    ) -> Signal {
        loop {
            match self.recv().await {
                Event::Stop(s)
                    if s == first.0
                        && s == Signal::SIGTERM
                        && first.1.elapsed() < DUPLICATE_WINDOW =>
                {
                    tracing::debug!("duplicate {s} ignored");
                }
                Event::Stop(s) => return s,
                Event::Forward(s) => forward(s),
            }
        }
    }
}

/// The shell's exit status for death by `sig`.
#[must_use]
pub fn exit_status_for(sig: Signal) -> i32 {
    128 + sig as i32
}
