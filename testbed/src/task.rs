//! What the frameworks and the runtimes say about a task: what to run ([`TaskSpec`],
//! [`TaskCommand`]), where it was placed ([`Placement`]), the Mesos states it goes through
//! ([`TaskState`], [`TaskUpdate`]) and how it ended ([`Outcome`]). The cluster places and runs
//! tasks; the process and Docker runtimes both speak this vocabulary, so neither imports the other.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

/// Builds a task's environment once it is placed (`HOST` and `PORT*` depend on the placement).
pub(crate) type EnvBuilder = Box<dyn FnOnce(&Placement) -> Vec<(String, String)> + Send>;

/// Channel on which a framework receives its tasks' status updates.
pub(crate) type UpdateSink = mpsc::UnboundedSender<TaskUpdate>;

/// Where a task was placed: its agent, the agent's host name and the host ports the task was
/// given — what its environment is built from, what its status updates carry and what the
/// frameworks show (empty in an update of a task that was never placed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Placement {
    pub(crate) agent_id: String,
    pub(crate) host: String,
    pub(crate) ports: Vec<u16>,
}

/// What a task runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TaskCommand {
    /// `/bin/sh -c <cmd>` (Marathon `cmd`, Chronos `shell: true`).
    Shell(String),
    /// An argument vector run directly (Marathon `args`, Chronos `shell: false`).
    Argv(Vec<String>),
    /// Nothing: the container image's own entrypoint/command.
    Image,
}

/// A task to launch.
pub(crate) struct TaskSpec {
    pub(crate) task_id: String,
    pub(crate) framework_id: String,
    pub(crate) command: TaskCommand,
    pub(crate) resources: Resources,
    pub(crate) ports: usize,
    pub(crate) env: EnvBuilder,
    pub(crate) container: Option<ContainerSpec>,
    /// SIGTERM → SIGKILL delay; the runtime's default (command executor 3 s, Docker 5 s) if `None`.
    pub(crate) kill_grace: Option<Duration>,
    /// Job UUID for the collector's `qos.json`, when the job carries one.
    pub(crate) uuid: Option<String>,
    /// Mesos task labels (Marathon passes the app's labels; Chronos none), shown in `/state`.
    pub(crate) labels: Vec<(String, String)>,
}

/// CPUs, memory and disk (MB), as Mesos counts them: what a task asks for, what an agent offers
/// and what the tasks placed on an agent hold.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Resources {
    pub(crate) cpus: f64,
    pub(crate) mem: f64,
    pub(crate) disk: f64,
}

impl Resources {
    /// Whether `ask` fits in what `used` leaves of these (with a slack for sums of fractions).
    pub(crate) fn has_room(&self, used: &Self, ask: &Self) -> bool {
        const SLACK: f64 = 1e-9;
        self.cpus - used.cpus + SLACK >= ask.cpus
            && self.mem - used.mem + SLACK >= ask.mem
            && self.disk - used.disk + SLACK >= ask.disk
    }

    /// Takes `r` on.
    pub(crate) fn add(&mut self, r: &Self) {
        self.cpus += r.cpus;
        self.mem += r.mem;
        self.disk += r.disk;
    }

    /// Gives `r` back (never below zero).
    pub(crate) fn release(&mut self, r: &Self) {
        self.cpus = (self.cpus - r.cpus).max(0.0);
        self.mem = (self.mem - r.mem).max(0.0);
        self.disk = (self.disk - r.disk).max(0.0);
    }
}

/// Mesos task states (the subset an agent of ours produces).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum TaskState {
    Staging,
    Starting,
    Running,
    Killing,
    Finished,
    Failed,
    Killed,
}

impl TaskState {
    pub(crate) fn mesos_name(self) -> &'static str {
        match self {
            Self::Staging => "TASK_STAGING",
            Self::Starting => "TASK_STARTING",
            Self::Running => "TASK_RUNNING",
            Self::Killing => "TASK_KILLING",
            Self::Finished => "TASK_FINISHED",
            Self::Failed => "TASK_FAILED",
            Self::Killed => "TASK_KILLED",
        }
    }

    pub(crate) fn is_terminal(self) -> bool {
        matches!(self, Self::Finished | Self::Failed | Self::Killed)
    }
}

/// A status update.
#[derive(Debug, Clone)]
pub(crate) struct TaskUpdate {
    pub(crate) task_id: String,
    pub(crate) state: TaskState,
    pub(crate) placement: Placement,
    pub(crate) message: String,
    pub(crate) at: DateTime<Utc>,
}

