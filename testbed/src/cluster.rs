//! The emulated Mesos cluster: agents with real CPU capacity, a placement loop that behaves like
//! Mesos offers (a task goes to the least-loaded agent that has room; tasks that fit nowhere
//! wait), and the task lifecycle (launch, status updates, SIGTERM → grace → SIGKILL, reaping,
//! cgroup cleanup).
//!
//! The frameworks (Marathon and Chronos emulators) submit [`TaskSpec`]s and receive
//! [`TaskUpdate`]s on a channel, as a Mesos framework receives status updates.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use frameworks::{ExecutorStatistics, ResourceStatistics};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cgroups::{self, Cgroup, CgroupLayout};
use crate::config::{Config, RuntimeKind};
use crate::docker::{ContainerSpec, DockerRuntime};
use crate::util::{epoch_secs, shell_quote, uuid_v4};

/// Builds a task's environment once it is placed (`HOST` and `PORT*` depend on the offer).
pub(crate) type EnvBuilder = Box<dyn FnOnce(&Offer) -> Vec<(String, String)> + Send>;

/// Channel on which a framework receives its tasks' status updates.
pub(crate) type UpdateSink = mpsc::UnboundedSender<TaskUpdate>;

/// What a placed task was given.
#[derive(Debug, Clone)]
pub(crate) struct Offer {
    pub(crate) hostname: String,
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
    pub(crate) cpus: f64,
    pub(crate) mem: f64,
    pub(crate) disk: f64,
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
    pub(crate) agent_id: String,
    pub(crate) host: String,
    pub(crate) ports: Vec<u16>,
    pub(crate) message: String,
    pub(crate) at: DateTime<Utc>,
}

