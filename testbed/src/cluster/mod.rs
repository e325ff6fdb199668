//! The emulated Mesos cluster: agents with real CPU capacity, a placement loop that behaves like
//! Mesos offers (a task goes to the least-loaded agent that has room; tasks that fit nowhere
//! wait), and the task lifecycle (launch, status updates, SIGTERM → grace → SIGKILL, reaping,
//! cgroup cleanup).
//!
//! The frameworks (Marathon and Chronos emulators) submit [`TaskSpec`]s and receive
//! [`TaskUpdate`]s on a channel, as a Mesos framework receives status updates.

mod gc;
mod observe;
mod placement;
mod process;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use chrono::Utc;
use frameworks::{ExecutorStatistics, ResourceStatistics};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cgroups::{self, Cgroup, CgroupLayout};
use crate::config::{Config, RuntimeKind};
use crate::docker::DockerRuntime;
use crate::formats::{epoch_secs, shell_quote, uuid_v4};
use crate::task::{
    Outcome, Placement, Resources, TaskCommand, TaskSpec, TaskState, TaskUpdate, UpdateSink,
    sanitize_path, status_outcome, wait_kill,
};

/// One emulated agent.
#[derive(Debug)]
pub(crate) struct Agent {
    pub(crate) index: usize,
    /// Mesos agent id, `<cluster uuid>-S<n>`; also the agent's cgroup directory name.
    pub(crate) id: String,
    pub(crate) hostname: String,
    /// What it offers.
    pub(crate) resources: Resources,
    pub(crate) cgroup: Option<Cgroup>,
    pub(crate) url: OnceLock<String>,
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
    resources: Resources,
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
    /// Per agent, what its tasks hold.
    used: Vec<Resources>,
    /// The sandboxes of ended tasks until they are removed.
    sandbox_gc: gc::SandboxGc,
    closed: bool,
}

/// The emulated cluster: its agents and their cgroups, the queued and running tasks, the
/// runtimes, and the recovery record.
pub(crate) struct Cluster {
    pub(crate) cfg: Config,
    pub(crate) id: String,
    pub(crate) agents: Vec<Agent>,
    state: Mutex<State>,
    wake: Notify,
    /// Bumped whenever a task's resources are given back: a framework holding a launch queue (a
    /// count, not tasks) waits on it for room, as for an offer.
    room: watch::Sender<u64>,
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
        let (agents, cgroups, cgroup_note) = agents(&cfg, &id);
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
        let registry = open_registry(&cfg, record);
        let state = State {
            used: vec![Resources::default(); agents.len()],
            sandbox_gc: gc::SandboxGc::new(Duration::from_secs_f64(cfg.sandbox_gc_delay_secs)),
            ..State::default()
        };
        let cluster = Arc::new(Self {
            cfg,
            id,
            agents,
            state: Mutex::new(state),
            wake: Notify::new(),
            room: watch::channel(0).0,
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

    /// Changes whenever resources are given back (a task ended): what a framework waiting for room
    /// ([`Cluster::launch_if_room`]) waits on.
    pub(crate) fn room_freed(&self) -> watch::Receiver<u64> {
        self.room.subscribe()
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
                let _ = sink.send(TaskUpdate::killed_unplaced(
                    spec.task_id,
                    "the testbed is shutting down",
                ));
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
                    let _ = p.sink.send(TaskUpdate::killed_unplaced(
                        p.spec.task_id,
                        "killed before it was launched",
                    ));
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

    fn set_state(&self, task_id: &str, state: TaskState) {
        if let Some(l) = self.lock().live.get_mut(task_id) {
            l.state = state;
        }
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
            let _ = p.sink.send(TaskUpdate::killed_unplaced(
                p.spec.task_id,
                "the testbed is shutting down",
            ));
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

/// One agent per `cfg.agents`, each with its cgroup (quota = its CPUs) when the machine's
/// cgroups can be written. Should any cgroup fail, none is kept (limits are then enforced
/// nowhere, not on some agents only); the note says why, and is logged.
fn agents(cfg: &Config, id: &str) -> (Vec<Agent>, Option<CgroupLayout>, Option<String>) {
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
            resources: Resources {
                cpus: cfg.cpus_per_agent,
                mem: cfg.mem_per_agent,
                disk: cfg.disk_per_agent,
            },
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
    (agents, cgroups, cgroup_note)
}

/// This testbed's recovery record in `state_dir` (none, with a warning, when it cannot be
/// written).
fn open_registry(
    cfg: &Config,
    record: crate::recovery::Record,
) -> Option<crate::recovery::Registry> {
    match crate::recovery::Registry::open(&cfg.state_dir, record) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(
                "no recovery record in {} ({e}): should this testbed die without stopping, \
                 the next one cannot clean up its tasks",
                cfg.state_dir.display()
            );
            None
        }
    }
}
