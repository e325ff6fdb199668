//! Marathon emulator (`/v2/apps`, `/v2/tasks`, `/v2/deployments`, `/v2/info`, `/ping`), modelled
//! on Marathon 1.5–1.10.
//!
//! # What is reproduced
//! - App definitions are read as Marathon reads them ([`app`]): unknown keys dropped, defaults
//!   filled in, legacy `container.docker.network` turned into `networks`, the real error bodies
//!   (422 "Invalid JSON" / "Object is not valid" with `details`, 400 for malformed JSON, 404
//!   `App '/x' does not exist`, 409 duplicate id, 409 locked with `deployments`).
//! - Every change is a deployment (`Marathon-Deployment-Id` header, `/v2/deployments` until it
//!   is done): create = `StartApplication` + `ScaleApplication`, a change of anything but
//!   `instances` = `RestartApplication` (new tasks with the new resources and environment), an
//!   `instances` change alone = `ScaleApplication`, delete = `StopApplication`. While one runs,
//!   another change of the app is refused with 409 unless `?force=true` (which cancels it).
//! - Restarts follow `upgradeStrategy` as Marathon's task replacer does: with `n` instances,
//!   `minHealthy = ceil(n·minimumHealthCapacity)` running tasks are kept, at most
//!   `floor(n·(1+maximumOverCapacity))` tasks exist at once, an old task is killed whenever more
//!   than `minHealthy` tasks run, and when neither a launch nor a kill is allowed
//!   (`minimumHealthCapacity = 1`, `maximumOverCapacity = 0`) one old task is killed to make
//!   progress. So `{0, 0}` kills first (SIGTERM, then SIGKILL after the grace, then the new task
//!   starts), and the default `{1, 1}` starts the new task first — which, as on a real cluster,
//!   waits until an agent has room for it next to the old one.
//! - Kills: SIGTERM, then SIGKILL after `taskKillGracePeriodSeconds` (the command executor's
//!   3 s when unset; 5 s for Docker tasks).
//! - Tasks that end on their own (finished or failed) are relaunched after the back-off:
//!   `backoffSeconds`, multiplied by `backoffFactor` for each further failure, capped at
//!   `maxLaunchDelaySeconds`; a delay is forgotten once it is overdue by `maxLaunchDelaySeconds`
//!   and on every configuration change (Marathon's rate limiter).
//! - The task environment of `TaskBuilder`: `MESOS_TASK_ID` (1.5+ form
//!   `<app>.instance-<uuid>._app.1`), `MARATHON_APP_ID`, `MARATHON_APP_VERSION`,
//!   `MARATHON_APP_RESOURCE_{CPUS,MEM,DISK,GPUS}` (Scala `Double.toString`: `1.0`),
//!   `MARATHON_APP_DOCKER_IMAGE`, `MARATHON_APP_LABELS` and `MARATHON_APP_LABEL_<NAME>`, `HOST`,
//!   `PORT0…`, `PORT`, `PORTS`, `PORT_<NAME>`, and the app's `env` last (it overrides).
//!
//! - Health checks (`HTTP`, `TCP`, `COMMAND` and the `MESOS_*` forms) are executed against the
//!   running task ([`health`]): `healthCheckResults` on each task, `tasksHealthy` and
//!   `tasksUnhealthy` on the app, a task killed (and replaced) after `maxConsecutiveFailures`, a
//!   deployment done once its new tasks are healthy.
//!
//! # Simplifications (documented, not hidden)
//! No readiness checks, no constraints, no groups API, no event stream, no pods; `DELETE /v2/deployments/{id}` without
//! `force` cancels without rolling back (it answers like Marathon, with a new deployment id).

pub(crate) mod app;
mod health;
mod http;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::formats::{iso_millis, java_double, uuid_v4};
use crate::framework::Framework;
use crate::task::{ContainerSpec, TaskCommand, TaskSpec, TaskState, TaskUpdate, Volume};

