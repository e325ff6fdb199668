//! The process runtime: the job's command runs directly (no shell in between), as a child of
//! shell-trap, in shell-trap's cgroup (the task's) or in a cgroup created for it
//! (`--cgroup create`).
//!
//! - The child gets its own process group, so an orchestrator's group-wide SIGTERM reaches
//!   shell-trap only and the job receives exactly one, from shell-trap, after shell-trap has
//!   decided what to do; forwarded signals go to the whole group (a `sh -c` and its children).
//! - `PR_SET_PDEATHSIG = SIGKILL`: if shell-trap itself is SIGKILLed (the grace period ran out),
//!   the job does not live on unowned. shell-trap runs a current-thread runtime, so the thread
//!   that forks is the one whose death the kernel watches: the main thread.
//! - shell-trap is a child subreaper and reaps every child with `waitpid(-1)` on SIGCHLD, so
//!   neither the job nor processes it orphans stay zombies; when the job ends, what is left of
//!   its process group is killed.
//! - stdin is `/dev/null` (the job is in a background process group); stdout and stderr are
//!   shell-trap's; the `SHELL_TRAP_*` variables are removed from its environment.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use tokio::signal::unix::{SignalKind, signal};
use tokio::time::Instant;

use crate::cgroup::OwnCgroup;
use crate::error::{EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND, SetupError};
use crate::job::{Job, StopOutcome, stop_outcome};
use crate::signals::exit_status_for;
use crate::strategy::Strategy;

/// A running job process.
#[derive(Debug)]
pub struct ProcessJob {
    pid: Pid,
    status: Option<i32>,
    sigchld: tokio::signal::unix::Signal,
    cgroup: Option<OwnCgroup>,
}

/// Installs the SIGCHLD handler and makes shell-trap a child subreaper. Call before spawning.
fn prepare_reaping() -> Result<tokio::signal::unix::Signal, SetupError> {
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| SetupError::Runtime(format!("prctl(PR_SET_CHILD_SUBREAPER): {e}")))?;
    signal(SignalKind::child()).map_err(|e| SetupError::Runtime(format!("SIGCHLD handler: {e}")))
}

impl ProcessJob {
    /// Starts `argv` with `env` added to shell-trap's environment, in `cgroup` when given.
    ///
    /// # Errors
    /// [`SetupError::Exec`] (126/127) when the command cannot be started.
    pub fn spawn(
        argv: &[String],
        env: &[(String, String)],
        cgroup: Option<OwnCgroup>,
    ) -> Result<Self, SetupError> {
        let sigchld = prepare_reaping()?;
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| SetupError::invalid("COMMAND", "is empty"))?;
        let parent = nix::unistd::getpid();
        let mut cmd = Command::new(program);
        // shell-trap's own settings are not the job's (the job gets its QOS_* variables).
        for (k, _) in std::env::vars_os() {
            if k.to_str().is_some_and(|k| k.starts_with("SHELL_TRAP_")) {
                cmd.env_remove(k);
            }
        }
        cmd.args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .process_group(0);
        #[expect(
            unsafe_code,
            reason = "pre_exec is the only way to set the parent-death signal in the child"
        )]
        // SAFETY: the closure runs in the forked child before exec and calls only
        // async-signal-safe system calls (prctl, getppid) through nix, without allocating or
        // taking locks.
        unsafe {
            cmd.pre_exec(move || {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
                // The parent may have died between fork and prctl: then no signal would come.
                if nix::unistd::getppid() != parent {
                    return Err(std::io::Error::other("shell-trap exited during the start"));
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| {
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                EXIT_NOT_FOUND
            } else {
                EXIT_CANNOT_EXECUTE
            };
            SetupError::Exec {
                code,
                message: format!("cannot execute {program:?}: {e}"),
            }
        })?;
        let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
        // The std handle neither waits nor kills on drop: this module reaps the child itself.
        drop(child);
        Ok(Self {
            pid,
            status: None,
            sigchld,
            cgroup,
        })
    }

    /// The job's pid.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.pid.as_raw().unsigned_abs()
    }

    /// Reaps every exited child; records the job's status.
    fn reap(&mut self) {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => {
                    if pid == self.pid {
                        self.status = Some(code);
                    } else {
                        tracing::debug!("reaped orphan {pid} (exit {code})");
                    }
                }
                Ok(WaitStatus::Signaled(pid, sig, _)) => {
                    if pid == self.pid {
                        self.status = Some(exit_status_for(sig));
                    } else {
                        tracing::debug!("reaped orphan {pid} ({sig})");
                    }
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }

    fn signal_group(&self, sig: Signal) {
        match killpg(self.pid, sig) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(e) => tracing::warn!("kill({sig}) of the job's process group: {e}"),
        }
    }

    /// Waits for the job's status until `until`; `None` on timeout.
    async fn wait_until(&mut self, until: Instant) -> Option<i32> {
        tokio::time::timeout_at(until, self.wait_exit()).await.ok()
    }

    async fn wait_exit(&mut self) -> i32 {
        loop {
            self.reap();
            if let Some(s) = self.status {
                return s;
            }
            // A periodic check as well: a SIGCHLD may be coalesced with an earlier one.
            let _ = tokio::time::timeout(Duration::from_secs(1), self.sigchld.recv()).await;
        }
    }
}

impl Job for ProcessJob {
    async fn wait(&mut self) -> Result<i32, String> {
        Ok(self.wait_exit().await)
    }

    async fn forward(&mut self, sig: Signal) {
        tracing::info!("forwarding {sig} to the job");
        self.signal_group(sig);
    }

    async fn checkpoint_and_stop(&mut self, strategy: Strategy, deadline: Instant) -> StopOutcome {
        self.reap();
        if let Some(code) = self.status {
            return StopOutcome::Exited(code);
        }
        if strategy == Strategy::Criu {
            // Refused earlier; kept total for safety.
            self.kill_now().await;
            return StopOutcome::Failed("CRIU is not available for the process runtime".into());
        }
        self.signal_group(Signal::SIGTERM);
        let exited = self.wait_until(deadline).await;
        if exited.is_none() {
            self.kill_now().await;
        }
        stop_outcome(exited, strategy)
    }

    async fn kill_now(&mut self) {
        self.signal_group(Signal::SIGKILL);
        let _ = self
            .wait_until(Instant::now() + Duration::from_secs(5))
            .await;
    }

    async fn cleanup(&mut self) {
        // Whatever the job left in its process group goes with it; then reap for a moment.
        self.signal_group(Signal::SIGKILL);
        let until = Instant::now() + Duration::from_millis(200);
        while Instant::now() < until {
            self.reap();
            if waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) == Err(Errno::ECHILD) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Some(mut g) = self.cgroup.take() {
            if let Some(s) = g.cpu_seconds() {
                tracing::info!("job cgroup used {s:.3} CPU seconds in this incarnation");
            }
            g.remove();
        }
    }

    fn describe(&self) -> String {
        format!("process {}", self.pid)
    }
}