impl TaskUpdate {
    /// `TASK_KILLED` for a task that was never placed (no agent, host or ports), now.
    pub(crate) fn killed_unplaced(task_id: String, message: &str) -> Self {
        Self {
            task_id,
            state: TaskState::Killed,
            placement: Placement::default(),
            message: message.to_owned(),
            at: Utc::now(),
        }
    }
}

/// How a task ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    Exited(i32),
    Signaled(i32),
    Killed(String),
    Failed(String),
}

impl Outcome {
    /// The terminal state and message Mesos' command executor reports for this end.
    pub(crate) fn terminal(self) -> (TaskState, String) {
        match self {
            Self::Exited(0) => (
                TaskState::Finished,
                "Command exited with status 0".to_owned(),
            ),
            Self::Exited(code) => (
                TaskState::Failed,
                format!("Command exited with status {code}"),
            ),
            Self::Signaled(sig) => (
                TaskState::Failed,
                format!("Command terminated with signal {sig}"),
            ),
            Self::Killed(m) => (TaskState::Killed, m),
            Self::Failed(m) => (TaskState::Failed, m),
        }
    }
}

/// How a process's wait ended, as an [`Outcome`].
pub(crate) fn status_outcome(status: std::io::Result<std::process::ExitStatus>) -> Outcome {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(c), _) => Outcome::Exited(c),
            (None, Some(sig)) => Outcome::Signaled(sig),
            (None, None) => Outcome::Failed("unknown exit status".to_owned()),
        },
        Err(e) => Outcome::Failed(format!("cannot wait for the task: {e}")),
    }
}

/// Resolves with the grace once a kill was requested (or at once when the sender is gone).
pub(crate) async fn wait_kill(
    rx: &mut watch::Receiver<Option<Duration>>,
    default_grace: Duration,
) -> Duration {
    match rx.wait_for(Option::is_some).await {
        Ok(g) => g.unwrap_or(default_grace),
        Err(_) => Duration::ZERO,
    }
}

/// A task id as one path component (task ids never hold `/`, but be safe).
pub(crate) fn sanitize_path(id: &str) -> String {
    id.replace(['/', '\0'], "_")
}

/// A task's container, as Marathon (`container.docker`, `container.volumes`) or Chronos
/// (`container`) describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContainerSpec {
    pub(crate) image: String,
    pub(crate) network: Option<String>,
    pub(crate) volumes: Vec<Volume>,
    pub(crate) parameters: Vec<(String, String)>,
    pub(crate) force_pull: bool,
}

/// A host-path volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Volume {
    pub(crate) host_path: String,
    pub(crate) container_path: String,
    pub(crate) read_only: bool,
}

impl ContainerSpec {
    /// A container of `image` on `network`, as both frameworks describe the rest: host-path
    /// `volumes` (Marathon's and Chronos' `container.volumes`), and the Docker object's
    /// `parameters` and `forcePullImage` (Marathon's `container.docker`, Chronos' `container`).
    pub(crate) fn from_json(
        image: String,
        network: Option<String>,
        volumes: Option<&Value>,
        docker: &Value,
    ) -> Self {
        Self {
            image,
            network,
            volumes: volumes_from(volumes),
            parameters: string_pairs(docker.get("parameters"), "key", "value"),
            force_pull: docker
                .get("forcePullImage")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        }
    }
}

/// The host-path volumes of a JSON list `[{"hostPath", "containerPath", "mode"}]`; entries
/// without both paths are skipped, `mode: "RO"` mounts read-only.
fn volumes_from(list: Option<&Value>) -> Vec<Volume> {
    list.and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|v| {
                    Some(Volume {
                        host_path: v.get("hostPath")?.as_str()?.to_owned(),
                        container_path: v.get("containerPath")?.as_str()?.to_owned(),
                        read_only: v.get("mode").and_then(Value::as_str) == Some("RO"),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The `(name, value)` pairs of a JSON list of objects, each read from its `name` and `value`
/// fields (`key`/`value` for Docker parameters, `name`/`value` for Chronos' environment);
/// entries without both as strings are skipped.
pub(crate) fn string_pairs(list: Option<&Value>, name: &str, value: &str) -> Vec<(String, String)> {
    list.and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|p| {
                    Some((
                        p.get(name)?.as_str()?.to_owned(),
                        p.get(value)?.as_str()?.to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}