pub(crate) use http::router;

/// A task of an app.
#[derive(Debug, Clone)]
struct MTask {
    id: String,
    /// The app version (config) it runs.
    version: String,
    state: TaskState,
    placed: bool,
    agent_id: String,
    host: String,
    ports: Vec<u16>,
    service_ports: Vec<u64>,
    staged_at: String,
    started_at: Option<String>,
    kill_requested: bool,
    /// One result per health check of the app version the task runs.
    health: Vec<health::Health>,
}

#[derive(Debug, Clone, Copy)]
struct Backoff {
    delay: f64,
    until: Instant,
}

/// Kind of a deployment (its single action).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Start,
    Restart,
    Scale,
    Stop,
}

#[derive(Debug, Clone)]
struct Deployment {
    id: String,
    version: String,
    app: String,
    action: Action,
}

#[derive(Debug)]
struct AppRec {
    def: Map<String, Value>,
    version: String,
    config_version: String,
    last_scaling_at: String,
    versions: Vec<String>,
    tasks: BTreeMap<String, MTask>,
    backoff: Option<Backoff>,
    last_task_failure: Option<Value>,
    deployment: Option<String>,
    deleted: bool,
}

#[derive(Default)]
pub(crate) struct MState {
    apps: BTreeMap<String, AppRec>,
    deployments: BTreeMap<String, Deployment>,
    task_app: HashMap<String, String>,
    next_service_port: u64,
}

/// The Marathon emulator.
pub(crate) struct Marathon {
    framework: Framework<MState>,
    base: String,
}

/// The shared scaffolding's fields and `lock`/`bump`/`stop` read as the emulator's own.
impl std::ops::Deref for Marathon {
    type Target = Framework<MState>;

    fn deref(&self) -> &Self::Target {
        &self.framework
    }
}

enum Act {
    Launch(Box<TaskSpec>),
    Kill(String, Option<Duration>),
}

impl Marathon {
    pub(crate) fn start(cluster: &Arc<Cluster>, base: &str) -> Arc<Self> {
        let state = MState {
            next_service_port: 10_000,
            ..MState::default()
        };
        let (framework, rx) = Framework::new(cluster, 0, state);
        let m = Arc::new(Self {
            framework,
            base: base.to_owned(),
        });
        let me = Arc::clone(&m);
        cluster.spawn(async move { me.update_loop(rx).await });
        m
    }

    async fn update_loop(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<TaskUpdate>) {
        loop {
            let u = tokio::select! {
                u = rx.recv() => match u { Some(u) => u, None => return },
                () = self.stop.cancelled() => return,
            };
            if let Some((app_id, checks, target)) = self.apply_update(&u) {
                for (i, check) in checks.into_iter().enumerate() {
                    let me = Arc::clone(&self);
                    let (app_id, target) = (app_id.clone(), target.clone());
                    self.cluster
                        .spawn(async move { me.watch_health(app_id, i, check, target).await });
                }
            }
            self.bump();
        }
    }