/// One emulated agent.
#[derive(Debug)]
pub(crate) struct Agent {
    pub(crate) index: usize,
    /// Mesos agent id, `<cluster uuid>-S<n>`; also the agent's cgroup directory name.
    pub(crate) id: String,
    pub(crate) hostname: String,
    pub(crate) cpus: f64,
    pub(crate) mem: f64,
    pub(crate) disk: f64,
    pub(crate) cgroup: Option<Cgroup>,
    pub(crate) url: OnceLock<String>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Used {
    cpus: f64,
    mem: f64,
    disk: f64,
}

struct Pending {
    spec: TaskSpec,
    sink: UpdateSink,
}

/// A placed task.
struct Live {
    agent: usize,
    framework_id: String,
    executor_name: String,
    command_line: String,
    labels: Vec<(String, String)>,
    cpus: f64,
    mem: f64,
    disk: f64,
    ports: Vec<u16>,
    state: TaskState,
    pid: Option<u32>,
    container_id: Option<String>,
    cgroup: Option<Cgroup>,
    kill: watch::Sender<Option<Duration>>,
    done: watch::Receiver<bool>,
    default_grace: Duration,
}

#[derive(Default)]
struct State {
    pending: VecDeque<Pending>,
    live: HashMap<String, Live>,
    used: Vec<Used>,
    closed: bool,
}

/// The cluster.
pub(crate) struct Cluster {
    pub(crate) cfg: Config,
    pub(crate) id: String,
    pub(crate) agents: Vec<Agent>,
    state: Mutex<State>,
    wake: Notify,
    cgroups: Option<CgroupLayout>,
    /// Why CPU limits are not enforced, when they are not.
    pub(crate) cgroup_note: Option<String>,
    docker: Option<DockerRuntime>,
    work_dir: PathBuf,
    owns_work_dir: bool,
    /// This testbed's recovery record (none when `state_dir` cannot be written).
    registry: Option<crate::recovery::Registry>,
    /// What was cleaned, at start, after testbeds that died.
    pub(crate) recovered: Vec<crate::recovery::Recovered>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

/// Escape hatch that joins a task to its cgroups before running the command: `$1` is the number
/// of `cgroup.procs` files that follow, then the command's argv. The shell writes its own pid into
/// each file and `exec`s the command, so the command starts inside its cgroups (and keeps the
/// pid that was spawned, which is also its process group).
const TRAMPOLINE: &str = r#"n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 126; shift; n=$((n-1)); done; exec "$@""#;

impl Cluster {
    /// Builds the agents (and their cgroups) and starts the placement loop.
    pub(crate) async fn start(cfg: Config) -> anyhow::Result<Arc<Self>> {
        cfg.validate()?;
        let id = uuid_v4();
        // First what dead testbeds left: their tasks hold CPUs this one is about to offer.
        let recovered = crate::recovery::recover(&cfg.state_dir, |host, cluster| async move {
            match host {
                Some(h) => crate::docker::remove_cluster_containers(&h, &cluster).await,
                None => Ok(Vec::new()),
            }
        })
        .await;
        let (cgroups, cgroup_note) = if cfg.no_cgroups {
            (None, Some("cgroups disabled by configuration".to_owned()))
        } else {
            match CgroupLayout::detect(&cfg.cgroup_root, &cfg.cgroup_prefix) {
                Ok(l) => (Some(l), None),
                Err(e) => (None, Some(e)),
            }
        };
        let mut agents = Vec::new();
        let mut cgroups = cgroups;
        let mut cgroup_note = cgroup_note;
        for index in 0..cfg.agents {
            let agent_id = format!("{id}-S{index}");
            let cgroup = match &cgroups {
                Some(layout) => {
                    let g = layout.group(&Path::new(&cfg.cgroup_prefix).join(&agent_id));
                    match g.create(cfg.cpus_per_agent) {
                        Ok(()) => Some(g),
                        Err(e) => {
                            cgroup_note = Some(format!(
                                "cannot create agent cgroup {}: {e}",
                                g.rel().display()
                            ));
                            let _ = g.destroy(Duration::ZERO);
                            None
                        }
                    }
                }
                None => None,
            };
            agents.push(Agent {
                index,
                id: agent_id,
                hostname: cfg.hostname.clone(),
                cpus: cfg.cpus_per_agent,
                mem: cfg.mem_per_agent,
                disk: cfg.disk_per_agent,
                cgroup,
                url: OnceLock::new(),
            });
        }
        if cgroup_note.is_some() {
            for a in &mut agents {
                if let Some(g) = a.cgroup.take() {
                    let _ = g.destroy(Duration::ZERO);
                }
            }
            if let Some(layout) = cgroups.take() {
                layout.remove_prefix(&cfg.cgroup_prefix);
            }
        }
        if let Some(note) = &cgroup_note {
            tracing::warn!(
                "CPU limits are NOT enforced ({note}); tasks run as plain processes. Run as root \
                 on a machine with writable cgroups for real limits."
            );
        }
        let docker = match cfg.runtime {
            RuntimeKind::Process => None,
            RuntimeKind::Docker => Some(DockerRuntime::connect(&cfg).await?),
        };
        let (work_dir, owns_work_dir) = match &cfg.work_dir {
            Some(d) => (d.clone(), false),
            None => (std::env::temp_dir().join(format!("qos-testbed-{id}")), true),
        };
        std::fs::create_dir_all(&work_dir)?;
        let record = crate::recovery::Record {
            cluster_id: id.clone(),
            pid: std::process::id(),
            cgroup_root: cfg.cgroup_root.clone(),
            cgroup_prefix: cfg.cgroup_prefix.clone(),
            agents: agents
                .iter()
                .filter(|a| a.cgroup.is_some())
                .map(|a| a.id.clone())
                .collect(),
            meta_dir: cfg.meta_dir.clone(),
            owned_work_dir: owns_work_dir.then(|| work_dir.clone()),
            docker_host: docker.as_ref().map(|_| crate::docker::docker_host(&cfg)),
            tasks: Default::default(),
        };
        let registry = match crate::recovery::Registry::open(&cfg.state_dir, record) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(
                    "no recovery record in {} ({e}): should this testbed die without stopping, \
                     the next one cannot clean up its tasks",
                    cfg.state_dir.display()
                );
                None
            }
        };
        let state = State {
            used: vec![Used::default(); agents.len()],
            ..State::default()
        };
        let cluster = Arc::new(Self {
            cfg,
            id,
            agents,
            state: Mutex::new(state),
            wake: Notify::new(),
            cgroups,
            cgroup_note,
            docker,
            work_dir,
            owns_work_dir,
            registry,
            recovered,
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
        });
        let c = Arc::clone(&cluster);
        cluster
            .tracker
            .spawn(async move { c.placement_loop().await });
        Ok(cluster)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// True when CPU limits are enforced by cgroups.
    pub(crate) fn limits_enforced(&self) -> bool {
        self.cgroups.is_some()
    }

