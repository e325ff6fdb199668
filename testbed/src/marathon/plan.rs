//! An app's controller, as Marathon's scheduler actions and task replacer: scale to
//! `instances`, replace the tasks of an old version under `upgradeStrategy`, stop a deleted
//! app, wait out the launch back-off, and end the deployment once the new tasks run (healthy).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use tokio::time::Instant;

use super::{AppRec, MState, MTask, Marathon};
use crate::formats::iso_millis;
use crate::task::TaskState;

impl Marathon {
    /// Starts the controller of an app (one per app, until the app is gone).
    pub(super) fn spawn_controller(self: &Arc<Self>, app_id: String) {
        let me = Arc::clone(self);
        self.cluster
            .spawn(async move { me.controller(app_id).await });
    }

    async fn controller(self: Arc<Self>, app_id: String) {
        let mut generation = self.generation.subscribe();
        let mut room = self.cluster.room_freed();
        loop {
            generation.mark_unchanged();
            room.mark_unchanged();
            let round = self.plan(&app_id);
            for (id, grace) in &round.kills {
                self.kill_task(id, *grace);
            }
            if round.gone {
                return;
            }
            if round.launched || !round.kills.is_empty() {
                continue;
            }
            let queued = self.lock().apps.get(&app_id).is_some_and(|a| a.queued > 0);
            // A queued launch waits for an offer: room given back by any task of the cluster.
            let offer = async {
                if queued {
                    let _ = room.changed().await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                going = self.wait(&mut generation, round.wake) => if !going { return },
                () = offer => {}
            }
        }
    }

    /// Decides what to kill and launches what fits now. Instances that do not fit stay a count
    /// in the app's launch queue, as in Marathon's: a task exists only once an agent took it.
    fn plan(&self, app_id: &str) -> Round {
        let mut st = self.lock();
        let st = &mut *st;
        let Some(app) = st.apps.get_mut(app_id) else {
            return Round {
                gone: true,
                ..Round::default()
            };
        };
        let grace = app.kill_grace();
        if app.deleted {
            let (kills, gone) = stop_deleted(st, app_id, grace);
            return Round {
                kills,
                gone,
                ..Round::default()
            };
        }
        let n = app.instances();
        let now = Instant::now();
        let backoff_until = app.backoff.map(|b| b.until).filter(|u| *u > now);
        let backing_off = backoff_until.is_some();
        let (to_kill, launches) = if app.has_old_tasks() {
            app.replace(n, backing_off)
        } else {
            app.scale(n, backing_off)
        };
        let mut kills = Vec::new();
        for id in &to_kill {
            if let Some(t) = app.tasks.get_mut(id) {
                t.kill_requested = true;
                kills.push((id.clone(), grace));
            }
        }
        let ask = super::launch::resources(&app.def);
        let mut launched = 0;
        while launched < launches {
            let mut made = None;
            let placed = self.cluster.launch_if_room(
                ask,
                || {
                    let (spec, task) = self.task_for(app_id, app, &mut st.next_service_port);
                    made = Some(task);
                    spec
                },
                &self.sink,
            );
            let (Some(placement), Some(mut task)) = (placed, made) else {
                break;
            };
            task.placement = Some(placement);
            st.task_app.insert(task.id.clone(), app_id.to_owned());
            app.tasks.insert(task.id.clone(), task);
            launched += 1;
        }
        app.set_queued(n, &iso_millis(Utc::now()));
        if kills.is_empty() && launched == 0 && app.deployed(n) {
            if let Some(d) = app.deployment.take() {
                st.deployments.remove(&d);
            }
        }
        Round {
            kills,
            launched: launched > 0,
            wake: backoff_until,
            gone: false,
        }
    }
}

/// What one round of an app's controller decided.
#[derive(Default)]
struct Round {
    /// Tasks to kill, each with its grace.
    kills: Vec<(String, Option<Duration>)>,
    /// Whether a task was launched (another round may launch more).
    launched: bool,
    /// When the launch back-off ends.
    wake: Option<Instant>,
    /// The app is gone: the controller ends.
    gone: bool,
}

/// A deleted app: kills its tasks; once none is left, removes it and its deployment (true).
fn stop_deleted(
    st: &mut MState,
    app_id: &str,
    grace: Option<Duration>,
) -> (Vec<(String, Option<Duration>)>, bool) {
    let mut acts = Vec::new();
    let Some(app) = st.apps.get_mut(app_id) else {
        return (acts, true);
    };
    app.queued = 0;
    app.queued_since = None;
    for t in app.tasks.values_mut().filter(|t| !t.kill_requested) {
        t.kill_requested = true;
        acts.push((t.id.clone(), grace));
    }
    if !app.tasks.is_empty() {
        return (acts, false);
    }
    if let Some(d) = app.deployment.take() {
        st.deployments.remove(&d);
    }
    st.apps.remove(app_id);
    (acts, true)
}

impl MTask {
    /// Running and not being killed: what counts as healthy capacity.
    fn is_serving(&self) -> bool {
        self.state == TaskState::Running && !self.kill_requested
    }
}

impl AppRec {
    /// The launch queue's count after this round: the instances of the current version not
    /// running or starting (`n` less the live tasks of the current version not being killed);
    /// `since` is when the queue last went from empty to not.
    fn set_queued(&mut self, n: usize, now: &str) {
        let (_, new) = self.tasks_by_version();
        let active = new.iter().filter(|t| !t.kill_requested).count();
        self.queued = n.saturating_sub(active);
        if self.queued == 0 {
            self.queued_since = None;
        } else if self.queued_since.is_none() {
            self.queued_since = Some(now.to_owned());
        }
    }

