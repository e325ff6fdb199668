//! The long-running components (testbed, supervisor, collector): started in their own process
//! groups, ready when they print their one JSON line, stopped with SIGTERM and then, after a
//! grace period, SIGKILL of the whole group.

use std::fs::File;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::Value;

/// Environment variables of ours that must not leak from the user's shell into the components.
const PRIVATE_PREFIXES: [&str; 4] = ["QOS_", "SHELL_TRAP_", "LINPACK_", "DOCKER_HOST"];

/// Removes the project's environment variables a user's shell may hold.
pub fn scrub_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if let Some(k) = k.to_str() {
            if PRIVATE_PREFIXES.iter().any(|p| k.starts_with(p)) {
                cmd.env_remove(k);
            }
        }
    }
}

/// A running component.
#[derive(Debug)]
pub struct Component {
    /// Its name (`testbed`, …).
    pub name: &'static str,
    child: std::process::Child,
    /// Its process id, which is also its process group id.
    pub pid: i32,
    /// Its stdout file.
    pub out_path: PathBuf,
    /// Its stderr file (the log).
    pub log_path: PathBuf,
    done: bool,
}

impl Component {
    /// Starts `cmd` in its own process group with stdout and stderr in `<logs>/<name>.out|.log`
    /// and waits (at most `timeout`) for its first stdout line, a JSON object, which it returns.
    ///
    /// # Errors
    /// When it cannot start, exits, prints something else or is not ready in time; the message
    /// carries the tail of its stderr.
    pub async fn start(
        name: &'static str,
        mut cmd: Command,
        logs: &Path,
        timeout: Duration,
    ) -> anyhow::Result<(Self, Value)> {
        let out_path = logs.join(format!("{name}.out"));
        let log_path = logs.join(format!("{name}.log"));
        let out = File::create(&out_path)
            .with_context(|| format!("cannot create {}", out_path.display()))?;
        let err = File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .process_group(0);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name} ({:?})", cmd.get_program()))?;
        let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
        let mut me = Self {
            name,
            child,
            pid,
            out_path,
            log_path,
            done: false,
        };
        let started = Instant::now();
        loop {
            if let Some(line) = first_line(&me.out_path) {
                return match serde_json::from_str::<Value>(&line) {
                    Ok(v) if v.is_object() => Ok((me, v)),
                    _ => {
                        let tail = me.log_tail(20);
                        me.stop(Duration::from_secs(5)).await;
                        bail!(
                            "{name} printed {line:?} instead of its JSON address line{}",
                            show_tail(&me.log_path, &tail)
                        )
                    }
                };
            }
            if let Some(status) = me.child.try_wait().context("waiting for a child")? {
                me.done = true;
                me.kill_group();
                bail!(
                    "{name} exited ({status}) before it was ready{}",
                    show_tail(&me.log_path, &me.log_tail(20))
                );
            }
            if started.elapsed() > timeout {
                let tail = me.log_tail(20);
                me.stop(Duration::from_secs(5)).await;
                bail!(
                    "{name} was not ready after {} s{}",
                    timeout.as_secs(),
                    show_tail(&me.log_path, &tail)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last `n` lines of its stderr.
    #[must_use]
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log_path, n)
    }

    /// Whether it is still running (`Some(status)` when it has exited).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        match self.child.try_wait() {
            Ok(Some(s)) => Some(s),
            _ => None,
        }
    }

    /// SIGTERM to the process (so it runs its own cleanup), then after `grace` SIGKILL to its
    /// whole process group; any process left in the group is killed too. Returns whether it had
    /// to be killed.
    pub async fn stop(&mut self, grace: Duration) -> bool {
        if self.done {
            return false;
        }
        let pid = Pid::from_raw(self.pid);
        let mut killed = false;
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = kill(pid, Signal::SIGTERM);
            let until = Instant::now() + grace;
            while Instant::now() < until && matches!(self.child.try_wait(), Ok(None)) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if matches!(self.child.try_wait(), Ok(None)) {
                killed = true;
                let _ = killpg(pid, Signal::SIGKILL);
                let _ = self.child.wait();
            }
        }
        self.kill_group();
        self.done = true;
        killed
    }

    fn kill_group(&self) {
        let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
    }

    /// Leaves it running (for `--keep`): nothing is stopped when this value is dropped.
    pub fn detach(&mut self) {
        self.done = true;
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        // Only reached without a `stop` (a panic): take the whole group down.
        if !self.done {
            self.kill_group();
            let _ = self.child.try_wait();
        }
    }
}

/// Whether any process of the process group `pgid` is alive.
#[must_use]
pub fn group_alive(pgid: i32) -> bool {
    !matches!(killpg(Pid::from_raw(pgid), None), Err(Errno::ESRCH))
}

fn first_line(path: &Path) -> Option<String> {
    let mut text = String::new();
    File::open(path).ok()?.read_to_string(&mut text).ok()?;
    let end = text.find('\n')?;
    Some(text[..end].trim().to_owned())
}

/// The last `n` lines of a file.
#[must_use]
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn show_tail(path: &Path, tail: &str) -> String {
    if tail.trim().is_empty() {
        format!(" (nothing on its stderr, {})", path.display())
    } else {
        format!("\n--- last lines of {} ---\n{tail}\n---", path.display())
    }
}