    /// A token cancelled when the testbed stops.
    pub(crate) fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Spawns a background job that the shutdown waits for.
    pub(crate) fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(fut);
    }

    /// Queues a task; it is placed as soon as an agent has room.
    pub(crate) fn launch(&self, spec: TaskSpec, sink: UpdateSink) {
        {
            let mut st = self.lock();
            if st.closed {
                drop(st);
                let _ = sink.send(TaskUpdate {
                    task_id: spec.task_id,
                    state: TaskState::Killed,
                    agent_id: String::new(),
                    host: String::new(),
                    ports: Vec::new(),
                    message: "the testbed is shutting down".to_owned(),
                    at: Utc::now(),
                });
                return;
            }
            st.pending.push_back(Pending { spec, sink });
        }
        self.wake.notify_one();
    }

    /// Asks a task to stop: a queued task is dropped at once (`TASK_KILLED`); a running one gets
    /// SIGTERM, then SIGKILL after `grace` (or its default). The returned future resolves when
    /// the task is gone (immediately for an unknown task).
    pub(crate) fn kill(
        &self,
        task_id: &str,
        grace: Option<Duration>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let mut done = None;
        {
            let mut st = self.lock();
            if let Some(pos) = st.pending.iter().position(|p| p.spec.task_id == task_id) {
                if let Some(p) = st.pending.remove(pos) {
                    let _ = p.sink.send(TaskUpdate {
                        task_id: p.spec.task_id,
                        state: TaskState::Killed,
                        agent_id: String::new(),
                        host: String::new(),
                        ports: Vec::new(),
                        message: "killed before it was launched".to_owned(),
                        at: Utc::now(),
                    });
                }
            } else if let Some(live) = st.live.get(task_id) {
                let g = grace.unwrap_or(live.default_grace);
                live.kill.send_if_modified(|cur| {
                    // A second kill may only shorten the grace.
                    match cur {
                        Some(old) if *old <= g => false,
                        _ => {
                            *cur = Some(g);
                            true
                        }
                    }
                });
                done = Some(live.done.clone());
            }
        }
        async move {
            if let Some(mut rx) = done {
                let _ = rx.wait_for(|d| *d).await;
            }
        }
    }

    /// The sandbox (working directory) of a task on an agent.
    pub(crate) fn sandbox_of(&self, agent_id: &str, task_id: &str) -> PathBuf {
        self.work_dir
            .join("agents")
            .join(agent_id)
            .join("tasks")
            .join(crate::docker::container_name(task_id))
    }

    /// Whether a task is known (queued or placed).
    #[cfg(test)]
    pub(crate) fn is_known(&self, task_id: &str) -> bool {
        let st = self.lock();
        st.live.contains_key(task_id) || st.pending.iter().any(|p| p.spec.task_id == task_id)
    }

    /// The pid of a running process task (main process), for tests and diagnostics.
    #[cfg(test)]
    pub(crate) fn task_pid(&self, task_id: &str) -> Option<u32> {
        self.lock().live.get(task_id).and_then(|l| l.pid)
    }

    /// The task's cgroup path relative to the controller roots.
    #[cfg(test)]
    pub(crate) fn task_cgroup(&self, task_id: &str) -> Option<PathBuf> {
        self.lock()
            .live
            .get(task_id)
            .and_then(|l| l.cgroup.as_ref().map(|g| g.rel().to_owned()))
    }

    async fn placement_loop(self: Arc<Self>) {
        loop {
            self.place();
            tokio::select! {
                () = self.wake.notified() => {}
                () = self.shutdown.cancelled() => return,
            }
        }
    }