    /// Applies a status update; when a task starts running in an app with health checks, returns
    /// what its watchers need.
    fn apply_update(&self, u: &TaskUpdate) -> Option<(String, Vec<health::Check>, health::Target)> {
        let mut st = self.lock();
        let app_id = st.task_app.get(&u.task_id).cloned()?;
        let app = st.apps.get_mut(&app_id)?;
        let t = app.tasks.get_mut(&u.task_id)?;
        if u.state.is_terminal() {
            let t = app
                .tasks
                .remove(&u.task_id)
                .unwrap_or_else(|| unreachable!());
            let unexpected = !t.kill_requested && !app.deleted;
            if u.state == TaskState::Failed {
                app.last_task_failure = Some(json!({
                    "appId": app_id, "host": u.host, "message": u.message,
                    "state": u.state.mesos_name(), "taskId": u.task_id,
                    "timestamp": iso_millis(u.at), "version": t.version, "slaveId": u.agent_id,
                }));
            }
            if unexpected {
                let secs = |k: &str, d: f64| app.def.get(k).and_then(Value::as_f64).unwrap_or(d);
                let base = secs("backoffSeconds", 1.0);
                let factor = secs("backoffFactor", 1.15);
                let max = secs("maxLaunchDelaySeconds", 300.0);
                let now = Instant::now();
                let delay = match app.backoff {
                    Some(b) if now < b.until + Duration::from_secs_f64(max) => {
                        (b.delay * factor).min(max)
                    }
                    _ => base.min(max),
                };
                app.backoff = Some(Backoff {
                    delay,
                    until: now + Duration::from_secs_f64(delay.max(0.0)),
                });
            }
            st.task_app.remove(&u.task_id);
            None
        } else {
            t.state = u.state;
            if u.state == TaskState::Staging {
                t.placed = true;
                t.agent_id.clone_from(&u.agent_id);
                t.host.clone_from(&u.host);
                t.ports.clone_from(&u.ports);
                t.staged_at = iso_millis(u.at);
            }
            if u.state == TaskState::Running && t.started_at.is_none() {
                t.started_at = Some(iso_millis(u.at));
                let checks = health::checks(&app.def);
                if !checks.is_empty() {
                    t.health = vec![health::Health::default(); checks.len()];
                    let target = health::Target {
                        task_id: t.id.clone(),
                        app_id: app_id.clone(),
                        host: t.host.clone(),
                        ports: t.ports.clone(),
                        sandbox: self.cluster.sandbox_of(&t.agent_id, &t.id),
                    };
                    return Some((app_id, checks, target));
                }
            }
            None
        }
    }

    /// Probes one health check of a running task every interval until the task is gone; kills it
    /// after too many failures (the controller then launches a replacement).
    async fn watch_health(
        self: Arc<Self>,
        app_id: String,
        index: usize,
        check: health::Check,
        target: health::Target,
    ) {
        let started = Instant::now();
        loop {
            {
                let st = self.lock();
                let running = st
                    .apps
                    .get(&app_id)
                    .and_then(|a| a.tasks.get(&target.task_id))
                    .is_some_and(|t| t.state == TaskState::Running && !t.kill_requested);
                if !running {
                    return;
                }
            }
            let result = tokio::select! {
                r = health::probe(&check, &target) => r,
                () = self.stop.cancelled() => return,
            };
            let kill = {
                let mut st = self.lock();
                let Some(app) = st.apps.get_mut(&app_id) else {
                    return;
                };
                let grace = app
                    .def
                    .get("taskKillGracePeriodSeconds")
                    .and_then(Value::as_f64)
                    .map(Duration::from_secs_f64);
                let Some(t) = app.tasks.get_mut(&target.task_id) else {
                    return;
                };
                let Some(h) = t.health.get_mut(index) else {
                    return;
                };
                let in_grace = started.elapsed() < check.grace;
                let kill = health::record(h, &check, result, in_grace, &iso_millis(Utc::now()));
                if kill {
                    t.kill_requested = true;
                }
                kill.then_some(grace)
            };
            self.bump();
            if let Some(grace) = kill {
                tracing::info!(task = %target.task_id, "unhealthy: killed after failed health checks");
                let k = self.cluster.kill(&target.task_id, grace);
                self.cluster.spawn(k);
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(check.interval) => {}
                () = self.stop.cancelled() => return,
            }
        }
    }

    /// Starts the controller of an app (one per app, until the app is gone).
    fn spawn_controller(self: &Arc<Self>, app_id: String) {
        let me = Arc::clone(self);
        self.cluster
            .spawn(async move { me.controller(app_id).await });
    }