    /// `taskKillGracePeriodSeconds`, when set.
    pub(super) fn kill_grace(&self) -> Option<Duration> {
        self.def
            .get("taskKillGracePeriodSeconds")
            .and_then(Value::as_f64)
            .map(Duration::from_secs_f64)
    }

    /// `instances` (1 when absent).
    fn instances(&self) -> usize {
        let n = self
            .def
            .get("instances")
            .and_then(Value::as_u64)
            .unwrap_or(1);
        usize::try_from(n).unwrap_or(usize::MAX)
    }

    /// The live tasks of older versions and of the current one.
    fn tasks_by_version(&self) -> (Vec<&MTask>, Vec<&MTask>) {
        self.tasks
            .values()
            .filter(|t| !t.state.is_terminal())
            .partition(|t| t.version != self.config_version)
    }

    fn has_old_tasks(&self) -> bool {
        !self.tasks_by_version().0.is_empty()
    }

    /// Only the current version runs: launch up to `n` (unless backing off) or kill the extra
    /// ones by `killSelection` (`YOUNGEST_FIRST` by default, or `OLDEST_FIRST`). Returns the
    /// tasks to kill and how many to launch.
    fn scale(&self, n: usize, backing_off: bool) -> (Vec<String>, usize) {
        let (_, new) = self.tasks_by_version();
        let mut active: Vec<&MTask> = new.into_iter().filter(|t| !t.kill_requested).collect();
        if active.len() < n {
            let launches = if backing_off { 0 } else { n - active.len() };
            return (Vec::new(), launches);
        }
        if active.len() == n {
            return (Vec::new(), 0);
        }
        active.sort_by(|a, b| a.staged_at.cmp(&b.staged_at).then(a.id.cmp(&b.id)));
        let youngest =
            self.def.get("killSelection").and_then(Value::as_str) != Some("OLDEST_FIRST");
        if youngest {
            active.reverse();
        }
        let extra = active.len() - n;
        (active.iter().take(extra).map(|t| t.id.clone()).collect(), 0)
    }

    /// Old tasks run: Marathon's task replacer under `upgradeStrategy`. With `n` instances,
    /// `ceil(n·minimumHealthCapacity)` serving tasks are kept, at most
    /// `floor(n·(1+maximumOverCapacity))` tasks exist at once; old tasks not running yet go
    /// first, then running ones beyond the minimum; when nothing may move, one old task is
    /// killed to make progress. Returns the tasks to kill and how many to launch.
    fn replace(&self, n: usize, backing_off: bool) -> (Vec<String>, usize) {
        let (old, new) = self.tasks_by_version();
        let new_running = new.iter().filter(|t| t.is_serving()).count();
        let new_active = new.iter().filter(|t| !t.kill_requested).count();
        let strategy = self.def.get("upgradeStrategy");
        let f = |k: &str, d: f64| {
            strategy
                .and_then(|u| u.get(k))
                .and_then(Value::as_f64)
                .unwrap_or(d)
        };
        let nf = n as f64;
        let min_healthy = (nf * f("minimumHealthCapacity", 1.0)).ceil() as usize;
        let max_cap = ((nf * (1.0 + f("maximumOverCapacity", 1.0))).floor() as usize).max(n);
        let old_running: Vec<&MTask> = old.iter().copied().filter(|t| t.is_serving()).collect();
        let mut killable = (old_running.len() + new_running).saturating_sub(min_healthy);
        // Kill old tasks that are not running yet first, then the running ones.
        let mut to_kill: Vec<String> = old
            .iter()
            .filter(|t| !t.kill_requested && t.state != TaskState::Running)
            .map(|t| t.id.clone())
            .collect();
        for t in &old_running {
            if killable == 0 {
                break;
            }
            to_kill.push(t.id.clone());
            killable -= 1;
        }
        let total = old.len() + new_active;
        let mut launches = 0;
        if new_active < n && total < max_cap && !backing_off {
            launches = (max_cap - total).min(n - new_active);
        }
        let killing = old.iter().any(|t| t.kill_requested);
        if launches == 0 && to_kill.is_empty() && !killing && new_active < n {
            // minimumHealthCapacity 1 with no over-capacity: kill one to make progress.
            if let Some(t) = old.first() {
                to_kill.push(t.id.clone());
            }
        }
        (to_kill, launches)
    }

    /// The deployment is done: exactly `n` tasks, all of the current version, serving, and
    /// (with health checks) passing every check.
    fn deployed(&self, n: usize) -> bool {
        let alive_old = self
            .tasks
            .values()
            .any(|t| t.version != self.config_version);
        !alive_old
            && self.tasks.len() == n
            && self
                .tasks
                .values()
                .all(|t| t.is_serving() && t.health.iter().all(|h| h.alive))
    }
}