    /// Places every queued task that fits, in arrival order, each on the agent with the most free
    /// CPU among those with room (ties: the lowest index).
    fn place(self: &Arc<Self>) {
        let mut to_run = Vec::new();
        {
            let mut st = self.lock();
            if st.closed {
                return;
            }
            let mut i = 0;
            while i < st.pending.len() {
                let (cpus, mem, disk) = {
                    let s = &st.pending[i].spec;
                    (s.cpus, s.mem, s.disk)
                };
                let best = self
                    .agents
                    .iter()
                    .filter(|a| {
                        let u = st.used[a.index];
                        a.cpus - u.cpus + 1e-9 >= cpus
                            && a.mem - u.mem + 1e-9 >= mem
                            && a.disk - u.disk + 1e-9 >= disk
                    })
                    .max_by(|a, b| {
                        let fa = a.cpus - st.used[a.index].cpus;
                        let fb = b.cpus - st.used[b.index].cpus;
                        fa.total_cmp(&fb).then(b.index.cmp(&a.index))
                    })
                    .map(|a| a.index);
                let Some(agent) = best else {
                    i += 1;
                    continue;
                };
                let Some(p) = st.pending.remove(i) else { break };
                let u = &mut st.used[agent];
                u.cpus += cpus;
                u.mem += mem;
                u.disk += disk;
                let (kill_tx, kill_rx) = watch::channel(None);
                let (done_tx, done_rx) = watch::channel(false);
                let docker = p.spec.container.is_some() && self.docker.is_some();
                let default_grace = p.spec.kill_grace.unwrap_or(if docker {
                    self.cfg.docker_kill_grace()
                } else {
                    self.cfg.process_kill_grace()
                });
                let ports = free_ports(p.spec.ports);
                let command_line = match &p.spec.command {
                    TaskCommand::Shell(c) => format!("sh -c {}", shell_quote(c)),
                    TaskCommand::Argv(v) => v.join(" "),
                    TaskCommand::Image => String::new(),
                };
                st.live.insert(
                    p.spec.task_id.clone(),
                    Live {
                        agent,
                        framework_id: p.spec.framework_id.clone(),
                        executor_name: format!(
                            "Command Executor (Task: {}) (Command: {command_line})",
                            p.spec.task_id
                        ),
                        command_line,
                        labels: p.spec.labels.clone(),
                        cpus,
                        mem,
                        disk,
                        ports: ports.clone(),
                        state: TaskState::Staging,
                        pid: None,
                        container_id: None,
                        cgroup: None,
                        kill: kill_tx,
                        done: done_rx,
                        default_grace,
                    },
                );
                to_run.push((agent, p, ports, kill_rx, done_tx, default_grace));
            }
        }
        for (agent, p, ports, kill_rx, done_tx, grace) in to_run {
            let c = Arc::clone(self);
            self.tracker.spawn(async move {
                c.run_task(agent, p, ports, kill_rx, grace).await;
                let _ = done_tx.send(true);
            });
        }
    }

    fn set_state(&self, task_id: &str, state: TaskState) {
        if let Some(l) = self.lock().live.get_mut(task_id) {
            l.state = state;
        }
    }

