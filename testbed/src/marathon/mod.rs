//! Marathon emulator (`/v2/apps`, `/v2/tasks`, `/v2/queue`, `/v2/deployments`, `/v2/info`,
//! `/ping`), modelled on Marathon 1.5–1.10.
//!
//! # What is reproduced
//! - App definitions are read as Marathon reads them ([`app`]): unknown keys dropped, defaults
//!   filled in, legacy `container.docker.network` turned into `networks`, the real error bodies
//!   (422 "Invalid JSON" / "Object is not valid" with `details`, 400 for malformed JSON, 404
//!   `App '/x' does not exist`, 409 duplicate id, 409 locked with `deployments`; a body that
//!   did not arrive in full within the header timeout of its head, 400, or is past axum's 2 MiB,
//!   413, are `{"message"}` too).
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
//! - The launch queue is a count, as Marathon's: an instance becomes a task only when an agent
//!   has room for it (an offer fits), so `tasks`, `tasksStaged`/`tasksRunning` and the memory
//!   held follow what runs, not `instances` (2^31 − 1 is a valid `instances`). `/v2/queue`
//!   lists each app with instances waiting: `count`, `delay` (`timeLeftSeconds` of the launch
//!   back-off, `overdue` once it passed), `since`, `app`. A waiting launch is tried again
//!   whenever a task of the cluster gives its resources back.
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
//! - An app keeps its 50 newest versions (Marathon's `zk_max_versions` default), as
//!   `/v2/apps/{id}/versions` lists them. A version is the change's time to the millisecond,
//!   1 ms past the app's last one when that is not earlier, so that two changes in the same
//!   millisecond (or a clock set back) never share a version.
//!
//! # Simplifications (documented, not hidden)
//! No readiness checks, no groups API, no event stream, no pods; `constraints` are checked as
//! Marathon checks them (operators, values) but not applied at placement: any agent with room
//! takes the task, where Marathon would leave it waiting for an agent with the attribute;
//! `DELETE /v2/deployments/{id}` without `force` cancels without rolling back (it answers like
//! Marathon, with a new deployment id).

pub(crate) mod app;
mod health;
mod http;
mod launch;
mod plan;
mod views;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::formats::iso_millis;
use crate::framework::Framework;
use crate::task::{Placement, TaskState, TaskUpdate};

pub(crate) use http::router;

/// A task of an app.
#[derive(Debug, Clone)]
struct MTask {
    id: String,
    /// The app version (config) it runs.
    version: String,
    state: TaskState,
    /// Where it runs, from its first status update on.
    placement: Option<Placement>,
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

/// How many versions of an app are kept (`/v2/apps/{id}/versions`): Marathon's `zk_max_versions`
/// default (50; it applies to every store), the oldest forgotten past it.
const MAX_VERSIONS: usize = 50;

#[derive(Debug)]
struct AppRec {
    def: Map<String, Value>,
    version: String,
    config_version: String,
    last_scaling_at: String,
    /// Oldest first, at most [`MAX_VERSIONS`] ([`AppRec::add_version`]).
    versions: Vec<String>,
    /// Placed tasks only: an instance no agent has room for is a count in `queued`.
    tasks: BTreeMap<String, MTask>,
    /// The launch queue: instances of the current version waiting for room (`/v2/queue`).
    queued: usize,
    /// When `queued` last became non-zero.
    queued_since: Option<String>,
    backoff: Option<Backoff>,
    last_task_failure: Option<Value>,
    deployment: Option<String>,
    deleted: bool,
}

impl AppRec {
    /// Records a new version; past [`MAX_VERSIONS`] the oldest are forgotten, as Marathon's
    /// store does, so an app changed every second keeps 50 versions, not one per change.
    fn add_version(&mut self, version: String) {
        self.versions.push(version);
        let extra = self.versions.len().saturating_sub(MAX_VERSIONS);
        self.versions.drain(..extra);
    }
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
        while let Some(u) = self.next_update(&mut rx).await {
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
                    "appId": app_id, "host": u.placement.host, "message": u.message,
                    "state": u.state.mesos_name(), "taskId": u.task_id,
                    "timestamp": iso_millis(u.at), "version": t.version, "slaveId": u.placement.agent_id,
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
                t.placement = Some(u.placement.clone());
                t.staged_at = iso_millis(u.at);
            }
            if u.state == TaskState::Running && t.started_at.is_none() {
                t.started_at = Some(iso_millis(u.at));
                let placement = t.placement.clone().unwrap_or_default();
                let checks = health::checks(&app.def);
                if !checks.is_empty() {
                    t.health = vec![health::Health::default(); checks.len()];
                    let target = health::Target {
                        task_id: t.id.clone(),
                        app_id: app_id.clone(),
                        sandbox: self.cluster.sandbox_of(&placement.agent_id, &t.id),
                        host: placement.host,
                        ports: placement.ports,
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
                let grace = app.kill_grace();
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
                self.kill_task(&target.task_id, grace);
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(check.interval) => {}
                () = self.stop.cancelled() => return,
            }
        }
    }
}
