//! When a Chronos job runs: due runs taken from its schedule as the version it was posted
//! through does (2.5.1 skips late runs, 3.x skips the schedule forward at launch), retries after
//! a failure, dependent jobs after their parents, and what a run's end writes on the job.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use frameworks::Schedule;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::iso8601::{self, Generation};
use super::{Chronos, Job, Run, job};
use crate::formats::iso_millis;
use crate::task::{TaskSpec, TaskState, TaskUpdate};

impl Chronos {
    /// Launches what is due, then sleeps until the next due run or a change.
    pub(super) async fn scheduler(self: Arc<Self>) {
        let mut generation = self.generation.subscribe();
        loop {
            generation.mark_unchanged();
            let (launches, wake) = self.tick();
            for spec in launches {
                self.cluster.launch(spec, self.sink.clone());
            }
            if !self.wait(&mut generation, wake).await {
                return;
            }
        }
    }

    /// Takes due runs, advances schedules, launches what may run; returns the next wake-up.
    fn tick(&self) -> (Vec<TaskSpec>, Option<Instant>) {
        let now = Utc::now();
        let inow = Instant::now();
        let mut wake: Option<Instant> = None;
        let mut soonest = |t: Instant| {
            wake = Some(wake.map_or(t, |w| w.min(t)));
        };
        let mut launches = Vec::new();
        let mut st = self.lock();
        let st = &mut *st;
        for (name, job) in &mut st.jobs {
            let concurrent = flag(&job.def.map, "concurrent");
            if !flag(&job.def.map, "disabled") {
                let ahead = match job.def.generation {
                    Generation::V3 => job.take_due_v3(now, concurrent),
                    Generation::V2 => job.take_due_v2(now),
                };
                if let Some(ahead) = ahead {
                    soonest(inow + ahead);
                }
            }
            if let Some(at) = job.take_retry(inow) {
                soonest(at);
            }
            while let Some(run) = job.next_launch(concurrent) {
                let spec = self.task_spec(&job.def, &run);
                st.task_job.insert(spec.task_id.clone(), name.clone());
                job.running.insert(spec.task_id.clone(), run);
                launches.push(spec);
            }
        }
        (launches, wake)
    }

    /// Forwards the terminal updates of the jobs' tasks to [`Self::finished`].
    pub(super) async fn update_loop(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<TaskUpdate>) {
        while let Some(u) = self.next_update(&mut rx).await {
            if u.state.is_terminal() {
                self.finished(&u);
                self.bump();
            }
        }
    }

    /// A run ended: success counts and wakes the dependent jobs whose parents all succeeded; a
    /// failure is retried (`retries`, default 2) before it counts; a kill is neither.
    fn finished(&self, u: &TaskUpdate) {
        let mut st = self.lock();
        let Some(name) = st.task_job.remove(&u.task_id) else {
            return;
        };
        let retry_delay = Duration::from_millis(self.cluster.cfg.chronos_failure_retry_ms);
        let Some(job) = st.jobs.get_mut(&name) else {
            return;
        };
        let Some(run) = job.running.remove(&u.task_id) else {
            return;
        };
        let now = iso_millis(u.at);
        match u.state {
            TaskState::Finished => {
                let m = &mut job.def.map;
                m.insert("successCount".into(), json!(count(m, "successCount") + 1));
                m.insert("lastSuccess".into(), json!(now));
                m.insert("errorsSinceLastSuccess".into(), json!(0));
                let mut ready = Vec::new();
                for (child_name, child) in &mut st.jobs {
                    if child.parent_succeeded(&name) {
                        ready.push(child_name.clone());
                    }
                }
                let due_ms = u.at.timestamp_millis();
                for child in ready {
                    if let Some(c) = st.jobs.get_mut(&child) {
                        c.queue.push_back(Run::new(due_ms, String::new()));
                    }
                }
            }
            TaskState::Killed => {}
            _ => job.failed(run, retry_delay, &now),
        }
    }
}

impl Job {
    /// 3.x: a due job is queued once its previous run has ended (unless `concurrent`), and the
    /// schedule skips forward at launch (one run off the count, the start past now). Returns how
    /// long until the next run is due when it is not yet.
    fn take_due_v3(&mut self, now: chrono::DateTime<Utc>, concurrent: bool) -> Option<Duration> {
        let sched = self.next.clone()?;
        match sched.first_run_at(now) {
            None => self.next = None,
            Some(due) if due.with_timezone(&Utc) > now => {
                return Some((due.with_timezone(&Utc) - now).to_std().unwrap_or_default());
            }
            Some(due) => {
                let free = self.queue.is_empty()
                    && self.retry.is_none()
                    && (concurrent || self.running.is_empty());
                if free {
                    self.queue
                        .push_back(Run::new(due.timestamp_millis(), String::new()));
                    self.advance(Some(skip_forward(&sched, due, now)));
                }
            }
        }
        None
    }