    /// One task from staging to its terminal update.
    async fn run_task(
        self: Arc<Self>,
        agent: usize,
        p: Pending,
        ports: Vec<u16>,
        mut kill_rx: watch::Receiver<Option<Duration>>,
        default_grace: Duration,
    ) {
        let Pending { spec, sink } = p;
        let a = &self.agents[agent];
        let task_id = spec.task_id.clone();
        let update = |state: TaskState, message: String| TaskUpdate {
            task_id: task_id.clone(),
            state,
            agent_id: a.id.clone(),
            host: a.hostname.clone(),
            ports: ports.clone(),
            message,
            at: Utc::now(),
        };
        let _ = sink.send(update(TaskState::Staging, String::new()));
        let offer = Offer {
            hostname: a.hostname.clone(),
            ports: ports.clone(),
        };
        let env = (spec.env)(&offer);
        let sandbox = self.sandbox_of(&a.id, &task_id);
        let meta = self.write_meta(&a.id, &task_id, spec.uuid.as_deref());
        let outcome = if kill_rx.borrow().is_some() {
            Outcome::Killed("killed before it started".to_owned())
        } else if let (Some(container), Some(docker)) = (&spec.container, &self.docker) {
            let _ = sink.send(update(TaskState::Starting, String::new()));
            let parent = a.cgroup.as_ref().map(|g| format!("/{}", g.rel().display()));
            let run = crate::docker::DockerRun {
                task_id: &task_id,
                cluster: &self.id,
                container,
                command: &spec.command,
                env: &env,
                cpus: spec.cpus,
                mem: spec.mem,
                cgroup_parent: parent.as_deref(),
                uuid: spec.uuid.as_deref(),
                sandbox: &sandbox,
            };
            docker
                .run(run, &mut kill_rx, default_grace, |cid, pid| {
                    let cg = match (&self.cgroups, pid) {
                        (Some(layout), Some(pid)) => cgroups::cgroup_of_pid(layout, pid),
                        _ => None,
                    };
                    if let Some(l) = self.lock().live.get_mut(&task_id) {
                        l.state = TaskState::Running;
                        l.container_id = Some(cid.to_owned());
                        l.pid = pid;
                        l.cgroup = cg;
                    }
                    if meta.is_some() {
                        let _ = self.write_meta(&a.id, cid, spec.uuid.as_deref());
                    }
                    let _ = sink.send(update(TaskState::Running, String::new()));
                })
                .await
        } else if matches!(spec.command, TaskCommand::Image) {
            Outcome::Failed(
                "this task has no command (it relies on its container image) and the testbed \
                 runs it as a process: start the testbed with --runtime docker"
                    .to_owned(),
            )
        } else {
            let _ = sink.send(update(TaskState::Starting, String::new()));
            self.run_process(
                a,
                &task_id,
                &spec.command,
                spec.cpus,
                &env,
                &sandbox,
                &mut kill_rx,
                default_grace,
                &sink,
                &update,
            )
            .await
        };
        // Cleanup before the terminal update, so that a framework reacting to it finds the
        // resources free.
        let cgroup = self
            .lock()
            .live
            .get(&task_id)
            .and_then(|l| l.cgroup.clone());
        let cid = self
            .lock()
            .live
            .get(&task_id)
            .and_then(|l| l.container_id.clone());
        if let Some(g) = cgroup.filter(|g| self.is_task_cgroup(g)) {
            let r = tokio::task::spawn_blocking(move || g.destroy(Duration::from_secs(5))).await;
            if let Ok(Err(e)) = r {
                tracing::warn!("task {task_id}: cgroup cleanup: {e}");
            }
        }
        self.remove_meta(&a.id, &task_id);
        if let Some(cid) = cid {
            self.remove_meta(&a.id, &cid);
        }
        if let Some(r) = &self.registry {
            r.task_ended(&task_id);
        }
        {
            let mut st = self.lock();
            if let Some(l) = st.live.remove(&task_id) {
                let u = &mut st.used[l.agent];
                u.cpus = (u.cpus - l.cpus).max(0.0);
                u.mem = (u.mem - l.mem).max(0.0);
                u.disk = (u.disk - l.disk).max(0.0);
            }
        }
        self.wake.notify_one();
        let (state, message) = match outcome {
            Outcome::Exited(0) => (
                TaskState::Finished,
                "Command exited with status 0".to_owned(),
            ),
            Outcome::Exited(code) => (
                TaskState::Failed,
                format!("Command exited with status {code}"),
            ),
            Outcome::Signaled(sig) => (
                TaskState::Failed,
                format!("Command terminated with signal {sig}"),
            ),
            Outcome::Killed(m) => (TaskState::Killed, m),
            Outcome::Failed(m) => (TaskState::Failed, m),
        };
        let _ = sink.send(update(state, message));
    }

