//! What the run loop needs from a running job, whichever runtime runs it.

use nix::sys::signal::Signal;
use tokio::time::Instant;

use crate::strategy::Strategy;

/// How a stop request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopOutcome {
    /// The job's state is saved (`app`: it exited 0 after SIGTERM; `criu`: the checkpoint was
    /// written) and the job is stopped.
    Checkpointed,
    /// Stopped without a checkpoint (`none`), with this exit status.
    Stopped {
        /// Its exit status.
        code: i32,
    },
    /// The job had already ended by itself before it was asked to stop.
    Exited(i32),
    /// The checkpoint failed; the job is not running any more.
    Failed(String),
}

/// A running job.
pub(crate) trait Job {
    /// Waits until the job ends by itself; its exit status, or why it can no longer be known.
    /// Cancel-safe.
    async fn wait(&mut self) -> Result<i32, String>;
    /// Passes a signal on to the job.
    async fn forward(&mut self, sig: Signal);
    /// Checkpoints (per `strategy`) and stops the job by `deadline`; kills it when the deadline
    /// passes.
    async fn checkpoint_and_stop(&mut self, strategy: Strategy, deadline: Instant) -> StopOutcome;
    /// Kills the job at once.
    async fn kill_now(&mut self);
    /// Releases what the job used (container, cgroup, leftover processes).
    async fn cleanup(&mut self);
    /// For log lines.
    fn describe(&self) -> String;
}

/// How a stop by SIGTERM under `strategy` ended, from the job's exit status when it exited by
/// the deadline (`None`: it did not, and was killed).
pub(crate) fn stop_outcome(exited: Option<i32>, strategy: Strategy) -> StopOutcome {
    match (exited, strategy) {
        (Some(0), Strategy::App) => StopOutcome::Checkpointed,
        (Some(code), Strategy::App) => StopOutcome::Failed(format!(
            "the job exited with status {code} after SIGTERM, not 0: its checkpoint is not trusted"
        )),
        (Some(code), _) => StopOutcome::Stopped { code },
        (None, Strategy::App) => StopOutcome::Failed(
            "the job did not save its state and stop within the grace period; killed".into(),
        ),
        (None, _) => StopOutcome::Stopped { code: 137 },
    }
}