    async fn controller(self: Arc<Self>, app_id: String) {
        let mut generation = self.generation.subscribe();
        loop {
            generation.mark_unchanged();
            let (acts, wake, finished) = self.plan(&app_id);
            let had_acts = !acts.is_empty();
            for a in acts {
                match a {
                    Act::Launch(spec) => self.cluster.launch(*spec, self.sink.clone()),
                    Act::Kill(id, grace) => {
                        let kill = self.cluster.kill(&id, grace);
                        self.cluster.spawn(kill);
                    }
                }
            }
            if finished {
                return;
            }
            if had_acts {
                continue;
            }
            let sleep = async {
                match wake {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = generation.changed() => if r.is_err() { return },
                () = sleep => {}
                () = self.stop.cancelled() => return,
            }
        }
    }

    /// Decides what to launch and kill now; returns (actions, wake-up time, app gone).
    fn plan(&self, app_id: &str) -> (Vec<Act>, Option<Instant>, bool) {
        let mut st = self.lock();
        let mut acts = Vec::new();
        let st = &mut *st;
        let Some(app) = st.apps.get_mut(app_id) else {
            return (acts, None, true);
        };
        let grace = app
            .def
            .get("taskKillGracePeriodSeconds")
            .and_then(Value::as_f64)
            .map(Duration::from_secs_f64);
        if app.deleted {
            for t in app.tasks.values_mut().filter(|t| !t.kill_requested) {
                t.kill_requested = true;
                acts.push(Act::Kill(t.id.clone(), grace));
            }
            if app.tasks.is_empty() {
                if let Some(d) = app.deployment.take() {
                    st.deployments.remove(&d);
                }
                st.apps.remove(app_id);
                return (acts, None, true);
            }
            return (acts, None, false);
        }
        let n = app
            .def
            .get("instances")
            .and_then(Value::as_u64)
            .unwrap_or(1);
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        let target = app.config_version.clone();
        let alive = |t: &&MTask| !t.state.is_terminal();
        let old: Vec<&MTask> = app
            .tasks
            .values()
            .filter(|t| t.version != target)
            .filter(alive)
            .collect();
        let new: Vec<&MTask> = app
            .tasks
            .values()
            .filter(|t| t.version == target)
            .filter(alive)
            .collect();
        let running = |t: &&&MTask| t.state == TaskState::Running && !t.kill_requested;
        let new_running = new.iter().filter(running).count();
        let new_active = new.iter().filter(|t| !t.kill_requested).count();
        let now = Instant::now();
        let backoff_until = app.backoff.map(|b| b.until).filter(|u| *u > now);
        let mut to_kill: Vec<String> = Vec::new();
        let mut launches = 0usize;
        if old.is_empty() {
            if new_active < n {
                if backoff_until.is_none() {
                    launches = n - new_active;
                }
            } else if new_active > n {
                // Scale down: YOUNGEST_FIRST (default) or OLDEST_FIRST.
                let mut cands: Vec<&&MTask> = new.iter().filter(|t| !t.kill_requested).collect();
                cands.sort_by(|a, b| a.staged_at.cmp(&b.staged_at).then(a.id.cmp(&b.id)));
                let youngest =
                    app.def.get("killSelection").and_then(Value::as_str) != Some("OLDEST_FIRST");
                if youngest {
                    cands.reverse();
                }
                to_kill.extend(cands.iter().take(new_active - n).map(|t| t.id.clone()));
            }
        } else {
            let us = app.def.get("upgradeStrategy");
            let f = |k: &str, d: f64| {
                us.and_then(|u| u.get(k))
                    .and_then(Value::as_f64)
                    .unwrap_or(d)
            };
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss
            )]
            let (min_healthy, max_cap) = {
                let nf = n as f64;
                (
                    (nf * f("minimumHealthCapacity", 1.0)).ceil() as usize,
                    ((nf * (1.0 + f("maximumOverCapacity", 1.0))).floor() as usize).max(n),
                )
            };
            let old_running: Vec<&&MTask> = old.iter().filter(running).collect();
            let healthy = old_running.len() + new_running;
            let mut killable = healthy.saturating_sub(min_healthy);
            // Kill old tasks that are not running yet first, then the running ones.
            let mut cands: Vec<&&MTask> = old
                .iter()
                .filter(|t| !t.kill_requested && t.state != TaskState::Running)
                .collect();
            for t in cands.drain(..) {
                to_kill.push(t.id.clone());
            }
            for t in &old_running {
                if killable == 0 {
                    break;
                }
                to_kill.push(t.id.clone());
                killable -= 1;
            }
            let total = old.len() + new_active;
            if new_active < n && total < max_cap && backoff_until.is_none() {
                launches = (max_cap - total).min(n - new_active);
            }
            let killing = old.iter().any(|t| t.kill_requested);
            if launches == 0 && to_kill.is_empty() && !killing && new_active < n {
                // minimumHealthCapacity 1 with no over-capacity: kill one to make progress.
                if let Some(t) = old.first() {
                    to_kill.push(t.id.clone());
                }
            }
        }
        for id in &to_kill {
            if let Some(t) = app.tasks.get_mut(id) {
                t.kill_requested = true;
                acts.push(Act::Kill(id.clone(), grace));
            }
        }
        for _ in 0..launches {
            let (spec, task) = self.task_for(app_id, app, &mut st.next_service_port);
            st.task_app.insert(task.id.clone(), app_id.to_owned());
            app.tasks.insert(task.id.clone(), task);
            acts.push(Act::Launch(Box::new(spec)));
        }
        // Deployment done?
        if acts.is_empty() {
            let alive_old = app.tasks.values().any(|t| t.version != target);
            let new_all: Vec<&MTask> = app.tasks.values().collect();
            // With health checks, a task counts once every check has passed.
            let done = !alive_old
                && new_all.len() == n
                && new_all.iter().all(|t| {
                    t.state == TaskState::Running
                        && !t.kill_requested
                        && t.health.iter().all(|h| h.alive)
                });
            if done {
                if let Some(d) = app.deployment.take() {
                    st.deployments.remove(&d);
                }
            }
        }
        (acts, backoff_until, false)
    }

    /// A new task of `app` (not yet launched) and its record.
    fn task_for(
        &self,
        app_id: &str,
        app: &AppRec,
        next_service_port: &mut u64,
    ) -> (TaskSpec, MTask) {
        let def = &app.def;
        let task_id = format!("{}.instance-{}._app.1", app::task_prefix(app_id), uuid_v4());
        let num = |k: &str, d: f64| def.get(k).and_then(Value::as_f64).unwrap_or(d);
        let (cpus, mem, disk, gpus) = (
            num("cpus", 1.0),
            num("mem", 128.0),
            num("disk", 0.0),
            num("gpus", 0.0),
        );
        let port_defs: Vec<Value> = def
            .get("portDefinitions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let port_names: Vec<Option<String>> = port_defs
            .iter()
            .map(|p| p.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect();
        let service_ports: Vec<u64> = port_defs
            .iter()
            .map(|p| {
                p.get("port")
                    .and_then(Value::as_u64)
                    .filter(|p| *p > 0)
                    .unwrap_or_else(|| {
                        *next_service_port += 1;
                        *next_service_port - 1
                    })
            })
            .collect();
        let command = if let Some(c) = def.get("cmd").and_then(Value::as_str) {
            TaskCommand::Shell(c.to_owned())
        } else if let Some(a) = def.get("args").and_then(Value::as_array) {
            TaskCommand::Argv(
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
            )
        } else {
            TaskCommand::Image
        };
        let container = def.get("container").and_then(|c| {
            let d = c.get("docker")?;
            let image = d.get("image")?.as_str()?.to_owned();
            let mode = def
                .get("networks")
                .and_then(|n| n.get(0))
                .and_then(|n| n.get("mode"))
                .and_then(Value::as_str)
                .unwrap_or("host");
            Some(ContainerSpec {
                image,
                network: Some(if mode == "host" { "HOST" } else { "BRIDGE" }.to_owned()),
                volumes: volumes(c.get("volumes")),
                parameters: params(d.get("parameters")),
                force_pull: d
                    .get("forcePullImage")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            })
        });
        let labels: Vec<(String, String)> = def
            .get("labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        let user_env: Vec<(String, String)> = def
            .get("env")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        let uuid = user_env
            .iter()
            .chain(labels.iter())
            .find(|(k, _)| k == "QOS_UUID" || k == "qos.uuid" || k == "qos_uuid")
            .map(|(_, v)| v.clone());
        let image = container.as_ref().map(|c| c.image.clone());
        let env_task_id = task_id.clone();
        let env_app_id = app_id.to_owned();
        let env_version = app.config_version.clone();
        let task_labels = labels.clone();
        let env: crate::task::EnvBuilder = Box::new(move |offer| {
            let mut env = vec![
                ("MARATHON_APP_VERSION".to_owned(), env_version),
                ("HOST".to_owned(), offer.hostname.clone()),
                ("MARATHON_APP_RESOURCE_CPUS".to_owned(), java_double(cpus)),
                (
                    "MARATHON_APP_RESOURCE_GPUS".to_owned(),
                    java_double(gpus).trim_end_matches(".0").to_owned(),
                ),
                ("MARATHON_APP_RESOURCE_MEM".to_owned(), java_double(mem)),
                ("MARATHON_APP_RESOURCE_DISK".to_owned(), java_double(disk)),
            ];
            let label_names: Vec<String> = labels
                .iter()
                .filter(|(k, v)| k.len() <= 512 && v.len() <= 512)
                .map(|(k, _)| sanitize_env_name(k))
                .collect();
            env.push(("MARATHON_APP_LABELS".to_owned(), label_names.join(" ")));
            for (i, p) in offer.ports.iter().enumerate() {
                env.push((format!("PORT{i}"), p.to_string()));
                if let Some(Some(name)) = port_names.get(i) {
                    env.push((format!("PORT_{}", sanitize_env_name(name)), p.to_string()));
                }
            }
            if let Some(p) = offer.ports.first() {
                env.push(("PORT".to_owned(), p.to_string()));
            }
            env.push((
                "PORTS".to_owned(),
                offer
                    .ports
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            ));
            if let Some(img) = image {
                env.push(("MARATHON_APP_DOCKER_IMAGE".to_owned(), img));
            }
            env.push(("MESOS_TASK_ID".to_owned(), env_task_id));
            env.push(("MARATHON_APP_ID".to_owned(), env_app_id));
            for (k, v) in &labels {
                if k.len() <= 512 && v.len() <= 512 {
                    env.push((
                        format!("MARATHON_APP_LABEL_{}", sanitize_env_name(k)),
                        v.clone(),
                    ));
                }
            }
            env.extend(user_env);
            env
        });
        let spec = TaskSpec {
            task_id: task_id.clone(),
            framework_id: self.framework_id.clone(),
            command,
            cpus,
            mem,
            disk,
            ports: port_defs.len(),
            env,
            container,
            kill_grace: def
                .get("taskKillGracePeriodSeconds")
                .and_then(Value::as_f64)
                .map(Duration::from_secs_f64),
            uuid,
            labels: task_labels,
        };
        let task = MTask {
            id: task_id,
            version: app.config_version.clone(),
            state: TaskState::Staging,
            placed: false,
            agent_id: String::new(),
            host: String::new(),
            ports: Vec::new(),
            service_ports,
            staged_at: iso_millis(Utc::now()),
            started_at: None,
            kill_requested: false,
            health: Vec::new(),
        };
        (spec, task)
    }

    fn task_json(app_id: &str, t: &MTask) -> Value {
        let mut v = json!({
            "appId": app_id,
            "id": t.id,
            "host": t.host,
            "slaveId": t.agent_id,
            "state": t.state.mesos_name(),
            "stagedAt": t.staged_at,
            "startedAt": t.started_at,
            "version": t.version,
            "ports": t.ports,
            "servicePorts": t.service_ports,
            "ipAddresses": [{"ipAddress": t.host, "protocol": "IPv4"}],
            "localVolumes": [],
            "role": "*",
        });
        if !t.health.is_empty() {
            let instance = t.id.rsplit_once("._app").map_or(t.id.as_str(), |(i, _)| i);
            v["healthCheckResults"] =
                Value::Array(t.health.iter().map(|h| h.json(instance)).collect());
        }
        v
    }

    fn app_info(&self, st: &MState, app_id: &str, embed_tasks: bool) -> Option<Value> {
        let app = st.apps.get(app_id).filter(|a| !a.deleted)?;
        let mut m = app.def.clone();
        m.insert("version".into(), json!(app.version));
        m.insert(
            "versionInfo".into(),
            json!({"lastScalingAt": app.last_scaling_at, "lastConfigChangeAt": app.config_version}),
        );
        let placed: Vec<&MTask> = app.tasks.values().filter(|t| t.placed).collect();
        let count = |s: TaskState| placed.iter().filter(|t| t.state == s).count();
        m.insert(
            "tasksStaged".into(),
            json!(count(TaskState::Staging) + count(TaskState::Starting)),
        );
        m.insert("tasksRunning".into(), json!(count(TaskState::Running)));
        let running: Vec<&&MTask> = placed
            .iter()
            .filter(|t| t.state == TaskState::Running && !t.health.is_empty())
            .collect();
        m.insert(
            "tasksHealthy".into(),
            json!(
                running
                    .iter()
                    .filter(|t| t.health.iter().all(|h| h.alive))
                    .count()
            ),
        );
        m.insert(
            "tasksUnhealthy".into(),
            json!(
                running
                    .iter()
                    .filter(|t| t
                        .health
                        .iter()
                        .any(|h| !h.alive && h.last_failure.is_some()))
                    .count()
            ),
        );
        m.insert(
            "deployments".into(),
            json!(
                app.deployment
                    .iter()
                    .map(|d| json!({"id": d}))
                    .collect::<Vec<_>>()
            ),
        );
        if embed_tasks {
            m.insert(
                "tasks".into(),
                Value::Array(placed.iter().map(|t| Self::task_json(app_id, t)).collect()),
            );
            if let Some(f) = &app.last_task_failure {
                m.insert("lastTaskFailure".into(), f.clone());
            }
        }
        Some(Value::Object(m))
    }

    fn deployment_json(d: &Deployment) -> Value {
        let steps: Vec<Vec<&str>> = match d.action {
            Action::Start => vec![vec!["StartApplication"], vec!["ScaleApplication"]],
            Action::Restart => vec![vec!["RestartApplication"]],
            Action::Scale => vec![vec!["ScaleApplication"]],
            Action::Stop => vec![vec!["StopApplication"]],
        };
        let current = steps.last().cloned().unwrap_or_default();
        json!({
            "id": d.id,
            "version": d.version,
            "affectedApps": [d.app],
            "affectedPods": [],
            "steps": steps.iter().map(|s| json!({"actions": s.iter().map(|a| json!({"action": a, "app": d.app})).collect::<Vec<_>>()})).collect::<Vec<_>>(),
            "currentActions": current.iter().map(|a| json!({"action": a, "app": d.app, "readinessCheckResults": []})).collect::<Vec<_>>(),
            "currentStep": steps.len(),
            "totalSteps": steps.len(),
        })
    }
}

fn volumes(v: Option<&Value>) -> Vec<Volume> {
    v.and_then(Value::as_array)
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

fn params(v: Option<&Value>) -> Vec<(String, String)> {
    v.and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|p| {
                    Some((
                        p.get("key")?.as_str()?.to_owned(),
                        p.get("value")?.as_str()?.to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `[A-Za-z0-9_]`, upper-cased, as Marathon's `EnvironmentHelper` names label and port vars.
fn sanitize_env_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}