    fn is_task_cgroup(&self, g: &Cgroup) -> bool {
        g.rel().starts_with(&self.cfg.cgroup_prefix)
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_process(
        &self,
        a: &Agent,
        task_id: &str,
        command: &TaskCommand,
        cpus: f64,
        env: &[(String, String)],
        sandbox: &Path,
        kill_rx: &mut watch::Receiver<Option<Duration>>,
        default_grace: Duration,
        sink: &UpdateSink,
        update: &(dyn Fn(TaskState, String) -> TaskUpdate + Sync),
    ) -> Outcome {
        if let Err(e) = std::fs::create_dir_all(sandbox) {
            return Outcome::Failed(format!("cannot create sandbox {}: {e}", sandbox.display()));
        }
        let cgroup = match (&self.cgroups, &a.cgroup) {
            (Some(layout), Some(agent_group)) => {
                let g = layout.group(&agent_group.rel().join(sanitize_path(task_id)));
                if let Err(e) = g.create(cpus) {
                    let _ = g.destroy(Duration::ZERO);
                    return Outcome::Failed(format!(
                        "cannot create cgroup {}: {e}",
                        g.rel().display()
                    ));
                }
                Some(g)
            }
            _ => None,
        };
        let argv: Vec<String> = match command {
            TaskCommand::Shell(c) => vec!["/bin/sh".into(), "-c".into(), c.clone()],
            TaskCommand::Argv(v) if !v.is_empty() => v.clone(),
            _ => return Outcome::Failed("empty command".to_owned()),
        };
        let mut cmd = match &cgroup {
            Some(g) => {
                let files = g.procs_files();
                let mut c = tokio::process::Command::new("/bin/sh");
                c.arg("-c")
                    .arg(TRAMPOLINE)
                    .arg("qos-testbed-task")
                    .arg(files.len().to_string())
                    .args(&files)
                    .args(&argv);
                c
            }
            None => {
                let mut c = tokio::process::Command::new(&argv[0]);
                c.args(&argv[1..]);
                c
            }
        };
        let out = std::fs::File::create(sandbox.join("stdout"));
        let err = std::fs::File::create(sandbox.join("stderr"));
        let (Ok(out), Ok(err)) = (out, err) else {
            return Outcome::Failed("cannot create the sandbox's stdout/stderr".to_owned());
        };
        cmd.current_dir(sandbox)
            .env("MESOS_SANDBOX", sandbox)
            .env("MESOS_DIRECTORY", sandbox)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .kill_on_drop(false);
        if let Some(l) = self.lock().live.get_mut(task_id) {
            l.cgroup.clone_from(&cgroup);
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return Outcome::Failed(format!("cannot start {}: {e}", argv[0])),
        };
        let pid = child.id();
        if let (Some(g), Some(pid)) = (&cgroup, pid) {
            // Report RUNNING only once the command runs inside its cgroups.
            wait_joined(g, pid).await;
        }
        if let Some(l) = self.lock().live.get_mut(task_id) {
            l.pid = pid;
            l.state = TaskState::Running;
        }
        let _ = sink.send(update(TaskState::Running, String::new()));
        if let (Some(r), Some(pid)) = (&self.registry, pid) {
            r.task_started(task_id, pid);
        }
        let pgid = pid.and_then(|p| i32::try_from(p).ok()).map(Pid::from_raw);
        let outcome = tokio::select! {
            status = child.wait() => status_outcome(status),
            grace = wait_kill(kill_rx, default_grace) => {
                self.set_state(task_id, TaskState::Killing);
                let _ = sink.send(update(TaskState::Killing, String::new()));
                if let Some(pg) = pgid {
                    let _ = killpg(pg, Signal::SIGTERM);
                }
                let mut grace = grace;
                loop {
                    tokio::select! {
                        status = child.wait() => {
                            drop(status);
                            break;
                        }
                        () = tokio::time::sleep(grace) => {
                            if let Some(pg) = pgid {
                                let _ = killpg(pg, Signal::SIGKILL);
                            }
                            if let Some(g) = &cgroup {
                                for p in g.pids() {
                                    let _ = nix::sys::signal::kill(Pid::from_raw(p), Signal::SIGKILL);
                                }
                            }
                            let _ = child.wait().await;
                            break;
                        }
                        changed = kill_rx.changed() => {
                            // A shorter grace arrived (e.g. shutdown); restart the wait with it.
                            if changed.is_ok() {
                                if let Some(g) = *kill_rx.borrow() {
                                    grace = g.min(grace);
                                }
                            } else {
                                grace = Duration::ZERO;
                            }
                        }
                    }
                }
                Outcome::Killed("Command terminated on request".to_owned())
            }
        };
        // The container ends with its main process, as a Mesos container is destroyed then:
        // whatever the task left in its process group goes too (its cgroup, when it has one,
        // is emptied and removed by the caller).
        if let Some(pg) = pgid {
            let _ = killpg(pg, Signal::SIGKILL);
        }
        outcome
    }

    /// `<meta_dir>/<agent>/<task>/qos.json` for cgroup-collector. Best effort.
    fn write_meta(&self, agent: &str, task: &str, uuid: Option<&str>) -> Option<PathBuf> {
        let dir = self.cfg.meta_dir.join(agent).join(sanitize_path(task));
        std::fs::create_dir_all(&dir).ok()?;
        let body = json!({
            "uuid": uuid.unwrap_or(""),
            "task_id": task,
            "name": task,
            "agent_id": agent,
            "cluster_id": self.id,
        });
        let path = dir.join("qos.json");
        std::fs::write(&path, body.to_string()).ok()?;
        Some(path)
    }

    fn remove_meta(&self, agent: &str, task: &str) {
        let dir = self.cfg.meta_dir.join(agent).join(sanitize_path(task));
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir(self.cfg.meta_dir.join(agent));
    }

    /// `/monitor/statistics` of one agent: one entry per running task.
    pub(crate) fn statistics(&self, agent: usize) -> Vec<ExecutorStatistics> {
        struct Snap {
            id: String,
            framework_id: String,
            executor_name: String,
            cpus: f64,
            mem: f64,
            pid: Option<u32>,
            cgroup: Option<Cgroup>,
        }
        let snaps: Vec<Snap> = {
            let st = self.lock();
            let mut v: Vec<Snap> = st
                .live
                .iter()
                .filter(|(_, l)| l.agent == agent && l.state != TaskState::Staging)
                .map(|(id, l)| Snap {
                    id: id.clone(),
                    framework_id: l.framework_id.clone(),
                    executor_name: l.executor_name.clone(),
                    cpus: l.cpus,
                    mem: l.mem,
                    pid: l.pid,
                    cgroup: l.cgroup.clone(),
                })
                .collect();
            v.sort_by(|a, b| a.id.cmp(&b.id));
            v
        };
        snaps
            .into_iter()
            .map(|s| {
                let mut stats = ResourceStatistics {
                    timestamp: epoch_secs(Utc::now()),
                    cpus_limit: Some(s.cpus),
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    mem_limit_bytes: Some((s.mem * 1_048_576.0) as u64),
                    ..ResourceStatistics::default()
                };
                if let Some(g) = &s.cgroup {
                    let c = g.stats();
                    stats.cpus_user_time_secs = Some(c.user_secs);
                    stats.cpus_system_time_secs = Some(c.system_secs);
                    stats.cpus_nr_periods = c.nr_periods;
                    stats.cpus_nr_throttled = c.nr_throttled;
                    stats.cpus_throttled_time_secs = c.throttled_secs;
                    stats.mem_rss_bytes = c.rss_bytes;
                    stats.processes = Some(c.processes);
                } else if let Some(pid) = s.pid {
                    let (u, sy) = cgroups::proc_cpu_secs(pid).unwrap_or((0.0, 0.0));
                    stats.cpus_user_time_secs = Some(u);
                    stats.cpus_system_time_secs = Some(sy);
                    stats.mem_rss_bytes = cgroups::proc_rss_bytes(pid);
                }
                ExecutorStatistics {
                    executor_id: s.id.clone(),
                    executor_name: s.executor_name,
                    framework_id: s.framework_id,
                    source: s.id,
                    statistics: stats,
                    extra: Map::new(),
                }
            })
            .collect()
    }

    /// `/state` of one agent, in the shape of the Mesos agent's (the fields that matter).
    pub(crate) fn agent_state(&self, agent: usize) -> Value {
        let a = &self.agents[agent];
        let st = self.lock();
        let used = st.used[agent];
        let mut frameworks: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
        let mut ids: Vec<&String> = st.live.keys().collect();
        ids.sort();
        for id in ids {
            let l = &st.live[id];
            if l.agent != agent {
                continue;
            }
            let resources = json!({"cpus": l.cpus, "mem": l.mem, "disk": l.disk,
                "ports": ports_ranges(&l.ports)});
            let mut task = json!({
                "id": id, "name": id, "framework_id": l.framework_id, "executor_id": "",
                "slave_id": a.id, "state": l.state.mesos_name(), "resources": resources,
            });
            if !l.labels.is_empty() {
                task["labels"] = l
                    .labels
                    .iter()
                    .map(|(k, v)| json!({"key": k, "value": v}))
                    .collect();
            }
            let container = l
                .container_id
                .clone()
                .or_else(|| l.cgroup.as_ref().map(|g| g.rel().display().to_string()))
                .unwrap_or_default();
            frameworks
                .entry(l.framework_id.clone())
                .or_default()
                .push(json!({
                    "id": id, "name": l.executor_name, "source": id, "container": container,
                    "directory": self.work_dir.join("agents").join(&a.id).join("tasks")
                        .join(crate::docker::container_name(id)).display().to_string(),
                    "resources": resources, "tasks": [task], "queued_tasks": [], "completed_tasks": [],
                    "pid": l.pid, "command": l.command_line,
                }));
        }
        let port = a
            .url
            .get()
            .and_then(|u| u.rsplit(':').next())
            .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
            .unwrap_or(0);
        json!({
            "version": "1.10.0",
            "id": a.id,
            "pid": format!("slave(1)@{}:{port}", a.hostname),
            "hostname": a.hostname,
            "port": port,
            "resources": {"cpus": a.cpus, "mem": a.mem, "disk": a.disk, "gpus": 0,
                "ports": "[31000-32000]"},
            "used_resources": {"cpus": used.cpus, "mem": used.mem, "disk": used.disk, "gpus": 0},
            "attributes": {},
            "frameworks": frameworks.into_iter().map(|(fid, executors)| json!({
                "id": fid, "executors": executors, "completed_executors": [],
            })).collect::<Vec<_>>(),
            "completed_frameworks": [],
            "flags": {
                "cgroups_enable_cfs": self.limits_enforced().to_string(),
                "cgroups_root": self.cfg.cgroup_prefix,
                "executor_shutdown_grace_period": format!("{}secs", self.cfg.docker_kill_grace_secs),
            },
            "qos_testbed": {
                "cluster_id": self.id,
                "cpu_limits_enforced": self.limits_enforced(),
                "cpu_limits_note": self.cgroup_note,
                "cgroup": a.cgroup.as_ref().map(|g| g.rel().display().to_string()),
                "runtime": match self.cfg.runtime { RuntimeKind::Process => "process", RuntimeKind::Docker => "docker" },
                "recovered": self.recovered,
            },
        })
    }

    /// Stops everything: queued tasks are dropped, running ones killed (each with its grace),
    /// cgroups, metadata and the temporary work directory removed.
    pub(crate) async fn shutdown(&self) {
        let (pending, live): (Vec<Pending>, Vec<String>) = {
            let mut st = self.lock();
            st.closed = true;
            (
                st.pending.drain(..).collect(),
                st.live.keys().cloned().collect(),
            )
        };
        self.shutdown.cancel();
        for p in pending {
            let _ = p.sink.send(TaskUpdate {
                task_id: p.spec.task_id,
                state: TaskState::Killed,
                agent_id: String::new(),
                host: String::new(),
                ports: Vec::new(),
                message: "the testbed is shutting down".to_owned(),
                at: Utc::now(),
            });
        }
        let waits: Vec<_> = live.iter().map(|id| self.kill(id, None)).collect();
        futures_util::future::join_all(waits).await;
        self.tracker.close();
        self.tracker.wait().await;
        for a in &self.agents {
            if let Some(g) = &a.cgroup {
                if let Err(e) = g.destroy(Duration::from_secs(2)) {
                    tracing::warn!("agent {}: cgroup cleanup: {e}", a.id);
                }
            }
            let _ = std::fs::remove_dir_all(self.cfg.meta_dir.join(&a.id));
        }
        if let Some(layout) = &self.cgroups {
            layout.remove_prefix(&self.cfg.cgroup_prefix);
        }
        let _ = std::fs::remove_dir(&self.cfg.meta_dir);
        if self.owns_work_dir {
            let _ = std::fs::remove_dir_all(&self.work_dir);
        }
        if let Some(r) = &self.registry {
            r.close();
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

fn status_outcome(status: std::io::Result<std::process::ExitStatus>) -> Outcome {
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

/// Waits (up to 2 s) until `pid` is in the last of its cgroups and has `exec`ed the command.
async fn wait_joined(g: &Cgroup, pid: u32) {
    let last = g.procs_files().pop();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while tokio::time::Instant::now() < deadline {
        let gone = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z'))
            })
            .unwrap_or(true);
        if gone {
            return;
        }
        let joined = last.as_ref().is_none_or(|f| {
            std::fs::read_to_string(f)
                .map(|t| t.lines().any(|l| l.trim() == pid.to_string()))
                .unwrap_or(true)
        });
        let execed = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| !c.windows(16).any(|w| w == b"qos-testbed-task"))
            .unwrap_or(true);
        if joined && execed {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
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

/// Host ports for a task: free ports picked by the kernel (all agents share this host).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .filter_map(|_| std::net::TcpListener::bind("127.0.0.1:0").ok())
        .collect();
    listeners
        .iter()
        .filter_map(|l| l.local_addr().ok().map(|a| a.port()))
        .collect()
}

fn ports_ranges(ports: &[u16]) -> String {
    let parts: Vec<String> = ports.iter().map(|p| format!("{p}-{p}")).collect();
    format!("[{}]", parts.join(", "))
}

/// A task id as one path component (task ids never hold `/`, but be safe).
pub(crate) fn sanitize_path(id: &str) -> String {
    id.replace(['/', '\0'], "_")
}