    /// 2.5.1: every due scheduled run is queued (several if the loop was late), one later than
    /// the job's `epsilon` skipped, the stored schedule rewritten after each. Returns how long
    /// until the next run is due.
    fn take_due_v2(&mut self, now: chrono::DateTime<Utc>) -> Option<Duration> {
        while let Some(sched) = self.next.clone() {
            let Some(due) = sched.first_run_at(now) else {
                self.next = None;
                break;
            };
            let due_utc = due.with_timezone(&Utc);
            if due_utc > now {
                return Some((due_utc - now).to_std().unwrap_or_default());
            }
            let after = sched.after_run(now);
            let late = (now - due_utc).to_std().unwrap_or_default();
            if late <= epsilon(&self.def) {
                self.queue
                    .push_back(Run::new(due_utc.timestamp_millis(), String::new()));
            }
            self.advance(after);
        }
        None
    }

    /// Queues (first) a retry whose delay has passed; otherwise when the pending one is due.
    fn take_retry(&mut self, now: Instant) -> Option<Instant> {
        match &self.retry {
            Some((at, _)) if *at > now => Some(*at),
            Some(_) => {
                if let Some((_, run)) = self.retry.take() {
                    self.queue.push_front(run);
                }
                None
            }
            None => None,
        }
    }

    /// The next queued run, if it may start now (runs never overlap unless `concurrent`).
    fn next_launch(&mut self, concurrent: bool) -> Option<Run> {
        if concurrent || self.running.is_empty() {
            self.queue.pop_front()
        } else {
            None
        }
    }

    /// Parent `parent` succeeded; true when that completes the set (which then starts over).
    fn parent_succeeded(&mut self, parent: &str) -> bool {
        if !self.def.parents.iter().any(|p| p == parent) {
            return false;
        }
        self.parents_done.insert(parent.to_owned());
        if self
            .def
            .parents
            .iter()
            .all(|p| self.parents_done.contains(p))
        {
            self.parents_done.clear();
            return true;
        }
        false
    }

    /// A run failed at `now`: retried after `retry_delay` while attempts remain, else counted.
    fn failed(&mut self, run: Run, retry_delay: Duration, now: &str) {
        let m = &mut self.def.map;
        let retries = m.get("retries").and_then(Value::as_u64).unwrap_or(2);
        if run.attempt < retries {
            self.retry = Some((
                Instant::now() + retry_delay,
                Run {
                    attempt: run.attempt + 1,
                    ..run
                },
            ));
        } else {
            m.insert("errorCount".into(), json!(count(m, "errorCount") + 1));
            m.insert(
                "errorsSinceLastSuccess".into(),
                json!(count(m, "errorsSinceLastSuccess") + 1),
            );
            m.insert("lastError".into(), json!(now));
        }
    }
}

/// A boolean field of a job (`disabled`, `concurrent`), false when absent.
pub(super) fn flag(m: &Map<String, Value>, key: &str) -> bool {
    m.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// A counter field of a job (`successCount`, …), 0 when absent.
fn count(m: &Map<String, Value>, key: &str) -> u64 {
    m.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// 2.5.1's `epsilon` (Joda period, default 60 s): how late a run may start before it is skipped.
fn epsilon(def: &job::JobDef) -> Duration {
    def.map
        .get("epsilon")
        .and_then(Value::as_str)
        .and_then(iso8601::joda_period_secs)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .unwrap_or(Duration::from_secs(60))
}

/// 3.x's `JobUtils.skipForward` at launch: one run off a finite count, and the start moved past
/// `now` on the period's grid (`secondsBetween(start, now) / period + 1` periods later).
fn skip_forward(
    sched: &Schedule,
    due: chrono::DateTime<chrono::FixedOffset>,
    now: chrono::DateTime<Utc>,
) -> Schedule {
    let period = sched.period().as_secs().max(1);
    let behind = u64::try_from((now - due.with_timezone(&Utc)).num_seconds()).unwrap_or(0);
    let skip = behind / period + 1;
    let start = u32::try_from(skip)
        .ok()
        .and_then(|k| sched.period().checked_mul(k))
        .and_then(|d| chrono::TimeDelta::from_std(d).ok())
        .and_then(|d| due.checked_add_signed(d))
        .unwrap_or(due);
    sched
        .clone()
        .with_repetitions(sched.repetitions().map(|n| n.saturating_sub(1)))
        .with_start(Some(start))
}
